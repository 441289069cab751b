// Re-deciding the log: would the rules admit these events?
//
// An audit replays each case and, for every command's worth of events, reconstructs the
// command they came from and runs Decide on the state before them, in the context of
// their time (actor, clock, policy, the verified signature). The events are admitted when
// Decide emits exactly them, byte for byte. Pure: no I/O, no clock.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "casework/v1/case.pb.h"
#include "casework/v1/command.pb.h"
#include "casework/v1/events.pb.h"
#include "services/workflow/decider.h"

namespace casework::workflow {

// The command whose decision on `before` emitted `events` (one command's events, in
// order, all of one case stream); nullopt when no single command emits these events (an
// unknown or non-case kind, or a second event other than the CaseClosed that follows a
// ClosureSignedOff).
[[nodiscard]] std::optional<casework::v1::Command> CommandFor(
    const casework::v1::Case& before, std::span<const casework::v1::Event> events);

// nullopt when Decide(before, CommandFor(before, events), context) emits exactly `events`;
// otherwise what differs, in words (the refusal's reason and message, or the first
// differing event). `context.policy` must be set; a sign-off that records the closure
// policy it was judged by (rules/2026.4 on) is decided under that one instead.
[[nodiscard]] std::optional<std::string> Readmit(const casework::v1::Case& before,
                                                 std::span<const casework::v1::Event> events,
                                                 const Context& context);

}  // namespace casework::workflow

// The pure core of the rectification workflow: decide and evolve.
//
// No I/O, no clock, no RocksDB, no gRPC: the shell passes the state, the command and a
// context (who, when, which policy) in, and gets events or a refusal out. Every rule of
// the domain (docs/rules.md) lives behind these two functions; the write path,
// point-in-time audits and projection rebuilds all fold the same `Evolve`, so they cannot
// disagree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "casework/v1/case.pb.h"
#include "casework/v1/command.pb.h"
#include "casework/v1/events.pb.h"
#include "services/workflow/policy.h"
#include "services/workflow/refusal.h"

namespace casework::workflow {

// The version of the rule set this build enforces. Recorded on every event, so an audit
// can re-run the rules that admitted it. Bump it whenever a rule changes, and keep the
// older sets decidable (Context::rules) for deep verification of older events.
//   rules/2026.1  separation of duties within the latest round only.
//   rules/2026.2  whoever assisted the case in any round may not inspect or review it; a
//                 closure needs a signer who inspected the case in no round.
//   rules/2026.3  a sign-off's signature also covers the leaf hash of the case's latest
//                 event (the statement's `latest` line, statement.h), kept in the event.
//   rules/2026.4  a sign-off records the closure policy it was judged by
//                 (ClosureSignedOff.policy), and is re-decided under that policy.
inline constexpr char kRulesVersion[] = "rules/2026.4";
inline constexpr char kRulesVersion2026_3[] = "rules/2026.3";
inline constexpr char kRulesVersion2026_2[] = "rules/2026.2";
inline constexpr char kRulesVersion2026_1[] = "rules/2026.1";

// Whether this build can decide (and so re-run) the rule set `version`.
[[nodiscard]] bool KnownRulesVersion(std::string_view version);

// Who is acting, when, and under which policy. Built by the shell from the
// authenticated identity and its clock.
struct Context {
  // The authenticated caller, with roles and jurisdiction.
  Principal actor;
  // The server's clock when the command was admitted, in microseconds since the epoch.
  int64_t now_micros = 0;
  // The closure policy and other configurable limits.
  const Policy* policy = nullptr;
  // For SignOffClosure: the shell verified the signature over the canonical statement
  // (statement.h) with this key of the actor, at this level; empty when it did not.
  std::string verified_key_id;
  casework::v1::ApprovalLevel verified_level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
  // The leaf hash (32 bytes) of the case's latest event that the verified statement named
  // (under rules where SignOffNamesLatestLeaf); recorded in the sign-off.
  std::string verified_latest_leaf_hash;
  // The rule set to decide by, stamped on the events: the current one, or an older one
  // (KnownRulesVersion) when a deep verification re-runs an older event.
  std::string_view rules = kRulesVersion;
};

// The events a command emits, in order, each complete (envelope filled: stream, version,
// actor, time, request id, rules version). Empty when the command is already satisfied.
using Events = std::vector<casework::v1::Event>;

// Either the events to append or the refusal.
using Decision = std::variant<Events, Refusal>;

// Decides a command against the current state of its case. `state` is the fold of the
// case's events (a default Case with version 0 when the case does not exist yet).
// Never fails in another way: every refusal is a value with its reason (docs/rules.md
// lists them in their order of precedence). `context.policy` must be set and valid
// (ValidatePolicy); a null policy is a bug and aborts.
[[nodiscard]] Decision Decide(const casework::v1::Case& state, const casework::v1::Command& command,
                              const Context& context);

// What the closure of a VERIFIED case still needs under `policy` and the current rules,
// in English and Chinese (each empty when its sign-offs would close it): more approvers in
// all, at city or county level, or one who never inspected the case (an inspector's own
// sign-off counts but never closes a case alone).
struct ClosureOutstanding {
  std::string en;
  std::string zh;
};
[[nodiscard]] ClosureOutstanding DescribeClosureOutstanding(const casework::v1::Case& state,
                                                            const Policy& policy);

// Applies one event to a state. An event is a fact: it never fails. An event impossible
// in its state is corruption and aborts (CW_CHECK).
void Evolve(casework::v1::Case& state, const casework::v1::Event& event);

// The content rules of an admonishment talk and of a rectification notice, as the decider
// applies them to a case's: the first refusal in its order of precedence, or nullopt.
// OversightService applies the same to a county's, so that one mistake gets one reason.
[[nodiscard]] std::optional<Refusal> CheckTalkContent(
    const google::protobuf::RepeatedPtrField<casework::v1::Person>& talked_with,
    const std::string& subject, const std::string& notes);
// `deadline`: nullptr when the notice sets none; otherwise it must be after `now_micros`.
[[nodiscard]] std::optional<Refusal> CheckNoticeContent(const std::string& notice_id,
                                                        const std::string& content,
                                                        const google::protobuf::Timestamp* deadline,
                                                        int64_t now_micros);

// Folds a whole history from the initial state.
[[nodiscard]] casework::v1::Case Replay(const std::vector<casework::v1::Event>& events);

// A state's Chinese label, as the domain names it ("帮扶整顿中" for ASSISTED).
[[nodiscard]] std::string_view CaseStateNameZh(casework::v1::CaseState state);

}  // namespace casework::workflow

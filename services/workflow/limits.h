// Bounds on everything a command may carry. A request over a bound is refused
// (TEXT_TOO_LONG, TOO_MANY_ITEMS), so no event, and no case folded from events, grows
// without limit. Changing a bound changes the rules: bump kRulesVersion (decider.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace casework::workflow {

// A case id: 1-64 characters of [a-z0-9-], not starting with '-'.
inline constexpr size_t kCaseIdBytesMax = 64;
// A request id (AIP-155): 1-128 printable ASCII characters.
inline constexpr size_t kRequestIdBytesMax = 128;
// Any other identifier (organisation, person, department, inspection, notice).
inline constexpr size_t kIdBytesMax = 64;
// A display name.
inline constexpr size_t kDisplayNameBytesMax = 256;
// A jurisdiction path "city/county/township/org".
inline constexpr size_t kJurisdictionSegments = 4;
inline constexpr size_t kJurisdictionSegmentBytesMax = 64;
// Free text: findings, plan, notes, comments, reasons, descriptions, notice content.
inline constexpr size_t kTextBytesMax = 16 * 1024;
// People named in one request: stationed cadres, visitors, people talked with.
inline constexpr int kPeopleMax = 32;
// One funds record, in fen: at most 10 billion CNY; keeps every sum far from overflow.
inline constexpr int64_t kFundsAmountFenMax = int64_t{1'000'000'000'000};

// What a case's row keeps of its history (the case's events keep all of it): the latest
// assignments that were replaced, and the findings of the latest inspections of the
// round (older ones keep their id, inspector, outcome and time, which the rules read).
// So no sequence of admitted commands grows one case's row without bound: every command
// rewrites the row, and the log refuses a row over 1 MiB. Not a rule: no decision reads
// what is dropped.
inline constexpr int kReplacedAssignmentsKept = 8;
inline constexpr int kInspectionFindingsKept = 8;

}  // namespace casework::workflow

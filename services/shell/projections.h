// The read models of the ledger, as projection writes derived from a case's state before
// and after a command. Written in the same atomic batch as the events, so a read after a
// write sees it; a rebuild folds the log through the same function.
//
// Tables (keys are byte strings; integers big-endian so byte order is numeric order):
//   case      case_id                                 -> Case (deterministic bytes)
//   by_state  u8 state || case_id                     -> ""
//   by_jur    jurisdiction || 0x00 || case_id         -> ""
//   by_due    u64 deadline micros + 2^63 || case_id   -> ""
//   counts    prefix || 0x00 || u8 state              -> int64 counter
//             for every jurisdiction prefix of the case ("city", "city/county", ...)
//   org_case  organisation jurisdiction path          -> case_id of the case listing it
//             (city/county/township/org: one case per organisation and place)
//   reg_county organisation_id                        -> "city/county" of its latest
//             registration (an organisation registered under another county moved there)
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "casework/v1/case.pb.h"
#include "store/event_log.h"
#include "store/rocks_event_log.h"

namespace casework::shell {

inline constexpr char kCaseTable[] = "case";
inline constexpr char kByStateTable[] = "by_state";
inline constexpr char kByJurisdictionTable[] = "by_jur";
inline constexpr char kByDeadlineTable[] = "by_due";
inline constexpr char kCountsTable[] = "counts";
// organisation id -> the county of its latest registration (registry/{county})
inline constexpr char kRegistryCountyTable[] = "reg_county";
// organisation jurisdiction path -> the case that lists it (one case per organisation)
inline constexpr char kOrganisationCaseTable[] = "org_case";

// What ProjectCase reads of a case as it was before a command: a command handler keeps
// this instead of a copy of the whole case, and evolves the case itself into `after`.
struct CaseRowBefore {
  int64_t version = 0;  // 0: the case is new
  casework::v1::CaseState state = casework::v1::CASE_STATE_UNSPECIFIED;
  int64_t deadline_micros = 0;
  std::string jurisdiction;

  static CaseRowBefore Of(const casework::v1::Case& c);
};

// Appends to `out` the writes that move the projections from `before` (version 0 when
// the case is new) to `after`.
void ProjectCase(const CaseRowBefore& before, const casework::v1::Case& after,
                 std::vector<store::ProjectionWrite>* out);
void ProjectCase(const casework::v1::Case& before, const casework::v1::Case& after,
                 std::vector<store::ProjectionWrite>* out);

// Appends the write that records `county` as where organisation `id` is registered now.
void ProjectRegistration(const std::string& id, const std::string& county,
                         std::vector<store::ProjectionWrite>* out);

// Re-derives the projection writes of the stored events, fed in position order from 0,
// for RocksEventLog::RebuildProjections: folds every case through Evolve and emits what
// the write path emitted for it (ProjectCase, ProjectApproverKeyEvent, and
// ProjectRegistration for registry/ events). A rebuild with it
// equals incremental maintenance byte for byte.
class ProjectionReplayer {
 public:
  // The writes of one stored event; kDataLoss when its bytes do not parse.
  absl::StatusOr<std::vector<store::ProjectionWrite>> Project(const store::StoredEvent& stored);

 private:
  absl::flat_hash_map<std::string, casework::v1::Case> cases_;
};

// The layout of the projections this build writes (RocksEventLog::Options::
// projection_layout). Raise it whenever ProjectCase, ProjectApproverKeyEvent or
// ProjectRegistration write
// something else for the same events, so that a log an earlier build wrote is rebuilt
// before it is served, and say here what changed:
//   0  logs from before layouts were recorded: case rows without earlier_assisters and
//      earlier_inspectors (which rules/2026.2 reads to decide)
//   1  case rows with earlier_assisters and earlier_inspectors
//   2  reg_county: the county of each organisation's latest registration
//   3  org_case: the case of each listed organisation
inline constexpr uint32_t kProjectionLayout = 3;

// Rebuilds the projections of `log` from its events (ProjectionReplayer) when they were
// written in another layout than kProjectionLayout, or always when `force`. Call before
// serving, with no appends in flight. Returns whether it rebuilt. An event that does not
// parse ends the rebuild with kDataLoss, and the log's layout says "being rebuilt"
// (RocksEventLog::kProjectionLayoutRebuilding), so that the next start rebuilds again
// instead of serving what was left half done.
absl::StatusOr<bool> BringProjectionsUpToDate(store::RocksEventLog& log, bool force);

// Index keys, shared by the writer and the readers.
[[nodiscard]] std::string StateKey(casework::v1::CaseState state, std::string_view case_id);
[[nodiscard]] std::string DeadlineKey(int64_t deadline_micros, std::string_view case_id);
[[nodiscard]] std::string JurisdictionKey(std::string_view jurisdiction, std::string_view case_id);
[[nodiscard]] std::string CountKey(std::string_view prefix, casework::v1::CaseState state);

// Deterministic serialization of a case (stable bytes for equal messages).
[[nodiscard]] std::string SerializeCase(const casework::v1::Case& c);

}  // namespace casework::shell

// The campaign's oversight, computed from the log: the organisation registry, the listed
// ratio, flags, county reports and a county's accountability report.
//
// Pure: no I/O, no clock. The shell feeds a Ledger every event of the log in position
// order up to a cut (a time), then asks for flags and reports as of that time. Cases are
// folded through the core's Evolve, so the figures agree with the write path. Every flag
// and every report line names the log positions of the events it rests on.
//
// Limits: a limit is broken once it has passed. At exactly the limit no flag is raised;
// one microsecond later it is (docs/oversight.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "casework/v1/oversight_service.pb.h"
#include "services/workflow/policy.h"

namespace casework::oversight {

inline constexpr int64_t kMicrosPerDay = 86'400'000'000;

// The microseconds since the epoch of a time a request gives (an "as of", a period),
// when it is one the API takes: 1970-01-01 to 9999-12-31, nanos within a second; else
// nullopt (such seconds would overflow in microseconds).
[[nodiscard]] std::optional<int64_t> RequestTimeMicros(const google::protobuf::Timestamp& t);

// Flag rules (Flag.rule).
inline constexpr char kStationedButAbsent[] = "STATIONED_BUT_ABSENT";
inline constexpr char kThreeYearsWithoutChange[] = "THREE_YEARS_WITHOUT_CHANGE";
inline constexpr char kFollowUpReviewDue[] = "FOLLOW_UP_REVIEW_DUE";
inline constexpr char kOverdue[] = "OVERDUE";
inline constexpr char kListedRatioBelow10Percent[] = "LISTED_RATIO_BELOW_10_PERCENT";
inline constexpr char kLowerRankedSkipped[] = "LOWER_RANKED_SKIPPED";

// Stream prefixes of the oversight events.
inline constexpr char kRegistryStreamPrefix[] = "registry/";
inline constexpr char kCountyStreamPrefix[] = "counties/";
inline constexpr char kSampleStreamPrefix[] = "samples/";
inline constexpr char kImportStreamPrefix[] = "registry-imports/";

// The stream of a registry import's record: "registry-imports/" and the lowercase hex of
// the first 8 bytes of SHA-256 of its request id. Two request ids that share the stream
// are told apart by the log's request-id index, so a clash costs nothing but the stream.
[[nodiscard]] std::string ImportStream(std::string_view request_id);

// The deepest jurisdiction path that holds every one of `paths` (segment-wise); "" when
// they share no first segment or `paths` is empty.
[[nodiscard]] std::string CommonScope(const std::vector<std::string>& paths);

// The county of a jurisdiction path: its first two segments ("city/county"); the path
// itself when it has fewer.
[[nodiscard]] std::string CountyOf(std::string_view jurisdiction);

// True when `path` is inside the subtree `root` (segment-wise prefix; an empty root holds
// everything).
[[nodiscard]] bool InSubtree(std::string_view root, std::string_view path);

// One organisation of the registry, as last recorded.
struct RegistryEntry {
  casework::v1::Organisation organisation;
  int32_t grade = 0;  // 1 best .. 4 worst (分类定级)
  int32_t stars = 0;  // 0..5 (评星定级)
  int64_t position = 0;
  int64_t time_micros = 0;
  std::string actor;
};

// True when `a` ranks strictly below (worse than) `b`: a higher grade, or the same grade
// and fewer stars. The bottom of the ranking is listed first (倒排).
[[nodiscard]] bool RanksBelow(const RegistryEntry& a, const RegistryEntry& b);

// An assigned person and the latest sign of presence: the assignment or a field visit.
struct Presence {
  int64_t since_micros = 0;
  int64_t since_position = 0;
};

// A case as folded, with the positions the flags and reports cite.
struct CaseRecord {
  casework::v1::Case state;
  std::string county;
  int64_t listed_position = 0;
  int64_t opened_position = 0;    // the listing or the latest relapse
  int64_t deadline_position = 0;  // the event that set the current deadline
  int64_t closed_position = -1;   // the latest CaseClosed
  // The latest follow-up review that held since the latest closure (-1: none).
  int64_t reviewed_position = -1;
  int64_t reviewed_micros = 0;
  // Assigned people (first secretary, stationed cadres) of the current assignment.
  std::map<std::string, Presence> presence;
  // Periods the case was open: [opened, closed) in microseconds; closed = INT64_MAX
  // while open.
  std::vector<std::pair<int64_t, int64_t>> open_spans;
  // The registry record of the case's organisation (its id, in its county) when the case
  // was listed, if it was registered then: the place and rank the listing is judged by. A
  // later regrade (what the campaign is for) does not make an earlier listing look like a
  // good organisation listed before worse ones.
  std::optional<RegistryEntry> registered_at_listing;
};

// A dated event the reports count and cite.
struct Occurrence {
  enum class Kind { kConversion, kRelapse, kTalk, kNotice };
  Kind kind = Kind::kConversion;
  std::string subject;  // "cases/{id}" or "counties/{county}"
  std::string county;
  int64_t position = 0;
  int64_t time_micros = 0;
  std::string actor;
  std::vector<std::string> people;  // approvers of a closure; people talked with
  std::string detail;
  std::string detail_zh;
};

// Which events a fold "as of time t" takes, in log order. Event times follow log order
// only roughly (a command is stamped when decided and appended a little later, and a
// clock may step back), so the cut is per stream: a stream's events recorded at or before
// t, up to its first event recorded after t (its later events are left out with it, as a
// fold takes each stream's events in order). The scan ends at the first event recorded
// more than kSkewMicros after t.
class AsOfCut {
 public:
  static constexpr int64_t kSkewMicros = int64_t{10} * 60 * 1'000'000;  // 10 minutes

  explicit AsOfCut(int64_t cut_micros) : cut_micros_(cut_micros) {}

  enum class Verdict { kTake, kSkip, kEnd };
  Verdict Judge(std::string_view stream, int64_t event_micros);

 private:
  int64_t cut_micros_;
  std::set<std::string, std::less<>> past_;  // streams with an event after the cut
};

// The whole ledger as folded from the log.
class Ledger {
 public:
  // Folds the event stored at `position`. Events must come in position order. Events
  // of streams the oversight does not read (approvers, samples) are ignored.
  void Add(int64_t position, const casework::v1::Event& event);

  // The next position (one past the last event folded).
  [[nodiscard]] int64_t through_position() const { return through_position_; }
  [[nodiscard]] const std::map<std::string, CaseRecord>& cases() const { return cases_; }
  // county -> organisation id -> entry. An organisation is in one county: its latest
  // registration's (one registered again under another county has moved there).
  [[nodiscard]] const std::map<std::string, std::map<std::string, RegistryEntry>>& registry()
      const {
    return registry_;
  }
  [[nodiscard]] const std::vector<Occurrence>& occurrences() const { return occurrences_; }
  // Every county the ledger knows: of the registry, of a case or of a county stream.
  [[nodiscard]] std::vector<std::string> Counties() const;
  // Since when the county's listed ratio has been below 10% without a break (the time of
  // the event that took it below), or nullopt when it is not below now. Kept as events
  // fold, so a later registry edit that leaves the ratio below does not move it.
  [[nodiscard]] std::optional<int64_t> RatioBelowSince(const std::string& county) const;
  // The organisation ids of `county`'s registry with a counted listing (confirmed, and
  // counting for that organisation: the listed ratio's numerator), kept as events fold.
  [[nodiscard]] const std::set<std::string>& CountedListings(const std::string& county) const;

 private:
  // Recounts whether `organisation_id` has a counted listing in `county`, then whether the
  // county's ratio is below 10%, at `micros`.
  void Recount(const std::string& county, const std::string& organisation_id, int64_t micros);
  void RecheckRatio(const std::string& county, int64_t micros);

  std::map<std::string, CaseRecord> cases_;
  std::map<std::string, std::map<std::string, RegistryEntry>> registry_;
  std::map<std::string, std::string> registry_county_;  // organisation id -> county
  std::vector<Occurrence> occurrences_;
  std::map<std::string, bool> county_streams_;
  // organisation id -> the case streams that list it; county -> organisation ids with a
  // counted listing (the listed ratio's numerator); county -> since when below 10%.
  std::map<std::string, std::vector<std::string>> cases_by_organisation_;
  std::map<std::string, std::set<std::string>> counted_;
  std::map<std::string, int64_t> below_since_;
  int64_t through_position_ = 0;
};

// Flags as of `now_micros` for the jurisdiction subtree `scope`, ordered by county, rule
// and subject. Periods from `policy` (absence_flag_days, stale_case_days,
// follow_up_review_days).
[[nodiscard]] std::vector<casework::v1::Flag> ComputeFlags(const Ledger& ledger,
                                                           const workflow::Policy& policy,
                                                           int64_t now_micros,
                                                           std::string_view scope);

// One line per county of `scope` as of `now_micros`; the period columns count events
// with period_start_micros <= time <= now_micros.
[[nodiscard]] std::vector<casework::v1::CountyLine> CountyReport(const Ledger& ledger,
                                                                 const workflow::Policy& policy,
                                                                 int64_t now_micros,
                                                                 int64_t period_start_micros,
                                                                 std::string_view scope);

// The accountability report of one county for the period [start, end): the ledger must
// have been folded up to end - 1 µs. Lines by section (OPEN_CASE, CONVERSION, RELAPSE,
// FLAG, TALK, NOTICE), then time.
[[nodiscard]] casework::v1::GetAccountabilityReportResponse AccountabilityReport(
    const Ledger& ledger, const workflow::Policy& policy, std::string_view county,
    int64_t start_micros, int64_t end_micros);

}  // namespace casework::oversight

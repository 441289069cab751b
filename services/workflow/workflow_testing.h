// Test support for the workflow core: a cast of principals, valid commands for each
// request, and a Scenario that drives one case through its life with Decide and Evolve.
// Test-only: linked by the tests and the benchmark, never by the server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "casework/v1/case.pb.h"
#include "casework/v1/command.pb.h"
#include "casework/v1/events.pb.h"
#include "services/workflow/decider.h"
#include "services/workflow/policy.h"

namespace casework::workflow::testing {

// 2026-01-01T00:00:00Z, the scenarios' first instant.
inline constexpr int64_t kStartMicros = int64_t{1767225600} * 1'000'000;
inline constexpr int64_t kHourMicros = int64_t{3600} * 1'000'000;
inline constexpr int64_t kDayMicros = 24 * kHourMicros;

inline constexpr char kCaseId[] = "c1";
inline constexpr char kCaseName[] = "cases/c1";
// The organisation of the scenarios' case.
inline constexpr char kOrgJurisdiction[] = "city/east/hill/dongshan";

[[nodiscard]] Principal MakePrincipal(
    std::string id, std::vector<Role> roles, std::string jurisdiction,
    casework::v1::ApprovalLevel level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED);

// The cast. Each acts in the case's county ("city/east") unless said otherwise.
struct Cast {
  Principal lister = MakePrincipal("li.na", {Role::kLister}, "city/east");
  Principal reviewer = MakePrincipal("wang.fang", {Role::kReviewer}, "city/east");
  // First secretary and stationed cadre of the default assignment.
  Principal secretary = MakePrincipal("zhang.wei", {Role::kAssister}, "city/east/hill/dongshan");
  Principal cadre = MakePrincipal("chen.jie", {Role::kAssister}, "city/east/hill");
  Principal inspector = MakePrincipal("zhao.lei", {Role::kInspector}, "city/east");
  Principal county_approver =
      MakePrincipal("sun.li", {Role::kApprover}, "city/east", casework::v1::APPROVAL_LEVEL_COUNTY);
  Principal city_approver =
      MakePrincipal("zhou.min", {Role::kApprover}, "city", casework::v1::APPROVAL_LEVEL_CITY);
  Principal auditor = MakePrincipal("qian.hui", {Role::kAuditor}, "city");
  Principal admin = MakePrincipal("root", {Role::kAdmin}, "city");
  // Every role, in another county.
  Principal outsider =
      MakePrincipal("wu.gang",
                    {Role::kLister, Role::kReviewer, Role::kAssister, Role::kInspector,
                     Role::kApprover, Role::kAuditor, Role::kAdmin},
                    "city/west", casework::v1::APPROVAL_LEVEL_COUNTY);
};

// Valid requests for case kCaseId (a POOR village) at `version`, at time `now`.
[[nodiscard]] casework::v1::Command CreateCase(int64_t now, std::string case_id = kCaseId);
[[nodiscard]] casework::v1::Command ReviewListing(int64_t version, bool confirmed = true);
[[nodiscard]] casework::v1::Command AmendListing(int64_t version, int64_t now);
[[nodiscard]] casework::v1::Command AssignAssistance(int64_t version);
[[nodiscard]] casework::v1::Command ReplaceAssignment(int64_t version);
[[nodiscard]] casework::v1::Command RecordFieldVisit(int64_t version, int64_t now);
[[nodiscard]] casework::v1::Command RecordMeasure(int64_t version);
[[nodiscard]] casework::v1::Command RecordFunds(int64_t version, int64_t amount_fen = 500000);
[[nodiscard]] casework::v1::Command RecordInspection(int64_t version, std::string inspection_id,
                                                     bool passed);
[[nodiscard]] casework::v1::Command SignOffClosure(int64_t version, std::string inspection_id,
                                                   std::string key_id);
[[nodiscard]] casework::v1::Command SendBack(int64_t version);
[[nodiscard]] casework::v1::Command RecordFollowUpReview(int64_t version, bool relapsed,
                                                         int64_t now);
[[nodiscard]] casework::v1::Command RecordAdmonishmentTalk(int64_t version);
[[nodiscard]] casework::v1::Command IssueRectificationNotice(int64_t version);

// The key id the scenarios register for an approver: "key-" + id.
[[nodiscard]] std::string KeyIdOf(const Principal& principal);

// Where in its life a scenario's case is.
enum class Stage {
  kNone,             // not created
  kListed,           // listed, not reviewed
  kListedReturned,   // listed, returned for correction
  kListedConfirmed,  // listed, confirmed
  kAssisted,
  kVerified,  // inspection "insp-1" passed
  kClosed,    // signed off by both approvers
  kReopened,  // relapse found
};
[[nodiscard]] const char* StageName(Stage stage);

// One case driven through Decide and Evolve; the clock advances an hour per command.
class Scenario {
 public:
  Scenario();
  explicit Scenario(Stage stage);

  const casework::v1::Case& state() const { return state_; }
  const std::vector<casework::v1::Event>& log() const { return log_; }
  int64_t version() const { return state_.version(); }
  int64_t now() const { return now_; }
  const Cast& cast() const { return cast_; }
  Policy& policy() { return policy_; }

  // The context of `actor` now; for approvers the verified key is KeyIdOf(actor) at
  // their level, as the shell would set after checking the signature.
  [[nodiscard]] Context As(const Principal& actor) const;

  [[nodiscard]] Decision Try(const Principal& actor, const casework::v1::Command& command) const;
  // Decides, expects acceptance (fails the test otherwise), applies, advances the clock.
  Events Do(const Principal& actor, const casework::v1::Command& command);
  // Decides and expects a refusal (fails the test otherwise).
  [[nodiscard]] Refusal Refused(const Principal& actor, const casework::v1::Command& command) const;

  // Drives the case forward to `stage` with valid commands.
  void AdvanceTo(Stage stage);

 private:
  Cast cast_;
  Policy policy_;
  casework::v1::Case state_;
  std::vector<casework::v1::Event> log_;
  int64_t now_ = kStartMicros;
};

}  // namespace casework::workflow::testing

// Who may act (principals, roles, jurisdictions) and the configurable limits the rules
// use (closure policy, periods). Pure data: the shell loads it from files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "casework/v1/case.pb.h"
#include "google/protobuf/repeated_field.h"

namespace casework::workflow {

// The roles of the domain (docs/security.md). DO NOT CHANGE the values: they appear in
// principals files by name and in audit reports.
enum class Role : uint8_t {
  kLister = 1,
  kReviewer = 2,
  kAssister = 3,
  kInspector = 4,
  kApprover = 5,
  kAuditor = 6,
  kAdmin = 7,
};

// The name of a role as written in principals files: "lister", "reviewer", "assister",
// "inspector", "approver", "auditor", "admin".
[[nodiscard]] std::string_view RoleName(Role role);
// The role's Chinese name, e.g. "审批人员" for kApprover.
[[nodiscard]] std::string_view RoleNameZh(Role role);
// The role with that name; nullopt for an unknown name.
[[nodiscard]] std::optional<Role> RoleFromName(std::string_view name);

// An authenticated identity with its roles and the jurisdiction subtree it acts in
// ("city" sees everything; "city/county" only that county's cases).
struct Principal {
  std::string id;
  std::vector<Role> roles;
  std::string jurisdiction;
  // The level an approver signs at (county or city department).
  casework::v1::ApprovalLevel approval_level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
  // The version of the principals set this principal came from (recorded in the log on
  // "config/principals"); stamped on every event the principal causes. Empty when the
  // server does not record its principals.
  std::string principals_version;

  [[nodiscard]] bool HasRole(Role role) const;
  // True when `path` is inside this principal's subtree (segment-wise prefix):
  // "city/a" covers "city/a" and "city/a/b" but not "city/ab". An empty jurisdiction
  // covers nothing; a trailing '/' on the jurisdiction is ignored.
  [[nodiscard]] bool Covers(const std::string& path) const;
};

// How many approvers must sign a closure, and at which levels.
struct ClosurePolicy {
  // Distinct approvers required in all.
  int approvers_min = 2;
  // Of which at least this many at city level.
  int city_approvers_min = 0;
  // Of which at least this many at county level.
  int county_approvers_min = 1;
};

// Configuration of the rules. Defaults are the sensible ones; deployments override them.
struct Policy {
  ClosurePolicy closure;
  // Assigned people with no field visit for this long are flagged (stationed but absent).
  int64_t absence_flag_days = 30;
  // Open cases older than this are flagged (three years without change).
  int64_t stale_case_days = 3 * 365;
  // Closed cases come due for follow-up review after this long.
  int64_t follow_up_review_days = 365;
};

// OK when the policy can be enforced: every minimum non-negative, at least one approver
// in all, periods positive. INVALID_ARGUMENT naming the setting otherwise. The shell
// calls it when it loads configuration; Decide assumes a valid policy.
[[nodiscard]] absl::Status ValidatePolicy(const Policy& policy);

// The sign-offs of a pending closure as the policy counts them: distinct approvers (each
// at the level of their first sign-off), how many at city and at county level, and
// whether one of them is none of `inspectors`.
struct ClosureTally {
  int approvers = 0;
  int city = 0;
  int county = 0;
  bool someone_else = false;
};
[[nodiscard]] ClosureTally TallyClosure(
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    const std::vector<std::string>& inspectors);

// True when these sign-offs close a case under `policy`: at least `approvers_min`
// distinct approvers, of whom at least `city_approvers_min` signed at city level and
// `county_approvers_min` at county level, AND at least one of them is not `inspector`
// (the inspector of the passed inspection the closure rests on). The inspector's own
// sign-off counts toward the minimums, but can never close a case alone, whatever the
// policy says (separation of duties, docs/rules.md).
[[nodiscard]] bool ClosurePolicySatisfied(
    const ClosurePolicy& policy,
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    std::string_view inspector);
// The same with every inspector of the case (rules/2026.2): at least one signer must be
// none of `inspectors`.
[[nodiscard]] bool ClosurePolicySatisfied(
    const ClosurePolicy& policy,
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    const std::vector<std::string>& inspectors);

}  // namespace casework::workflow

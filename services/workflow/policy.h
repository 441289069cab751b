// Who may act (principals, roles, jurisdictions) and the configurable limits the rules
// use (closure policy, periods). Pure data: the shell loads it from files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "casework/v1/case.pb.h"

namespace casework::workflow {

// Roles of DOMAIN.md. DO NOT CHANGE the values: they appear in principals files by name
// and in audit reports.
enum class Role : uint8_t {
  kLister = 1,
  kReviewer = 2,
  kAssister = 3,
  kInspector = 4,
  kApprover = 5,
  kAuditor = 6,
  kAdmin = 7,
};

// An authenticated identity with its roles and the jurisdiction subtree it acts in
// ("city" sees everything; "city/county" only that county's cases).
struct Principal {
  std::string id;
  std::vector<Role> roles;
  std::string jurisdiction;
  // The level an approver signs at (county or city department).
  casework::v1::ApprovalLevel approval_level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;

  [[nodiscard]] bool HasRole(Role role) const;
  // True when `path` is inside this principal's subtree (segment-wise prefix).
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

}  // namespace casework::workflow

#include "services/workflow/policy.h"

#include <algorithm>
#include <array>
#include <utility>

#include "services/workflow/text.h"

namespace casework::workflow {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 7> kRoleNames = {{
    {Role::kLister, "lister"},
    {Role::kReviewer, "reviewer"},
    {Role::kAssister, "assister"},
    {Role::kInspector, "inspector"},
    {Role::kApprover, "approver"},
    {Role::kAuditor, "auditor"},
    {Role::kAdmin, "admin"},
}};

}  // namespace

std::string_view RoleName(Role role) {
  for (const auto& [r, name] : kRoleNames) {
    if (r == role) return name;
  }
  return "unknown";
}

std::string_view RoleNameZh(Role role) {
  switch (role) {
    case Role::kLister:
      return "列入人员";
    case Role::kReviewer:
      return "审核人员";
    case Role::kAssister:
      return "帮扶人员";
    case Role::kInspector:
      return "验收人员";
    case Role::kApprover:
      return "审批人员";
    case Role::kAuditor:
      return "监督审计人员";
    case Role::kAdmin:
      return "管理员";
  }
  return "未知角色";
}

std::optional<Role> RoleFromName(std::string_view name) {
  for (const auto& [r, n] : kRoleNames) {
    if (n == name) return r;
  }
  return std::nullopt;
}

bool Principal::HasRole(Role role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

bool Principal::Covers(const std::string& path) const {
  std::string_view root = jurisdiction;
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  if (root.empty()) return false;
  std::string_view p = path;
  if (p.size() < root.size() || p.substr(0, root.size()) != root) return false;
  // Segment-wise: the prefix must end where a segment ends.
  return p.size() == root.size() || p[root.size()] == '/';
}

absl::Status ValidatePolicy(const Policy& policy) {
  const ClosurePolicy& c = policy.closure;
  if (c.approvers_min < 1) {
    return absl::InvalidArgumentError(Cat("closure.approvers_min is ", c.approvers_min,
                                          "; at least 1 approver must sign a closure"));
  }
  if (c.city_approvers_min < 0 || c.county_approvers_min < 0) {
    return absl::InvalidArgumentError(Cat("closure.city_approvers_min (", c.city_approvers_min,
                                          ") and closure.county_approvers_min (",
                                          c.county_approvers_min, ") must not be negative"));
  }
  if (policy.absence_flag_days <= 0 || policy.stale_case_days <= 0 ||
      policy.follow_up_review_days <= 0) {
    return absl::InvalidArgumentError(
        "absence_flag_days, stale_case_days and follow_up_review_days must be positive");
  }
  return absl::OkStatus();
}

bool ClosurePolicySatisfied(
    const ClosurePolicy& policy,
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    std::string_view inspector) {
  return ClosurePolicySatisfied(policy, sign_offs,
                                std::vector<std::string>{std::string(inspector)});
}

ClosureTally TallyClosure(
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    const std::vector<std::string>& inspectors) {
  ClosureTally tally;
  for (int i = 0; i < sign_offs.size(); ++i) {
    const casework::v1::SignOff& s = sign_offs[i];
    // Count each approver once, at the level of their first sign-off.
    bool seen = false;
    for (int j = 0; j < i && !seen; ++j) seen = sign_offs[j].approver() == s.approver();
    if (seen) continue;
    ++tally.approvers;
    if (s.level() == casework::v1::APPROVAL_LEVEL_CITY) ++tally.city;
    if (s.level() == casework::v1::APPROVAL_LEVEL_COUNTY) ++tally.county;
    if (std::find(inspectors.begin(), inspectors.end(), s.approver()) == inspectors.end()) {
      tally.someone_else = true;
    }
  }
  return tally;
}

bool ClosurePolicySatisfied(
    const ClosurePolicy& policy,
    const google::protobuf::RepeatedPtrField<casework::v1::SignOff>& sign_offs,
    const std::vector<std::string>& inspectors) {
  const ClosureTally tally = TallyClosure(sign_offs, inspectors);
  return tally.someone_else && tally.approvers >= std::max(1, policy.approvers_min) &&
         tally.city >= policy.city_approvers_min && tally.county >= policy.county_approvers_min;
}

}  // namespace casework::workflow

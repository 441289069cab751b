#include "services/workflow/statement.h"

#include "absl/strings/escaping.h"
#include "services/workflow/decider.h"
#include "services/workflow/names.h"
#include "services/workflow/text.h"

namespace casework::workflow {

std::string SignOffStatement(std::string_view case_id, int64_t expected_version,
                             std::string_view inspection_id, std::string_view latest_leaf_hash) {
  return Cat(
      kSignOffStatementContext, "case: ", case_id, "\n", "version: ", expected_version, "\n",
      "decision: close\n", "inspection: ", inspection_id, "\n", "latest: ",
      absl::BytesToHexString(absl::string_view(latest_leaf_hash.data(), latest_leaf_hash.size())),
      "\n");
}

std::string SignOffStatementV1(std::string_view case_id, int64_t expected_version,
                               std::string_view inspection_id) {
  return Cat(kSignOffStatementContextV1, "case: ", case_id, "\n", "version: ", expected_version,
             "\n", "decision: close\n", "inspection: ", inspection_id, "\n");
}

std::optional<std::string> SignOffStatementFor(const casework::v1::SignOffClosureRequest& request,
                                               std::string_view latest_leaf_hash) {
  const std::optional<std::string_view> case_id = CaseIdFromName(request.name());
  if (!case_id.has_value() || request.expected_version() < 0) return std::nullopt;
  return SignOffStatement(*case_id, request.expected_version(), request.inspection_id(),
                          latest_leaf_hash);
}

bool SignOffNamesLatestLeaf(std::string_view rules_version) {
  return rules_version != kRulesVersion2026_1 && rules_version != kRulesVersion2026_2;
}

std::optional<std::string> SignOffStatementV1For(
    const casework::v1::SignOffClosureRequest& request) {
  const std::optional<std::string_view> case_id = CaseIdFromName(request.name());
  if (!case_id.has_value() || request.expected_version() < 0) return std::nullopt;
  return SignOffStatementV1(*case_id, request.expected_version(), request.inspection_id());
}

}  // namespace casework::workflow

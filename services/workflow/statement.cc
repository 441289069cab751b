#include "services/workflow/statement.h"

#include "services/workflow/names.h"
#include "services/workflow/text.h"

namespace casework::workflow {

std::string SignOffStatement(std::string_view case_id, int64_t expected_version,
                             std::string_view inspection_id) {
  return Cat(kSignOffStatementContext, "case: ", case_id, "\n", "version: ", expected_version, "\n",
             "decision: close\n", "inspection: ", inspection_id, "\n");
}

std::optional<std::string> SignOffStatementFor(const casework::v1::SignOffClosureRequest& request) {
  const std::optional<std::string_view> case_id = CaseIdFromName(request.name());
  if (!case_id.has_value() || request.expected_version() < 0) return std::nullopt;
  return SignOffStatement(*case_id, request.expected_version(), request.inspection_id());
}

}  // namespace casework::workflow

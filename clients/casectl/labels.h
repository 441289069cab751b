// Bilingual labels (English 中文) for enums shown to people.
#pragma once

#include <string>

#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"

namespace casework::client {

[[nodiscard]] std::string StateLabel(casework::v1::CaseState s);
[[nodiscard]] std::string CaseTypeLabel(casework::v1::CaseType t);
[[nodiscard]] std::string CategoryLabel(casework::v1::ProblemCategory c);
[[nodiscard]] std::string DepartmentKindLabel(casework::v1::DepartmentKind k);
// The event's kind, e.g. "inspection_passed 验收通过"; a kind newer than this client by
// its field number.
[[nodiscard]] std::string EventKindLabel(const casework::v1::Event& e);

}  // namespace casework::client

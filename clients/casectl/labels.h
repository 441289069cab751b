// Bilingual labels (English 中文) for enums shown to people.
#pragma once

#include <string>

#include "casework/v1/case.pb.h"

namespace casework::client {

[[nodiscard]] std::string StateLabel(casework::v1::CaseState s);
[[nodiscard]] std::string CaseTypeLabel(casework::v1::CaseType t);
[[nodiscard]] std::string CategoryLabel(casework::v1::ProblemCategory c);
[[nodiscard]] std::string DepartmentKindLabel(casework::v1::DepartmentKind k);

}  // namespace casework::client

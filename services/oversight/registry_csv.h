// The registry file: all grassroots organisations of a city or county with their
// classification and star rating (分类定级、评星定级). docs/oversight.md documents it:
//
//   organisation_id,display_name,jurisdiction,kind,grade,stars
//   org-010203,东山村党支部,jiangcheng/dongshan/t02/org-010203,village,3,1
//
// UTF-8 (a leading byte-order mark is skipped), RFC 4180 fields (quotes around a field
// with commas, quotes or line breaks; a quote inside doubled), LF or CRLF line ends,
// blank lines ignored. The header names the six columns, in any order, each once.
//   kind   village | community (村 | 社区)
//   grade  1 (好 good) .. 4 (较差 poor)      stars  0 .. 5
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "casework/v1/case.pb.h"

namespace casework::oversight {

struct RegistryRow {
  int line = 0;  // 1-based line of the file where the row starts
  casework::v1::Organisation organisation;
  int32_t grade = 0;
  int32_t stars = 0;
};

inline constexpr size_t kRegistryRowsMax = 100'000;
// The bytes of a registry file at most: far above 100,000 rows of bounded fields, and
// below 2^31 lines, which the line numbers count in an int.
inline constexpr size_t kRegistryCsvBytesMax = size_t{256} << 20;

// The rows, or INVALID_ARGUMENT naming the line, the column and what is wrong: in English
// as the message, in Chinese as the payload kRegistryCsvMessageZh (RegistryCsvMessageZh).
// Refuses the whole file on the first bad row, and an organisation id that appears twice.
[[nodiscard]] absl::StatusOr<std::vector<RegistryRow>> ParseRegistryCsv(
    std::string_view csv, size_t bytes_max = kRegistryCsvBytesMax);

// The payload type URL of a refusal's Chinese message.
inline constexpr char kRegistryCsvMessageZh[] = "type.casework/registry-csv-message-zh";
// The Chinese message of a ParseRegistryCsv refusal (its English one if it has none).
[[nodiscard]] std::string RegistryCsvMessageZh(const absl::Status& status);

// The canonical CSV line of a row (no line end), quoting where RFC 4180 needs it.
[[nodiscard]] std::string RegistryCsvLine(const RegistryRow& row);
inline constexpr char kRegistryCsvHeader[] =
    "organisation_id,display_name,jurisdiction,kind,grade,stars";

}  // namespace casework::oversight

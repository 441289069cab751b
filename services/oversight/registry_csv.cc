#include "services/oversight/registry_csv.h"

#include <array>
#include <optional>
#include <set>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "services/workflow/names.h"
#include "services/workflow/text.h"

namespace casework::oversight {
namespace {

namespace v1 = ::casework::v1;
using workflow::Cat;

constexpr std::array<std::string_view, 6> kColumns = {
    "organisation_id", "display_name", "jurisdiction", "kind", "grade", "stars"};
constexpr size_t kDisplayNameBytesMax = 256;

// A refusal in English (the message) and Chinese (a payload): kept apart, so that text
// of the file quoted in either (a column's name, a value) cannot be taken for the other.
absl::Status Refusal(std::string en, std::string zh) {
  absl::Status status = absl::InvalidArgumentError(en);
  status.SetPayload(kRegistryCsvMessageZh, absl::Cord(std::move(zh)));
  return status;
}

absl::Status Bad(int line, std::string_view column, std::string en, std::string zh) {
  return column.empty() ? Refusal(Cat("line ", line, ": ", en), Cat("第 ", line, " 行：", zh))
                        : Refusal(Cat("line ", line, ", column ", column, ": ", en),
                                  Cat("第 ", line, " 行“", column, "”列：", zh));
}

// Splits RFC 4180 records. `line` is the line number where each record starts.
class Reader {
 public:
  explicit Reader(std::string_view csv) : csv_(csv) {
    if (csv_.substr(0, 3) == "\xEF\xBB\xBF") csv_.remove_prefix(3);
  }

  // The next record; nullopt at the end. Sets `error` on malformed quoting.
  std::optional<std::vector<std::string>> Next(int* start_line, absl::Status* error) {
    while (pos_ < csv_.size() && (csv_[pos_] == '\n' || csv_[pos_] == '\r')) {
      if (csv_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= csv_.size()) return std::nullopt;
    *start_line = line_;
    std::vector<std::string> fields(1);
    bool quoted = false;
    bool was_quoted = false;
    while (pos_ < csv_.size()) {
      const char c = csv_[pos_++];
      if (quoted) {
        if (c == '"') {
          if (pos_ < csv_.size() && csv_[pos_] == '"') {
            fields.back().push_back('"');
            ++pos_;
          } else {
            quoted = false;
          }
        } else {
          if (c == '\n') ++line_;
          fields.back().push_back(c);
        }
        continue;
      }
      if (c == '"') {
        if (!fields.back().empty() || was_quoted) {
          *error = Bad(line_, "", "a quote inside an unquoted field; quote the whole field",
                       "未加引号的字段中出现引号；请将整个字段加引号");
          return std::nullopt;
        }
        quoted = was_quoted = true;
      } else if (c == ',') {
        fields.emplace_back();
        was_quoted = false;
      } else if (c == '\n') {
        ++line_;
        break;
      } else if (c == '\r') {
        if (pos_ < csv_.size() && csv_[pos_] == '\n') continue;
        break;
      } else {
        if (was_quoted) {
          *error = Bad(line_, "", "text after a closing quote", "引号结束后还有字符");
          return std::nullopt;
        }
        fields.back().push_back(c);
      }
    }
    if (quoted) {
      *error = Bad(*start_line, "", "a quoted field is not closed", "引号字段未闭合");
      return std::nullopt;
    }
    return fields;
  }

 private:
  std::string_view csv_;
  size_t pos_ = 0;
  int line_ = 1;
};

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    if (c < 0x80) {
      n = 1;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      n = 2;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    if (n == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return false;
    }
    if (n == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) return false;
    }
    i += n;
  }
  return true;
}

bool NeedsQuotes(std::string_view s) {
  return s.find_first_of(",\"\r\n") != std::string_view::npos;
}

std::string Quote(std::string_view s) {
  if (!NeedsQuotes(s)) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::string RegistryCsvMessageZh(const absl::Status& status) {
  const auto zh = status.GetPayload(kRegistryCsvMessageZh);
  return zh.has_value() ? std::string(*zh) : std::string(status.message());
}

absl::StatusOr<std::vector<RegistryRow>> ParseRegistryCsv(std::string_view csv, size_t bytes_max) {
  if (csv.size() > bytes_max) {
    return Refusal(
        Cat("the registry file is ", csv.size(), " bytes; at most ", bytes_max, ": split it"),
        Cat("登记文件为 ", csv.size(), " 字节，超过上限 ", bytes_max, "，请拆分"));
  }
  if (!ValidUtf8(csv)) {
    return Refusal("the registry file is not valid UTF-8; save it as UTF-8",
                   "登记文件不是有效的 UTF-8 编码，请另存为 UTF-8");
  }
  Reader reader(csv);
  absl::Status error;
  int line = 0;
  auto header = reader.Next(&line, &error);
  if (!error.ok()) return error;
  if (!header.has_value()) {
    return Refusal(Cat("the registry file is empty; its first line must be the header \"",
                       kRegistryCsvHeader, "\""),
                   Cat("登记文件为空，第一行须为表头“", kRegistryCsvHeader, "”"));
  }
  std::array<int, kColumns.size()> index;
  index.fill(-1);
  for (size_t i = 0; i < header->size(); ++i) {
    const std::string& name = (*header)[i];
    size_t c = 0;
    while (c < kColumns.size() && kColumns[c] != name) ++c;
    if (c == kColumns.size()) {
      return Bad(line, name.substr(0, 64),
                 Cat("unknown column; the header names exactly ", kRegistryCsvHeader),
                 Cat("未知列；表头须为 ", kRegistryCsvHeader));
    }
    if (index[c] >= 0) return Bad(line, name, "column named twice", "列名重复");
    index[c] = static_cast<int>(i);
  }
  for (size_t c = 0; c < kColumns.size(); ++c) {
    if (index[c] < 0) {
      return Bad(line, kColumns[c], Cat("missing from the header (", kRegistryCsvHeader, ")"),
                 "表头缺少此列");
    }
  }

  std::vector<RegistryRow> rows;
  std::set<std::string> ids;
  while (true) {
    auto fields = reader.Next(&line, &error);
    if (!error.ok()) return error;
    if (!fields.has_value()) break;
    if (fields->size() != header->size()) {
      return Bad(line, "",
                 Cat("the row has ", fields->size(), " fields; the header has ", header->size()),
                 Cat("该行有 ", fields->size(), " 个字段，表头有 ", header->size(), " 个"));
    }
    if (rows.size() >= kRegistryRowsMax) {
      return Bad(line, "", Cat("more than ", kRegistryRowsMax, " rows; split the file by county"),
                 Cat("超过 ", kRegistryRowsMax, " 行，请按县拆分文件"));
    }
    auto field = [&](size_t c) -> const std::string& { return (*fields)[index[c]]; };
    RegistryRow row;
    row.line = line;
    v1::Organisation& org = row.organisation;
    const std::string& id = field(0);
    if (!workflow::IsValidId(id)) {
      return Bad(line, kColumns[0],
                 Cat("\"", id.substr(0, 80), "\" is not an id (1-64 bytes, no spaces, no '/')"),
                 "不是有效的编号（1-64 字节，不含空格和“/”）");
    }
    if (!ids.insert(id).second) {
      return Bad(line, kColumns[0], Cat("\"", id, "\" appears twice in the file"),
                 Cat("“", id, "”在文件中出现两次"));
    }
    org.set_organisation_id(id);
    const std::string& name = field(1);
    if (workflow::IsBlank(name) || name.size() > kDisplayNameBytesMax) {
      return Bad(line, kColumns[1],
                 Cat("the name is blank or longer than ", kDisplayNameBytesMax, " bytes"),
                 Cat("名称为空或超过 ", kDisplayNameBytesMax, " 字节"));
    }
    org.set_display_name(name);
    const std::string& path = field(2);
    if (!workflow::IsValidOrganisationJurisdiction(path)) {
      return Bad(line, kColumns[2],
                 Cat("\"", path.substr(0, 120),
                     "\" is not an organisation's jurisdiction (city/county/township/org)"),
                 "不是组织的辖区路径（市/县/乡镇/组织）");
    }
    org.set_jurisdiction(path);
    const std::string& kind = field(3);
    if (kind == "village" || kind == "村") {
      org.set_kind(v1::ORGANISATION_KIND_VILLAGE);
    } else if (kind == "community" || kind == "社区") {
      org.set_kind(v1::ORGANISATION_KIND_COMMUNITY);
    } else {
      return Bad(line, kColumns[3], Cat("\"", kind.substr(0, 40), "\" is not village or community"),
                 "须为 village（村）或 community（社区）");
    }
    int grade = 0;
    if (!absl::SimpleAtoi(field(4), &grade) || grade < 1 || grade > 4) {
      return Bad(line, kColumns[4],
                 Cat("\"", field(4).substr(0, 20),
                     "\" is not a grade 1-4 (1 good, 2 fairly good, 3 average, 4 poor)"),
                 "分类定级须为 1-4（1 好，2 较好，3 一般，4 较差）");
    }
    int stars = 0;
    if (!absl::SimpleAtoi(field(5), &stars) || stars < 0 || stars > 5) {
      return Bad(line, kColumns[5], Cat("\"", field(5).substr(0, 20), "\" is not 0-5 stars"),
                 "评星定级须为 0-5 星");
    }
    row.grade = grade;
    row.stars = stars;
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string RegistryCsvLine(const RegistryRow& row) {
  const v1::Organisation& o = row.organisation;
  return Cat(Quote(o.organisation_id()), ",", Quote(o.display_name()), ",", Quote(o.jurisdiction()),
             ",", o.kind() == v1::ORGANISATION_KIND_COMMUNITY ? "community" : "village", ",",
             row.grade, ",", row.stars);
}

}  // namespace casework::oversight

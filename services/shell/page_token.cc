#include "services/shell/page_token.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace casework::shell {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string ListCasesQueryTag(std::string_view filter, std::string_view order_by) {
  return absl::StrCat(Sv(filter), "\n", Sv(order_by));
}

std::string EncodePageToken(std::string_view key, std::string_view query_tag) {
  std::string raw;
  const uint32_t n = static_cast<uint32_t>(key.size());
  for (int shift = 24; shift >= 0; shift -= 8) raw.push_back(static_cast<char>(n >> shift));
  raw += key;
  raw += query_tag;
  return absl::WebSafeBase64Escape(raw);
}

std::optional<std::string> DecodePageToken(std::string_view token, std::string_view query_tag) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(Sv(token), &raw) || raw.size() < 4) return std::nullopt;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<uint8_t>(raw[i]);
  if (raw.size() - 4 < n || raw.compare(4 + n, std::string::npos, query_tag) != 0) {
    return std::nullopt;
  }
  return raw.substr(4, n);
}

std::string EncodeEventsPageToken(int64_t next_version) {
  return absl::WebSafeBase64Escape(absl::StrCat(next_version));
}

std::optional<int64_t> DecodeEventsPageToken(std::string_view token) {
  std::string raw;
  int64_t version = 0;
  if (!absl::WebSafeBase64Unescape(Sv(token), &raw) || !absl::SimpleAtoi(raw, &version) ||
      version < 1) {
    return std::nullopt;
  }
  return version;
}

}  // namespace casework::shell

// Cat and Append: absl::StrCat and absl::StrAppend that also take std::string_view;
// Shown: a request's value cut for a message at a character boundary.
//
// Debian's Abseil 20220623 is built with its own absl::string_view (not std's), so
// absl::StrCat does not accept std::string_view; these forward through a conversion.
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace casework::workflow::internal {

inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
template <typename T>
const T& ToAbsl(const T& value) {
  return value;
}

}  // namespace casework::workflow::internal

namespace casework::workflow {

template <typename... Args>
[[nodiscard]] std::string Cat(const Args&... args) {
  return absl::StrCat(internal::ToAbsl(args)...);
}

template <typename... Args>
void Append(std::string* out, const Args&... args) {
  absl::StrAppend(out, internal::ToAbsl(args)...);
}

// `text` as a message quotes a value from a request: at most `max_bytes` of it, cut
// before a UTF-8 character that would not fit (never inside one, so the message stays
// valid UTF-8), with "…" when something was cut.
[[nodiscard]] inline std::string Shown(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  // Back to the first byte of the character that the cut would split.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "…";
}

}  // namespace casework::workflow

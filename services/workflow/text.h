// Cat and Append: absl::StrCat and absl::StrAppend that also take std::string_view.
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

}  // namespace casework::workflow

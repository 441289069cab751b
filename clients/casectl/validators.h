// CLI11 checks of casectl's numbers, with messages a person can act on (CLI11's own name
// the range of a double). Give them with transform(), not check(): they also rewrite the
// number in decimal, which CLI11 would otherwise read as octal after a leading zero.
#pragma once

#include <cstdint>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace casework::client {

// A whole number of 0 or more: a case version.
inline CLI::Validator Version() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t v = 0;
        if (absl::SimpleAtoi(text, &v) && v >= 0) {
          text = absl::StrCat(v);  // decimal as read: CLI11 would take "010" as octal
          return "";
        }
        return "a version is a whole number of 0 or more (casectl get shows the case's) "
               "版本须为非负整数";
      },
      "VERSION");
}

// A whole number above 0: an amount in fen.
inline CLI::Validator PositiveAmount() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t v = 0;
        if (absl::SimpleAtoi(text, &v) && v > 0) {
          text = absl::StrCat(v);  // decimal as read: CLI11 would take "0100" as octal
          return "";
        }
        return "an amount is a whole number of fen above 0 (1 yuan is 100 fen) "
               "金额须为大于 0 的整数（单位：分）";
      },
      "FEN");
}

}  // namespace casework::client

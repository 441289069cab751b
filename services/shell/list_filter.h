// The filter of ListCases: a small subset of AIP-160.
//
// Grammar:
//   filter := term ( "AND" term )*
//   term   := field op value
//   field  := "state" | "jurisdiction" | "case_type" | "problem_category" | "deadline"
//   op     := "=" | "<" | ">"      ("<" and ">" only for deadline)
//   value  := bare word | "quoted string"
// state takes LISTED, ASSISTED, VERIFIED, CLOSED, REOPENED; case_type WEAK, POOR,
// DISORDERLY, INDUSTRY; problem_category 1-6; jurisdiction a path (matches its subtree; a
// trailing '/' names the same one); deadline an RFC 3339 time. Each field at most once
// (deadline once with < and once with >): a repeated one is INVALID_ARGUMENT.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "casework/v1/case.pb.h"

namespace casework::shell {

struct CaseFilter {
  std::optional<casework::v1::CaseState> state;
  std::optional<std::string> jurisdiction;
  std::optional<casework::v1::CaseType> case_type;
  std::optional<casework::v1::ProblemCategory> problem_category;
  std::optional<int64_t> deadline_before_micros;
  std::optional<int64_t> deadline_after_micros;

  [[nodiscard]] bool Matches(const casework::v1::Case& c) const;
};

// Parses a filter; kInvalidArgument naming the offending term.
[[nodiscard]] absl::StatusOr<CaseFilter> ParseCaseFilter(std::string_view text);

// True when `path` equals `root` or lies below it ("a/b" is under "a", "ab" is not).
[[nodiscard]] bool PathWithin(std::string_view path, std::string_view root);

}  // namespace casework::shell

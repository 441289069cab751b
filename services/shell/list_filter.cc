#include "services/shell/list_filter.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/time_util.h"

namespace casework::shell {
namespace {

constexpr size_t kFilterLengthMax = 2048;
constexpr size_t kTermsMax = 16;

struct Token {
  std::string text;
  bool quoted = false;
};

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view s) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < s.size()) {
    char ch = s[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(ch))) {
      ++i;
    } else if (ch == '=' || ch == '<' || ch == '>') {
      tokens.push_back({std::string(1, ch), false});
      ++i;
    } else if (ch == '"') {
      size_t end = s.find('"', i + 1);
      if (end == std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("unterminated quote at offset ", i));
      }
      tokens.push_back({std::string(s.substr(i + 1, end - i - 1)), true});
      i = end + 1;
    } else {
      size_t start = i;
      while (i < s.size() && !absl::ascii_isspace(static_cast<unsigned char>(s[i])) &&
             s[i] != '=' && s[i] != '<' && s[i] != '>' && s[i] != '"') {
        ++i;
      }
      tokens.push_back({std::string(s.substr(start, i - start)), false});
    }
  }
  return tokens;
}

absl::StatusOr<int64_t> ParseTime(const std::string& value) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, value, &t, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("deadline value \"", value, "\" is not an RFC 3339 time (", err, ")"));
  }
  return absl::ToUnixMicros(t);
}

}  // namespace

bool PathWithin(std::string_view path, std::string_view root) {
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  if (root.empty()) return true;
  if (path.size() < root.size() || path.substr(0, root.size()) != root) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

absl::StatusOr<CaseFilter> ParseCaseFilter(std::string_view text) {
  CaseFilter filter;
  if (text.size() > kFilterLengthMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("filter is ", text.size(), " bytes; at most ", kFilterLengthMax));
  }
  auto tokens = Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  size_t i = 0, terms = 0;
  std::set<std::string> seen;  // fields (deadline: with its operator) already given
  while (i < tokens->size()) {
    if (++terms > kTermsMax) {
      return absl::InvalidArgumentError(absl::StrCat("at most ", kTermsMax, " terms"));
    }
    if (i + 3 > tokens->size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("incomplete term at \"", (*tokens)[i].text, "\"; use field = value"));
    }
    const std::string field = (*tokens)[i].text;
    const std::string op = (*tokens)[i + 1].text;
    const std::string value = (*tokens)[i + 2].text;
    i += 3;
    if (op != "=" && op != "<" && op != ">") {
      return absl::InvalidArgumentError(
          absl::StrCat("expected =, < or > after \"", field, "\", got \"", op, "\""));
    }
    if (field != "deadline" && op != "=") {
      return absl::InvalidArgumentError(absl::StrCat("\"", field, "\" supports = only"));
    }
    // Each field once (deadline once with < and once with >): a second term would replace
    // the first, and the page would hold cases that do not match what was asked.
    if (!seen.insert(field == "deadline" ? field + op : field).second) {
      return absl::InvalidArgumentError(absl::StrCat("\"", field,
                                                     field == "deadline" ? " " + op : "",
                                                     "\" appears twice; give each field once"));
    }
    if (field == "state") {
      casework::v1::CaseState s;
      if (!casework::v1::CaseState_Parse(absl::StrCat("CASE_STATE_", value), &s) ||
          s == casework::v1::CASE_STATE_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown state \"", value, "\"; use LISTED, ASSISTED, VERIFIED, CLOSED or REOPENED"));
      }
      filter.state = s;
    } else if (field == "jurisdiction") {
      std::string_view root = value;
      while (!root.empty() && root.back() == '/') root.remove_suffix(1);
      filter.jurisdiction = std::string(root);
    } else if (field == "case_type") {
      casework::v1::CaseType t;
      if (!casework::v1::CaseType_Parse(absl::StrCat("CASE_TYPE_", value), &t) ||
          t == casework::v1::CASE_TYPE_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown case_type \"", value, "\"; use WEAK, POOR, DISORDERLY or INDUSTRY"));
      }
      filter.case_type = t;
    } else if (field == "problem_category") {
      int n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1 || n > 6) {
        return absl::InvalidArgumentError(
            absl::StrCat("problem_category \"", value, "\" must be 1 to 6"));
      }
      filter.problem_category = static_cast<casework::v1::ProblemCategory>(n);
    } else if (field == "deadline") {
      if (op == "=") {
        return absl::InvalidArgumentError("deadline supports < and > only");
      }
      auto t = ParseTime(value);
      if (!t.ok()) return t.status();
      (op == "<" ? filter.deadline_before_micros : filter.deadline_after_micros) = *t;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field \"", field,
                       "\"; use state, jurisdiction, case_type, problem_category or deadline"));
    }
    if (i < tokens->size()) {
      if ((*tokens)[i].text != "AND" || (*tokens)[i].quoted) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected AND between terms, got \"", (*tokens)[i].text, "\""));
      }
      ++i;
      if (i == tokens->size()) return absl::InvalidArgumentError("filter ends with AND");
    }
  }
  return filter;
}

bool CaseFilter::Matches(const casework::v1::Case& c) const {
  if (state && c.state() != *state) return false;
  if (jurisdiction && !PathWithin(c.organisation().jurisdiction(), *jurisdiction)) return false;
  if (case_type && c.case_type() != *case_type) return false;
  if (problem_category) {
    bool found = false;
    for (int p : c.problem_categories()) found |= (p == *problem_category);
    if (!found) return false;
  }
  const int64_t deadline = google::protobuf::util::TimeUtil::TimestampToMicroseconds(c.deadline());
  if (deadline_before_micros && !(deadline < *deadline_before_micros)) return false;
  if (deadline_after_micros && !(deadline > *deadline_after_micros)) return false;
  return true;
}

}  // namespace casework::shell

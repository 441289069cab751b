#include "services/workflow/names.h"

#include "services/workflow/limits.h"
#include "services/workflow/text.h"

namespace casework::workflow {
namespace {

constexpr std::string_view kCasesPrefix = "cases/";

}  // namespace

bool IsValidCaseId(std::string_view case_id) {
  if (case_id.empty() || case_id.size() > kCaseIdBytesMax || case_id.front() == '-') {
    return false;
  }
  for (char c : case_id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string CaseName(std::string_view case_id) { return Cat(kCasesPrefix, case_id); }

std::optional<std::string_view> CaseIdFromName(std::string_view name) {
  if (name.substr(0, kCasesPrefix.size()) != kCasesPrefix) return std::nullopt;
  std::string_view id = name.substr(kCasesPrefix.size());
  if (!IsValidCaseId(id)) return std::nullopt;
  return id;
}

bool IsValidRequestId(std::string_view request_id) {
  if (request_id.empty() || request_id.size() > kRequestIdBytesMax) return false;
  bool all_spaces = true;
  for (char c : request_id) {
    if (c < 0x20 || c > 0x7e) return false;
    if (c != ' ') all_spaces = false;
  }
  return !all_spaces;
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > kIdBytesMax) return false;
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '/') return false;
  }
  return true;
}

namespace {

// The number of segments of `path` when each is a valid id of at most 64 bytes (so no
// '/' at either end and none doubled); 0 otherwise.
size_t ValidSegments(std::string_view path) {
  size_t segments = 0;
  while (true) {
    const size_t slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    if (!IsValidId(segment) || segment.size() > kJurisdictionSegmentBytesMax) return 0;
    ++segments;
    if (slash == std::string_view::npos) return segments;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

bool IsValidOrganisationJurisdiction(std::string_view path) {
  return ValidSegments(path) == kJurisdictionSegments;
}

bool IsValidJurisdiction(std::string_view path) {
  const size_t segments = ValidSegments(path);
  return segments >= 1 && segments <= kJurisdictionSegments;
}

int JurisdictionDepth(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return 0;
  int depth = 1;
  for (char c : path) depth += c == '/' ? 1 : 0;
  return depth;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

}  // namespace casework::workflow

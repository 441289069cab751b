// Identifiers and resource names of the case workflow: what is well-formed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace casework::workflow {

// True for 1-64 characters of [a-z0-9-] not starting with '-'.
[[nodiscard]] bool IsValidCaseId(std::string_view case_id);

// "cases/{case_id}".
[[nodiscard]] std::string CaseName(std::string_view case_id);

// The case id of "cases/{case_id}"; nullopt when `name` is not such a name with a valid id.
[[nodiscard]] std::optional<std::string_view> CaseIdFromName(std::string_view name);

// True for 1-128 printable ASCII characters (0x21-0x7e and space, not all spaces).
[[nodiscard]] bool IsValidRequestId(std::string_view request_id);

// True for an identifier of a person, organisation, department, inspection or notice:
// 1-64 bytes, none of them ASCII control characters, space or '/'.
[[nodiscard]] bool IsValidId(std::string_view id);

// True for an organisation's jurisdiction: exactly "city/county/township/org", four
// segments, each a valid id (IsValidId) of at most 64 bytes.
[[nodiscard]] bool IsValidOrganisationJurisdiction(std::string_view path);

// True for a person's jurisdiction: one to four segments ("city" to an organisation),
// each a valid id (IsValidId) of at most 64 bytes, without a leading or trailing '/'.
[[nodiscard]] bool IsValidJurisdiction(std::string_view path);

// The number of segments of a jurisdiction path ("city" is 1, "city/county" is 2);
// a trailing '/' is ignored; 0 for an empty path.
[[nodiscard]] int JurisdictionDepth(std::string_view path);

// True when `text` is empty or only ASCII white space.
[[nodiscard]] bool IsBlank(std::string_view text);

}  // namespace casework::workflow

// The canonical statement an approver signs to close a case (销号), and nothing else.
//
// Grammar (UTF-8, every line ends with '\n', no trailing spaces, no other bytes):
//
//   statement  = context case version decision inspection latest
//   context    = "casework/v1 closure sign-off v2" LF
//   case       = "case: " case_id LF             ; the case id, not the resource name
//   version    = "version: " decimal LF          ; expected_version of the request,
//                                                ; base 10, no sign, no leading zeros
//   decision   = "decision: close" LF
//   inspection = "inspection: " inspection_id LF  ; the passed inspection it rests on
//   latest     = "latest: " 64HEXDIG LF          ; lowercase hex of the RFC 9162 leaf hash
//                                                ; of the case's event at `version` (its
//                                                ; latest: Case.last_leaf_hash)
//
// The signature is Ed25519 (RFC 8032, pure) over exactly these bytes. The context line
// separates these signatures from any other use of the key. docs/rules.md has an example.
//
// Sign-offs admitted under rules/2026.1 and rules/2026.2 signed the first form, without
// `latest` (SignOffStatementV1):
//
//   statement  = context case version decision inspection
//   context    = "casework/v1 closure sign-off" LF
//
// Each form has its own context line, so a signature over one never verifies as the other.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "casework/v1/case_service.pb.h"

namespace casework::workflow {

// The first line of every sign-off statement, with its '\n'.
inline constexpr std::string_view kSignOffStatementContext = "casework/v1 closure sign-off v2\n";
// The first line of the statements of rules/2026.1 and rules/2026.2.
inline constexpr std::string_view kSignOffStatementContextV1 = "casework/v1 closure sign-off\n";
// The size of a leaf hash (SHA-256).
inline constexpr size_t kLeafHashBytes = 32;

// The statement for closing `case_id` at `expected_version` on `inspection_id`, when the
// case's event at `expected_version` has the leaf hash `latest_leaf_hash` (32 bytes).
[[nodiscard]] std::string SignOffStatement(std::string_view case_id, int64_t expected_version,
                                           std::string_view inspection_id,
                                           std::string_view latest_leaf_hash);

// The statement of rules/2026.1 and rules/2026.2, which named no leaf hash: what older
// sign-offs in the log were signed over.
[[nodiscard]] std::string SignOffStatementV1(std::string_view case_id, int64_t expected_version,
                                             std::string_view inspection_id);

// The statement a SignOffClosureRequest claims to sign when the case's latest event has
// the leaf hash `latest_leaf_hash`; nullopt when its name is not "cases/{case_id}" or its
// expected_version is negative (the request is malformed and the core refuses it anyway).
[[nodiscard]] std::optional<std::string> SignOffStatementFor(
    const casework::v1::SignOffClosureRequest& request, std::string_view latest_leaf_hash);

// Whether sign-offs admitted under the rule set `rules_version` (Event.rules_version)
// signed the statement with the latest leaf hash (SignOffStatement): rules/2026.3 and
// later. Those of rules/2026.1 and rules/2026.2 signed SignOffStatementV1.
[[nodiscard]] bool SignOffNamesLatestLeaf(std::string_view rules_version);

// The same request's statement in the form of rules/2026.1 and rules/2026.2.
[[nodiscard]] std::optional<std::string> SignOffStatementV1For(
    const casework::v1::SignOffClosureRequest& request);

}  // namespace casework::workflow

// The canonical statement an approver signs to close a case (销号), and nothing else.
//
// Grammar (UTF-8, every line ends with '\n', no trailing spaces, no other bytes):
//
//   statement  = context case version decision inspection
//   context    = "casework/v1 closure sign-off" LF
//   case       = "case: " case_id LF             ; the case id, not the resource name
//   version    = "version: " decimal LF          ; expected_version of the request,
//                                                ; base 10, no sign, no leading zeros
//   decision   = "decision: close" LF
//   inspection = "inspection: " inspection_id LF  ; the passed inspection it rests on
//
// The signature is Ed25519 (RFC 8032, pure) over exactly these bytes. The context line
// separates these signatures from any other use of the key. docs/rules.md has an example.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "casework/v1/case_service.pb.h"

namespace casework::workflow {

// The first line of every sign-off statement, with its '\n'.
inline constexpr std::string_view kSignOffStatementContext = "casework/v1 closure sign-off\n";

// The statement for closing `case_id` at `expected_version` on `inspection_id`.
[[nodiscard]] std::string SignOffStatement(std::string_view case_id, int64_t expected_version,
                                           std::string_view inspection_id);

// The statement a SignOffClosureRequest claims to sign; nullopt when its name is not
// "cases/{case_id}" or its expected_version is negative (the request is malformed and
// the core refuses it anyway).
[[nodiscard]] std::optional<std::string> SignOffStatementFor(
    const casework::v1::SignOffClosureRequest& request);

}  // namespace casework::workflow

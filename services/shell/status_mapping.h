// Errors on the wire: google.rpc.Status with google.rpc.ErrorInfo (AIP-193).
//
// Every refusal of the core becomes a grpc::Status whose code follows docs/rules.md and
// whose binary details (grpc-status-details-bin) carry a google.rpc.Status with:
//   ErrorInfo{reason: the core's stable code, domain: kErrorDomain,
//             metadata: {"field": <request field>, "rule": <reason>}}
//   LocalizedMessage{locale: "zh-CN", message: the Chinese message}
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "services/workflow/refusal.h"

namespace casework::shell {

inline constexpr char kErrorDomain[] = "casework.gov";

// The gRPC code of a refusal category.
[[nodiscard]] grpc::StatusCode CodeOf(workflow::Category category);

// A refusal of the core as a rich gRPC status.
[[nodiscard]] grpc::Status ToGrpcStatus(const workflow::Refusal& refusal);

// A shell-level error with a reason code (e.g. "UNAUTHENTICATED", "REQUEST_ID_REUSED").
[[nodiscard]] grpc::Status ErrorStatus(grpc::StatusCode code, std::string_view reason,
                                       std::string_view field, std::string message_en,
                                       std::string message_zh);

// `text` with every byte that does not belong to a well-formed UTF-8 sequence replaced
// by '?' (a message that quotes a request cut short at a byte count).
[[nodiscard]] std::string ValidUtf8(std::string text);

// INVALID_ARGUMENT CASE_NAME_INVALID for a `name` that is not "cases/{case_id}" with a
// valid case id (workflow::CaseIdFromName), saying what one looks like.
[[nodiscard]] grpc::Status CaseNameInvalid(std::string_view name);

// INVALID_ARGUMENT REQUEST_ID_INVALID for a request id that breaks the core's rule
// (workflow::IsValidRequestId), saying what one looks like; the same in every service.
[[nodiscard]] grpc::Status RequestIdInvalid(std::string_view request_id);

// INVALID_ARGUMENT PAGE_TOKEN_INVALID: a page_token this server did not issue for the
// query, or issued before a restart; the same in every List method.
[[nodiscard]] grpc::Status PageTokenInvalid();

// INVALID_ARGUMENT PAGE_SIZE_INVALID for a negative page_size.
[[nodiscard]] grpc::Status PageSizeNegative();

// An operating error of the store (absl code == gRPC code). The ErrorInfo reason is the
// store's refusal reason when it names one (store/event_log.h: "DISK_FULL", "QUEUE_FULL",
// "READ_ONLY", "SHUTTING_DOWN"), else "STORE_ERROR".
[[nodiscard]] grpc::Status FromStoreStatus(const absl::Status& status);
// A failure to open or parse the server's own signed checkpoint, as the store status to
// answer with: kInternal naming it, since the fault is the server's (or its store's) and
// never the caller's, whatever code the parser gave (kInvalidArgument for a malformed body,
// kUnauthenticated for a signature).
[[nodiscard]] absl::Status OwnCheckpointUnreadable(const absl::Status& parse_error);

}  // namespace casework::shell

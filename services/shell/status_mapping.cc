#include "services/shell/status_mapping.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "services/workflow/limits.h"
#include "store/event_log.h"

namespace casework::shell {

grpc::StatusCode CodeOf(workflow::Category category) {
  switch (category) {
    case workflow::Category::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case workflow::Category::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case workflow::Category::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case workflow::Category::kAborted:
      return grpc::StatusCode::ABORTED;
    case workflow::Category::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case workflow::Category::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case workflow::Category::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
  }
  return grpc::StatusCode::FAILED_PRECONDITION;
}

std::string ValidUtf8(std::string text) {
  const auto continuation = [&text](size_t at) {
    return at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80;
  };
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
    }
    bool ok = length > 0;
    for (size_t k = 1; ok && k < length; ++k) ok = continuation(i + k);
    if (ok && length == 3) {  // no overlong forms, no surrogates
      const auto second = static_cast<unsigned char>(text[i + 1]);
      ok = !(lead == 0xE0 && second < 0xA0) && !(lead == 0xED && second > 0x9F);
    } else if (ok && length == 4) {  // no overlong forms, nothing past U+10FFFF
      const auto second = static_cast<unsigned char>(text[i + 1]);
      ok = !(lead == 0xF0 && second < 0x90) && !(lead == 0xF4 && second > 0x8F);
    }
    if (!ok) {
      text[i] = '?';
      length = 1;
    }
    i += length;
  }
  return text;
}

// The bytes of a BadRequest field violation's description at most.
constexpr size_t kViolationDescriptionBytesMax = 200;

// The bytes of a message at most. A refusal travels in the response's trailers: the
// English message percent-encoded (up to 3 times its bytes) and the details in base64,
// which a client takes up to 8 KiB of (gRPC's default); past that it sees "metadata size
// exceeds limit" instead of the refusal. A message quoting a long value (a filter of
// 2 KiB of Chinese) would pass it.
constexpr size_t kMessageBytesMax = 1000;

// `text` cut to kMessageBytesMax bytes, ending in "..." when cut (ValidUtf8 then mends a
// character cut in two).
std::string Bounded(std::string text) {
  if (text.size() <= kMessageBytesMax) return text;
  text.resize(kMessageBytesMax - 3);
  text += "...";
  return text;
}

grpc::Status ErrorStatus(grpc::StatusCode code, std::string_view reason, std::string_view field,
                         std::string message_en, std::string message_zh) {
  // Messages quote what the caller sent, sometimes cut short: never in the middle of a
  // character, which would make the details unparsable (proto3 strings are UTF-8).
  message_en = ValidUtf8(Bounded(std::move(message_en)));
  message_zh = ValidUtf8(Bounded(std::move(message_zh)));
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(message_en);
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(kErrorDomain);
  if (!field.empty()) (*info.mutable_metadata())["field"] = std::string(field);
  (*info.mutable_metadata())["rule"] = std::string(reason);
  rich.add_details()->PackFrom(info);
  if (!message_zh.empty()) {
    google::rpc::LocalizedMessage zh;
    zh.set_locale("zh-CN");
    zh.set_message(std::move(message_zh));
    rich.add_details()->PackFrom(zh);
  }
  // A field the caller got wrong, also as AIP-193's BadRequest, which generic clients
  // read (ErrorInfo stays first: its "field" is the same).
  if (code == grpc::StatusCode::INVALID_ARGUMENT && !field.empty()) {
    google::rpc::BadRequest bad;
    google::rpc::BadRequest::FieldViolation* violation = bad.add_field_violations();
    violation->set_field(std::string(field));
    // Bounded: the message travels in the status already, and a client takes at most
    // 8 KiB of trailers (gRPC's default), which a message quoting a long value nears.
    violation->set_description(
        ValidUtf8(message_en.size() <= kViolationDescriptionBytesMax
                      ? message_en
                      : message_en.substr(0, kViolationDescriptionBytesMax - 3) + "..."));
    rich.add_details()->PackFrom(bad);
  }
  return grpc::Status(code, std::move(message_en), rich.SerializeAsString());
}

grpc::Status ToGrpcStatus(const workflow::Refusal& refusal) {
  return ErrorStatus(CodeOf(refusal.category), workflow::ReasonCode(refusal.reason), refusal.field,
                     refusal.message_en, refusal.message_zh);
}

grpc::Status FromStoreStatus(const absl::Status& status) {
  // absl and gRPC share their code numbers.
  auto code = static_cast<grpc::StatusCode>(status.code());
  const std::string reason = store::RefusalReason(status);
  std::string zh = "存储层错误";
  if (reason == store::kRefusalDiskFull) {
    zh = "磁盘已满：暂停写入（读取不受影响），腾出空间后自动恢复，请稍后重试";
  } else if (reason == store::kRefusalQueueFull) {
    zh = "写入队列已满，请稍后重试";
  } else if (reason == store::kRefusalReadOnly) {
    zh = "写入失败，事件日志已转为只读：请修复磁盘后重启服务";
  } else if (reason == store::kRefusalShuttingDown) {
    zh = "服务正在关闭，请在重启后重试";
  }
  return ErrorStatus(code, reason.empty() ? "STORE_ERROR" : reason, "",
                     std::string(status.message()), std::move(zh));
}

absl::Status OwnCheckpointUnreadable(const absl::Status& parse_error) {
  return absl::InternalError(absl::StrCat("the server's own signed checkpoint does not open (",
                                          parse_error.message(),
                                          "); nothing was answered from it: tell the operator"));
}

grpc::Status PageTokenInvalid() {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PAGE_TOKEN_INVALID", "page_token",
                     "page_token is not one this server issued for this query; start again "
                     "without a page_token",
                     "page_token 无效或与查询条件不符；请不带 page_token 重新查询");
}

grpc::Status PageSizeNegative() {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PAGE_SIZE_INVALID", "page_size",
                     "page_size must not be negative", "page_size 不能为负数");
}

grpc::Status RequestIdInvalid(std::string_view request_id) {
  return ErrorStatus(
      grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_INVALID", "request_id",
      absl::StrCat("request_id of ", request_id.size(), " bytes is invalid; use 1-",
                   workflow::kRequestIdBytesMax,
                   " printable ASCII characters (not only spaces), unique per request; a UUID "
                   "is a good choice"),
      absl::StrCat("request_id（", request_id.size(), " 字节）无效，请使用 1-",
                   workflow::kRequestIdBytesMax,
                   " 个可打印 ASCII 字符（不能全为空格），每个请求唯一，建议使用 UUID"));
}

grpc::Status CaseNameInvalid(std::string_view name) {
  const std::string shown(name.substr(0, workflow::kCaseIdBytesMax + 8));
  return ErrorStatus(
      grpc::StatusCode::INVALID_ARGUMENT, "CASE_NAME_INVALID", "name",
      absl::StrCat("name \"", shown,
                   "\" is not a case name; use \"cases/{case_id}\" with 1-64 characters of "
                   "[a-z0-9-], not starting with '-'"),
      absl::StrCat("名称 \"", shown,
                   "\" 不是案件名称；应为 \"cases/{案件编号}\"，编号为 1-64 个小写字母、数字或 "
                   "'-'（不以 '-' 开头）"));
}

}  // namespace casework::shell

#include "services/shell/status_mapping.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

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
  }
  return grpc::StatusCode::FAILED_PRECONDITION;
}

grpc::Status ErrorStatus(grpc::StatusCode code, std::string_view reason, std::string_view field,
                         std::string message_en, std::string message_zh) {
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
  return grpc::Status(code, std::move(message_en), rich.SerializeAsString());
}

grpc::Status ToGrpcStatus(const workflow::Refusal& refusal) {
  return ErrorStatus(CodeOf(refusal.category), workflow::ReasonCode(refusal.reason), refusal.field,
                     refusal.message_en, refusal.message_zh);
}

grpc::Status FromStoreStatus(const absl::Status& status) {
  // absl and gRPC share their code numbers.
  auto code = static_cast<grpc::StatusCode>(status.code());
  return ErrorStatus(code, "STORE_ERROR", "", std::string(status.message()), "存储层错误");
}

}  // namespace casework::shell

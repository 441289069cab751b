#include "services/shell/auth.h"

#include "absl/strings/str_cat.h"
#include "services/shell/status_mapping.h"

namespace casework::shell {

grpc::Status Authenticator::Authenticate(grpc::CallbackServerContext* context,
                                         workflow::Principal* out) const {
  context->AddInitialMetadata(kSecurityHeader, kPlaintextNotice);
  const auto& metadata = context->client_metadata();
  auto it = metadata.find(kIdentityHeader);
  if (it == metadata.end() || it->second.empty()) {
    return ErrorStatus(grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_MISSING", kIdentityHeader,
                       absl::StrCat("no identity: in plaintext mode send the metadata header ",
                                    kIdentityHeader, " with your principal id"),
                       absl::StrCat("缺少身份：明文模式下请在请求元数据 ", kIdentityHeader,
                                    " 中提供您的身份标识"));
  }
  const std::string id(it->second.data(), it->second.size());
  auto principals = principals_->Get();
  const workflow::Principal* p = principals->Find(id);
  if (p == nullptr) {
    return ErrorStatus(grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_UNKNOWN", kIdentityHeader,
                       absl::StrCat("identity \"", id,
                                    "\" is not in the principals file; ask an administrator "
                                    "to add it"),
                       absl::StrCat("身份 \"", id, "\" 不在授权名单中；请联系管理员添加"));
  }
  *out = *p;
  return grpc::Status::OK;
}

}  // namespace casework::shell

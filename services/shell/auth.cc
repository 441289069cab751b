#include "services/shell/auth.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"
#include "services/shell/status_mapping.h"
#include "services/shell/tls.h"

namespace casework::shell {

std::optional<grpc::Status> CallerStanding::Revoked(const char* call, const char* call_zh,
                                                    const char* ended, const char* ended_zh) {
  std::shared_ptr<const Principals> now = auth_->CurrentPrincipals();
  if (now == principals_) return std::nullopt;
  const workflow::Principal* current = now->Find(caller_.id);
  if (current == nullptr) {
    return ErrorStatus(
        grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_UNKNOWN", "",
        absl::StrCat(caller_.id, " is no longer in the principals; ", call, " ", ended),
        absl::StrCat(caller_.id, " 已不在授权名单中，", call_zh, ended_zh));
  }
  // Roles as a set: the same roles in another order (or named twice) are no change.
  if (!StandsAlike(*current, caller_)) {
    return ErrorStatus(
        grpc::StatusCode::PERMISSION_DENIED, "PRINCIPAL_CHANGED", "",
        absl::StrCat("the roles or the jurisdiction of ", caller_.id,
                     " changed in the principals; ", call, " ", ended, ", start a new one"),
        absl::StrCat(caller_.id, " 的角色或管辖范围已变更，", call_zh, ended_zh, "，请重新发起"));
  }
  principals_ = std::move(now);
  return std::nullopt;
}

grpc::Status StoppedByShutdown(const char* call, const char* call_zh, bool writes) {
  return ErrorStatus(
      grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", "",
      absl::StrCat("the server is stopping; ", call,
                   writes ? " was stopped and recorded nothing" : " was stopped",
                   "; run it again once the server is back"),
      absl::StrCat("服务正在关闭；", call_zh, writes ? "已中止，未记录任何数据" : "已中止",
                   "；请在服务恢复后重新发起"));
}

grpc::Status Authenticator::Authenticate(grpc::CallbackServerContext* context,
                                         workflow::Principal* out) const {
  std::shared_ptr<const workflow::Principal> principal;
  grpc::Status status = Authenticate(context, &principal);
  if (status.ok()) *out = *principal;
  return status;
}

grpc::Status Authenticator::Authenticate(grpc::CallbackServerContext* context,
                                         std::shared_ptr<const workflow::Principal>* out) const {
  std::string id;
  if (transport_ == Transport::kMutualTls) {
    const auto auth_context = context->auth_context();
    std::optional<std::string> from_certificate;
    if (auth_context) {
      from_certificate = IdentityFromPeer(*auth_context, certificate_identity_);
    }
    if (!from_certificate.has_value() || from_certificate->empty()) {
      const bool uri_only = certificate_identity_ == CertificateIdentity::kUriOnly;
      return ErrorStatus(
          grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_MISSING", "",
          absl::StrCat("the client certificate names no identity: give it one URI subject "
                       "alternative name ",
                       kPrincipalUriPrefix, "<id>",
                       uri_only ? " (this server takes no identity from a common name)"
                                : ", or one common name"),
          absl::StrCat("客户端证书未载明身份：请在主题备用名称中写入一个 ", kPrincipalUriPrefix,
                       "<身份标识>",
                       uri_only ? "（本服务不从通用名称取身份）" : "，或一个通用名称（CN）"));
    }
    id = *std::move(from_certificate);
  } else {
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
    id.assign(it->second.data(), it->second.size());
  }
  auto principals = principals_->Get();
  const workflow::Principal* p = principals->Find(id);
  if (p == nullptr) {
    // The field names the header only where the identity came from it: a certificate's
    // identity is not changed by a header.
    if (principals->Withheld(id)) {
      return ErrorStatus(
          grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_UNKNOWN",
          transport_ == Transport::kMutualTls ? "" : kIdentityHeader,
          absl::StrCat("identity \"", id,
                       "\" is new or changed in the principals file, which the server could not "
                       "record in its log yet (see the server's log); it acts once a reload "
                       "records the file"),
          absl::StrCat("身份 \"", id,
                       "\" 在授权名单中为新增或变更，但服务器尚未能将名单记入日志（见服务器日志）；"
                       "待重新加载并记录后方可使用"));
    }
    return ErrorStatus(grpc::StatusCode::UNAUTHENTICATED, "IDENTITY_UNKNOWN",
                       transport_ == Transport::kMutualTls ? "" : kIdentityHeader,
                       absl::StrCat("identity \"", id,
                                    "\" is not in the principals file; ask an administrator "
                                    "to add it"),
                       absl::StrCat("身份 \"", id, "\" 不在授权名单中；请联系管理员添加"));
  }
  *out = std::shared_ptr<const workflow::Principal>(std::move(principals), p);
  return grpc::Status::OK;
}

namespace {

// An identity as a log line may carry it: control bytes and backslashes escaped (\xNN),
// so that a name from a header or a certificate cannot forge or break a line; at most 256
// bytes of it.
std::string ForLog(std::string_view id) {
  std::string out;
  for (const char c : id.substr(0, 256)) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F || c == '\\') {
      absl::StrAppend(&out, "\\x", absl::Hex(b, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  if (id.size() > 256) out.append("...");
  return out;
}

}  // namespace

std::string IdentityForLog(grpc::ServerContextBase* context, CertificateIdentity from) {
  if (context == nullptr) return "-";
  // Under TLS the certificate's identity only, whatever the headers say (a certificate
  // naming no identity logs "-", never a header's name).
  if (const auto auth_context = context->auth_context(); auth_context != nullptr) {
    const auto types = auth_context->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    const bool tls = std::any_of(types.begin(), types.end(), [](const grpc::string_ref& type) {
      return type == GRPC_SSL_TRANSPORT_SECURITY_TYPE;
    });
    if (tls || auth_context->IsPeerAuthenticated()) {
      return ForLog(IdentityFromPeer(*auth_context, from).value_or("-"));
    }
  }
  const auto& md = context->client_metadata();
  auto it = md.find(kIdentityHeader);
  if (it == md.end()) return "-";
  return ForLog(std::string(it->second.data(), it->second.size()));
}

}  // namespace casework::shell

#include "services/shell/approver_keys.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/shell/ed25519.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/limits.h"
#include "services/workflow/statement.h"

namespace casework::shell {
namespace {

using casework::v1::ApproverKey;
using casework::v1::Event;

std::string Deterministic(const google::protobuf::Message& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return bytes;
}

// A bounded, printable rendering of a client-supplied id for messages.
std::string Shown(const std::string& id) {
  std::string out;
  for (char ch : id.substr(0, workflow::kIdBytesMax)) {
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  }
  if (id.size() > workflow::kIdBytesMax) out += "...";
  return out;
}

}  // namespace

std::string ApproverStream(std::string_view person_id) {
  return absl::StrCat(kApproverStreamPrefix, absl::string_view(person_id.data(), person_id.size()));
}

std::vector<store::ProjectionWrite> ProjectApproverKeyEvent(const Event& event) {
  std::vector<store::ProjectionWrite> out;
  const std::string& stream = event.stream();
  constexpr size_t kPrefixBytes = sizeof kApproverStreamPrefix - 1;
  if (stream.compare(0, kPrefixBytes, kApproverStreamPrefix) != 0) return out;
  const std::string approver = stream.substr(kPrefixBytes);
  if (event.has_approver_key_registered()) {
    const auto& body = event.approver_key_registered();
    ApproverKey key;
    key.set_key_id(body.key_id());
    key.set_approver(approver);
    key.set_public_key(body.public_key());
    key.set_level(body.level());
    *key.mutable_register_time() = event.time();
    key.set_register_version(event.version());
    key.set_registered_by(event.actor());
    out.push_back({.op = store::ProjectionWrite::Op::kPut,
                   .table = kApproverKeyTable,
                   .key = body.key_id(),
                   .value = Deterministic(key)});
  } else if (event.has_approver_key_revoked()) {
    const auto& body = event.approver_key_revoked();
    ApproverKey key;
    key.set_key_id(body.key_id());
    key.set_approver(approver);
    *key.mutable_revoke_time() = event.time();
    key.set_revoke_version(event.version());
    key.set_revoked_by(event.actor());
    key.set_revoke_reason(body.reason());
    out.push_back({.op = store::ProjectionWrite::Op::kPut,
                   .table = kApproverKeyRevokedTable,
                   .key = body.key_id(),
                   .value = Deterministic(key)});
  }
  return out;
}

ApproverKeys::SignOffHold& ApproverKeys::SignOffHold::operator=(SignOffHold&& other) noexcept {
  if (this != &other) {
    Release();
    keys_ = std::exchange(other.keys_, nullptr);
    key_id_ = std::move(other.key_id_);
    blocked_ = std::exchange(other.blocked_, false);
  }
  return *this;
}

void ApproverKeys::SignOffHold::Release() {
  if (keys_ != nullptr) std::exchange(keys_, nullptr)->Unhold(key_id_);
}

ApproverKeys::RevocationMark& ApproverKeys::RevocationMark::operator=(
    RevocationMark&& other) noexcept {
  if (this != &other) {
    Release();
    keys_ = std::exchange(other.keys_, nullptr);
    key_id_ = std::move(other.key_id_);
  }
  return *this;
}

void ApproverKeys::RevocationMark::Release() {
  if (keys_ != nullptr) std::exchange(keys_, nullptr)->Unmark(key_id_);
}

ApproverKeys::SignOffHold ApproverKeys::HoldForSignOff(const std::string& key_id) const {
  SignOffHold hold;
  if (key_id.empty()) return hold;
  absl::MutexLock lock(&mu_);
  InFlight& entry = in_flight_[key_id];
  if (entry.revoking) {
    hold.blocked_ = true;
    return hold;  // holds nothing
  }
  ++entry.sign_offs;
  hold.keys_ = this;
  hold.key_id_ = key_id;
  return hold;
}

void ApproverKeys::Unhold(const std::string& key_id) const {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(key_id);
  if (it == in_flight_.end()) return;
  if (--it->second.sign_offs == 0 && !it->second.revoking) in_flight_.erase(it);
}

std::optional<ApproverKeys::RevocationMark> ApproverKeys::MarkForRevocation(
    const std::string& key_id, absl::Duration wait) const {
  absl::MutexLock lock(&mu_);
  InFlight& entry = in_flight_[key_id];
  if (entry.revoking) return std::nullopt;  // another revocation holds it
  entry.revoking = true;
  const auto answered = [this, &key_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_[key_id].sign_offs == 0;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&answered), wait)) {
    InFlight& waited = in_flight_[key_id];
    waited.revoking = false;
    if (waited.sign_offs == 0) in_flight_.erase(key_id);
    return std::nullopt;
  }
  RevocationMark mark;
  mark.keys_ = this;
  mark.key_id_ = key_id;
  return mark;
}

void ApproverKeys::Unmark(const std::string& key_id) const {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(key_id);
  if (it == in_flight_.end()) return;
  it->second.revoking = false;
  if (it->second.sign_offs == 0) in_flight_.erase(it);
}

absl::StatusOr<std::optional<ApproverKey>> ApproverKeys::Find(std::string_view key_id) const {
  auto registered = log_->GetProjection(kApproverKeyTable, key_id);
  if (!registered.ok()) return registered.status();
  if (!registered->has_value()) return std::nullopt;
  ApproverKey key;
  if (!key.ParseFromString(**registered)) {
    return absl::DataLossError(absl::StrCat("the stored approver key ",
                                            absl::string_view(key_id.data(), key_id.size()),
                                            " does not parse; rebuild the projections"));
  }
  auto revoked = log_->GetProjection(kApproverKeyRevokedTable, key_id);
  if (!revoked.ok()) return revoked.status();
  if (revoked->has_value()) {
    ApproverKey revocation;
    if (!revocation.ParseFromString(**revoked)) {
      return absl::DataLossError(absl::StrCat("the stored revocation of approver key ",
                                              absl::string_view(key_id.data(), key_id.size()),
                                              " does not parse; rebuild the projections"));
    }
    *key.mutable_revoke_time() = revocation.revoke_time();
    key.set_revoke_version(revocation.revoke_version());
    key.set_revoked_by(revocation.revoked_by());
    key.set_revoke_reason(revocation.revoke_reason());
  }
  return key;
}

absl::StatusOr<SignOffVerdict> VerifySignOff(const ApproverKeys& keys,
                                             const workflow::Principal& actor,
                                             const casework::v1::SignOffClosureRequest& request,
                                             std::string_view latest_leaf_hash) {
  SignOffVerdict verdict;
  if (request.key_id().empty() || request.signature().empty()) return verdict;
  const std::string shown = Shown(request.key_id());
  std::optional<ApproverKey> key;
  if (request.key_id().size() <= workflow::kIdBytesMax) {
    auto found = keys.Find(request.key_id());
    if (!found.ok()) return found.status();
    key = std::move(*found);
  }
  if (!key.has_value()) {
    verdict.refusal = ErrorStatus(
        grpc::StatusCode::PERMISSION_DENIED, "KEY_UNKNOWN", "key_id",
        absl::StrCat("key ", shown,
                     " is not a registered approver key; ask an administrator to register "
                     "your public key (casectl admin register-key) and sign with it"),
        absl::StrCat("密钥 ", shown, " 未登记为审批人密钥；请管理员登记您的公钥后再签批"));
    return verdict;
  }
  if (key->approver() != actor.id) {
    verdict.refusal =
        ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "KEY_NOT_OWNED_BY_CALLER", "key_id",
                    absl::StrCat("key ", shown, " is registered to another approver, not to ",
                                 actor.id, "; sign with your own registered key"),
                    absl::StrCat("密钥 ", shown, " 登记在其他审批人名下，不属于 ", actor.id,
                                 "；请使用您本人已登记的密钥签批"));
    return verdict;
  }
  if (key->revoke_version() != 0) {
    verdict.refusal =
        ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "KEY_REVOKED", "key_id",
                    absl::StrCat("key ", shown, " of ", actor.id, " was revoked by ",
                                 key->revoked_by(), "; sign with a currently registered key"),
                    absl::StrCat(actor.id, " 的密钥 ", shown, " 已被 ", key->revoked_by(),
                                 " 吊销；请使用当前有效的登记密钥签批"));
    return verdict;
  }
  if (key->level() != actor.approval_level) {
    // The principals file changed the approver's level (or took it away) since the key was
    // registered: a key signs at the level its approver holds now, or not at all.
    verdict.refusal = ErrorStatus(
        grpc::StatusCode::PERMISSION_DENIED, "APPROVER_LEVEL_MISMATCH", "key_id",
        absl::StrCat("key ", shown, " of ", actor.id, " was registered at level ",
                     casework::v1::ApprovalLevel_Name(key->level()),
                     ", but the principals file now gives ", actor.id, " level ",
                     casework::v1::ApprovalLevel_Name(actor.approval_level),
                     actor.approval_level == casework::v1::APPROVAL_LEVEL_UNSPECIFIED
                         ? "; an administrator gives the approver a level in the principals "
                           "file, or registers no key for someone who no longer approves"
                         : "; ask an administrator to register a key at the current level"),
        absl::StrCat(actor.id, " 的密钥 ", shown, " 登记时的审批层级与授权名单中当前的层级不一致；",
                     actor.approval_level == casework::v1::APPROVAL_LEVEL_UNSPECIFIED
                         ? "人员名册中已无其审批层级，请管理员在名册中设定层级"
                         : "请管理员按当前层级重新登记密钥"));
    return verdict;
  }
  if (request.signature().size() != kEd25519SignatureBytes) {
    verdict.refusal =
        ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "SIGNATURE_MALFORMED", "signature",
                    absl::StrCat("the signature is ", request.signature().size(),
                                 " bytes; an Ed25519 "
                                 "signature is exactly ",
                                 kEd25519SignatureBytes, " bytes"),
                    absl::StrCat("签名长度为 ", request.signature().size(),
                                 " 字节；Ed25519 签名须为 ", kEd25519SignatureBytes, " 字节"));
    return verdict;
  }
  const std::optional<std::string> statement =
      workflow::SignOffStatementFor(request, latest_leaf_hash);
  if (!statement.has_value()) return verdict;
  if (!VerifyEd25519Strict(key->public_key(), *statement, request.signature())) {
    const std::string latest =
        absl::BytesToHexString(absl::string_view(latest_leaf_hash.data(), latest_leaf_hash.size()));
    const std::optional<std::string> v1_statement = workflow::SignOffStatementV1For(request);
    if (v1_statement.has_value() &&
        VerifyEd25519Strict(key->public_key(), *v1_statement, request.signature())) {
      // A tool that signs the statement of the earlier rules, without the leaf hash.
      verdict.refusal = ErrorStatus(
          grpc::StatusCode::PERMISSION_DENIED, "SIGNATURE_STATEMENT_OUTDATED", "signature",
          absl::StrCat("the signature verifies with key ", shown,
                       " over the earlier sign-off statement (\"casework/v1 closure sign-off\"), "
                       "which no longer closes a case; sign the current statement, which names "
                       "the leaf hash of the case's latest event (latest: ",
                       latest, "), with casectl sign --latest or an updated client"),
          absl::StrCat("签名可用密钥 ", shown,
                       " 验证，但所签为旧版销号声明，已不能用于销号；请对当前声明签名，"
                       "其中须包含案件最新事件的叶哈希（latest: ",
                       latest, "）"));
      return verdict;
    }
    verdict.refusal = ErrorStatus(
        grpc::StatusCode::PERMISSION_DENIED, "SIGNATURE_INVALID", "signature",
        absl::StrCat("the signature does not verify with key ", shown,
                     " over the sign-off statement of ", request.name(), " at version ",
                     request.expected_version(), " on inspection ", Shown(request.inspection_id()),
                     " with the case's latest leaf hash ", latest,
                     "; sign exactly that statement (casectl sign) with this key"),
        absl::StrCat("签名无法用密钥 ", shown, " 验证（案件 ", request.name(), "，版本 ",
                     request.expected_version(), "，验收 ", Shown(request.inspection_id()),
                     "，最新事件叶哈希 ", latest, "）；请用该密钥对这一标准声明签名"));
    return verdict;
  }
  verdict.verified = std::move(*key);
  return verdict;
}

}  // namespace casework::shell

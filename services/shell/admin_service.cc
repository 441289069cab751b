#include "services/shell/admin_service.h"

#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/shell/ed25519.h"
#include "services/shell/fingerprint.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/decider.h"
#include "services/workflow/limits.h"
#include "services/workflow/names.h"
#include "spdlog/spdlog.h"

namespace casework::shell {
namespace {

// A revocation by an administrator below the whole city of the keys of an approver no
// longer in the principals file: no jurisdiction shows whose they were.
grpc::Status ApproverGoneForACounty(const std::string& approver) {
  return ErrorStatus(
      grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "",
      absl::StrCat("\"", approver,
                   "\" is not in the principals file, so no jurisdiction shows whose they were; "
                   "an administrator of the whole city must revoke their keys"),
      absl::StrCat("\"", approver,
                   "\" 不在授权名单中，无法确定其管辖范围；须由全市管理员吊销其密钥"));
}

using casework::v1::ApproverKey;
using casework::v1::Event;

// How long a revocation waits for the sign-offs with its key that were checked before it
// (ApproverKeys::MarkForRevocation): one synced batch takes well under that.
constexpr absl::Duration kRevocationWait = absl::Milliseconds(100);

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, grpc::Status status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

std::string Shown(const std::string& id) {
  std::string out;
  for (char ch : id.substr(0, workflow::kIdBytesMax)) {
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  }
  if (id.size() > workflow::kIdBytesMax) out += "...";
  return out;
}

// The checks every admin write starts with: role, request id, approver id. nullopt
// when they pass.
std::optional<grpc::Status> CheckCommon(const workflow::Principal& actor,
                                        const std::string& request_id,
                                        const std::string& approver) {
  if (!actor.HasRole(workflow::Role::kAdmin)) {
    return ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", "",
                       absl::StrCat(actor.id,
                                    " does not hold the role admin; approvers' keys are "
                                    "registered and revoked by an administrator"),
                       absl::StrCat(actor.id, " 不具有管理员角色；审批人密钥须由管理员登记和吊销"));
  }
  if (!workflow::IsValidRequestId(request_id)) {
    return RequestIdInvalid(request_id);
  }
  if (!workflow::IsValidId(approver)) {
    return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PERSON_ID_INVALID", "approver",
                       absl::StrCat("approver \"", Shown(approver),
                                    "\" is not a person id: 1-64 bytes without spaces, control "
                                    "characters or '/'"),
                       absl::StrCat("审批人 \"", Shown(approver),
                                    "\" 不是有效的人员标识：1-64 字节，不含空格、控制字符或 '/'"));
  }
  return std::nullopt;
}

grpc::Status NotCovered(const workflow::Principal& actor, const workflow::Principal& approver) {
  return ErrorStatus(
      grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "approver",
      absl::StrCat("approver ", approver.id, " of ", approver.jurisdiction,
                   " is outside the jurisdiction ", actor.jurisdiction, " of ", actor.id,
                   "; an administrator of that jurisdiction must do this"),
      absl::StrCat("审批人 ", approver.id, "（", approver.jurisdiction, "）不在 ", actor.id,
                   " 的管辖范围 ", actor.jurisdiction, " 内；须由该辖区的管理员办理"));
}

grpc::Status ReusedRequestId() {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_REUSED", "request_id",
                     "this request_id was already used for a different request on this "
                     "approver; use a new request_id for a new request",
                     "该 request_id 已用于该审批人的另一请求；新请求请使用新的 request_id");
}

grpc::Status AppendFailed(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kAborted) {
    return ErrorStatus(grpc::StatusCode::ABORTED, "STALE_EXPECTED_VERSION", "",
                       "another change to this approver's keys was made meanwhile; retry",
                       "该审批人的密钥同时被修改；请重试");
  }
  return FromStoreStatus(status);
}

Event Envelope(const std::string& stream, int64_t version, const workflow::Principal& actor,
               int64_t now_micros, const std::string& request_id) {
  Event event;
  event.set_stream(stream);
  event.set_version(version);
  event.set_actor(actor.id);
  if (!actor.principals_version.empty()) event.set_principals_version(actor.principals_version);
  *event.mutable_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(now_micros);
  event.set_request_id(request_id);
  event.set_rules_version(workflow::kRulesVersion);
  return event;
}

}  // namespace

bool AdminServiceImpl::Reserve(const std::string& key_id, const std::string& stream,
                               const std::string& request_id, const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = pending_key_ids_.try_emplace(key_id);
  PendingKey& pending = it->second;
  if (inserted) {
    pending = PendingKey{.stream = stream, .request_id = request_id, .fingerprint = fingerprint};
  } else if (pending.stream != stream || pending.request_id != request_id ||
             pending.fingerprint != fingerprint) {
    return false;
  }
  ++pending.holders;
  return true;
}

void AdminServiceImpl::Release(const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  auto it = pending_key_ids_.find(key_id);
  if (it != pending_key_ids_.end() && --it->second.holders == 0) pending_key_ids_.erase(it);
}

grpc::Status AdminServiceImpl::RecordedAnswer(const std::string& actor_id,
                                              const std::string& stream,
                                              const store::AppendResult& first,
                                              const std::string& fingerprint,
                                              const std::string& request_id, Event* event) {
  if (first.request_fingerprint != fingerprint) return ReusedRequestId();
  auto stored = log_->ReadStream(stream, first.version, 1);
  if (!stored.ok()) return FromStoreStatus(stored.status());
  if (stored->empty() || !event->ParseFromString(stored->front().bytes)) {
    return FromStoreStatus(absl::DataLossError(
        absl::StrCat("the event recorded for request ", request_id, " is missing from ", stream)));
  }
  // A retry comes from whoever made the first request; the same request from someone
  // else is another request.
  if (event->actor() != actor_id) return ReusedRequestId();
  return grpc::Status::OK;
}

grpc::Status AdminServiceImpl::AnswerRegistrationRetry(
    const std::string& actor_id, const std::string& stream, const store::AppendResult& first,
    const std::string& fingerprint, const std::string& request_id,
    casework::v1::RegisterApproverKeyResponse* resp) {
  resp->Clear();
  Event event;
  if (grpc::Status answer =
          RecordedAnswer(actor_id, stream, first, fingerprint, request_id, &event);
      !answer.ok()) {
    return answer;
  }
  if (!event.has_approver_key_registered()) {
    return FromStoreStatus(absl::DataLossError(absl::StrCat(
        "the registration recorded for request ", request_id, " is missing from ", stream)));
  }
  resp->set_key_id(event.approver_key_registered().key_id());
  auto key = keys_.Find(resp->key_id());
  if (!key.ok()) return FromStoreStatus(key.status());
  if (key->has_value()) *resp->mutable_key() = **key;
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RegisterApproverKey(
    grpc::CallbackServerContext* ctx, const casework::v1::RegisterApproverKeyRequest* req,
    casework::v1::RegisterApproverKeyResponse* resp) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  if (auto refused = CheckCommon(actor, req->request_id(), req->approver())) {
    return Finish(ctx, *refused);
  }
  const std::string stream = ApproverStream(req->approver());
  const std::string fingerprint = RequestFingerprint(*req);

  auto first = log_->FindRequest(stream, req->request_id());
  if (!first.ok()) return Finish(ctx, FromStoreStatus(first.status()));
  if (first->has_value()) {
    return Finish(ctx, AnswerRegistrationRetry(actor.id, stream, **first, fingerprint,
                                               req->request_id(), resp));
  }

  // The caller and the approver are looked up in one principals set, the one the caller
  // stands in now (a reload since the authentication that changed the caller refuses the
  // call, to be retried); and the caller is looked at again just before the append.
  CallerStanding standing(auth_, actor, nullptr);
  if (auto changed = standing.Revoked("the registration", "密钥登记", "was not made", "未进行")) {
    return Finish(ctx, *changed);
  }
  // The level the approver holds in the principals file: a key signs at that level and
  // no other, so that registering a key cannot raise an approver's level.
  casework::v1::ApprovalLevel held = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
  {
    const std::shared_ptr<const Principals>& principals = standing.principals();
    const workflow::Principal* approver = principals->Find(req->approver());
    if (approver == nullptr || !approver->HasRole(workflow::Role::kApprover)) {
      return Finish(
          ctx, ErrorStatus(grpc::StatusCode::FAILED_PRECONDITION, "APPROVER_NOT_IN_PRINCIPALS",
                           "approver",
                           absl::StrCat("\"", req->approver(),
                                        "\" is not a principal with the role approver; "
                                        "add it to the principals file first"),
                           absl::StrCat("\"", req->approver(),
                                        "\" 不是具有审批人角色的授权用户；请先将其加入授权名单")));
    }
    if (!actor.Covers(approver->jurisdiction)) return Finish(ctx, NotCovered(actor, *approver));
    held = approver->approval_level;
  }
  if (req->level() != casework::v1::APPROVAL_LEVEL_COUNTY &&
      req->level() != casework::v1::APPROVAL_LEVEL_CITY) {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "APPROVER_LEVEL_INVALID", "level",
                              "level must be APPROVAL_LEVEL_COUNTY or APPROVAL_LEVEL_CITY",
                              "层级须为县级（COUNTY）或市级（CITY）"));
  }
  if (held == casework::v1::APPROVAL_LEVEL_UNSPECIFIED) {
    return Finish(
        ctx, ErrorStatus(grpc::StatusCode::FAILED_PRECONDITION, "APPROVER_LEVEL_NOT_IN_PRINCIPALS",
                         "level",
                         absl::StrCat("\"", req->approver(),
                                      "\" has no approval_level in the principals file; set it "
                                      "to \"county\" or \"city\" there first (a key signs at "
                                      "the level its approver holds)"),
                         absl::StrCat("\"", req->approver(),
                                      "\" 在授权名单中未设置审批层级（approval_level）；请先设为 "
                                      "\"county\" 或 \"city\"（密钥按审批人的层级签署）")));
  }
  if (req->level() != held) {
    const bool city = held == casework::v1::APPROVAL_LEVEL_CITY;
    return Finish(
        ctx,
        ErrorStatus(grpc::StatusCode::FAILED_PRECONDITION, "APPROVER_LEVEL_MISMATCH", "level",
                    absl::StrCat("\"", req->approver(), "\" holds level ", city ? "CITY" : "COUNTY",
                                 " in the principals file; register the key at that level "
                                 "(APPROVAL_LEVEL_",
                                 city ? "CITY" : "COUNTY", ")"),
                    absl::StrCat("\"", req->approver(), "\" 在授权名单中的审批层级为",
                                 city ? "市级" : "县级", "；请按该层级登记密钥")));
  }
  switch (CheckApproverPublicKey(req->public_key())) {
    case PublicKeyCheck::kOk:
      break;
    case PublicKeyCheck::kWrongLength:
      return Finish(
          ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PUBLIC_KEY_MALFORMED", "public_key",
                           absl::StrCat("public_key is ", req->public_key().size(),
                                        " bytes; an Ed25519 public key is exactly 32 "
                                        "bytes (casectl keygen prints it)"),
                           absl::StrCat("公钥长度为 ", req->public_key().size(),
                                        " 字节；Ed25519 公钥须为 32 字节")));
    case PublicKeyCheck::kNotCanonical:
      return Finish(
          ctx,
          ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PUBLIC_KEY_NOT_CANONICAL", "public_key",
                      "public_key is not the canonical encoding of a point "
                      "(RFC 8032, 5.1.2); send the key as generated",
                      "公钥不是点的规范编码（RFC 8032 5.1.2）；请提交生成的原始公钥"));
    case PublicKeyCheck::kWeak:
      return Finish(ctx,
                    ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "PUBLIC_KEY_WEAK", "public_key",
                                "public_key is not a point of the prime-order subgroup "
                                "(off the curve, of small order, or with a small-order "
                                "component); generate a new key with casectl keygen",
                                "公钥不在素数阶子群中（不在曲线上、小阶或含小阶分量）；请用 "
                                "casectl keygen 重新生成密钥"));
  }

  const std::string key_id = ApproverKeyId(req->public_key());
  const grpc::Status already = ErrorStatus(
      grpc::StatusCode::ALREADY_EXISTS, "KEY_ALREADY_REGISTERED", "public_key",
      absl::StrCat("key ", key_id,
                   " is already registered (a key is registered once, for one approver, "
                   "and never again after revocation); generate a new key"),
      absl::StrCat("密钥 ", key_id,
                   " 已登记（一个密钥只能登记一次，吊销后也不能再登记）；请生成新密钥"));
  if (!Reserve(key_id, stream, req->request_id(), fingerprint)) return Finish(ctx, already);
  auto existing = keys_.Find(key_id);
  if (!existing.ok() || existing->has_value()) {
    Release(key_id);
    if (!existing.ok()) return Finish(ctx, FromStoreStatus(existing.status()));
    // Registered meanwhile: by this request's first attempt (answer it), or by another.
    auto recorded = log_->FindRequest(stream, req->request_id());
    if (!recorded.ok()) return Finish(ctx, FromStoreStatus(recorded.status()));
    if (recorded->has_value()) {
      return Finish(ctx, AnswerRegistrationRetry(actor.id, stream, **recorded, fingerprint,
                                                 req->request_id(), resp));
    }
    return Finish(ctx, already);
  }
  auto version = log_->StreamVersion(stream);
  if (!version.ok()) {
    Release(key_id);
    return Finish(ctx, FromStoreStatus(version.status()));
  }

  const std::shared_ptr<const Principals> looked_up_in = standing.principals();
  // From the last check of the caller until the append is queued: no reload's record
  // comes between them (PrincipalsHolder::append_gate).
  const AppendGateHold gate(auth_->AppendGate());
  if (auto changed = standing.Revoked("the registration", "密钥登记", "was not made", "未进行")) {
    Release(key_id);
    return Finish(ctx, *changed);
  }
  if (standing.principals() != looked_up_in) {
    // A reload meanwhile: the approver must still hold the level the key is registered at,
    // within the caller's jurisdiction (deep verification looks them up in this set).
    const workflow::Principal* approver = standing.principals()->Find(req->approver());
    if (approver == nullptr || !approver->HasRole(workflow::Role::kApprover) ||
        approver->approval_level != req->level() || !actor.Covers(approver->jurisdiction)) {
      Release(key_id);
      return Finish(ctx,
                    ErrorStatus(grpc::StatusCode::ABORTED, "PRINCIPAL_CHANGED", "approver",
                                absl::StrCat("the principals were reloaded and \"", req->approver(),
                                             "\" changed meanwhile; nothing was registered: "
                                             "check the approver and retry"),
                                absl::StrCat("人员名册已重新加载，\"", req->approver(),
                                             "\" 已变更；未登记，请核对后重试")));
    }
  }
  Event event = Envelope(stream, *version + 1, actor, clock_(), req->request_id());
  auto* body = event.mutable_approver_key_registered();
  body->set_key_id(key_id);
  body->set_public_key(req->public_key());
  body->set_level(req->level());

  store::AppendRequest append;
  append.stream = stream;
  append.expected_version = *version;
  append.request_id = req->request_id();
  append.request_fingerprint = fingerprint;
  append.projections = ProjectApproverKeyEvent(event);
  append.events.push_back(event.SerializeAsString());
  for (const auto& write : append.projections) {
    if (write.table == kApproverKeyTable) resp->mutable_key()->ParseFromString(write.value);
  }
  resp->set_key_id(key_id);

  auto* reactor = ctx->DefaultReactor();
  log_->AppendAsync(std::move(append),
                    [this, reactor, resp, key_id, fingerprint, stream, actor_id = actor.id,
                     request_id = req->request_id()](absl::StatusOr<store::AppendResult> result) {
                      Release(key_id);
                      if (!result.ok()) {
                        reactor->Finish(AppendFailed(result.status()));
                        return;
                      }
                      if (result->replayed) {
                        // The same request id was appended first by another call, not yet durable
                        // when this one looked: this registration was not appended; answer as a
                        // retry.
                        reactor->Finish(AnswerRegistrationRetry(actor_id, stream, *result,
                                                                fingerprint, request_id, resp));
                        return;
                      }
                      reactor->Finish(grpc::Status::OK);
                    });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeApproverKey(
    grpc::CallbackServerContext* ctx, const casework::v1::RevokeApproverKeyRequest* req,
    casework::v1::RevokeApproverKeyResponse* /*resp*/) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  if (auto refused = CheckCommon(actor, req->request_id(), req->approver())) {
    return Finish(ctx, *refused);
  }
  const std::string stream = ApproverStream(req->approver());
  const std::string fingerprint = RequestFingerprint(*req);

  auto first = log_->FindRequest(stream, req->request_id());
  if (!first.ok()) return Finish(ctx, FromStoreStatus(first.status()));
  if (first->has_value()) {
    Event recorded;
    return Finish(
        ctx, RecordedAnswer(actor.id, stream, **first, fingerprint, req->request_id(), &recorded));
  }

  if (workflow::IsBlank(req->reason())) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "REVOKE_REASON_REQUIRED",
                                   "reason", "say why the key is revoked", "请说明吊销密钥的原因"));
  }
  if (req->reason().size() > workflow::kTextBytesMax) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "TEXT_TOO_LONG", "reason",
                                   absl::StrCat("reason is ", req->reason().size(),
                                                " bytes; at most ", workflow::kTextBytesMax),
                                   absl::StrCat("原因长度为 ", req->reason().size(), " 字节，最多 ",
                                                workflow::kTextBytesMax, " 字节")));
  }
  if (req->key_id().empty()) {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "KEY_ID_REQUIRED", "key_id",
                              "key_id is empty; give the id of the key to revoke "
                              "(ed25519:<16 hex digits>, as printed when it was registered)",
                              "key_id 为空；请填写要吊销的密钥编号（ed25519:<16 位十六进制>）"));
  }
  std::optional<ApproverKey> key;
  if (req->key_id().size() <= workflow::kIdBytesMax) {
    auto found = keys_.Find(req->key_id());
    if (!found.ok()) return Finish(ctx, FromStoreStatus(found.status()));
    key = std::move(*found);
  }
  if (!key.has_value()) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::NOT_FOUND, "KEY_UNKNOWN", "key_id",
                                   absl::StrCat("key ", Shown(req->key_id()),
                                                " is not a registered approver key"),
                                   absl::StrCat("密钥 ", Shown(req->key_id()), " 未登记")));
  }
  {
    // The jurisdiction first, so that whose key it is shows only to an administrator of
    // the approver. An approver no longer in the principals file has no jurisdiction to
    // check: only an administrator of the whole city revokes their keys.
    auto principals = principals_->Get();
    const workflow::Principal* approver = principals->Find(req->approver());
    if (approver != nullptr && !actor.Covers(approver->jurisdiction)) {
      return Finish(ctx, NotCovered(actor, *approver));
    }
    if (approver == nullptr && workflow::JurisdictionDepth(actor.jurisdiction) > 1) {
      return Finish(ctx, ApproverGoneForACounty(req->approver()));
    }
  }
  if (key->approver() != req->approver()) {
    return Finish(
        ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "KEY_NOT_OWNED_BY_APPROVER", "key_id",
                         absl::StrCat("key ", key->key_id(), " is not registered to ",
                                      req->approver(), "; name its approver"),
                         absl::StrCat("密钥 ", key->key_id(), " 未登记在 ", req->approver(),
                                      " 名下；请填写其所属审批人")));
  }
  if (key->revoke_version() != 0) return Finish(ctx, grpc::Status::OK);  // already revoked

  // Sign-offs with the key checked before now are written first, and those that begin
  // from now on are refused (to be retried): otherwise a sign-off checked before this
  // revocation could be written after it (ApproverKeys::RevocationMark). The mark is held
  // until this revocation is answered. The wait holds this gRPC thread, so it is short:
  // a sign-off still unwritten after it makes the revocation retry.
  auto mark = keys_.MarkForRevocation(key->key_id(), kRevocationWait);
  if (!mark.has_value()) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::ABORTED, "KEY_IN_USE", "key_id",
                                   absl::StrCat("a sign-off with key ", key->key_id(),
                                                " or another revocation of it is being written; "
                                                "retry with the same request id"),
                                   absl::StrCat("使用密钥 ", key->key_id(),
                                                " 的签署或对其的另一次吊销正在写入；请使用相同的 "
                                                "request_id 重试")));
  }
  {
    // Read again under the mark: another revocation may have been written meanwhile.
    auto again = keys_.Find(key->key_id());
    if (!again.ok()) return Finish(ctx, FromStoreStatus(again.status()));
    if (again->has_value() && (*again)->revoke_version() != 0) {
      return Finish(ctx, grpc::Status::OK);  // already revoked
    }
  }

  auto version = log_->StreamVersion(stream);
  if (!version.ok()) return Finish(ctx, FromStoreStatus(version.status()));
  // After the wait for sign-offs above: an administrator a reload removed or changed
  // meanwhile revokes nothing. No reload's record comes between this check and the append
  // (PrincipalsHolder::append_gate).
  const AppendGateHold gate(auth_->AppendGate());
  if (auto changed = CallerStanding(auth_, actor, nullptr)
                         .Revoked("the revocation", "密钥吊销", "was not made", "未进行")) {
    return Finish(ctx, *changed);
  }
  {
    // The approver as the set in force has them (a reload since the check above may have
    // moved them away from the caller; deep verification looks them up in this set).
    const workflow::Principal* approver = auth_->CurrentPrincipals()->Find(req->approver());
    if (approver != nullptr && !actor.Covers(approver->jurisdiction)) {
      return Finish(ctx, NotCovered(actor, *approver));
    }
    if (approver == nullptr && workflow::JurisdictionDepth(actor.jurisdiction) > 1) {
      return Finish(ctx, ApproverGoneForACounty(req->approver()));
    }
  }
  Event event = Envelope(stream, *version + 1, actor, clock_(), req->request_id());
  auto* body = event.mutable_approver_key_revoked();
  body->set_key_id(key->key_id());
  body->set_reason(req->reason());

  store::AppendRequest append;
  append.stream = stream;
  append.expected_version = *version;
  append.request_id = req->request_id();
  append.request_fingerprint = fingerprint;
  append.projections = ProjectApproverKeyEvent(event);
  append.events.push_back(event.SerializeAsString());

  auto* reactor = ctx->DefaultReactor();
  log_->AppendAsync(std::move(append), [this, reactor, fingerprint, stream, actor_id = actor.id,
                                        request_id = req->request_id(), mark = *std::move(mark)](
                                           absl::StatusOr<store::AppendResult> result) mutable {
    mark.Release();  // durable or refused: sign-offs may look again
    if (!result.ok()) {
      reactor->Finish(AppendFailed(result.status()));
      return;
    }
    if (result->replayed) {
      // A replay of another call's request id (appended first, not yet durable
      // when this one looked): this revocation was not appended; answer as a
      // retry.
      Event recorded;
      reactor->Finish(
          RecordedAnswer(actor_id, stream, *result, fingerprint, request_id, &recorded));
      return;
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

AdminServiceImpl::~AdminServiceImpl() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](bool* running) { return !*running; }, &backup_running_));
}

void AdminServiceImpl::StartDetachedThread(std::function<void()> run) {
  std::thread(std::move(run)).detach();
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateBackup(
    grpc::CallbackServerContext* ctx, const casework::v1::CreateBackupRequest* req,
    casework::v1::CreateBackupResponse* resp) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  if (!actor.HasRole(workflow::Role::kAdmin)) {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", "",
                              absl::StrCat(actor.id,
                                           " does not hold the role admin; "
                                           "backups are taken by an administrator"),
                              absl::StrCat(actor.id, " 不具有管理员角色；备份须由管理员执行")));
  }
  if (workflow::JurisdictionDepth(actor.jurisdiction) > 1) {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "",
                              absl::StrCat("a backup holds the whole ledger; ", actor.id,
                                           " administers only ", actor.jurisdiction,
                                           "; an administrator of the whole city must take it"),
                              absl::StrCat("备份包含整个台账；", actor.id, " 仅管理 ",
                                           actor.jurisdiction, "，须由全市管理员执行")));
  }
  if (!backup_) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::FAILED_PRECONDITION, "BACKUP_NOT_CONFIGURED",
                                   "", "this server takes no backups (no backup directory)",
                                   "本服务器未配置备份目录"));
  }
  const std::string& request_id = req->request_id();
  if (!request_id.empty() && !workflow::IsValidRequestId(request_id)) {
    return Finish(ctx, RequestIdInvalid(request_id));
  }
  {
    absl::MutexLock lock(&mu_);
    for (const BackupTaken& taken : backups_taken_) {
      if (request_id.empty() || taken.request_id != request_id) continue;
      if (taken.actor != actor.id) {
        return Finish(
            ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_REUSED", "request_id",
                             "this request_id was already used for another administrator's "
                             "backup; use a new request_id for a new backup",
                             "该 request_id 已用于其他管理员的备份；新备份请使用新的 request_id"));
      }
      *resp = taken.response;  // a retry: the first answer, no second backup
      return Finish(ctx, grpc::Status::OK);
    }
    if (backup_running_) {
      return Finish(ctx, ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "BACKUP_RUNNING", "",
                                     "a backup is already being taken; retry when it is done "
                                     "(with the same request_id, to get its answer if it was "
                                     "yours)",
                                     "已有备份正在进行，请稍后重试"));
    }
    backup_running_ = true;
  }
  auto* reactor = ctx->DefaultReactor();
  try {
    start_thread_([this, reactor, resp, request_id = request_id, actor_id = actor.id] {
      const absl::Status status = backup_(resp);
      {
        // Free before the answer, so that a caller answered may take the next backup at
        // once. Nothing of this service is touched after it (the server, and so this
        // service, cannot stop before the answer).
        absl::MutexLock lock(&mu_);
        backup_running_ = false;
        if (status.ok() && !request_id.empty()) {
          backups_taken_.push_back(
              BackupTaken{.request_id = request_id, .actor = actor_id, .response = *resp});
          if (backups_taken_.size() > kBackupAnswersKept) backups_taken_.pop_front();
        }
      }
      reactor->Finish(status.ok() ? grpc::Status::OK : FromStoreStatus(status));
    });
  } catch (...) {  // no thread could be made
    {
      absl::MutexLock lock(&mu_);
      backup_running_ = false;
    }
    reactor->Finish(ErrorStatus(grpc::StatusCode::UNAVAILABLE, "BACKUP_NOT_STARTED", "",
                                "the server could not start the backup's thread (out of "
                                "resources); retry later",
                                "服务器无法启动备份线程（资源不足）；请稍后重试"));
  }
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ReloadPrincipals(
    grpc::CallbackServerContext* ctx, const casework::v1::ReloadPrincipalsRequest* /*req*/,
    casework::v1::ReloadPrincipalsResponse* resp) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  if (!actor.HasRole(workflow::Role::kAdmin)) {
    return Finish(
        ctx, ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", "",
                         absl::StrCat(actor.id,
                                      " does not hold the role admin; the principals "
                                      "are reloaded by an administrator"),
                         absl::StrCat(actor.id, " 不具有管理员角色；人员名册须由管理员重新加载")));
  }
  if (workflow::JurisdictionDepth(actor.jurisdiction) > 1) {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "",
                              absl::StrCat("the principals file grants roles in the whole city; ",
                                           actor.id, " administers only ", actor.jurisdiction,
                                           "; an administrator of the whole city must reload it"),
                              absl::StrCat("人员名册涉及全市的角色授权；", actor.id, " 仅管理 ",
                                           actor.jurisdiction, "，须由全市管理员重新加载")));
  }
  if (reloader_ == nullptr) {
    return Finish(
        ctx, ErrorStatus(grpc::StatusCode::FAILED_PRECONDITION, "PRINCIPALS_RELOAD_NOT_CONFIGURED",
                         "", "this server does not reload its principals on request",
                         "本服务器不支持按请求重新加载人员名册"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (reload_running_) {
      return Finish(ctx, ErrorStatus(grpc::StatusCode::ABORTED, "PRINCIPALS_RELOAD_RUNNING", "",
                                     "a reload of the principals is being made; retry when it "
                                     "is done",
                                     "人员名册正在重新加载，请稍后重试"));
    }
    reload_running_ = true;
  }
  // Off the callback thread: a reload reads the file and waits for a synced append.
  auto* reactor = ctx->DefaultReactor();
  reloads_.Post([this, reactor, resp, actor = std::move(actor)]() mutable {
    grpc::Status status = grpc::Status::OK;
    auto reloaded = reloader_->Reload(&actor);
    if (!reloaded.ok() && PrincipalsReloader::FileNotLoaded(reloaded.status())) {
      status = ErrorStatus(
          grpc::StatusCode::FAILED_PRECONDITION, "PRINCIPALS_FILE_INVALID", "",
          absl::StrCat(reloaded.status().message(), "; correct the file on the server and reload"),
          "服务器上的人员名册文件无法加载，仍沿用当前名册；请修正文件后重新加载");
    } else if (!reloaded.ok() && PrincipalsReloader::CallerChanged(reloaded.status())) {
      status = ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "PRINCIPAL_CHANGED", "",
                           absl::StrCat(reloaded.status().message(), "; nothing was reloaded"),
                           absl::StrCat(actor.id, " 的授权在等待期间已变更，未重新加载人员名册"));
    } else if (!reloaded.ok()) {
      status = FromStoreStatus(reloaded.status());
    } else {
      resp->set_principals_version(reloaded->set->version());
      resp->set_identities(static_cast<int32_t>(reloaded->set->size()));
      if (reloaded->record.has_value()) {
        resp->set_recorded_now(reloaded->record->recorded_now);
        resp->set_recorded_by(reloaded->record->recorded_by);
        resp->set_recorded_position(reloaded->record->position);
        if (reloaded->record->reinstated_at >= 0) {
          resp->set_reinstated_position(reloaded->record->reinstated_at);
        }
      }
    }
    // In the server's log too, which is the only trace of who reloaded when the log
    // records no principals (--no-record-principals) or the set did not change.
    if (status.ok()) {
      spdlog::info(
          "principals reloaded at the request of {}: {} identities, version {}{}", actor.id,
          resp->identities(), resp->principals_version(),
          resp->recorded_now() ? absl::StrCat(", recorded at position ", resp->recorded_position())
          : resp->reinstated_position() > 0
              ? absl::StrCat(", in force again from position ", resp->reinstated_position())
              : std::string());
    } else {
      spdlog::warn("principals reload requested by {} refused: {}", actor.id,
                   status.error_message());
    }
    {
      absl::MutexLock lock(&mu_);
      reload_running_ = false;
    }
    reactor->Finish(std::move(status));
  });
  return reactor;
}

}  // namespace casework::shell

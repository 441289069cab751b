// Who is calling. Two transports, chosen at start:
//  - mutual TLS (production): the caller's identity is its verified client certificate
//    (tls.h states the rule); request metadata is never trusted for identity;
//  - an explicit local plaintext mode: the caller names itself in the request metadata
//    (x-casework-identity) and every response says so (x-casework-security).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "grpcpp/server_context.h"
#include "services/shell/principals.h"
#include "services/shell/tls.h"

namespace casework::shell {

inline constexpr char kIdentityHeader[] = "x-casework-identity";
inline constexpr char kSecurityHeader[] = "x-casework-security";
inline constexpr char kPlaintextNotice[] =
    "plaintext-insecure: identity taken from request metadata, not authenticated";

enum class Transport { kPlaintext, kMutualTls };

class Authenticator {
 public:
  explicit Authenticator(
      const PrincipalsHolder* principals, Transport transport = Transport::kPlaintext,
      CertificateIdentity certificate_identity = CertificateIdentity::kUriOrCommonName)
      : principals_(principals),
        transport_(transport),
        certificate_identity_(certificate_identity) {}

  // The caller's principal, or UNAUTHENTICATED naming what is missing (IDENTITY_MISSING,
  // IDENTITY_UNKNOWN). In plaintext mode adds the security notice to the response's
  // initial metadata.
  [[nodiscard]] grpc::Status Authenticate(grpc::CallbackServerContext* context,
                                          workflow::Principal* out) const;
  // The same without a copy: the registered principal, which keeps the principals set it
  // belongs to alive (a reload publishes a new set; this one stays as it was).
  [[nodiscard]] grpc::Status Authenticate(grpc::CallbackServerContext* context,
                                          std::shared_ptr<const workflow::Principal>* out) const;

  // The principals in force now (a reload publishes a new set).
  [[nodiscard]] std::shared_ptr<const Principals> CurrentPrincipals() const {
    return principals_->Get();
  }
  // The holder whose append gate (PrincipalsHolder::append_gate) an append in a caller's
  // name holds (AppendGateHold) from its last check of the caller until it is queued.
  [[nodiscard]] const PrincipalsHolder* AppendGate() const { return principals_; }

  // The server is about to stop (its drain nearly over): long jobs end, at their next
  // check, with UNAVAILABLE SHUTTING_DOWN (JobCaller, the job writers) rather than be cut
  // off by the stop with no reason given.
  void BeginStopping() { stopping_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool stopping() const { return stopping_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stopping_{false};
  const PrincipalsHolder* principals_;
  Transport transport_;
  CertificateIdentity certificate_identity_;
};

// Whether a caller authenticated under one principals set still stands after reloads
// (SIGHUP): still a principal, with the same roles and jurisdiction. For calls that
// outlive a reload (a watch, an export, a verification), checked before each message, so
// that a person removed or narrowed is sent nothing more. Not thread-safe: one thread at a
// time checks.
class CallerStanding {
 public:
  // `principals` the set `caller` was authenticated under.
  CallerStanding(const Authenticator* auth, workflow::Principal caller,
                 std::shared_ptr<const Principals> principals)
      : auth_(auth), caller_(std::move(caller)), principals_(std::move(principals)) {}

  // nullopt while the caller stands; else the status that ends the call:
  // UNAUTHENTICATED IDENTITY_UNKNOWN (removed) or PERMISSION_DENIED PRINCIPAL_CHANGED.
  // `call` names the call in the message ("the watch"), `call_zh` in Chinese ("订阅");
  // `ended` and `ended_zh` say what became of it ("ended", "已结束").
  [[nodiscard]] std::optional<grpc::Status> Revoked(const char* call, const char* call_zh,
                                                    const char* ended = "ended",
                                                    const char* ended_zh = "已结束");
  [[nodiscard]] const workflow::Principal& caller() const { return caller_; }
  // Whether the server is about to stop (Authenticator::BeginStopping).
  [[nodiscard]] bool ServerStopping() const { return auth_->stopping(); }
  // The principals set the caller was last found standing in (by Revoked; the one given
  // at construction before that).
  [[nodiscard]] const std::shared_ptr<const Principals>& principals() const { return principals_; }

 private:
  const Authenticator* auth_;
  workflow::Principal caller_;
  std::shared_ptr<const Principals> principals_;
};

// How a long job ends when the server is about to stop: UNAVAILABLE SHUTTING_DOWN, to be
// run again once the server is back. `writes`: the job records (a draw, an import), and
// the message says that nothing was recorded.
[[nodiscard]] grpc::Status StoppedByShutdown(const char* call, const char* call_zh,
                                             bool writes = false);

// The caller of a job that answers once (a report, a draw, an import), checked while the
// job runs and right before it answers or writes: a reload that removed or changed the
// caller meanwhile ends the job as it ends a watch, instead of answering, or writing in
// the caller's name, under powers the caller no longer holds.
class JobCaller {
 public:
  // `call` names the job in the message ("the county report"), `call_zh` in Chinese.
  // `writes`: the job records in the caller's name (a draw, an import), and its message
  // says that nothing was recorded.
  JobCaller(const Authenticator* auth, workflow::Principal caller, const char* call,
            const char* call_zh, bool writes = false)
      : standing_(auth, std::move(caller), nullptr),
        call_(call),
        call_zh_(call_zh),
        writes_(writes) {}

  // OK while the caller stands; else the status that ends the job (the same from then on).
  [[nodiscard]] grpc::Status Check() {
    if (!revoked_.has_value()) {
      revoked_ = writes_ ? standing_.Revoked(call_, call_zh_, "was stopped and recorded nothing",
                                             "已中止，未记录任何数据")
                         : standing_.Revoked(call_, call_zh_, "was stopped", "已中止");
    }
    return revoked_.has_value() ? *revoked_ : grpc::Status::OK;
  }
  // Check, and within the job's work (not before its answer, which a finished job still
  // gives): a server about to stop ends the job (UNAVAILABLE SHUTTING_DOWN).
  [[nodiscard]] grpc::Status CheckWhileRunning() {
    if (!revoked_.has_value() && standing_.ServerStopping()) {
      revoked_ = StoppedByShutdown(call_, call_zh_, writes_);
    }
    return Check();
  }
  [[nodiscard]] const workflow::Principal& principal() const { return standing_.caller(); }

 private:
  CallerStanding standing_;
  const char* call_;
  const char* call_zh_;
  bool writes_;
  std::optional<grpc::Status> revoked_;
};

// The caller's identity for logs: the certificate's identity over TLS, else the claimed
// x-casework-identity header, else "-". Never used to authorize.
[[nodiscard]] std::string IdentityForLog(
    grpc::ServerContextBase* context,
    CertificateIdentity from = CertificateIdentity::kUriOrCommonName);

}  // namespace casework::shell

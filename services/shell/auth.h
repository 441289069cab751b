// Who is calling. Two transports, chosen at start:
//  - mutual TLS (production): the caller's identity is its verified client certificate
//    (tls.h states the rule); request metadata is never trusted for identity;
//  - an explicit local plaintext mode: the caller names itself in the request metadata
//    (x-casework-identity) and every response says so (x-casework-security).
#pragma once

#include <memory>
#include <string>

#include "grpcpp/server_context.h"
#include "services/shell/principals.h"

namespace casework::shell {

inline constexpr char kIdentityHeader[] = "x-casework-identity";
inline constexpr char kSecurityHeader[] = "x-casework-security";
inline constexpr char kPlaintextNotice[] =
    "plaintext-insecure: identity taken from request metadata, not authenticated";

enum class Transport { kPlaintext, kMutualTls };

class Authenticator {
 public:
  explicit Authenticator(const PrincipalsHolder* principals,
                         Transport transport = Transport::kPlaintext)
      : principals_(principals), transport_(transport) {}

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

 private:
  const PrincipalsHolder* principals_;
  Transport transport_;
};

// The caller's identity for logs: the certificate's identity over TLS, else the claimed
// x-casework-identity header, else "-". Never used to authorize.
[[nodiscard]] std::string IdentityForLog(grpc::ServerContextBase* context);

}  // namespace casework::shell

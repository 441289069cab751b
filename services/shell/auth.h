// Who is calling. Until mutual TLS is configured, the server runs only in an explicit
// local plaintext mode: the caller names itself in the request metadata
// (x-casework-identity) and every response says so (x-casework-security).
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

class Authenticator {
 public:
  explicit Authenticator(const PrincipalsHolder* principals) : principals_(principals) {}

  // The caller's principal, or UNAUTHENTICATED naming what is missing. Adds the security
  // notice to the response's initial metadata.
  [[nodiscard]] grpc::Status Authenticate(grpc::CallbackServerContext* context,
                                          workflow::Principal* out) const;

 private:
  const PrincipalsHolder* principals_;
};

}  // namespace casework::shell

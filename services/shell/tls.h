// Mutual TLS for caseworkd: the server's credentials (client certificate required and
// verified against the client CA) and the caller's identity taken from its certificate.
//
// Identity rule (docs/security.md):
//   1. a URI subject alternative name "urn:casework:principal:<id>": the identity is <id>
//      (a certificate with two such names is refused: no identity);
//   2. otherwise the subject's common name (CN), when there is exactly one.
// DNS, IP and e-mail names are never identities: they name hosts and mailboxes.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace casework::shell {

inline constexpr char kPrincipalUriPrefix[] = "urn:casework:principal:";

struct TlsFiles {
  std::string cert;       // the server's certificate chain (PEM)
  std::string key;        // its private key (PEM)
  std::string client_ca;  // the CA(s) that issue client certificates (PEM)
};

// Server credentials that require and verify a client certificate. kNotFound when a file
// cannot be read, kInvalidArgument when one holds no PEM block.
[[nodiscard]] absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsCredentials(
    const TlsFiles& files);

// The identity in a verified peer certificate (rule above); nullopt when the call did not
// come over TLS with a client certificate or the certificate names no identity.
[[nodiscard]] std::optional<std::string> IdentityFromPeer(const grpc::AuthContext& context);

// The identity of a PEM certificate by the same rule (used by IdentityFromPeer, exposed
// for tests and tools).
[[nodiscard]] std::optional<std::string> IdentityFromCertificatePem(const std::string& pem);

}  // namespace casework::shell

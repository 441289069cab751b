// Mutual TLS for caseworkd: the server's credentials (client certificate required and
// verified against the client CA) and the caller's identity taken from its certificate.
//
// Identity rule (docs/security.md):
//   1. a URI subject alternative name "urn:casework:principal:<id>": the identity is <id>
//      (a certificate with two such names is refused: no identity);
//   2. otherwise the subject's common name (CN), when there is exactly one.
// DNS, IP and e-mail names are never identities: they name hosts and mailboxes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace casework::shell {

inline constexpr char kPrincipalUriPrefix[] = "urn:casework:principal:";

struct TlsFiles {
  std::string cert;       // the server's certificate chain (PEM)
  std::string key;        // its private key (PEM)
  std::string client_ca;  // the CA(s) that issue client certificates (PEM)
};

// The server's mutual TLS (a client certificate required and verified against the client
// CA), reloadable while serving. The three files are read and checked at Load and again
// at each Reload (caseworkd: SIGHUP): every file readable PEM, the key the certificate's,
// the certificate valid now. A set that fails is refused whole and the set in use stays.
// gRPC asks for the current set at the handshake of each new connection (its server
// certificate config fetcher, grpc/grpc_security.h), so a reload applies to the next
// connection; connections already open keep the set they were opened with.
class ReloadableTls : public std::enable_shared_from_this<ReloadableTls> {
 public:
  // kNotFound when a file cannot be read, kInvalidArgument when a check fails,
  // kFailedPrecondition when the key file is readable by others than its owner.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<ReloadableTls>> Load(const TlsFiles& files);

  // Reads and checks the same paths again; on success the next handshakes use the new set.
  [[nodiscard]] absl::Status Reload();

  // Credentials for one listening port: give each port its own (each takes its first set
  // from its own fetcher; a second port on the same credentials would find nothing new).
  [[nodiscard]] std::shared_ptr<grpc::ServerCredentials> Credentials();

  // The set in use, for the log: the server certificate's subject and validity, the
  // client CA's subject.
  [[nodiscard]] std::string Describe() const;

  // When the server certificate in use stops being valid, in Unix seconds.
  [[nodiscard]] int64_t NotAfterUnixSeconds() const;

  // For the fetcher of one port's credentials: a new set when `*served` (the generation
  // that port's handshakes use) is behind, and `*served` brought up to date.
  bool FetchIfNewer(uint64_t* served, std::string* cert, std::string* key,
                    std::string* client_ca) const;

 private:
  struct Set {
    std::string cert, key, client_ca, description;
    int64_t not_after = 0;  // Unix seconds
  };
  explicit ReloadableTls(TlsFiles files) : files_(std::move(files)) {}
  [[nodiscard]] absl::StatusOr<Set> Read() const;

  const TlsFiles files_;
  mutable absl::Mutex mu_;
  Set current_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

// Where a client certificate's identity may come from: its one principal URI name, else
// its one common name (the default), or the URI name only (caseworkd --tls-identity uri:
// a CA that also issues certificates for other uses cannot make one act as a person by
// its common name).
enum class CertificateIdentity { kUriOrCommonName, kUriOnly };

// The identity in a verified peer certificate (rule above); nullopt when the call did not
// come over TLS with a client certificate or the certificate names no identity.
[[nodiscard]] std::optional<std::string> IdentityFromPeer(
    const grpc::AuthContext& context,
    CertificateIdentity from = CertificateIdentity::kUriOrCommonName);

// The identity of a PEM certificate by the same rule (used by IdentityFromPeer, exposed
// for tests and tools).
[[nodiscard]] std::optional<std::string> IdentityFromCertificatePem(
    const std::string& pem, CertificateIdentity from = CertificateIdentity::kUriOrCommonName);

// Whether a gRPC listening address (--listen) is reachable from this machine only: a
// unix: socket, or a loopback host (localhost, 127.0.0.0/8, ::1). Plaintext, where any
// caller names its identity in a header, is served on such addresses only.
[[nodiscard]] bool IsLocalOnlyAddress(std::string_view listen);

}  // namespace casework::shell

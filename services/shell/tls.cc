#include "services/shell/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "grpc/grpc.h"
#include "grpc/grpc_security.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/server_credentials.h"

namespace casework::shell {
namespace {

// PEM files of certificates and keys are small; a bound keeps a wrong path (a log, a
// device) from being read whole.
constexpr std::streamsize kPemFileBytesMax = 1 << 20;

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read the ", what, " file ", path));
  std::string text(static_cast<size_t>(kPemFileBytesMax) + 1, '\0');
  in.read(text.data(), kPemFileBytesMax + 1);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(kPemFileBytesMax)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " file ", path, " is over 1 MiB"));
  }
  if (text.find('\0') != std::string::npos) {
    // gRPC takes the text as a C string: it would see only what comes before.
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " file ", path, " holds a NUL byte; it is not PEM text"));
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " file ", path, " holds no PEM block"));
  }
  return text;
}

// A private key file must be the owner's alone, as the log's signing key must
// (store/checkpoint.cc): one readable by others is refused, at start and at a reload, so
// that a renewal copied in under a loose umask is noticed at once.
absl::Status CheckPrivateFile(const std::string& path, const char* what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read the ", what, " file ", path));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("the %s file %s is readable or writable by others (mode %o); run chmod "
                        "600 on it",
                        what, path, st.st_mode & 0777));
  }
  return absl::OkStatus();
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

std::unique_ptr<BIO, BioFree> Bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string Subject(X509* cert) {
  auto bio = std::unique_ptr<BIO, BioFree>(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0,
                                 XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    return "?";
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : "(no subject)";
}

std::string Utc(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return "?";
  char out[32];
  return std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &tm) > 0 ? out : "?";
}

// What gRPC would otherwise find only when it builds the listener, reported as a port it
// cannot listen on (or, at a reload, at the next handshake): a certificate or key that
// does not parse, a key that is not the certificate's, a client CA file without a
// certificate; and a server certificate outside its validity, which every client would
// refuse. Returns the set's description for the log.
absl::StatusOr<std::string> CheckSet(const std::string& cert_pem, const std::string& key_pem,
                                     const std::string& ca_pem, const TlsFiles& files,
                                     int64_t* not_after_unix) {
  auto cert_bio = Bio(cert_pem);
  std::unique_ptr<X509, X509Free> cert(
      cert_bio ? PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server certificate file ", files.cert, " holds no readable certificate"));
  }
  auto key_bio = Bio(key_pem);
  // No passphrase: OpenSSL's default would prompt on the terminal for one.
  pem_password_cb* no_passphrase = +[](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr) : nullptr);
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server key file ", files.key,
                     " holds no readable private key (an encrypted key is not supported)"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("the server key ", files.key,
                                                   " is not the key of the certificate ",
                                                   files.cert, "; give the pair issued together"));
  }
  const ASN1_TIME* not_before = X509_get0_notBefore(cert.get());
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  if (X509_cmp_current_time(not_before) >= 0) {
    return absl::InvalidArgumentError(absl::StrCat("the server certificate ", files.cert,
                                                   " is not valid until ", Utc(not_before),
                                                   "; clients would refuse it"));
  }
  if (X509_cmp_current_time(not_after) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("the server certificate ", files.cert,
                                                   " expired on ", Utc(not_after),
                                                   "; clients would refuse it"));
  }
  // Every certificate of the client CA file is trusted: each must be a CA, and each is
  // named in the description (an expired one is said to be).
  auto ca_bio = Bio(ca_pem);
  std::vector<std::string> issuers;
  while (ca_bio) {
    std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (!ca) break;
    if (X509_check_ca(ca.get()) <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the client CA file ", files.client_ca, " holds ", Subject(ca.get()),
                       ", which is not a CA certificate (no CA basic constraint); give the CA "
                       "that issues client certificates"));
    }
    const ASN1_TIME* ca_not_after = X509_get0_notAfter(ca.get());
    issuers.push_back(X509_cmp_current_time(ca_not_after) <= 0
                          ? absl::StrCat(Subject(ca.get()), " (expired on ", Utc(ca_not_after), ")")
                          : Subject(ca.get()));
  }
  ERR_clear_error();  // the end of the file read as a failed read
  if (issuers.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the client CA file ", files.client_ca, " holds no readable certificate"));
  }
  std::tm tm{};
  *not_after_unix = ASN1_TIME_to_tm(not_after, &tm) == 1 ? static_cast<int64_t>(timegm(&tm)) : 0;
  return absl::StrCat("server certificate ", Subject(cert.get()), " valid until ", Utc(not_after),
                      ", client certificates issued by ", absl::StrJoin(issuers, "; "));
}

// What the fetcher of one port's credentials is given, for as long as gRPC's credentials
// live. They may outlive the C++ object (the listener holds a reference) and give no hook
// to free it, so every state is kept, reachable, until the process ends: one per
// listening port.
struct FetchState {
  std::shared_ptr<const ReloadableTls> tls;
  uint64_t served = 0;  // the generation this port's handshakes use (FetchIfNewer)
};
ABSL_CONST_INIT absl::Mutex fetch_states_mu(absl::kConstInit);
std::vector<std::unique_ptr<FetchState>>* fetch_states ABSL_GUARDED_BY(fetch_states_mu) = nullptr;

// Called by gRPC at each new connection's handshake (and once when the port is added): a
// new config when a reload made one since this port last took one.
grpc_ssl_certificate_config_reload_status FetchConfig(void* user_data,
                                                      grpc_ssl_server_certificate_config** config) {
  auto* state = static_cast<FetchState*>(user_data);
  std::string cert, key, client_ca;
  if (!state->tls->FetchIfNewer(&state->served, &cert, &key, &client_ca)) {
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  }
  const grpc_ssl_pem_key_cert_pair pair{key.c_str(), cert.c_str()};
  *config = grpc_ssl_server_certificate_config_create(client_ca.c_str(), &pair, 1);  // copies
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

// gRPC's SSL server credentials with a certificate config fetcher (its C API for
// reloading without a restart), as grpc::ServerBuilder takes them.
class FetchedCredentials final : public grpc::ServerCredentials {
 public:
  explicit FetchedCredentials(FetchState* state)
      // After the base class has initialised gRPC.
      : creds_(grpc_ssl_server_credentials_create_with_options(
            grpc_ssl_server_credentials_create_options_using_config_fetcher(
                GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, &FetchConfig, state))) {
  }
  ~FetchedCredentials() override { grpc_server_credentials_release(creds_); }
  FetchedCredentials(const FetchedCredentials&) = delete;
  FetchedCredentials& operator=(const FetchedCredentials&) = delete;

  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    // caseworkd authenticates in its handlers (auth.h) and never sets one.
    std::fprintf(stderr, "casework: an AuthMetadataProcessor is not supported with TLS reload\n");
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* const creds_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<ReloadableTls>> ReloadableTls::Load(const TlsFiles& files) {
  std::shared_ptr<ReloadableTls> tls(new ReloadableTls(files));
  auto set = tls->Read();
  if (!set.ok()) return set.status();
  absl::MutexLock lock(&tls->mu_);
  tls->current_ = *std::move(set);
  tls->generation_ = 1;
  return tls;
}

absl::StatusOr<ReloadableTls::Set> ReloadableTls::Read() const {
  auto cert = ReadPem(files_.cert, "server certificate");
  if (!cert.ok()) return cert.status();
  if (absl::Status private_key = CheckPrivateFile(files_.key, "server key"); !private_key.ok()) {
    return private_key;
  }
  auto key = ReadPem(files_.key, "server key");
  if (!key.ok()) return key.status();
  auto ca = ReadPem(files_.client_ca, "client CA");
  if (!ca.ok()) return ca.status();
  int64_t not_after = 0;
  auto description = CheckSet(*cert, *key, *ca, files_, &not_after);
  if (!description.ok()) return description.status();
  return Set{.cert = *std::move(cert),
             .key = *std::move(key),
             .client_ca = *std::move(ca),
             .description = *std::move(description),
             .not_after = not_after};
}

absl::Status ReloadableTls::Reload() {
  auto set = Read();
  if (!set.ok()) return set.status();
  absl::MutexLock lock(&mu_);
  current_ = *std::move(set);
  ++generation_;
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ReloadableTls::Credentials() {
  FetchState* state = nullptr;
  {
    absl::MutexLock lock(&fetch_states_mu);
    if (fetch_states == nullptr) fetch_states = new std::vector<std::unique_ptr<FetchState>>();
    fetch_states->push_back(std::make_unique<FetchState>(FetchState{.tls = shared_from_this()}));
    state = fetch_states->back().get();
  }
  return std::make_shared<FetchedCredentials>(state);
}

std::string ReloadableTls::Describe() const {
  absl::MutexLock lock(&mu_);
  return current_.description;
}

int64_t ReloadableTls::NotAfterUnixSeconds() const {
  absl::MutexLock lock(&mu_);
  return current_.not_after;
}

bool ReloadableTls::FetchIfNewer(uint64_t* served, std::string* cert, std::string* key,
                                 std::string* client_ca) const {
  absl::MutexLock lock(&mu_);
  if (*served == generation_) return false;
  *cert = current_.cert;
  *key = current_.key;
  *client_ca = current_.client_ca;
  *served = generation_;
  return true;
}

std::optional<std::string> IdentityFromCertificatePem(const std::string& pem,
                                                      CertificateIdentity from) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return std::nullopt;
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  if (!cert) return std::nullopt;

  std::optional<std::string> from_uri;
  int uri_names = 0;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
      const std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                             static_cast<size_t>(ASN1_STRING_length(uri)));
      // The URN's scheme and namespace are case-insensitive (RFC 8141): "URN:casework:..."
      // names a principal too, rather than leaving the certificate to its common name.
      if (!absl::StartsWithIgnoreCase(text, kPrincipalUriPrefix)) continue;
      ++uri_names;
      from_uri = text.substr(sizeof kPrincipalUriPrefix - 1);
    }
    GENERAL_NAMES_free(names);
  }
  if (uri_names > 1) return std::nullopt;
  if (uri_names == 1) {
    if (from_uri->empty()) return std::nullopt;
    return from_uri;
  }
  if (from == CertificateIdentity::kUriOnly) return std::nullopt;

  X509_NAME* subject = X509_get_subject_name(cert.get());
  const int first = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (first < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, first) >= 0) {
    return std::nullopt;
  }
  const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, first));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, cn);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::optional<std::string> IdentityFromPeer(const grpc::AuthContext& context,
                                            CertificateIdentity from) {
  if (!context.IsPeerAuthenticated()) return std::nullopt;
  const auto pems = context.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) return std::nullopt;
  return IdentityFromCertificatePem(std::string(pems[0].data(), pems[0].size()), from);
}

bool IsLocalOnlyAddress(std::string_view listen) {
  if (listen.starts_with("unix:") || listen.starts_with("unix-abstract:")) return true;
  for (std::string_view scheme : {"ipv4:", "ipv6:", "dns:"}) {
    if (listen.starts_with(scheme)) {
      listen.remove_prefix(scheme.size());
      break;
    }
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") return true;
  const std::string text(host);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;  // ::ffff:127.x.y.z
    return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  }
  return false;  // another name, or none (":7070" serves every address)
}

}  // namespace casework::shell

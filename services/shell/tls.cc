#include "services/shell/tls.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
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
  if (text.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " file ", path, " holds no PEM block"));
  }
  return text;
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

// What gRPC would otherwise find only when it builds the listener, reported as a port it
// cannot listen on: a certificate or key that does not parse, a key that is not the
// certificate's, a client CA file without a certificate.
absl::Status CheckPair(const std::string& cert_pem, const std::string& key_pem,
                       const std::string& ca_pem, const TlsFiles& files) {
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
  auto ca_bio = Bio(ca_pem);
  std::unique_ptr<X509, X509Free> ca(
      ca_bio ? PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!ca) {
    return absl::InvalidArgumentError(
        absl::StrCat("the client CA file ", files.client_ca, " holds no readable certificate"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MutualTlsCredentials(
    const TlsFiles& files) {
  auto cert = ReadPem(files.cert, "server certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(files.key, "server key");
  if (!key.ok()) return key.status();
  auto ca = ReadPem(files.client_ca, "client CA");
  if (!ca.ok()) return ca.status();
  if (absl::Status pair = CheckPair(*cert, *key, *ca, files); !pair.ok()) return pair;
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = *std::move(ca);
  options.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(options);
}

std::optional<std::string> IdentityFromCertificatePem(const std::string& pem) {
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
      if (text.rfind(kPrincipalUriPrefix, 0) != 0) continue;
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

std::optional<std::string> IdentityFromPeer(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return std::nullopt;
  const auto pems = context.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.size() != 1) return std::nullopt;
  return IdentityFromCertificatePem(std::string(pems[0].data(), pems[0].size()));
}

}  // namespace casework::shell

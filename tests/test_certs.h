// Certificates for tests, made at run time with the OpenSSL C API (EC P-256 keys): a CA,
// certificates it issues (server or client, with chosen names and validity), and
// self-signed ones. Nothing is ever written to the repository.
#pragma once

#include <string>
#include <vector>

namespace casework::testing {

struct Pem {
  std::string certificate;  // PEM
  std::string key;          // PEM (PKCS#8)
};

struct CertificateSpec {
  std::string common_name;
  std::vector<std::string> uri_names;  // URI subject alternative names
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_names;
  bool is_ca = false;
  bool server = false;  // extendedKeyUsage serverAuth, else clientAuth
  // Validity relative to now, in seconds.
  long not_before_seconds = -3600;
  long not_after_seconds = 86400;
};

// A self-signed certificate (a CA when spec.is_ca). Aborts on an OpenSSL failure.
Pem SelfSigned(const CertificateSpec& spec);
// A certificate issued by `issuer`. Aborts on an OpenSSL failure.
Pem Issue(const CertificateSpec& spec, const Pem& issuer);

// Writes `text` to `path` (mode 0600).
void WriteFile(const std::string& path, const std::string& text);

}  // namespace casework::testing

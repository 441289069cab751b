// Which listening addresses plaintext may serve: this machine's only.
#include "services/shell/tls.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/test_certs.h"

namespace casework::shell {
namespace {

TEST(LocalOnlyAddress, LoopbackHostsAndUnixSocketsOnly) {
  for (const char* local : {"127.0.0.1:7070", "127.0.0.1:0", "127.8.9.10:1", "localhost:7070",
                            "[::1]:7070", "[::ffff:127.0.0.1]:7070", "ipv4:127.0.0.1:7070",
                            "ipv6:[::1]:7070", "unix:/tmp/cw.sock", "unix-abstract:cw"}) {
    EXPECT_TRUE(IsLocalOnlyAddress(local)) << local;
  }
  for (const char* open :
       {"0.0.0.0:7070", "[::]:7070", ":7070", "10.0.0.5:7070", "128.0.0.1:7070", "example.org:7070",
        "[::ffff:10.0.0.1]:7070", "7070", "", "localhost.example.org:7070", "dns:10.0.0.5:7070"}) {
    EXPECT_FALSE(IsLocalOnlyAddress(open)) << open;
  }
}

// A certificate's identity: its one principal URI name (the URN's scheme and namespace in
// any letter case), else its one common name; never a guess between two.
TEST(IdentityFromCertificate, OnePrincipalUriElseOneCommonName) {
  using casework::testing::SelfSigned;
  EXPECT_EQ(IdentityFromCertificatePem(
                SelfSigned({.common_name = "cn", .uri_names = {"urn:casework:principal:li.na"}})
                    .certificate),
            "li.na");
  EXPECT_EQ(IdentityFromCertificatePem(
                SelfSigned({.common_name = "cn", .uri_names = {"URN:Casework:Principal:li.na"}})
                    .certificate),
            "li.na");
  EXPECT_EQ(IdentityFromCertificatePem(SelfSigned({.common_name = "wang.fang"}).certificate),
            "wang.fang");
  EXPECT_EQ(IdentityFromCertificatePem(
                SelfSigned({.common_name = "cn",
                            .uri_names = {"urn:casework:principal:a", "urn:casework:principal:b"}})
                    .certificate),
            std::nullopt);
  EXPECT_EQ(
      IdentityFromCertificatePem(
          SelfSigned({.common_name = "cn", .uri_names = {"urn:casework:principal:"}}).certificate),
      std::nullopt);
  // Another URI is not an identity: the common name is.
  EXPECT_EQ(IdentityFromCertificatePem(
                SelfSigned({.common_name = "cn", .uri_names = {"https://example.org/li.na"}})
                    .certificate),
            "cn");
  EXPECT_EQ(IdentityFromCertificatePem("not a certificate"), std::nullopt);
  // URI names only: a common name is no identity.
  EXPECT_EQ(IdentityFromCertificatePem(SelfSigned({.common_name = "wang.fang"}).certificate,
                                       CertificateIdentity::kUriOnly),
            std::nullopt);
  EXPECT_EQ(IdentityFromCertificatePem(
                SelfSigned({.common_name = "cn", .uri_names = {"urn:casework:principal:li.na"}})
                    .certificate,
                CertificateIdentity::kUriOnly),
            "li.na");
}

// The server's key must be its owner's alone: refused at start (and at a reload, which
// loads the same way) when others may read it, accepted again once it is 0600.
TEST(ReloadableTlsFiles, AKeyReadableByOthersAndAClientCaFileWithALeafAreRefused) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("cw-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const casework::testing::Pem ca =
      casework::testing::SelfSigned({.common_name = "ca", .is_ca = true});
  const casework::testing::Pem server = casework::testing::Issue(
      {.common_name = "server", .dns_names = {"localhost"}, .server = true}, ca);
  const TlsFiles files{.cert = (dir / "server.pem").string(),
                       .key = (dir / "server.key").string(),
                       .client_ca = (dir / "ca.pem").string()};
  casework::testing::WriteFile(files.cert, server.certificate);
  casework::testing::WriteFile(files.key, server.key);
  casework::testing::WriteFile(files.client_ca, ca.certificate);
  ASSERT_TRUE(ReloadableTls::Load(files).ok());
  std::filesystem::permissions(
      files.key, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
      std::filesystem::perm_options::add);
  auto loose = ReloadableTls::Load(files);
  EXPECT_EQ(loose.status().code(), absl::StatusCode::kFailedPrecondition) << loose.status();
  EXPECT_NE(loose.status().message().find("chmod 600"), std::string::npos) << loose.status();
  std::filesystem::permissions(
      files.key, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
      std::filesystem::perm_options::remove);

  // The client CA file: every certificate in it is trusted, so each must be a CA, and
  // each is named in the set's description.
  const casework::testing::Pem second_ca =
      casework::testing::SelfSigned({.common_name = "second ca", .is_ca = true});
  casework::testing::WriteFile(files.client_ca, ca.certificate + second_ca.certificate);
  auto two = ReloadableTls::Load(files);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_NE((*two)->Describe().find("second ca"), std::string::npos) << (*two)->Describe();
  const casework::testing::Pem leaf = casework::testing::Issue({.common_name = "a leaf"}, ca);
  casework::testing::WriteFile(files.client_ca, ca.certificate + leaf.certificate);
  auto with_leaf = ReloadableTls::Load(files);
  EXPECT_EQ(with_leaf.status().code(), absl::StatusCode::kInvalidArgument) << with_leaf.status();
  EXPECT_NE(with_leaf.status().message().find("not a CA certificate"), std::string::npos)
      << with_leaf.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace casework::shell

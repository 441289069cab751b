// Which listening addresses plaintext may serve: this machine's only.
#include "services/shell/tls.h"

#include "gtest/gtest.h"
#include "tests/test_certs.h"

namespace casework::shell {
namespace {

TEST(LocalOnlyAddress, LoopbackHostsAndUnixSocketsOnly) {
  for (const char* local :
       {"127.0.0.1:7070", "127.0.0.1:0", "127.8.9.10:1", "localhost:7070", "[::1]:7070",
        "ipv4:127.0.0.1:7070", "ipv6:[::1]:7070", "unix:/tmp/cw.sock", "unix-abstract:cw"}) {
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
}

}  // namespace
}  // namespace casework::shell

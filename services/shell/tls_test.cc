// Which listening addresses plaintext may serve: this machine's only.
#include "services/shell/tls.h"

#include "gtest/gtest.h"

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

}  // namespace
}  // namespace casework::shell

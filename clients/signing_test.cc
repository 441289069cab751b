#include "clients/signing.h"

#include <sodium.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace casework::client {
namespace {

bool Verifies(const std::string& public_key, const std::string& message,
              const std::string& signature) {
  return signature.size() == crypto_sign_BYTES &&
         crypto_sign_verify_detached(
             reinterpret_cast<const unsigned char*>(signature.data()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(),
             reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

// RFC 8032 section 7.1, TEST 2: one byte, 0x72.
TEST(SigningKeyTest, SignsTheRfc8032Vector) {
  auto hex = [](const char* h) {
    std::string out;
    for (size_t i = 0; h[i] != '\0' && h[i + 1] != '\0'; i += 2) {
      out.push_back(static_cast<char>(std::stoi(std::string(h + i, 2), nullptr, 16)));
    }
    return out;
  };
  auto key =
      SigningKey::FromSeed(hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->public_key(),
            hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"));
  auto sig = key->Sign(hex("72"));
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(*sig, hex("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"));
}

// Sign is const and is called from many threads at once on one key (casework-load signs
// from gRPC's callback threads); every signature must come out whole and verify.
TEST(SigningKeyTest, OneKeySignsFromManyThreadsAtOnce) {
  ASSERT_GE(sodium_init(), 0);
  auto key = SigningKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status();
  constexpr int kThreads = 8;
  constexpr int kEach = 2000;
  std::atomic<int> bad{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kEach; ++i) {
        const std::string message = "statement " + std::to_string(t) + "/" + std::to_string(i);
        auto sig = key->Sign(message);
        if (!sig.ok() || !Verifies(key->public_key(), message, *sig)) bad.fetch_add(1);
      }
    });
  }
  go.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace casework::client

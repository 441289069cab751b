#include "services/shell/page_token.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace casework::shell {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

// ListCases tokens are sealed (AES-256-GCM) with a key drawn when the process starts: a
// token's key may be the index key of a case the caller may not see (the scan stops
// wherever a page fills or its budget ends), so a client can neither read it nor make
// one up. A token is good for the process that issued it.
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

const std::array<unsigned char, 32>& SealKey() {
  static const std::array<unsigned char, 32> key = [] {
    std::array<unsigned char, 32> k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) std::abort();
    return k;
  }();
  return key;
}

struct CipherDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Cipher = std::unique_ptr<EVP_CIPHER_CTX, CipherDeleter>;

// nonce || ciphertext || tag, with `aad` authenticated.
std::string Seal(std::string_view plain, std::string_view aad) {
  std::string out(kNonceBytes + plain.size() + kTagBytes, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, kNonceBytes) != 1) std::abort();
  Cipher ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, SealKey().data(), bytes) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), bytes + kNonceBytes, &n,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), bytes + kNonceBytes + n, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          bytes + kNonceBytes + plain.size()) != 1) {
    std::abort();
  }
  return out;
}

std::optional<std::string> Open(std::string_view sealed, std::string_view aad) {
  if (sealed.size() < kNonceBytes + kTagBytes) return std::nullopt;
  const size_t size = sealed.size() - kNonceBytes - kTagBytes;
  const auto* bytes = reinterpret_cast<const unsigned char*>(sealed.data());
  std::string plain(size, '\0');
  std::array<unsigned char, kTagBytes> tag{};
  std::copy(bytes + kNonceBytes + size, bytes + sealed.size(), tag.begin());
  Cipher ctx(EVP_CIPHER_CTX_new());
  int n = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, SealKey().data(), bytes) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n,
                        bytes + kNonceBytes, static_cast<int>(size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + n, &n) != 1) {
    return std::nullopt;
  }
  return plain;
}

}  // namespace

std::string ListCasesQueryTag(std::string_view filter, std::string_view order_by) {
  return absl::StrCat(Sv(filter), "\n", Sv(order_by));
}

std::string EncodePageToken(std::string_view key, std::string_view query_tag) {
  return absl::WebSafeBase64Escape(Seal(key, query_tag));
}

std::optional<std::string> DecodePageToken(std::string_view token, std::string_view query_tag) {
  std::string sealed;
  if (!absl::WebSafeBase64Unescape(Sv(token), &sealed)) return std::nullopt;
  return Open(sealed, query_tag);
}

std::string EncodeEventsPageToken(std::string_view case_id, int64_t next_version) {
  return absl::WebSafeBase64Escape(absl::StrCat(Sv(case_id), "\n", next_version));
}

std::optional<int64_t> DecodeEventsPageToken(std::string_view token, std::string_view case_id) {
  std::string raw;
  int64_t version = 0;
  if (!absl::WebSafeBase64Unescape(Sv(token), &raw)) return std::nullopt;
  const size_t newline = raw.rfind('\n');
  if (newline == std::string::npos || std::string_view(raw).substr(0, newline) != case_id ||
      !absl::SimpleAtoi(Sv(std::string_view(raw).substr(newline + 1)), &version) || version < 1) {
    return std::nullopt;
  }
  return version;
}

}  // namespace casework::shell

#include "services/shell/ed25519.h"

#include <sodium.h>

#include <cstdint>
#include <cstdlib>

namespace casework::shell {
namespace {

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// sodium_init is idempotent and thread-safe; it fails only without a random source,
// which verification does not need, but libsodium asks that it run first.
void InitSodium() {
  static const bool kReady = sodium_init() >= 0;
  if (!kReady) std::abort();
}

}  // namespace

bool IsCanonicalPointEncoding(std::string_view encoded) {
  if (encoded.size() != kEd25519PublicKeyBytes) return false;
  const auto* b = Bytes(encoded);
  const bool sign = (b[31] & 0x80) != 0;
  // Compare y (the low 255 bits) with p = 2^255 - 19 = 0x7fff...ffed (little endian:
  // ed ff ... ff 7f) and with p - 1 and 1.
  bool top_all_ones = (b[31] & 0x7f) == 0x7f;
  for (int i = 1; i < 31 && top_all_ones; ++i) top_all_ones = b[i] == 0xff;
  if (top_all_ones && b[0] >= 0xed) return false;  // y >= p
  if (!sign) return true;
  const bool y_is_p_minus_1 = top_all_ones && b[0] == 0xec;
  bool y_is_1 = b[0] == 0x01 && (b[31] & 0x7f) == 0;
  for (int i = 1; i < 31 && y_is_1; ++i) y_is_1 = b[i] == 0;
  return !(y_is_p_minus_1 || y_is_1);  // x = 0 must not carry a sign
}

PublicKeyCheck CheckApproverPublicKey(std::string_view public_key) {
  InitSodium();
  if (public_key.size() != kEd25519PublicKeyBytes) return PublicKeyCheck::kWrongLength;
  if (!IsCanonicalPointEncoding(public_key)) return PublicKeyCheck::kNotCanonical;
  if (crypto_core_ed25519_is_valid_point(Bytes(public_key)) != 1) return PublicKeyCheck::kWeak;
  return PublicKeyCheck::kOk;
}

bool VerifyEd25519Strict(std::string_view public_key, std::string_view message,
                         std::string_view signature) {
  InitSodium();
  static_assert(crypto_sign_BYTES == kEd25519SignatureBytes);
  static_assert(crypto_sign_PUBLICKEYBYTES == kEd25519PublicKeyBytes);
  if (public_key.size() != kEd25519PublicKeyBytes || signature.size() != kEd25519SignatureBytes) {
    return false;
  }
  return crypto_sign_verify_detached(Bytes(signature), Bytes(message), message.size(),
                                     Bytes(public_key)) == 0;
}

std::string ApproverKeyId(std::string_view public_key) {
  InitSodium();
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, Bytes(public_key), public_key.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "ed25519:";
  for (int i = 0; i < 8; ++i) {
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0x0f]);
  }
  return id;
}

}  // namespace casework::shell

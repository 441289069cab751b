// Ed25519 for approvers' keys and sign-offs: the checks at enrollment and the strict
// verifier, on libsodium (Debian's 1.0.18).
//
// Why libsodium and not OpenSSL 3.0 for verifying: OpenSSL accepts signatures whose R or
// public key is a small-order point, or a non-canonical encoding of one (ed25519-speccheck
// cases 1, 3, 5, 14); libsodium's crypto_sign_verify_detached rejects them, checks that
// S < L, and compares R cofactorless. Signatures are only ever verified one at a time:
// batch verification accepts some signatures that single verification rejects.
//
// Encodings (RFC 8032, 5.1.2): a point is 32 bytes, the little-endian y coordinate with
// the sign of x in the top bit. It is canonical when y < p = 2^255 - 19 and the sign bit
// is clear whenever x = 0 (y = 1 or y = p - 1: "negative zero").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace casework::shell {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;

// The outcome of checking a public key offered for enrollment, in the order checked.
enum class PublicKeyCheck {
  kOk,
  kWrongLength,   // not 32 bytes
  kNotCanonical,  // y >= p, or the sign bit set on x = 0
  kWeak,          // not on the curve, of small order, or with a small-order component
};

// Checks a key before it is registered: 32 bytes, a canonical encoding, and a point of
// the prime-order subgroup (crypto_core_ed25519_is_valid_point: on the curve, not of
// small order, no torsion component). Only keys that pass are ever registered, so the
// verifier never sees a weak key.
[[nodiscard]] PublicKeyCheck CheckApproverPublicKey(std::string_view public_key);

// True when the 32 bytes are a canonical point encoding (see above); false for any
// other length.
[[nodiscard]] bool IsCanonicalPointEncoding(std::string_view encoded);

// True when `signature` is a valid Ed25519 signature of `message` under `public_key`,
// verified strictly and singly (crypto_sign_verify_detached). False for wrong lengths.
[[nodiscard]] bool VerifyEd25519Strict(std::string_view public_key, std::string_view message,
                                       std::string_view signature);

// "ed25519:" and the lowercase hex of the first 8 bytes of SHA-256(public_key): the key
// id recorded in ApproverKeyRegistered and named by sign-offs.
[[nodiscard]] std::string ApproverKeyId(std::string_view public_key);

}  // namespace casework::shell

// The RFC 9162 (Certificate Transparency v2) tree hasher, section 2.1.1:
//   leaf hash = SHA-256(0x00 || leaf bytes)
//   node hash = SHA-256(0x01 || left || right)
//   empty tree = SHA-256("")
// Pure functions over SHA-256; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "store/event_log.h"

namespace casework::store::rfc9162 {

// Domain-separation prefixes. DO NOT CHANGE: every stored hash depends on them.
inline constexpr uint8_t kLeafHashPrefix = 0x00;
inline constexpr uint8_t kNodeHashPrefix = 0x01;

// SHA-256 of the empty string: the root of the tree of size 0.
Hash EmptyRoot();

// SHA-256(0x00 || leaf).
Hash HashLeaf(std::string_view leaf);

// SHA-256(0x01 || left || right).
Hash HashChildren(const Hash& left, const Hash& right);

// As HashChildren, for children of any length (published vectors use short ones).
Hash HashNodeBytes(std::string_view left, std::string_view right);

inline std::string_view AsBytes(const Hash& hash) {
  return {reinterpret_cast<const char*>(hash.data()), hash.size()};
}

}  // namespace casework::store::rfc9162

namespace casework::store {

// Plain SHA-256 of `bytes` (no prefix): for digests outside the tree, such as request
// fingerprints. The same fetched digest and per-thread context as the tree hasher; the
// one-shot SHA256() and EVP_Digest(..., EVP_sha256(), ...) of OpenSSL 3 look the
// algorithm up again on every call.
Hash Sha256(std::string_view bytes);

}  // namespace casework::store

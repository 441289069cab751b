#include "store/hasher.h"

#include <openssl/evp.h>

#include <memory>

#include "store/internal/status_macros.h"

namespace casework::store::rfc9162 {
namespace {

// One fetched digest for the process and one context per thread: EVP_MD_fetch and
// context allocation cost more than hashing a small event.
const EVP_MD* Sha256() {
  static const EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  STORE_CHECK(md != nullptr);
  return md;
}

struct ContextDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX* ThreadContext() {
  thread_local std::unique_ptr<EVP_MD_CTX, ContextDeleter> ctx(EVP_MD_CTX_new());
  STORE_CHECK(ctx != nullptr);
  return ctx.get();
}

Hash Digest(std::string_view a, std::string_view b, std::string_view c) {
  EVP_MD_CTX* ctx = ThreadContext();
  Hash out;
  unsigned int length = 0;
  STORE_CHECK(EVP_DigestInit_ex2(ctx, Sha256(), nullptr) == 1);
  STORE_CHECK(EVP_DigestUpdate(ctx, a.data(), a.size()) == 1);
  STORE_CHECK(EVP_DigestUpdate(ctx, b.data(), b.size()) == 1);
  STORE_CHECK(EVP_DigestUpdate(ctx, c.data(), c.size()) == 1);
  STORE_CHECK(EVP_DigestFinal_ex(ctx, out.data(), &length) == 1);
  STORE_CHECK(length == out.size());
  return out;
}

constexpr char kLeafPrefix[1] = {static_cast<char>(kLeafHashPrefix)};
constexpr char kNodePrefix[1] = {static_cast<char>(kNodeHashPrefix)};

}  // namespace

Hash EmptyRoot() { return Digest({}, {}, {}); }

Hash HashLeaf(std::string_view leaf) { return Digest({kLeafPrefix, 1}, leaf, {}); }

Hash HashChildren(const Hash& left, const Hash& right) {
  return Digest({kNodePrefix, 1}, AsBytes(left), AsBytes(right));
}

Hash HashNodeBytes(std::string_view left, std::string_view right) {
  return Digest({kNodePrefix, 1}, left, right);
}

}  // namespace casework::store::rfc9162

namespace casework::store {

Hash Sha256(std::string_view bytes) { return rfc9162::Digest(bytes, {}, {}); }

}  // namespace casework::store

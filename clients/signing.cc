#include "clients/signing.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace casework::client {
namespace {

constexpr size_t kSeedBytes = 32;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
// A PKCS#8 PEM Ed25519 key is about 120 bytes; anything much larger is not one.
constexpr long kKeyFileBytesMax = 4096;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::StatusOr<std::string> RawPublicKey(EVP_PKEY* pkey) {
  unsigned char pub[kPublicKeyBytes];
  size_t len = sizeof pub;
  if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != kPublicKeyBytes) {
    return absl::InvalidArgumentError("not an Ed25519 key");
  }
  return std::string(reinterpret_cast<char*>(pub), len);
}

}  // namespace

struct SigningKey::Impl {
  PkeyPtr pkey;
};

SigningKey::SigningKey(std::unique_ptr<Impl> impl, std::string public_key)
    : impl_(std::move(impl)), public_key_(std::move(public_key)) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

absl::StatusOr<SigningKey> SigningKey::Generate() {
  EVP_PKEY* raw = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  const bool ok =
      ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &raw) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return absl::InternalError("OpenSSL could not generate an Ed25519 key");
  PkeyPtr pkey(raw);
  auto pub = RawPublicKey(pkey.get());
  if (!pub.ok()) return pub.status();
  return SigningKey(std::make_unique<Impl>(Impl{std::move(pkey)}), *std::move(pub));
}

absl::StatusOr<SigningKey> SigningKey::FromSeed(std::string_view seed) {
  if (seed.size() != kSeedBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("an Ed25519 seed is 32 bytes, not ", seed.size()));
  }
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
  if (!pkey) return absl::InvalidArgumentError("OpenSSL refused the Ed25519 seed");
  auto pub = RawPublicKey(pkey.get());
  if (!pub.ok()) return pub.status();
  return SigningKey(std::make_unique<Impl>(Impl{std::move(pkey)}), *std::move(pub));
}

absl::StatusOr<SigningKey> SigningKey::Load(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot read the key file ", path));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::NotFoundError(absl::StrCat(path, " is not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("the key file ", path, " may be read by group or others (mode ",
                     absl::StrFormat("%o", st.st_mode & 0777), "); chmod 600 ", path));
  }
  if (st.st_size > kKeyFileBytesMax) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is too large to be a key file"));
  }
  FILE* f = fdopen(fd, "r");
  if (f == nullptr) {
    close(fd);
    return absl::NotFoundError(absl::StrCat("cannot read the key file ", path));
  }
  PkeyPtr pkey(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!pkey || EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not an Ed25519 private key in PKCS#8 PEM"));
  }
  auto pub = RawPublicKey(pkey.get());
  if (!pub.ok()) return pub.status();
  return SigningKey(std::make_unique<Impl>(Impl{std::move(pkey)}), *std::move(pub));
}

absl::Status SigningKey::Save(const std::string& path) const {
  // Written whole to a temporary file beside it (mode 0600), synced, then linked to `path`:
  // the key file appears complete or not at all, and link() never replaces an existing
  // file. The directory is synced so that a key whose public half was handed out survives
  // a power loss.
  if (access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(path, " exists; a key file is never overwritten"));
  }
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());  // mode 0600
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot create a file beside ", path));
  FILE* f = fdopen(fd, "w");
  if (f == nullptr) {
    close(fd);
    unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  const bool written =
      fchmod(fd, 0600) == 0 &&
      PEM_write_PrivateKey(f, impl_->pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
      std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  const int linked = link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  unlink(tmp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists; a key file is never overwritten"));
    }
    return absl::UnavailableError(absl::StrCat("cannot create ", path));
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = dfd >= 0 && fsync(dfd) == 0;
  if (dfd >= 0) close(dfd);
  if (!synced) return absl::UnavailableError(absl::StrCat("cannot sync the directory of ", path));
  return absl::OkStatus();
}

std::string SigningKey::key_id() const { return KeyIdOf(public_key_); }

absl::StatusOr<std::string> SigningKey::Sign(std::string_view message) const {
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr &&
      EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, impl_->pkey.get()) == 1 &&
      EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) == 1 &&
      len == kSignatureBytes;
  EVP_MD_CTX_free(ctx);
  if (!ok) return absl::InternalError("OpenSSL could not sign");
  return std::string(reinterpret_cast<char*>(sig), len);
}

std::string KeyIdOf(std::string_view public_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(public_key.data()), public_key.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "ed25519:";
  for (int i = 0; i < 8; ++i) {
    id.push_back(kHex[digest[i] >> 4]);
    id.push_back(kHex[digest[i] & 0x0f]);
  }
  return id;
}

}  // namespace casework::client

// An approver's signing key on the client side (OpenSSL 3, EVP, Ed25519): generate it
// into a private key file, load it, sign the canonical sign-off statement.
//
// The private key file is PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), the format of
// `openssl genpkey -algorithm ed25519`, created with mode 0600 and never overwritten.
// A key file readable by group or others is refused.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace casework::client {

class SigningKey {
 public:
  // A new random key (not saved).
  static absl::StatusOr<SigningKey> Generate();
  // From a raw 32-byte seed (RFC 8032 private key). kInvalidArgument on another length.
  static absl::StatusOr<SigningKey> FromSeed(std::string_view seed);
  // From a private key file. kNotFound when it cannot be read, kFailedPrecondition when
  // group or others may read it, kInvalidArgument when it is not an Ed25519 key.
  static absl::StatusOr<SigningKey> Load(const std::string& path);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // Writes the key to `path` as PKCS#8 PEM with mode 0600; kAlreadyExists when the file
  // exists (a key is never overwritten), kUnavailable on I/O errors.
  absl::Status Save(const std::string& path) const;

  // The raw 32-byte public key.
  [[nodiscard]] const std::string& public_key() const { return public_key_; }
  // "ed25519:" and 16 lowercase hex digits of SHA-256(public key), as the server names it.
  [[nodiscard]] std::string key_id() const;
  // The 64-byte Ed25519 signature of `message`.
  [[nodiscard]] absl::StatusOr<std::string> Sign(std::string_view message) const;

 private:
  struct Impl;
  explicit SigningKey(std::unique_ptr<Impl> impl, std::string public_key);
  std::unique_ptr<Impl> impl_;
  std::string public_key_;
};

// The key id of a raw public key (see SigningKey::key_id).
[[nodiscard]] std::string KeyIdOf(std::string_view public_key);

}  // namespace casework::client

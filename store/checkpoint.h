// Signed checkpoints: C2SP signed-note (https://c2sp.org/signed-note) with Ed25519
// signatures, carrying C2SP tlog-checkpoint bodies (https://c2sp.org/tlog-checkpoint).
//
//   note      := text "\n" signature_line+          text ends with "\n"; no other
//   text      := UTF-8 without control characters other than "\n"
//   signature_line := "— " name " " base64(key_hash:uint32be || signature) "\n"
//   key_hash  := first 4 bytes of SHA-256(name || 0x0A || 0x01 || public_key)
//   vkey      := name "+" hex8(key_hash) "+" base64(0x01 || public_key)
//   checkpoint body := origin "\n" decimal(size) "\n" base64(root) "\n" (extension "\n")*
//
// Signing uses OpenSSL 3 (EVP, Ed25519); verifying uses libsodium's strict
// crypto_sign_verify_detached. Every parser refuses what the grammar does not produce.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_log.h"

namespace casework::store {

// Signature algorithm byte of Ed25519 in signed notes. DO NOT CHANGE: on the wire.
inline constexpr uint8_t kNoteAlgorithmEd25519 = 0x01;
inline constexpr size_t kNoteSignaturesMax = 100;

struct NoteSignature {
  std::string name;
  uint32_t key_hash = 0;
  std::string signature;  // the bytes after the key hash
  std::string base64;     // as written
};

struct Note {
  std::string text;
  std::vector<NoteSignature> signatures;
};

// kInvalidArgument when `message` is not a well-formed signed note.
absl::StatusOr<Note> ParseNote(std::string_view message);

// A valid key name: non-empty UTF-8 without white space or "+".
bool IsValidNoteKeyName(std::string_view name);

// First 4 bytes (big-endian) of SHA-256(name || "\n" || key), where key is the algorithm
// byte followed by the public key.
uint32_t NoteKeyHash(std::string_view name, std::string_view key);

class NoteVerifier {
 public:
  // kInvalidArgument unless `vkey` is "name+hash+base64(0x01||32-byte key)" with the
  // right hash.
  static absl::StatusOr<NoteVerifier> FromVerifierKey(std::string_view vkey);
  static NoteVerifier FromPublicKey(std::string name, std::string_view public_key);

  const std::string& name() const { return name_; }
  uint32_t key_hash() const { return key_hash_; }
  const std::string& public_key() const { return public_key_; }
  // "name+hash+base64".
  std::string VerifierKey() const;
  // True when `signature` is this key's Ed25519 signature of `text`.
  bool Verify(std::string_view text, std::string_view signature) const;

 private:
  std::string name_;
  uint32_t key_hash_ = 0;
  std::string public_key_;  // 32 bytes
};

// Opens a note strictly: it must parse, every signature by a known key (same name and
// key hash) must verify, and at least one must. Unknown signatures are ignored.
// Returns the note and, in `verified_by`, "name+hash" of each key that verified.
// Errors: kInvalidArgument (malformed), kUnauthenticated (no known signature, or a
// known one that does not verify).
absl::StatusOr<Note> OpenNote(std::string_view message, std::span<const NoteVerifier> known,
                              std::vector<std::string>* verified_by = nullptr);

class NoteSigner {
 public:
  // From a raw 32-byte Ed25519 seed. kInvalidArgument on a bad name or seed length.
  static absl::StatusOr<NoteSigner> FromSeed(std::string name, std::string_view seed);
  // From "PRIVATE+KEY+name+hash+base64(0x01||seed)".
  static absl::StatusOr<NoteSigner> FromSignerKey(std::string_view skey);

  const NoteVerifier& verifier() const { return verifier_; }
  // The signed note: text (which must end in "\n" and be valid note text), a blank
  // line, and this key's signature line. kInvalidArgument on bad text.
  absl::StatusOr<std::string> Sign(std::string_view text) const;

 private:
  std::string seed_;
  NoteVerifier verifier_;
};

struct Checkpoint {
  std::string origin;
  int64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;
  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// The checkpoint body (the note text).
std::string FormatCheckpoint(const Checkpoint& checkpoint);
// kInvalidArgument unless `text` is a checkpoint body: non-empty lines, a decimal size
// without leading zeros that fits in int64, a canonical base64 root of 32 bytes.
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text);

// Opens a signed checkpoint: OpenNote with `verifier`, then ParseCheckpoint, then the
// origin must equal `origin`. Errors as OpenNote, kInvalidArgument for a bad body or a
// different origin.
absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view message, const NoteVerifier& verifier,
                                          std::string_view origin);

// The server key: a file holding the raw 32-byte Ed25519 seed, created with mode 0600
// (and synced) when absent. kFailedPrecondition when the file has another size or is
// readable by group or others; kUnavailable on I/O errors.
absl::StatusOr<NoteSigner> LoadOrCreateSigningKey(const std::string& path, std::string name);
// The server key as LoadOrCreateSigningKey reads it, never creating it: kNotFound when
// the file is missing.
absl::StatusOr<NoteSigner> LoadSigningKey(const std::string& path, std::string name);

// Fsyncs the directory that holds `path` (after a rename or a create in it).
absl::Status SyncDirectoryOf(const std::string& path);
// Replaces `path` with `contents` durably: write a temporary file (`path.tmp`), fsync,
// rename, fsync the directory. A failure before the rename removes the temporary file
// and leaves `path` as it was.
absl::Status WriteFileDurably(const std::string& path, std::string_view contents);
// nullopt when the file does not exist. kFailedPrecondition beyond `bytes_max`.
absl::StatusOr<std::optional<std::string>> ReadSmallFile(const std::string& path, size_t bytes_max);

}  // namespace casework::store

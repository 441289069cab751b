#include "store/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "store/base64.h"
#include "store/internal/status_macros.h"

namespace casework::store {
namespace {

constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";  // "— " (U+2014, space)
constexpr std::string_view kSignerKeyPrefix = "PRIVATE+KEY+";

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

// Decodes one UTF-8 code point at `s[i]`; returns its length, or 0 when invalid.
size_t DecodeRune(std::string_view s, size_t i, uint32_t* rune) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    *rune = b0;
    return 1;
  }
  size_t length = 0;
  uint32_t value = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, value = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, value = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + length > s.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *rune = value;
  return length;
}

// Valid UTF-8 without control characters other than "\n".
bool IsValidNoteText(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t rune = 0;
    size_t length = DecodeRune(s, i, &rune);
    if (length == 0 || (rune < 0x20 && rune != '\n')) return false;
    i += length;
  }
  return true;
}

bool IsSpace(uint32_t rune) {
  // Unicode White_Space, as Go's unicode.IsSpace.
  return rune == ' ' || (rune >= 0x09 && rune <= 0x0D) || rune == 0x85 || rune == 0xA0 ||
         rune == 0x1680 || (rune >= 0x2000 && rune <= 0x200A) || rune == 0x2028 || rune == 0x2029 ||
         rune == 0x202F || rune == 0x205F || rune == 0x3000;
}

std::string Sha256(std::string_view data) {
  unsigned char out[32];
  unsigned int length = 0;
  STORE_CHECK(EVP_Digest(data.data(), data.size(), out, &length, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(out), length);
}

void InitSodium() {
  static const bool ready = sodium_init() >= 0;
  STORE_CHECK(ready);
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(Sv(what), " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Reads the server key from `fd` (open on `path`), which it closes.
absl::StatusOr<NoteSigner> ReadSigningKey(int fd, const std::string& path, std::string name) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = Errno("cannot stat key file", path);  // before close() sets errno
    ::close(fd);
    return status;
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrFormat("key file %s is readable by others (mode %o); run chmod 600 on it", path,
                        st.st_mode & 0777));
  }
  char seed[33];
  ssize_t n = ::read(fd, seed, sizeof(seed));
  if (n < 0) {
    absl::Status status = Errno("cannot read key file", path);
    ::close(fd);
    return status;
  }
  ::close(fd);
  if (n != 32) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " must hold exactly 32 bytes (a raw Ed25519 seed)"));
  }
  return NoteSigner::FromSeed(std::move(name), std::string_view(seed, 32));
}

}  // namespace

absl::Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("cannot sync directory", dir);
  return absl::OkStatus();
}

bool IsValidNoteKeyName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size();) {
    uint32_t rune = 0;
    size_t length = DecodeRune(name, i, &rune);
    if (length == 0 || IsSpace(rune) || rune == '+') return false;
    i += length;
  }
  return true;
}

uint32_t NoteKeyHash(std::string_view name, std::string_view key) {
  std::string input(name);
  input.push_back('\n');
  input.append(key);
  const std::string digest = Sha256(input);
  return (static_cast<uint32_t>(static_cast<uint8_t>(digest[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(digest[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(digest[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(digest[3]));
}

absl::StatusOr<Note> ParseNote(std::string_view message) {
  if (!IsValidNoteText(message)) {
    return absl::InvalidArgumentError(
        "malformed note: not UTF-8, or a control character other than newline");
  }
  // The signatures follow the last blank line (the text itself may hold blank lines).
  const size_t split = message.rfind("\n\n");
  if (split == std::string_view::npos) {
    return absl::InvalidArgumentError("malformed note: no blank line before signatures");
  }
  Note note;
  note.text = std::string(message.substr(0, split + 1));
  std::string_view signatures = message.substr(split + 2);
  if (signatures.empty() || signatures.back() != '\n') {
    return absl::InvalidArgumentError("malformed note: signatures missing or unterminated");
  }
  while (!signatures.empty()) {
    const size_t end = signatures.find('\n');
    std::string_view line = signatures.substr(0, end);
    signatures.remove_prefix(end + 1);
    if (line.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
      return absl::InvalidArgumentError(
          "malformed note: a line after the blank line is not "
          "a signature");
    }
    line.remove_prefix(kSignaturePrefix.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      return absl::InvalidArgumentError("malformed note: signature line without a space");
    }
    std::string_view name = line.substr(0, space);
    std::string_view b64 = line.substr(space + 1);
    std::optional<std::string> bytes = DecodeBase64(b64);
    if (!IsValidNoteKeyName(name) || b64.empty() || !bytes.has_value() || bytes->size() < 5) {
      return absl::InvalidArgumentError("malformed note: bad signature line");
    }
    if (note.signatures.size() >= kNoteSignaturesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed note: more than ", kNoteSignaturesMax, " signatures"));
    }
    NoteSignature signature;
    signature.name = std::string(name);
    signature.key_hash = (static_cast<uint32_t>(static_cast<uint8_t>((*bytes)[0])) << 24) |
                         (static_cast<uint32_t>(static_cast<uint8_t>((*bytes)[1])) << 16) |
                         (static_cast<uint32_t>(static_cast<uint8_t>((*bytes)[2])) << 8) |
                         static_cast<uint32_t>(static_cast<uint8_t>((*bytes)[3]));
    signature.signature = bytes->substr(4);
    signature.base64 = std::string(b64);
    note.signatures.push_back(std::move(signature));
  }
  return note;
}

absl::StatusOr<NoteVerifier> NoteVerifier::FromVerifierKey(std::string_view vkey) {
  // Split on the first two "+" only: the base64 key may contain "+".
  const size_t plus1 = vkey.find('+');
  const size_t plus2 = plus1 == std::string_view::npos ? plus1 : vkey.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) {
    return absl::InvalidArgumentError("malformed verifier key: want name+hash+key");
  }
  std::string_view name = vkey.substr(0, plus1);
  std::string_view hash_hex = vkey.substr(plus1 + 1, plus2 - plus1 - 1);
  std::optional<std::string> key = DecodeBase64(vkey.substr(plus2 + 1));
  if (!IsValidNoteKeyName(name) || hash_hex.size() != 8 ||
      hash_hex.find_first_not_of("0123456789abcdef") != std::string_view::npos ||
      !key.has_value()) {
    return absl::InvalidArgumentError("malformed verifier key");
  }
  if (key->size() != 33 || static_cast<uint8_t>((*key)[0]) != kNoteAlgorithmEd25519) {
    return absl::InvalidArgumentError(
        "verifier key is not an Ed25519 key (algorithm 0x01 and 32 bytes)");
  }
  const uint32_t hash = static_cast<uint32_t>(std::stoul(std::string(hash_hex), nullptr, 16));
  if (hash != NoteKeyHash(name, *key)) {
    return absl::InvalidArgumentError("verifier key hash does not match its key");
  }
  return FromPublicKey(std::string(name), std::string_view(*key).substr(1));
}

NoteVerifier NoteVerifier::FromPublicKey(std::string name, std::string_view public_key) {
  STORE_CHECK(public_key.size() == crypto_sign_PUBLICKEYBYTES);
  NoteVerifier verifier;
  std::string key(1, static_cast<char>(kNoteAlgorithmEd25519));
  key.append(public_key);
  verifier.key_hash_ = NoteKeyHash(name, key);
  verifier.name_ = std::move(name);
  verifier.public_key_ = std::string(public_key);
  return verifier;
}

std::string NoteVerifier::VerifierKey() const {
  std::string key(1, static_cast<char>(kNoteAlgorithmEd25519));
  key.append(public_key_);
  return absl::StrCat(name_, "+", absl::StrFormat("%08x", key_hash_), "+", EncodeBase64(key));
}

bool NoteVerifier::Verify(std::string_view text, std::string_view signature) const {
  InitSodium();
  if (signature.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(
             reinterpret_cast<const unsigned char*>(signature.data()),
             reinterpret_cast<const unsigned char*>(text.data()), text.size(),
             reinterpret_cast<const unsigned char*>(public_key_.data())) == 0;
}

absl::StatusOr<Note> OpenNote(std::string_view message, std::span<const NoteVerifier> known,
                              std::vector<std::string>* verified_by) {
  STORE_ASSIGN_OR_RETURN(Note note, ParseNote(message));
  std::vector<std::string> verified;
  for (const NoteSignature& signature : note.signatures) {
    for (const NoteVerifier& verifier : known) {
      if (verifier.name() != signature.name || verifier.key_hash() != signature.key_hash) {
        continue;
      }
      // Strict: every signature by a known key must verify, not only the first.
      if (!verifier.Verify(note.text, signature.signature)) {
        return absl::UnauthenticatedError(absl::StrCat("the signature by ", signature.name,
                                                       " does not verify: the note was altered"));
      }
      std::string id =
          absl::StrCat(signature.name, "+", absl::StrFormat("%08x", signature.key_hash));
      if (std::find(verified.begin(), verified.end(), id) == verified.end()) {
        verified.push_back(std::move(id));
      }
    }
  }
  if (verified.empty()) {
    return absl::UnauthenticatedError("the note carries no signature by a known key");
  }
  if (verified_by != nullptr) *verified_by = std::move(verified);
  return note;
}

absl::StatusOr<NoteSigner> NoteSigner::FromSeed(std::string name, std::string_view seed) {
  if (!IsValidNoteKeyName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("key name \"", name, "\" must be non-empty, without spaces or '+'"));
  }
  if (seed.size() != 32) return absl::InvalidArgumentError("an Ed25519 seed is 32 bytes");
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
  if (key == nullptr) return absl::InternalError("OpenSSL refused the Ed25519 seed");
  unsigned char public_key[32];
  size_t length = sizeof(public_key);
  if (EVP_PKEY_get_raw_public_key(key.get(), public_key, &length) != 1 || length != 32) {
    return absl::InternalError("OpenSSL could not derive the Ed25519 public key");
  }
  NoteSigner signer;
  signer.seed_ = std::string(seed);
  signer.verifier_ = NoteVerifier::FromPublicKey(
      std::move(name), std::string_view(reinterpret_cast<char*>(public_key), length));
  return signer;
}

absl::StatusOr<NoteSigner> NoteSigner::FromSignerKey(std::string_view skey) {
  if (skey.substr(0, kSignerKeyPrefix.size()) != kSignerKeyPrefix) {
    return absl::InvalidArgumentError("malformed signer key: want PRIVATE+KEY+name+hash+key");
  }
  skey.remove_prefix(kSignerKeyPrefix.size());
  const size_t plus1 = skey.find('+');
  const size_t plus2 = plus1 == std::string_view::npos ? plus1 : skey.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) return absl::InvalidArgumentError("malformed signer key");
  std::optional<std::string> key = DecodeBase64(skey.substr(plus2 + 1));
  if (!key.has_value() || key->size() != 33 ||
      static_cast<uint8_t>((*key)[0]) != kNoteAlgorithmEd25519) {
    return absl::InvalidArgumentError("signer key is not an Ed25519 seed");
  }
  STORE_ASSIGN_OR_RETURN(NoteSigner signer,
                         FromSeed(std::string(skey.substr(0, plus1)), key->substr(1)));
  if (absl::StrFormat("%08x", signer.verifier().key_hash()) !=
      skey.substr(plus1 + 1, plus2 - plus1 - 1)) {
    return absl::InvalidArgumentError("signer key hash does not match its key");
  }
  return signer;
}

absl::StatusOr<std::string> NoteSigner::Sign(std::string_view text) const {
  if (text.empty() || text.back() != '\n' || !IsValidNoteText(text) ||
      text.find("\n\n") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        "note text must be UTF-8 ending in a newline, without control characters or blank "
        "lines");
  }
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed_.data()),
      seed_.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  unsigned char signature[64];
  size_t length = sizeof(signature);
  if (key == nullptr || ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &length,
                     reinterpret_cast<const unsigned char*>(text.data()), text.size()) != 1 ||
      length != sizeof(signature)) {
    return absl::InternalError("OpenSSL failed to sign with Ed25519");
  }
  std::string blob;
  const uint32_t hash = verifier_.key_hash();
  for (int shift = 24; shift >= 0; shift -= 8) {
    blob.push_back(static_cast<char>((hash >> shift) & 0xff));
  }
  blob.append(reinterpret_cast<char*>(signature), length);
  return absl::StrCat(Sv(text), "\n", Sv(kSignaturePrefix), verifier_.name(), " ",
                      EncodeBase64(blob), "\n");
}

std::string FormatCheckpoint(const Checkpoint& checkpoint) {
  std::string text = absl::StrCat(
      checkpoint.origin, "\n", checkpoint.size, "\n",
      EncodeBase64(std::string_view(reinterpret_cast<const char*>(checkpoint.root.data()),
                                    checkpoint.root.size())),
      "\n");
  for (const std::string& extension : checkpoint.extensions)
    absl::StrAppend(&text, extension, "\n");
  return text;
}

absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return absl::InvalidArgumentError("checkpoint text must end with a newline");
  }
  std::vector<std::string_view> lines;
  for (std::string_view rest = text.substr(0, text.size() - 1);;) {
    const size_t end = rest.find('\n');
    lines.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  if (lines.size() < 3) return absl::InvalidArgumentError("a checkpoint has at least 3 lines");
  for (std::string_view line : lines) {
    if (line.empty()) return absl::InvalidArgumentError("checkpoint lines must not be empty");
  }
  Checkpoint checkpoint;
  checkpoint.origin = std::string(lines[0]);
  std::string_view size = lines[1];
  if (size.find_first_not_of("0123456789") != std::string_view::npos ||
      (size.size() > 1 && size[0] == '0') || size.size() > 19) {
    return absl::InvalidArgumentError("checkpoint size must be decimal without leading zeros");
  }
  uint64_t value = 0;
  for (char c : size) value = value * 10 + static_cast<uint64_t>(c - '0');
  if (value > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError("checkpoint size does not fit in 63 bits");
  }
  checkpoint.size = static_cast<int64_t>(value);
  std::optional<std::string> root = DecodeBase64(lines[2]);
  if (!root.has_value() || root->size() != 32) {
    return absl::InvalidArgumentError("checkpoint root must be base64 of 32 bytes");
  }
  std::copy(root->begin(), root->end(), checkpoint.root.begin());
  for (size_t i = 3; i < lines.size(); ++i) checkpoint.extensions.emplace_back(lines[i]);
  return checkpoint;
}

absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view message, const NoteVerifier& verifier,
                                          std::string_view origin) {
  STORE_ASSIGN_OR_RETURN(Note note, OpenNote(message, std::span<const NoteVerifier>(&verifier, 1)));
  STORE_ASSIGN_OR_RETURN(Checkpoint checkpoint, ParseCheckpoint(note.text));
  if (checkpoint.origin != origin) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint origin \"", checkpoint.origin, "\" is not \"", Sv(origin), "\""));
  }
  return checkpoint;
}

absl::StatusOr<NoteSigner> LoadSigningKey(const std::string& path, std::string name) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("the key file ", path, " is missing"));
  }
  if (fd < 0) return Errno("cannot open key file", path);
  return ReadSigningKey(fd, path, std::move(name));
}

absl::StatusOr<NoteSigner> LoadOrCreateSigningKey(const std::string& path, std::string name) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char seed[32];
    if (RAND_bytes(seed, sizeof(seed)) != 1) {
      return absl::UnavailableError("the random generator failed to make a key");
    }
    std::string tmp = path + ".tmp";
    ::unlink(tmp.c_str());
    int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) return Errno("cannot create key file", tmp);
    absl::Status status = WriteAll(out, std::string_view(reinterpret_cast<char*>(seed), 32), tmp);
    if (status.ok() && ::fsync(out) != 0) status = Errno("cannot sync key file", tmp);
    ::close(out);
    // link() fails if another process created the key meanwhile: then use theirs.
    if (status.ok() && ::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
      status = Errno("cannot install key file", path);
    }
    ::unlink(tmp.c_str());
    STORE_RETURN_IF_ERROR(status);
    STORE_RETURN_IF_ERROR(SyncDirectoryOf(path));
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return Errno("cannot open key file", path);
  return ReadSigningKey(fd, path, std::move(name));
}

absl::Status WriteFileDurably(const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot create", tmp);
  absl::Status status = WriteAll(fd, contents, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = Errno("cannot sync", tmp);
  ::close(fd);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Errno("cannot rename onto", path);
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());  // nothing half-written is left beside the file
    return status;
  }
  return SyncDirectoryOf(path);
}

absl::StatusOr<std::optional<std::string>> ReadSmallFile(const std::string& path,
                                                         size_t bytes_max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) return std::nullopt;
  if (fd < 0) return Errno("cannot open", path);
  std::string contents;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Errno("cannot read", path);
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
    if (contents.size() > bytes_max) {
      ::close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is larger than ", bytes_max, " bytes"));
    }
  }
  ::close(fd);
  return contents;
}

}  // namespace casework::store

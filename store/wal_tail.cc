#include "store/wal_tail.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/env.h"
#include "rocksdb/file_checksum.h"

namespace casework::store::wal {
namespace {

// RocksDB's record types: zero (padding, preallocated space), full, first, middle, last.
// Types 5 to 8 are the recyclable format (another header size), which the log never
// writes (recycle_log_file_num is 0).
constexpr uint8_t kLastPlainType = 4;
constexpr uint8_t kLastRecyclableType = 8;

uint32_t DecodeFixed32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}

uint32_t DecodeFixed16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8);
}

// RocksDB's CRC32C (its file checksum generator is the public way to reach it).
uint32_t Crc32c(std::string_view a, std::string_view b) {
  static const std::shared_ptr<rocksdb::FileChecksumGenFactory> factory =
      rocksdb::GetFileChecksumGenCrc32cFactory();
  std::unique_ptr<rocksdb::FileChecksumGenerator> crc =
      factory->CreateFileChecksumGenerator(rocksdb::FileChecksumGenContext{});
  crc->Update(a.data(), a.size());
  crc->Update(b.data(), b.size());
  crc->Finalize();
  const std::string be = crc->GetChecksum();  // 4 bytes, big-endian
  uint32_t value = 0;
  for (char c : be) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

bool IsWalName(std::string_view name) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) return false;
  name.remove_suffix(kSuffix.size());
  return std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); });
}

}  // namespace

uint32_t RecordChecksum(uint8_t type, std::string_view payload) {
  const char t = static_cast<char>(type);
  const uint32_t crc = Crc32c(std::string_view(&t, 1), payload);
  // RocksDB stores the checksum masked (crc32c::Mask in util/crc32c.h).
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::optional<HiddenDamage> FindHiddenDamage(std::string_view block, uint64_t block_offset) {
  block = block.substr(0, kBlockSize);
  uint64_t at = 0;
  while (at + kHeaderSize <= block.size()) {
    const char* header = block.data() + at;
    const uint32_t checksum = DecodeFixed32(header);
    const uint32_t length = DecodeFixed16(header + 4);
    const auto type = static_cast<uint8_t>(header[6]);
    // Zeros: the padding of preallocated space; RocksDB skips the rest of the block.
    if (type == 0 && length == 0) return std::nullopt;
    const uint64_t room = block.size() - at - kHeaderSize;
    const std::string_view payload = block.substr(at + kHeaderSize);
    if (type > kLastPlainType && type <= kLastRecyclableType) {
      if (length > room) return std::nullopt;
      for (uint8_t plain = 1; plain <= kLastPlainType; ++plain) {
        if (std::popcount(static_cast<unsigned>(plain ^ type)) > 2) continue;
        if (RecordChecksum(plain, payload.substr(0, length)) == checksum) {
          return HiddenDamage{.field = HiddenDamage::Field::kType,
                              .offset = block_offset + at,
                              .stated = type,
                              .whole = plain};
        }
      }
      return std::nullopt;  // not one of ours made unreadable: RocksDB's to judge
    }
    if (length <= room) {
      // Inside the block; a checksum that does not hold here RocksDB reports by itself.
      at += kHeaderSize + length;
      continue;
    }
    // RocksDB drops this record and the rest of the file as a torn write (in the last
    // block; elsewhere it reports a bad length). Is it whole?
    for (int i = 0; i < 16; ++i) {
      for (int j = i; j < 16; ++j) {
        const uint32_t candidate = length ^ (1u << i) ^ (i == j ? 0u : 1u << j);
        if (candidate == length || candidate > room) continue;
        if (RecordChecksum(type, payload.substr(0, candidate)) == checksum) {
          return HiddenDamage{.field = HiddenDamage::Field::kLength,
                              .offset = block_offset + at,
                              .stated = length,
                              .whole = candidate};
        }
      }
    }
    return std::nullopt;  // a torn write (or damage RocksDB reports)
  }
  return std::nullopt;
}

namespace {

struct Found {
  std::string path;
  HiddenDamage damage;
};

// The first hidden damage in the WAL files of `dir`, in the order of their names.
absl::StatusOr<std::optional<Found>> FindFirstDamage(rocksdb::Env* env, const std::string& dir) {
  std::vector<std::string> children;
  rocksdb::Status s = env->GetChildren(dir, &children);
  if (s.IsNotFound() || s.IsPathNotFound()) return std::nullopt;
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("listing the write-ahead log files in ", dir, ": ", s.ToString()));
  }
  std::sort(children.begin(), children.end());
  constexpr uint64_t kReadBytes = 32 * kBlockSize;
  std::string scratch(kReadBytes, '\0');
  for (const std::string& name : children) {
    if (!IsWalName(name)) continue;
    const std::string path = absl::StrCat(dir, "/", name);
    uint64_t size = 0;
    s = env->GetFileSize(path, &size);
    if (s.IsNotFound() || s.IsPathNotFound()) continue;  // removed since the listing
    std::unique_ptr<rocksdb::RandomAccessFile> file;
    if (s.ok() && size > 0) s = env->NewRandomAccessFile(path, &file, rocksdb::EnvOptions());
    auto unreadable = [&] {
      return absl::UnavailableError(
          absl::StrCat("reading the write-ahead log ", path, ": ", s.ToString()));
    };
    if (!s.ok()) return unreadable();
    for (uint64_t offset = 0; offset < size;) {
      rocksdb::Slice read;
      const uint64_t asked = std::min(kReadBytes, size - offset);
      s = file->Read(offset, asked, &read, scratch.data());
      if (!s.ok()) return unreadable();
      const std::string_view bytes(read.data(), read.size());
      for (uint64_t block = 0; block < bytes.size(); block += kBlockSize) {
        std::optional<HiddenDamage> damage = FindHiddenDamage(bytes.substr(block), offset + block);
        if (damage.has_value()) return Found{path, *damage};
      }
      if (read.size() < asked) break;  // the file ends here (it was cut since its size was read)
      offset += read.size();
    }
  }
  return std::nullopt;
}

absl::Status Unwritable(const std::string& what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Writes `bytes` at `offset` of `path` and syncs it.
absl::Status WriteAt(const std::string& path, uint64_t offset, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Unwritable("opening", path);
  const ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
  const bool ok = written == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  absl::Status status = ok ? absl::OkStatus() : Unwritable("rewriting", path);
  ::close(fd);
  return status;
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Unwritable("opening", path);
  absl::Status status = ::fsync(fd) == 0 ? absl::OkStatus() : Unwritable("syncing", path);
  ::close(fd);
  return status;
}

}  // namespace

absl::Status CheckWalFiles(rocksdb::Env* env, const std::string& dir) {
  absl::StatusOr<std::optional<Found>> found = FindFirstDamage(env, dir);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::OkStatus();
  const std::string& path = (*found)->path;
  const HiddenDamage& damage = (*found)->damage;
  const bool length = damage.field == HiddenDamage::Field::kLength;
  return absl::DataLossError(absl::StrCat(
      "the write-ahead log ", path, " is damaged at byte ", damage.offset,
      ": the record there is whole (its checksum holds ",
      length ? absl::StrCat("over ", damage.whole, " bytes), but its length field says ",
                            damage.stated, " bytes, past the end of its block")
             : absl::StrCat("with type ", damage.whole, "), but its type field says ",
                            damage.stated, ", a format the log never writes"),
      ". RocksDB would take it for the end of the log and drop it and every record after it, "
      "acknowledged events included; refusing to serve. The checksum shows the field's true "
      "value: with the server stopped, caseworkd --repair-wal rewrites it (keeping the file as "
      "it was beside it) and loses nothing; or keep the directory as it is for inspection and "
      "restore the last verified backup (docs/storage.md, recovery)"));
}

absl::StatusOr<std::vector<WalRepair>> RepairWalFiles(const std::string& dir) {
  rocksdb::Env* env = rocksdb::Env::Default();
  std::vector<WalRepair> repairs;
  std::vector<std::string> kept;  // files already copied as they were
  // Each pass rewrites one field; a record repaired is read past on the next pass. The
  // bound only stops a loop that would not end (a repair that did not take).
  for (int pass = 0; pass < 100'000; ++pass) {
    absl::StatusOr<std::optional<Found>> found = FindFirstDamage(env, dir);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return repairs;
    const Found& damaged = **found;
    WalRepair repair{.file = damaged.path, .kept = "", .damage = damaged.damage};
    for (const WalRepair& earlier : repairs) {
      if (earlier.file == damaged.path) repair.kept = earlier.kept;
      if (earlier.file == damaged.path && earlier.damage.offset == damaged.damage.offset &&
          earlier.damage.field == damaged.damage.field) {
        return absl::InternalError(absl::StrCat("rewriting the field at byte ",
                                                damaged.damage.offset, " of ", damaged.path,
                                                " did not take"));
      }
    }
    if (repair.kept.empty()) {
      repair.kept = absl::StrCat(damaged.path, ".damaged-",
                                 std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
      std::error_code error;
      std::filesystem::copy_file(damaged.path, repair.kept, error);
      if (error) {
        return absl::UnavailableError(
            absl::StrCat("keeping ", damaged.path, " as ", repair.kept, ": ", error.message()));
      }
      if (absl::Status s = SyncPath(repair.kept, O_RDONLY); !s.ok()) return s;
      if (absl::Status s = SyncPath(dir, O_RDONLY | O_DIRECTORY); !s.ok()) return s;
    }
    std::string field;
    uint64_t at = damaged.damage.offset;
    if (damaged.damage.field == HiddenDamage::Field::kLength) {
      field = {static_cast<char>(damaged.damage.whole & 0xff),
               static_cast<char>(damaged.damage.whole >> 8)};
      at += 4;
    } else {
      field = {static_cast<char>(damaged.damage.whole)};
      at += 6;
    }
    if (absl::Status s = WriteAt(damaged.path, at, field); !s.ok()) return s;
    repairs.push_back(std::move(repair));
  }
  return absl::InternalError(absl::StrCat("too many damaged records in ", dir));
}

}  // namespace casework::store::wal

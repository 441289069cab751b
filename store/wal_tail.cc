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
#include "store/internal/held_directories.h"
#include "store/internal/status_macros.h"

namespace casework::store::wal {
namespace {

// RocksDB's record types: zero (padding, preallocated space), full, first, middle, last.
// Types 5 to 8 are the recyclable format (another header size), which the log never
// writes (recycle_log_file_num is 0).
constexpr uint8_t kFullType = 1;
constexpr uint8_t kFirstType = 2;
constexpr uint8_t kMiddleType = 3;
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

bool IsManifestName(std::string_view name) {
  constexpr std::string_view kPrefix = "MANIFEST-";
  if (name.size() <= kPrefix.size() || !name.starts_with(kPrefix)) return false;
  name.remove_prefix(kPrefix.size());
  return std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); });
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

namespace {

// A record's header, as RocksDB writes it: checksum, length, type.
struct Header {
  uint32_t checksum = 0;
  uint32_t length = 0;
  uint8_t type = 0;
};

// The header at byte `at` of `block` (at least kHeaderSize bytes from there).
Header HeaderAt(std::string_view block, uint64_t at) {
  const char* header = block.data() + at;
  return Header{.checksum = DecodeFixed32(header),
                .length = DecodeFixed16(header + 4),
                .type = static_cast<uint8_t>(header[6])};
}

// The plain type (1 to 4) under which the checksum of `header` holds over its stated
// length of `payload` (the bytes after the header, to the end of its block).
std::optional<uint8_t> WholeUnderType(const Header& header, std::string_view payload) {
  for (uint8_t plain = 1; plain <= kLastPlainType && header.length <= payload.size(); ++plain) {
    if (RecordChecksum(plain, payload.substr(0, header.length)) == header.checksum) return plain;
  }
  return std::nullopt;
}

// A length within two flipped bits of the stated one, that fits `payload`, under which the
// checksum of `header` holds for its type.
std::optional<uint32_t> WholeUnderLength(const Header& header, std::string_view payload) {
  for (int i = 0; i < 16; ++i) {
    for (int j = i; j < 16; ++j) {
      const uint32_t candidate = header.length ^ (1u << i) ^ (i == j ? 0u : 1u << j);
      if (candidate == header.length || candidate > payload.size()) continue;
      if (RecordChecksum(header.type, payload.substr(0, candidate)) == header.checksum) {
        return candidate;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

BlockWalk WalkBlock(std::string_view block, uint64_t block_offset, bool* in_fragment) {
  block = block.substr(0, kBlockSize);
  const bool end_of_file = block.size() < kBlockSize;
  uint64_t at = 0;
  // The order of RocksDB's checks (log::Reader::ReadPhysicalRecord): a recyclable type
  // first (then the log number, which the bytes of a damaged record match only by
  // chance: kOldRecord, read as the end of the file), then the length, then a header of
  // zeros, then the checksum.
  while (at + kHeaderSize <= block.size()) {
    const Header header = HeaderAt(block, at);
    const uint32_t length = header.length;
    const uint8_t type = header.type;
    const uint64_t room = block.size() - at - kHeaderSize;
    const std::string_view payload = block.substr(at + kHeaderSize);
    HiddenDamage stop{.offset = block_offset + at};
    if (type > kLastPlainType && type <= kLastRecyclableType) {
      stop.field = HiddenDamage::Field::kType;
      stop.stated = type;
      if (std::optional<uint8_t> plain = WholeUnderType(header, payload)) stop.whole = *plain;
      return BlockWalk{.end = BlockWalk::End::kStopFile, .stop = stop};
    }
    if (length > room) {
      stop.field = HiddenDamage::Field::kLength;
      stop.stated = length;
      stop.whole = WholeUnderLength(header, payload);
      // Past the end of the file: taken for a torn write. Past the end of a whole block:
      // RocksDB reports a bad record length (the repair still applies).
      if (end_of_file) return BlockWalk{.end = BlockWalk::End::kStopFile, .stop = stop};
      if (stop.whole.has_value()) return BlockWalk{.end = BlockWalk::End::kRead, .stop = stop};
      return BlockWalk{};
    }
    if (type == 0 && length == 0) {
      // Inside a record of several fragments, RocksDB reports the gap; otherwise it skips
      // the rest of the block in silence.
      if (*in_fragment) return BlockWalk{};
      stop.field = HiddenDamage::Field::kZeroHeader;
      return BlockWalk{.end = BlockWalk::End::kSkipRest, .stop = stop};
    }
    // Any other type, or a checksum that does not hold, RocksDB reports by itself.
    if (type == 0 || type > kLastPlainType) return BlockWalk{};
    *in_fragment = type == kFirstType || type == kMiddleType;
    at += kHeaderSize + length;
  }
  return BlockWalk{};
}

bool WholeRecordAt(std::string_view block, uint64_t at) {
  block = block.substr(0, kBlockSize);
  if (at + kHeaderSize > block.size()) return false;
  const auto type = static_cast<uint8_t>(block[at + 6]);
  if (type < 1 || type > kLastPlainType) return false;
  const uint32_t length = DecodeFixed16(block.data() + at + 4);
  if (at + kHeaderSize + length > block.size()) return false;
  return RecordChecksum(type, block.substr(at + kHeaderSize, length)) ==
         DecodeFixed32(block.data() + at);
}

std::optional<uint64_t> RecordsToTheEnd(std::string_view block, uint64_t from) {
  block = block.substr(0, kBlockSize);
  for (uint64_t start = from; start + kHeaderSize <= block.size(); ++start) {
    const auto type = static_cast<uint8_t>(block[start + 6]);
    if (type != kFullType && type != kFirstType) continue;  // a record's start
    uint64_t at = start;
    while (at + kHeaderSize <= block.size() && WholeRecordAt(block, at)) {
      at += kHeaderSize + DecodeFixed16(block.data() + at + 4);
    }
    // To the end of the block (or of the file), or to the block's trailer of zeros.
    if (at + kHeaderSize <= block.size()) continue;
    if (std::all_of(block.begin() + static_cast<std::ptrdiff_t>(at), block.end(),
                    [](char c) { return c == '\0'; })) {
      return start;
    }
  }
  return std::nullopt;
}

namespace {

struct Found {
  std::string path;
  HiddenDamage damage;
};

constexpr uint64_t kReadBytes = 32 * kBlockSize;

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
  // The write-ahead log files, then the manifest that CURRENT names: RocksDB reads it with
  // the same reader and the same tolerance for a torn last record, so a damaged length
  // there drops the newest version edits (table files written by flushes) in silence.
  std::vector<std::string> names;
  for (const std::string& name : children) {
    if (IsWalName(name)) names.push_back(name);
  }
  if (std::find(children.begin(), children.end(), "CURRENT") != children.end()) {
    std::unique_ptr<rocksdb::SequentialFile> current;
    s = env->NewSequentialFile(dir + "/CURRENT", &current, rocksdb::EnvOptions());
    char buffer[256];
    rocksdb::Slice read;
    if (s.ok()) s = current->Read(sizeof(buffer), &read, buffer);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("reading ", dir, "/CURRENT: ", s.ToString()));
    }
    std::string_view manifest(read.data(), read.size());
    if (manifest.ends_with('\n')) manifest.remove_suffix(1);
    // A CURRENT that names no manifest is RocksDB's to refuse.
    if (IsManifestName(manifest)) names.emplace_back(manifest);
  }
  std::string scratch(kReadBytes, '\0');
  std::string next_block(kBlockSize, '\0');
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    uint64_t size = 0;
    s = env->GetFileSize(path, &size);
    if (s.IsNotFound() || s.IsPathNotFound()) continue;  // removed since the listing
    std::unique_ptr<rocksdb::RandomAccessFile> file;
    if (s.ok() && size > 0) s = env->NewRandomAccessFile(path, &file, rocksdb::EnvOptions());
    auto unreadable = [&] {
      return absl::UnavailableError(absl::StrCat("reading ", path, ": ", s.ToString()));
    };
    if (!s.ok()) return unreadable();
    bool in_fragment = false;
    bool file_done = false;
    for (uint64_t offset = 0; offset < size && !file_done;) {
      rocksdb::Slice read;
      const uint64_t asked = std::min(kReadBytes, size - offset);
      s = file->Read(offset, asked, &read, scratch.data());
      if (!s.ok()) return unreadable();
      const std::string_view bytes(read.data(), read.size());
      for (uint64_t block = 0; block < bytes.size() && !file_done; block += kBlockSize) {
        const std::string_view view = bytes.substr(block, kBlockSize);
        BlockWalk walk = WalkBlock(view, offset + block, &in_fragment);
        if (!walk.stop.has_value()) continue;
        HiddenDamage& stop = *walk.stop;
        if (stop.whole.has_value()) return Found{path, stop};
        const uint64_t at = stop.offset - (offset + block);  // in `view`
        // The block of the file that starts at `start` (a multiple of kBlockSize).
        auto block_at = [&](uint64_t start) -> absl::StatusOr<std::string_view> {
          if (start >= offset && start - offset < bytes.size()) {
            return bytes.substr(start - offset, kBlockSize);
          }
          rocksdb::Slice other;
          s = file->Read(start, std::min(kBlockSize, size - start), &other, next_block.data());
          if (!s.ok()) return unreadable();
          return std::string_view(other.data(), other.size());
        };
        if (walk.end == BlockWalk::End::kSkipRest) {
          // The zeros are no preallocated space when whole records run from after them to
          // the end of the block, or when bytes follow them and the next block, where
          // RocksDB reads on, starts a whole record (a torn write is the last of its file,
          // and its continuation would start with a middle or last fragment).
          std::optional<uint64_t> next = RecordsToTheEnd(view, at + kHeaderSize);
          if (next.has_value()) {
            stop.next_record = offset + block + *next;
            return Found{path, stop};
          }
          const uint64_t next_start = offset + block + kBlockSize;
          const bool bytes_follow =
              view.size() == kBlockSize &&
              !std::all_of(view.begin() + static_cast<std::ptrdiff_t>(at + kHeaderSize), view.end(),
                           [](char c) { return c == '\0'; });
          if (bytes_follow && next_start + kHeaderSize <= size) {
            absl::StatusOr<std::string_view> following = block_at(next_start);
            if (!following.ok()) return following.status();
            const bool starts_record = following->size() >= kHeaderSize &&
                                       (static_cast<uint8_t>((*following)[6]) == kFullType ||
                                        static_cast<uint8_t>((*following)[6]) == kFirstType);
            if (starts_record && WholeRecordAt(*following, 0)) {
              stop.next_record = next_start;
              return Found{path, stop};
            }
          }
          in_fragment = false;
        } else if (walk.end == BlockWalk::End::kStopFile) {
          file_done = true;  // RocksDB reads no further in this file
          if (stop.field != HiddenDamage::Field::kType) continue;  // a torn write
          // The type alone is damaged when the record's stated length leads to a whole
          // record: the next one in the block, or the first of the next block.
          const uint64_t length = DecodeFixed16(view.data() + at + 4);
          if (at + kHeaderSize + length > view.size()) continue;
          uint64_t next = offset + block + at + kHeaderSize + length;
          if (next % kBlockSize + kHeaderSize > kBlockSize) {
            next = (next / kBlockSize + 1) * kBlockSize;  // past the block's trailer
          }
          if (next + kHeaderSize > size) continue;  // nothing after it: a torn write
          const uint64_t next_block_start = next / kBlockSize * kBlockSize;
          absl::StatusOr<std::string_view> holder = block_at(next_block_start);
          if (!holder.ok()) return holder.status();
          if (WholeRecordAt(*holder, next - next_block_start)) {
            stop.next_record = next;
            return Found{path, stop};
          }
        }
      }
      if (read.size() < asked) break;  // the file ends here (it was cut since its size was read)
      offset += read.size();
    }
  }
  return std::nullopt;
}

std::string DamageMessage(const std::string& path, const HiddenDamage& damage) {
  std::string what;
  switch (damage.field) {
    case HiddenDamage::Field::kLength:
      what = absl::StrCat("its length field says ", damage.stated,
                          " bytes, past the end of its block");
      break;
    case HiddenDamage::Field::kType:
      what = absl::StrCat("its type field says ", damage.stated,
                          ", the recyclable format, which the log never writes");
      break;
    case HiddenDamage::Field::kZeroHeader:
      what = "its header is zeros";
      break;
  }
  const std::string head = absl::StrCat(
      IsManifestName(std::filesystem::path(path).filename().string()) ? "RocksDB's manifest "
                                                                      : "the write-ahead log ",
      path, " is damaged at byte ", damage.offset, ": ");
  constexpr char kBackup[] =
      "keep the directory as it is for inspection and restore the last verified backup "
      "(docs/storage.md, recovery)";
  if (damage.whole.has_value()) {
    const std::string under = damage.field == HiddenDamage::Field::kLength
                                  ? absl::StrCat("over ", *damage.whole, " bytes")
                                  : absl::StrCat("with type ", *damage.whole);
    return absl::StrCat(
        head, "the record there is whole (its checksum holds ", under, "), but ", what,
        ". RocksDB cannot read past it: it would drop it and the records after it in this "
        "file (in silence where it takes them for a write cut short by a crash), acknowledged "
        "events included; refusing to serve. The checksum shows the field's true value: with "
        "the server stopped, caseworkd --repair-wal rewrites it (keeping the file as it was "
        "beside it) and loses nothing; or ",
        kBackup);
  }
  if (damage.field == HiddenDamage::Field::kZeroHeader) {
    return absl::StrCat(
        head, what, ", but whole records follow it from byte ", damage.next_record,
        ", so this is no preallocated space. RocksDB would skip the rest of its 32 KiB block "
        "in silence, acknowledged events included; refusing to serve. The record cannot be "
        "repaired in place: ",
        kBackup);
  }
  return absl::StrCat(
      head, what,
      ", and no plain type makes the record's checksum hold, but its length leads to a whole "
      "record at byte ",
      damage.next_record,
      ", so this is no write cut short by a crash. RocksDB would drop the records from there "
      "to the end of this file in silence, acknowledged events included; refusing to serve. "
      "The record cannot be repaired in place: ",
      kBackup);
}

absl::Status Unwritable(const std::string& what, const std::string& path, int error) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(error)));
}

// Writes `bytes` at `offset` of `path` and syncs it.
absl::Status WriteAt(const std::string& path, uint64_t offset, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Unwritable("opening", path, errno);
  absl::Status status;
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = Unwritable("rewriting", path, n < 0 ? errno : EIO);
      break;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  if (status.ok() && ::fsync(fd) != 0) status = Unwritable("syncing", path, errno);
  ::close(fd);
  return status;
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Unwritable("opening", path, errno);
  absl::Status status = ::fsync(fd) == 0 ? absl::OkStatus() : Unwritable("syncing", path, errno);
  ::close(fd);
  return status;
}

}  // namespace

absl::Status CheckWalFiles(rocksdb::Env* env, const std::string& dir) {
  absl::StatusOr<std::optional<Found>> found = FindFirstDamage(env, dir);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return absl::OkStatus();
  return absl::DataLossError(DamageMessage((*found)->path, (*found)->damage));
}

namespace {

// Where a repair writes, and what: the field's true value, as stored.
struct FieldRewrite {
  uint64_t offset = 0;
  std::string bytes;
};

FieldRewrite RewriteOf(const HiddenDamage& damage) {
  const uint32_t whole = *damage.whole;
  if (damage.field == HiddenDamage::Field::kLength) {
    return {damage.offset + 4, {static_cast<char>(whole & 0xff), static_cast<char>(whole >> 8)}};
  }
  return {damage.offset + 6, {static_cast<char>(whole)}};
}

// Finds the first damage in `dir` (read through `env`), has `rewrite` put its field right,
// and looks again, until the files read clean or damage is found that cannot be repaired
// (FAILED_PRECONDITION, naming it). `rewrite` gets the repair to make; its `kept` is that
// of an earlier repair of the same file, else empty. Each pass rewrites one field; a record
// repaired is read past on the next pass. The bound only stops a loop that would not end.
absl::StatusOr<std::vector<WalRepair>> RepairEach(
    rocksdb::Env* env, const std::string& dir,
    const std::function<absl::Status(WalRepair*)>& rewrite,
    const std::function<void(const WalRepair&)>& repaired) {
  std::vector<WalRepair> repairs;
  for (int pass = 0; pass < 100'000; ++pass) {
    absl::StatusOr<std::optional<Found>> found = FindFirstDamage(env, dir);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return repairs;
    const Found& damaged = **found;
    if (!damaged.damage.whole.has_value()) {
      return absl::FailedPreconditionError(DamageMessage(damaged.path, damaged.damage));
    }
    WalRepair repair{.file = damaged.path, .kept = "", .damage = damaged.damage};
    for (const WalRepair& earlier : repairs) {
      if (earlier.file != damaged.path) continue;
      repair.kept = earlier.kept;
      if (earlier.damage.offset == damaged.damage.offset &&
          earlier.damage.field == damaged.damage.field) {
        return absl::InternalError(absl::StrCat("rewriting the field at byte ",
                                                damaged.damage.offset, " of ", damaged.path,
                                                " did not take"));
      }
    }
    if (absl::Status s = rewrite(&repair); !s.ok()) return s;
    repairs.push_back(std::move(repair));
    if (repaired) repaired(repairs.back());
  }
  return absl::InternalError(absl::StrCat("too many damaged records in ", dir));
}

// The whole repair, made on copies in memory of the files it reads: whether it can be
// done to the end. Nothing on disk is written.
absl::Status RehearseRepair(const std::string& dir) {
  rocksdb::Env* disk = rocksdb::Env::Default();
  std::unique_ptr<rocksdb::Env> memory(rocksdb::NewMemEnv(disk));
  std::vector<std::string> children;
  if (rocksdb::Status s = disk->GetChildren(dir, &children); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("listing ", dir, ": ", s.ToString()));
  }
  if (rocksdb::Status s = memory->CreateDirIfMissing(dir); !s.ok()) {
    return absl::InternalError(absl::StrCat("rehearsing the repair: ", s.ToString()));
  }
  for (const std::string& name : children) {
    if (!IsWalName(name) && !IsManifestName(name) && name != "CURRENT") continue;
    const std::string path = absl::StrCat(dir, "/", name);
    std::string bytes;
    rocksdb::Status s = rocksdb::ReadFileToString(disk, path, &bytes);
    if (s.IsNotFound() || s.IsPathNotFound()) continue;  // removed since the listing
    if (!s.ok()) return absl::UnavailableError(absl::StrCat("reading ", path, ": ", s.ToString()));
    s = rocksdb::WriteStringToFile(memory.get(), bytes, path);
    if (!s.ok()) return absl::InternalError(absl::StrCat("rehearsing the repair: ", s.ToString()));
  }
  return RepairEach(memory.get(), dir,
                    [&](WalRepair* repair) -> absl::Status {
                      std::string bytes;
                      rocksdb::Status s =
                          rocksdb::ReadFileToString(memory.get(), repair->file, &bytes);
                      const FieldRewrite field = RewriteOf(repair->damage);
                      if (s.ok() && field.offset + field.bytes.size() <= bytes.size()) {
                        bytes.replace(field.offset, field.bytes.size(), field.bytes);
                        s = rocksdb::WriteStringToFile(memory.get(), bytes, repair->file);
                      }
                      return s.ok() ? absl::OkStatus()
                                    : absl::InternalError(
                                          absl::StrCat("rehearsing the repair: ", s.ToString()));
                    },
                    {})
      .status();
}

}  // namespace

absl::StatusOr<std::vector<WalRepair>> RepairWalFiles(
    const std::string& dir, const std::function<void(const WalRepair&)>& repaired) {
  rocksdb::Env* env = rocksdb::Env::Default();
  if (rocksdb::Status s = env->FileExists(dir); s.IsNotFound()) {
    return std::vector<WalRepair>();
  } else if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("reading ", dir, ": ", s.ToString()));
  }
  // Offline only. Within this process, no log may have the directory open (the record
  // locks below would merge with its own, and go with them when given up); then the log's
  // own lock (a server takes it before it changes anything of the directory:
  // store/zero_filled_wal.h), then RocksDB's, which keeps a server of a version without
  // the first (or another repair) out meanwhile.
  using internal::HeldDirectories;
  STORE_ASSIGN_OR_RETURN(const HeldDirectories::Id id, HeldDirectories::IdOf(dir));
  if (!HeldDirectories::TryAdd(id, HeldDirectories::Role::kWriter)) {
    return absl::UnavailableError(absl::StrCat(
        "the event log at ", dir,
        " is in use: this process has it open (to write, to inspect it, or to repair it); "
        "close it before repairing its write-ahead log"));
  }
  const internal::HeldDirectory held(id, HeldDirectories::Role::kWriter);
  struct Unlock {
    rocksdb::Env* env;
    rocksdb::FileLock* lock;
    ~Unlock() {
      if (lock != nullptr) (void)env->UnlockFile(lock);
    }
  };
  rocksdb::FileLock* own_lock = nullptr;
  if (rocksdb::Status s = env->LockFile(dir + "/casework.lock", &own_lock); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot take the lock ", dir, "/casework.lock (", s.ToString(),
        "): stop the server that has the log open before repairing its write-ahead log"));
  }
  Unlock own_unlock{env, own_lock};
  rocksdb::FileLock* lock = nullptr;
  if (rocksdb::Status s = env->LockFile(dir + "/LOCK", &lock); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot take the lock of the log in ", dir, " (", s.ToString(),
        "): stop the server that has it open (or check the folder's permissions) before "
        "repairing its write-ahead log"));
  }
  Unlock unlock{env, lock};
  // All or nothing: damage that cannot be repaired, wherever it lies, leaves every file as
  // it was, so the directory stays as found for inspection and a restore.
  if (absl::Status s = RehearseRepair(dir); !s.ok()) return s;
  return RepairEach(
      env, dir,
      [&](WalRepair* repair) -> absl::Status {
        if (repair->kept.empty()) {
          repair->kept = absl::StrCat(repair->file, ".damaged-",
                                      std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
          std::error_code error;
          if (std::filesystem::exists(repair->kept, error)) {
            return absl::AlreadyExistsError(
                absl::StrCat("cannot keep ", repair->file, " as ", repair->kept,
                             ": that file exists; run the repair again"));
          }
          std::filesystem::copy_file(repair->file, repair->kept, error);
          absl::Status kept =
              error ? absl::UnavailableError(absl::StrCat("keeping ", repair->file, " as ",
                                                          repair->kept, ": ", error.message()))
                    : SyncPath(repair->kept, O_RDONLY);
          if (kept.ok()) kept = SyncPath(dir, O_RDONLY | O_DIRECTORY);
          if (!kept.ok()) {
            std::filesystem::remove(repair->kept, error);  // a partial copy is no copy
            return kept;
          }
        }
        const FieldRewrite field = RewriteOf(repair->damage);
        return WriteAt(repair->file, field.offset, field.bytes);
      },
      repaired);
}

namespace {

constexpr uint64_t kSectorBytes = 512;

// Reads up to `n` bytes at `offset` of `fd` into `out` (fewer at the end of the file).
bool ReadAt(int fd, uint64_t offset, uint64_t n, std::string* out) {
  out->resize(n);
  uint64_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out->data() + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
  }
  out->resize(got);
  return true;
}

// Where the first record that RocksDB cannot read whole begins: the first fragment of the
// record it belongs to. nullopt when the file reads to its end, or to zeros that RocksDB
// takes for preallocated space, or breaks in a way no torn write does (a type of no plain
// record, a length past its block, fragments out of order: CheckWalFiles's and RocksDB's
// to judge).
absl::StatusOr<std::optional<uint64_t>> FindBreak(int fd, uint64_t size, const std::string& path) {
  std::string block;
  bool in_record = false;  // a first fragment read, its last not yet
  uint64_t record = 0;     // where that first fragment begins
  for (uint64_t start = 0; start < size; start += kBlockSize) {
    if (!ReadAt(fd, start, std::min(kBlockSize, size - start), &block)) {
      return Unwritable("reading", path, errno);
    }
    uint64_t at = 0;
    while (at + kHeaderSize <= block.size()) {
      const Header header = HeaderAt(block, at);
      const uint32_t length = header.length;
      const uint8_t type = header.type;
      const uint64_t room = block.size() - at - kHeaderSize;
      const uint64_t here = start + at;
      // A header of zeros (RocksDB skips the rest of the block, or reports a gap inside a
      // record of fragments), or a type torn to zero.
      if (type == 0) return in_record ? record : here;
      if (type > kLastPlainType || length > room) return std::nullopt;
      if (RecordChecksum(type, std::string_view(block).substr(at + kHeaderSize, length)) !=
          header.checksum) {
        return in_record ? record : here;
      }
      switch (type) {
        case kFullType:
          if (in_record) return std::nullopt;
          break;
        case kFirstType:
          if (in_record) return std::nullopt;
          in_record = true;
          record = here;
          break;
        case kMiddleType:
          if (!in_record) return std::nullopt;
          break;
        default:  // the last fragment
          if (!in_record) return std::nullopt;
          in_record = false;
          break;
      }
      at += kHeaderSize + length;
    }
  }
  // A record of fragments cut short by the end of the file: RocksDB drops it by itself.
  return std::nullopt;
}

// The end of the last byte of `fd` that is not zero, looking no lower than `floor`
// (returns `floor` when everything from there on is zero).
absl::StatusOr<uint64_t> EndOfData(int fd, uint64_t size, uint64_t floor, const std::string& path) {
  std::string chunk;
  uint64_t end = size;
  while (end > floor) {
    const uint64_t from = std::max(floor, end >= kReadBytes ? end - kReadBytes : 0);
    if (!ReadAt(fd, from, end - from, &chunk) || chunk.size() != end - from) {
      return Unwritable("reading", path, errno != 0 ? errno : EIO);
    }
    const size_t last = chunk.find_last_not_of('\0');
    if (last != std::string::npos) return from + last + 1;
    end = from;
  }
  return floor;
}

// Whether the header at `at` of `block` (a block of the file from its start) is whole
// under a small repair: its checksum holds under another plain type, or under a length
// within two flipped bits that fits the block. Such a record was written whole and damaged
// since: no tear.
bool WholeUnderRepair(std::string_view block, uint64_t at) {
  const Header header = HeaderAt(block, at);
  const std::string_view payload = block.substr(at + kHeaderSize);
  if (WholeUnderType(header, payload).has_value()) return true;
  return header.type >= 1 && header.type <= kLastPlainType &&
         WholeUnderLength(header, payload).has_value();
}

// Whether [record, data_end) reads as one write that a crash tore, with nothing written
// after it (zeros from data_end to the end of the file). The write's fragments, walked
// from `record`: a full record, or a first fragment filling its block and then one
// fragment at the start of each later block (middle fragments filling theirs) until the
// last. A fragment's header of zeros may stand for a fragment lost whole, its block's
// bytes with it; a header whose type byte is zero ends the write when the bytes end inside
// it (a write cut within its own header). Not a tear, and left for
// RocksDB to refuse, when:
//  - the first fragment is whole under a small repair (WholeUnderRepair): a record written
//    whole whose header was damaged since;
//  - a header states another type, or a length that does not fit the write's shape;
//  - bytes follow the write's stated end;
//  - a whole record starts anywhere after `record` in the first or the last block the
//    walk reads, or in one whose first header was lost, but at the start of a later
//    fragment: a later write, acknowledged (past a budget of 256 MiB checksummed, the
//    search gives up, and nothing is cut).
// And there must be zeros where the write was: a header lost, the write's end missing, or
// a whole 512-byte sector of zeros inside it.
absl::StatusOr<bool> TornToTheEnd(int fd, uint64_t size, uint64_t record, uint64_t data_end,
                                  const std::string& path) {
  std::string block;
  bool zeros_seen = false;
  bool done = false;
  bool first_lost = false;  // the write's first header is lost
  bool continued = false;   // a later fragment of the write was read
  uint64_t write_end = record;
  std::vector<uint64_t> lost_blocks;  // later blocks whose first header is lost
  uint64_t last_block = record / kBlockSize * kBlockSize;
  auto read_block = [&](uint64_t start) {
    return ReadAt(fd, start, std::min(kBlockSize, size - start), &block);
  };
  for (uint64_t at = record; at < data_end && !done; at = (at / kBlockSize + 1) * kBlockSize) {
    const uint64_t block_start = at / kBlockSize * kBlockSize;
    const uint64_t block_end = block_start + kBlockSize;
    const bool first = at == record;
    if (!read_block(block_start)) return Unwritable("reading", path, errno);
    last_block = block_start;
    const uint64_t off = at - block_start;
    if (off + kHeaderSize > block.size()) {
      if (first) return false;
      write_end = block_end;  // a block's trailer, or the end of the file
      continue;
    }
    const Header header = HeaderAt(block, off);
    const uint32_t length = header.length;
    const uint8_t type = header.type;
    if (type == 0 && length == 0) {
      // A header lost: the fragment may have been lost whole, with its block; what
      // survived of that block is searched for records of another write below.
      zeros_seen = true;
      first_lost = first_lost || first;
      write_end = block_end;
      if (!first) lost_blocks.push_back(block_start);
      continue;
    }
    if (type == 0 && data_end <= at + kHeaderSize) {
      // The write's bytes end inside this header (its type byte among the zeros).
      zeros_seen = true;
      write_end = at + kHeaderSize;
      done = true;
      continue;
    }
    if (type == 0 || type > kLastPlainType) return false;
    if (off + kHeaderSize + length > block.size()) return false;
    const uint64_t stated = at + kHeaderSize + length;
    const bool whole = RecordChecksum(type, std::string_view(block).substr(
                                                off + kHeaderSize, length)) == header.checksum;
    if (first && !whole && WholeUnderRepair(block, off)) return false;
    if (first && type == kFullType) {
      write_end = stated;
      done = true;
    } else if (first && type == kFirstType && stated == block_end) {
      write_end = block_end;
    } else if (!first && type == kMiddleType && stated == block_end) {
      write_end = block_end;
      continued = true;
    } else if (!first && type == kLastPlainType) {
      write_end = stated;
      done = true;
      continued = true;
    } else {
      return false;
    }
  }
  if (data_end > write_end) return false;  // bytes after the write
  // Zeros where a record was to start, and no later fragment: RocksDB skips them as
  // preallocated space and reads what follows by itself (CheckWalFiles judges that).
  if (first_lost && !continued) return false;
  // No record of a later write hides behind a damaged header: none starts whole after
  // `record` in the first block, the last, or one whose first header was lost (but the
  // fragments the walk took). Middle fragments that fill their blocks leave no room for
  // one. A budget of checksummed bytes bounds the search; past it, nothing is cut.
  std::vector<uint64_t> scan = std::move(lost_blocks);
  scan.push_back(record / kBlockSize * kBlockSize);
  scan.push_back(last_block);
  std::sort(scan.begin(), scan.end());
  scan.erase(std::unique(scan.begin(), scan.end()), scan.end());
  int64_t budget = int64_t{256} << 20;
  for (uint64_t start : scan) {
    if (!read_block(start)) return Unwritable("reading", path, errno);
    const uint64_t from = std::max(record + 1, start + 1) - start;
    const uint64_t to = std::min<uint64_t>(block.size(), data_end - start);
    for (uint64_t p = from; p + kHeaderSize <= to; ++p) {
      const auto type = static_cast<uint8_t>(block[p + 6]);
      if (type < 1 || type > kLastPlainType) continue;
      budget -= DecodeFixed16(block.data() + p + 4);
      if (budget < 0) return false;
      if (WholeRecordAt(block, p)) return false;
    }
  }
  if (zeros_seen || !done || data_end < write_end) return true;
  // A whole sector of zeros inside the write.
  std::string chunk;
  for (uint64_t from = (record + kSectorBytes - 1) / kSectorBytes * kSectorBytes; from < data_end;
       from += kReadBytes) {
    if (!ReadAt(fd, from, std::min(kReadBytes, data_end - from), &chunk)) {
      return Unwritable("reading", path, errno);
    }
    for (uint64_t sector = from; sector + kSectorBytes <= from + chunk.size();
         sector += kSectorBytes) {
      const std::string_view bytes = std::string_view(chunk).substr(sector - from, kSectorBytes);
      if (bytes.find_first_not_of('\0') == std::string_view::npos) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::optional<TornWrite>> TrimTornWrite(const std::string& dir, bool cut) {
  std::error_code ec;
  std::string newest;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // Names of one width sort by number; RocksDB pads them to six digits at least.
    if (IsWalName(name) && (newest.empty() || name.size() > newest.size() ||
                            (name.size() == newest.size() && name > newest))) {
      newest = name;
    }
  }
  if (ec == std::errc::no_such_file_or_directory) return std::nullopt;
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("listing the write-ahead log files in ", dir, ": ", ec.message()));
  }
  if (newest.empty()) return std::nullopt;
  const std::string path = absl::StrCat(dir, "/", newest);
  const int fd = ::open(path.c_str(), (cut ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Unwritable("opening", path, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const off_t end = ::lseek(fd, 0, SEEK_END);
  if (end < 0) return Unwritable("reading", path, errno);
  const auto size = static_cast<uint64_t>(end);
  absl::StatusOr<std::optional<uint64_t>> broken = FindBreak(fd, size, path);
  if (!broken.ok()) return broken.status();
  if (!broken->has_value()) return std::nullopt;
  const uint64_t record = **broken;
  absl::StatusOr<uint64_t> data_end = EndOfData(fd, size, record, path);
  if (!data_end.ok()) return data_end.status();
  if (*data_end <= record) return std::nullopt;  // zeros to the end: the log's end
  absl::StatusOr<bool> torn = TornToTheEnd(fd, size, record, *data_end, path);
  if (!torn.ok()) return torn.status();
  if (!*torn) return std::nullopt;
  if (!cut) return TornWrite{.file = path, .offset = record, .dropped = 0};
  if (::ftruncate(fd, static_cast<off_t>(record)) != 0) {
    return Unwritable("cutting the torn write off", path, errno);
  }
  if (::fsync(fd) != 0) return Unwritable("syncing", path, errno);
  return TornWrite{.file = path, .offset = record, .dropped = size - record};
}

}  // namespace casework::store::wal

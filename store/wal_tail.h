// RocksDB's write-ahead log files (and its manifest), read before RocksDB recovers them.
//
// The log opens RocksDB (7.8) with kTolerateCorruptedTailRecords, which is meant to drop
// only a write cut short by a crash (never acknowledged) and to refuse any other damage.
// Three kinds of damage get past it, each dropping acknowledged records in silence:
//  - a record whose length runs past the end of the file (in its last block, which is
//    partial): RocksDB takes it for a torn write and stops reading the file there;
//  - a record whose type reads as one of the recyclable WAL format's (5 to 8), anywhere
//    in a file: RocksDB takes it for a record left by an earlier use of a recycled file,
//    and stops reading the file there (the next file is read: a hole, not a lost tail);
//  - a header of zeros inside a block: RocksDB takes it for preallocated space and skips
//    the rest of the block.
// The signed checkpoint file catches such a loss only when it already covers those
// events, and after a power loss it lags the log by up to its interval.
//
// For each place where RocksDB would stop or skip in silence, this check asks whether
// what it would drop was acknowledged:
//  - Repairable: the record there is whole under another value of the damaged field.
//    Its checksum (CRC32C over type and payload, as RocksDB writes it) holds over a
//    length within two flipped bits of the stated one that fits in the block, or under a
//    plain type (1 to 4). A torn payload matches one of those 136 lengths by chance with a
//    probability of about 3 in 10^8.
//  - Not repairable: a recyclable type whose record's length leads to a whole record (the
//    type alone is damaged, and the payload too), or a header of zeros after which whole
//    records run to the end of the block (no preallocated space ends like that). A torn
//    write is the last record of its file (every write of the log is synced before the
//    next), and its own payload is not searched: bytes a client wrote into an event can
//    look like a record, but not at the place a stated length points to, nor as records
//    that tile a block to its end.
// Either refuses the open with DATA_LOSS; the first can be rewritten in place
// (RepairWalFiles, caseworkd --repair-wal), the second needs the last verified backup.
// What stays undetected: damage to the last record of a file beyond two bits of its
// length (or its type and its payload at once), which looks like a torn write.
//
// The format (RocksDB's db/log_format.h): 32 KiB blocks; a record is checksum (4 bytes,
// little-endian, masked CRC32C), length (2, little-endian), type (1) and its payload; a
// block ends in zeros when fewer than 7 bytes are left in it; a record never crosses a
// block boundary (a long one is split into fragments, each with its own header). The
// reader reads a block at a time, and knows it is at the end of the file when a read
// returns less than a block.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rocksdb {
class Env;
}  // namespace rocksdb

namespace casework::store::wal {

inline constexpr uint64_t kBlockSize = 32 * 1024;
inline constexpr uint64_t kHeaderSize = 7;

// A place where RocksDB would drop acknowledged records in silence.
struct HiddenDamage {
  enum class Field {
    kLength,      // the record's length runs past the end of the file
    kType,        // the record's type is one of the recyclable format's
    kZeroHeader,  // the record's header is zeros
  };
  Field field = Field::kLength;
  uint64_t offset = 0;  // of the record's header, in the file
  uint32_t stated = 0;  // what the damaged field says (the length or the type)
  // The value under which the record's checksum holds: it can be rewritten. Never set
  // for a header of zeros.
  std::optional<uint32_t> whole;
  // Not repairable: where the whole record starts that shows it is no torn write.
  uint64_t next_record = 0;
};

// The masked CRC32C of `type` followed by `payload`, as a record's header holds it.
uint32_t RecordChecksum(uint8_t type, std::string_view payload);

// How RocksDB's reader leaves one block. `block` starts at byte `block_offset` of the
// file (a multiple of kBlockSize); a block shorter than kBlockSize is the end of the file.
struct BlockWalk {
  enum class End {
    kRead,      // read to its end, or to damage that RocksDB reports by itself
    kSkipRest,  // a header of zeros at `stop.offset`: the rest of the block is skipped
    kStopFile,  // stops reading the file at `stop.offset`, in silence
  };
  End end = End::kRead;
  // Where it skips or stops; also set with kRead for a length past the end of a whole
  // block (RocksDB reports it) when the record is whole under another length.
  std::optional<HiddenDamage> stop;
};
// `in_fragment` carries, from one block to the next, whether the reader is inside a
// record of several fragments (false at the start of a file). Never fails: any bytes are
// read as far as they go (at most kBlockSize of them).
BlockWalk WalkBlock(std::string_view block, uint64_t block_offset, bool* in_fragment);

// Whether a whole record (a plain type, inside the block, its checksum holding) starts at
// byte `at` of `block` (a block of a file, from its start).
bool WholeRecordAt(std::string_view block, uint64_t at);

// The first byte of `block`, at or after `from`, where a full record or a first fragment
// starts from which whole records run to the end of the block (or to its trailer of
// zeros); nullopt when there is none.
std::optional<uint64_t> RecordsToTheEnd(std::string_view block, uint64_t from);

// Reads every write-ahead log file (NNNNNN.log) in `dir` through `env`, then the manifest
// that CURRENT names (RocksDB reads it with the same reader and the same tolerance: a
// damaged length in its last block drops the newest version edits, and so the table
// files that flushes wrote, in silence). OK when none holds hidden damage (or `dir` does
// not exist); DATA_LOSS naming the file, the byte,
// what is damaged and what to do when one does; UNAVAILABLE when a file cannot be read.
absl::Status CheckWalFiles(rocksdb::Env* env, const std::string& dir);

// A write that a crash tore inside zero-filled space (zero_filled_wal.h), cut off.
struct TornWrite {
  std::string file;      // the WAL file, truncated
  uint64_t offset = 0;   // where the torn write began: the file's new size
  uint64_t dropped = 0;  // bytes cut off (the torn write and the zeros after it)
};

// Looks at the newest WAL file (NNNNNN.log) in `dir` for a write torn inside space that
// held zeros, and cuts the file where that write began; RocksDB then reads the file to its
// last whole record, as it does when an appended write is torn. The shape, read as RocksDB
// reads: every record before is whole; then the first record RocksDB cannot read whole
// (its checksum fails, or a header of zeros stands where a record or a fragment was to
// start); from that record's start to the end of the file, the fragments of one write
// (a full record, or a first fragment and then one fragment at the start of each later
// block) and nothing after them but zeros; and zeros where the write was: a fragment's
// header lost, the write's end missing, or a whole 512-byte sector of zeros inside it.
// A crash leaves that: a process killed inside a write has written a prefix of it, and a
// disk that loses power loses whole sectors of a write it did not finish, in any order.
// Only the newest file: every write of the log is synced before the next, so only the last
// can be torn. What it cannot tell from a tear: an acknowledged last record damaged on
// disk whose own bytes end in zeros or hold a whole sector of zeros (event bytes a client
// chose); the checkpoint file catches that loss once it covers the record (the log
// refuses to start shorter than its checkpoint), which it does within a second, and at
// every clean stop.
// Returns nullopt when there is nothing to cut (or no such file); UNAVAILABLE when the
// file cannot be read, cut or synced. The caller must hold the directory (nothing else may
// write the file meanwhile).
// With `cut` false, only finds it (dropped 0) and changes nothing: an inspection.
absl::StatusOr<std::optional<TornWrite>> TrimTornWrite(const std::string& dir, bool cut = true);

// A field the repair rewrote.
struct WalRepair {
  std::string file;  // the WAL file, rewritten in place
  std::string kept;  // its bytes as they were, kept beside it
  HiddenDamage damage;
};

// Rewrites, in the WAL files (and the manifest) of `dir`, the damaged field of every repairable
// record that CheckWalFiles finds, to the value under which its checksum holds: the record, and
// those after it, are then read again. Each file is first copied as it was to
// `<file>.damaged-<µs>` (synced). `repaired` is called after each rewrite, so that what
// was done is known even when a later step fails. Returns every rewrite (none when
// nothing is damaged, or `dir` does not exist). All or nothing: the whole repair is first
// made on copies in memory, and when it meets damage that cannot be repaired anywhere, it
// returns FAILED_PRECONDITION naming that damage and no file is changed. UNAVAILABLE when
// the database's LOCK cannot be taken (a server has it open) or
// a file cannot be read or written; ALREADY_EXISTS when a kept copy's name is taken;
// INTERNAL when a rewrite does not take.
absl::StatusOr<std::vector<WalRepair>> RepairWalFiles(
    const std::string& dir, const std::function<void(const WalRepair&)>& repaired = {});

}  // namespace casework::store::wal

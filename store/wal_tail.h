// RocksDB's write-ahead log files, read before RocksDB recovers them.
//
// The log opens RocksDB with kTolerateCorruptedTailRecords: a record that runs past the
// end of the newest data is taken for a write cut short by a crash and dropped, with
// every record after it, silently. That is right for a torn write (it was never
// acknowledged), and wrong for a whole record whose length field was damaged on disk (a
// flipped bit): that record and those after it were synced and acknowledged. The signed
// checkpoint file catches the loss only when it already covers those events, and after a
// power loss it lags the log by up to its interval.
//
// The two look alike to RocksDB and differ in one thing: a whole record's checksum holds
// over its true length. So for the record that RocksDB would drop, this check tries the
// lengths a damaged field could have hidden (those within two flipped bits of the stated
// one that fit in the file); when the checksum (CRC32C over type and payload, as RocksDB
// writes it) holds for one of them, the record is whole and the log refuses to open. A
// torn payload matches one of those 136 lengths by chance with a probability of about
// 3 in 10^8. A record whose type byte was damaged into one of the recyclable format's is
// the same kind of silent loss, anywhere in a file, and is found the same way.
//
// The format (RocksDB's db/log_format.h): 32 KiB blocks; a record is checksum (4 bytes,
// little-endian, masked CRC32C), length (2, little-endian), type (1) and its payload; a
// block ends in zeros when fewer than 7 bytes are left in it; a record never crosses a
// block boundary (a long one is split into fragments, each with its own header).
#pragma once

#include <cstdint>
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

// A whole record that RocksDB would drop as the end of the file.
struct HiddenDamage {
  enum class Field { kLength, kType };
  Field field = Field::kLength;
  uint64_t offset = 0;  // of the record's header, in the file
  uint32_t stated = 0;  // what the damaged field says
  uint32_t whole = 0;   // the value under which the record's checksum holds
};

// The masked CRC32C of `type` followed by `payload`, as a record's header holds it.
uint32_t RecordChecksum(uint8_t type, std::string_view payload);

// Walks the records of one block of a file (`block` starts at byte `block_offset`; it is
// the file's last block when it reaches the end of the file) and finds the first whole
// record that RocksDB would take for the end of the file:
//  - its length runs past the end of the block (past the end of the file in the last
//    block, which RocksDB takes for a torn write), and the checksum holds over a length
//    within two flipped bits of the stated one that fits;
//  - its type is one of the recyclable format's (5 to 8, which the log never writes;
//    RocksDB takes such a record for one left by an earlier use of the file and stops
//    there, anywhere in the file), and the checksum holds under a plain type (1 to 4)
//    within two flipped bits.
// Never fails: any bytes are read as far as they go.
std::optional<HiddenDamage> FindHiddenDamage(std::string_view block, uint64_t block_offset);

// Reads every write-ahead log file (NNNNNN.log) in `dir` through `env`, block by block.
// OK when none holds hidden damage (or `dir` does not exist); DATA_LOSS naming the file
// and the byte when one does; UNAVAILABLE when a file cannot be read.
absl::Status CheckWalFiles(rocksdb::Env* env, const std::string& dir);

// A field the repair rewrote.
struct WalRepair {
  std::string file;  // the WAL file, rewritten in place
  std::string kept;  // its bytes as they were, kept beside it
  HiddenDamage damage;
};

// Rewrites, in the WAL files of `dir`, the damaged field of every whole record that
// CheckWalFiles finds, to the value under which its checksum holds: the record, and
// those after it, are then read again. Each file is first copied as it was to
// `<file>.damaged-<µs>` (synced). Returns what was rewritten (nothing when nothing is
// damaged); UNAVAILABLE when a file cannot be read or written. Offline only: no process
// may have the log open.
absl::StatusOr<std::vector<WalRepair>> RepairWalFiles(const std::string& dir);

}  // namespace casework::store::wal

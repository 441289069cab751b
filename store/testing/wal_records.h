// The record headers of a RocksDB write-ahead log file, for tests that damage one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "store/wal_tail.h"

namespace casework::store::testing {

struct WalRecord {
  uint64_t offset = 0;  // of the header in the file
  uint32_t length = 0;
  uint8_t type = 0;  // 1 full, 2 first, 3 middle, 4 last
};

// Every record header of `bytes` (a whole WAL file), walked as RocksDB's reader walks
// it: block by block, to the zeros that end a block or the end of the file.
inline std::vector<WalRecord> WalRecords(std::string_view bytes) {
  std::vector<WalRecord> records;
  for (uint64_t block = 0; block < bytes.size(); block += wal::kBlockSize) {
    const uint64_t end = std::min<uint64_t>(block + wal::kBlockSize, bytes.size());
    for (uint64_t at = block; at + wal::kHeaderSize <= end;) {
      const uint32_t length = static_cast<uint8_t>(bytes[at + 4]) |
                              (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 5])) << 8);
      const auto type = static_cast<uint8_t>(bytes[at + 6]);
      if (type == 0 && length == 0) break;
      records.push_back(WalRecord{at, length, type});
      at += wal::kHeaderSize + length;
    }
  }
  return records;
}

}  // namespace casework::store::testing

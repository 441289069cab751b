// Fuzz target: the check of RocksDB's write-ahead log before the log opens
// (store/wal_tail.h), which reads whatever bytes the disk holds.
//
// Feeds the input to FindHiddenDamage as one block of a file.
// Asserts: no crash and no sanitizer report; what it calls damage is a record inside the
// block whose stated field differs from the whole one, and whose checksum holds with the
// whole value, over bytes inside the block.
#include <algorithm>

#include "fuzz/fuzz_support.h"
#include "store/wal_tail.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace wal = ::casework::store::wal;
  constexpr uint64_t kBase = 1'000'000;  // where the block is in its file
  const std::string_view input = casework::fuzz::AsText(data, size);
  const std::optional<wal::HiddenDamage> damage = wal::FindHiddenDamage(input, kBase);
  if (!damage.has_value()) return 0;
  const std::string_view block = input.substr(0, std::min<size_t>(size, wal::kBlockSize));
  FUZZ_CHECK(damage->offset >= kBase, "the offset is in the file's terms");
  const uint64_t at = damage->offset - kBase;
  FUZZ_CHECK(at + wal::kHeaderSize <= block.size(), "the damaged header is in the block");
  uint32_t checksum = 0;
  for (int i = 3; i >= 0; --i) checksum = (checksum << 8) | static_cast<uint8_t>(block[at + i]);
  const uint32_t length = static_cast<uint8_t>(block[at + 4]) |
                          (static_cast<uint32_t>(static_cast<uint8_t>(block[at + 5])) << 8);
  const auto type = static_cast<uint8_t>(block[at + 6]);
  const std::string_view payload = block.substr(at + wal::kHeaderSize);
  FUZZ_CHECK(damage->stated != damage->whole, "damage changes the field");
  if (damage->field == wal::HiddenDamage::Field::kLength) {
    FUZZ_CHECK(damage->stated == length, "the stated length is the header's");
    FUZZ_CHECK(length > payload.size(), "the stated length runs past the block");
    FUZZ_CHECK(damage->whole <= payload.size(), "the whole record is in the block");
    FUZZ_CHECK(wal::RecordChecksum(type, payload.substr(0, damage->whole)) == checksum,
               "the checksum holds over the whole length");
  } else {
    FUZZ_CHECK(damage->stated == type, "the stated type is the header's");
    FUZZ_CHECK(damage->whole >= 1 && damage->whole <= 4, "the whole type is a plain one");
    FUZZ_CHECK(length <= payload.size(), "the record is in the block");
    FUZZ_CHECK(wal::RecordChecksum(static_cast<uint8_t>(damage->whole),
                                   payload.substr(0, length)) == checksum,
               "the checksum holds under the whole type");
  }
  return 0;
}

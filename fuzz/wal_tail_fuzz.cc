// Fuzz target: the check of RocksDB's write-ahead log before the log opens
// (store/wal_tail.h), which reads whatever bytes the disk holds.
//
// Feeds the input to WalkBlock as one block of a file (outside a fragmented record, and
// inside one), and to RecordsToTheEnd; and, as a whole WAL file followed by zeros (as a
// WAL written into zero-filled space is, store/zero_filled_wal.h), to TrimTornWrite.
// Asserts: no crash and no sanitizer report; where the walk stops or skips is a header
// inside the block, of the kind it names; a value it calls whole makes the record's
// checksum hold over bytes inside the block; where RecordsToTheEnd says whole records
// start, they do, one after the other, to the block's end or to a trailer of zeros; a
// cut is inside the file, leaves the bytes before it as they were, and leaves nothing more
// to cut.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "fuzz/fuzz_support.h"
#include "store/wal_tail.h"

namespace {

namespace wal = ::casework::store::wal;

uint32_t Fixed32(std::string_view bytes, uint64_t at) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

uint32_t Fixed16(std::string_view bytes, uint64_t at) {
  return static_cast<uint8_t>(bytes[at]) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 8);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kBase = 32 * wal::kBlockSize;  // where the block is in its file
  const std::string_view input = casework::fuzz::AsText(data, size);
  const std::string_view block = input.substr(0, std::min<size_t>(size, wal::kBlockSize));

  bool in_fragment = (size % 2) == 1;
  const wal::BlockWalk walk = wal::WalkBlock(input, kBase, &in_fragment);
  FUZZ_CHECK(walk.end == wal::BlockWalk::End::kRead || walk.stop.has_value(),
             "a skip or a stop says where");
  if (walk.stop.has_value()) {
    const wal::HiddenDamage& stop = *walk.stop;
    FUZZ_CHECK(stop.offset >= kBase, "the offset is in the file's terms");
    const uint64_t at = stop.offset - kBase;
    FUZZ_CHECK(at + wal::kHeaderSize <= block.size(), "the header is in the block");
    const uint32_t checksum = Fixed32(block, at);
    const uint32_t length = Fixed16(block, at + 4);
    const auto type = static_cast<uint8_t>(block[at + 6]);
    const std::string_view payload = block.substr(at + wal::kHeaderSize);
    switch (stop.field) {
      case wal::HiddenDamage::Field::kLength:
        FUZZ_CHECK(stop.stated == length, "the stated length is the header's");
        FUZZ_CHECK(length > payload.size(), "the stated length runs past the block");
        if (stop.whole.has_value()) {
          FUZZ_CHECK(*stop.whole != length && *stop.whole <= payload.size(),
                     "the whole length differs and fits");
          FUZZ_CHECK(wal::RecordChecksum(type, payload.substr(0, *stop.whole)) == checksum,
                     "the checksum holds over the whole length");
        }
        break;
      case wal::HiddenDamage::Field::kType:
        FUZZ_CHECK(walk.end == wal::BlockWalk::End::kStopFile, "a recyclable type stops");
        FUZZ_CHECK(stop.stated == type && type >= 5 && type <= 8, "the type is recyclable");
        if (stop.whole.has_value()) {
          FUZZ_CHECK(*stop.whole >= 1 && *stop.whole <= 4, "the whole type is a plain one");
          FUZZ_CHECK(length <= payload.size(), "the record is in the block");
          FUZZ_CHECK(wal::RecordChecksum(static_cast<uint8_t>(*stop.whole),
                                         payload.substr(0, length)) == checksum,
                     "the checksum holds under the whole type");
        }
        break;
      case wal::HiddenDamage::Field::kZeroHeader:
        FUZZ_CHECK(walk.end == wal::BlockWalk::End::kSkipRest, "zeros skip the block's rest");
        FUZZ_CHECK(type == 0 && length == 0, "the header is zeros");
        FUZZ_CHECK(!stop.whole.has_value(), "zeros are not repaired");
        break;
    }
  }

  const std::optional<uint64_t> start = wal::RecordsToTheEnd(block, 3);
  if (start.has_value()) {
    FUZZ_CHECK(*start >= 3, "the records start where they were looked for");
    const auto type = static_cast<uint8_t>(block[*start + 6]);
    FUZZ_CHECK(type == 1 || type == 2, "a full record or a first fragment starts them");
    uint64_t at = *start;
    while (at + wal::kHeaderSize <= block.size()) {
      FUZZ_CHECK(wal::WholeRecordAt(block, at), "whole records one after the other");
      at += wal::kHeaderSize + Fixed16(block, at + 4);
    }
    FUZZ_CHECK(std::all_of(block.begin() +
                               static_cast<std::ptrdiff_t>(std::min<uint64_t>(at, block.size())),
                           block.end(), [](char c) { return c == '\0'; }),
               "to the end of the block, or to a trailer of zeros");
  }
  // The input as the newest WAL file of a directory, with zeros after it.
  static const std::string dir = [] {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("wal_tail_fuzz." + std::to_string(::getpid())))
            .string();
    std::filesystem::create_directories(path);
    return path;
  }();
  const std::string file = dir + "/000007.log";
  std::string bytes(input);
  bytes.resize(bytes.size() + 3 * wal::kBlockSize, '\0');
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  const absl::StatusOr<std::optional<wal::TornWrite>> found = wal::TrimTornWrite(dir, false);
  FUZZ_CHECK(found.ok(), "a readable file is read to the end");
  const absl::StatusOr<std::optional<wal::TornWrite>> cut = wal::TrimTornWrite(dir);
  FUZZ_CHECK(cut.ok(), "a readable file is read to the end");
  FUZZ_CHECK(found->has_value() == cut->has_value(), "finding and cutting agree");
  if (cut->has_value()) {
    FUZZ_CHECK((*cut)->offset == (*found)->offset, "at the same place");
    FUZZ_CHECK((*cut)->offset < input.size(), "the cut is inside what was written");
    std::ifstream in(file, std::ios::binary);
    const std::string after((std::istreambuf_iterator<char>(in)), {});
    FUZZ_CHECK(after == bytes.substr(0, (*cut)->offset), "the bytes before the cut are kept");
    const absl::StatusOr<std::optional<wal::TornWrite>> again = wal::TrimTornWrite(dir);
    FUZZ_CHECK(again.ok() && !again->has_value(), "nothing more to cut");
  }
  return 0;
}

// The write-ahead log check (store/wal_tail.h) on WAL files written by RocksDB itself.
#include "store/wal_tail.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "store/testing/temp_dir.h"
#include "store/testing/wal_records.h"

namespace casework::store::wal {
namespace {

namespace fs = std::filesystem;
using ::casework::store::testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A database in `dir` whose WAL holds what `write` wrote, closed without a flush. Returns
// the WAL's path.
std::string WalOf(const std::string& dir, const std::function<void(rocksdb::DB&)>& write) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.avoid_flush_during_shutdown = true;
  rocksdb::DB* raw = nullptr;
  EXPECT_TRUE(rocksdb::DB::Open(options, dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  write(*db);
  EXPECT_TRUE(db->FlushWAL(/*sync=*/true).ok());
  EXPECT_TRUE(db->Close().ok());
  std::string wal;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".log" && fs::file_size(entry.path()) > 0) {
      wal = entry.path().string();
    }
  }
  EXPECT_FALSE(wal.empty());
  return wal;
}

// `puts` synced writes of 100 bytes to 40 KiB (so that some records are split into
// fragments across blocks).
std::string WriteWal(const std::string& dir, int puts, std::mt19937_64& rng) {
  return WalOf(dir, [&](rocksdb::DB& db) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    for (int i = 0; i < puts; ++i) {
      std::string value(100 + rng() % (40 << 10), static_cast<char>('a' + rng() % 26));
      EXPECT_TRUE(db.Put(sync, absl::StrCat("key", i), value).ok());
    }
  });
}

// Opens the database in `dir` as RocksDB alone would with the log's recovery mode, and
// counts its keys (a void function, for ASSERT_*).
void CountKeys(const std::string& dir, int* keys) {
  rocksdb::Options options;
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  options.paranoid_checks = true;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened = rocksdb::DB::Open(options, dir, &raw);
  ASSERT_TRUE(opened.ok()) << opened.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  *keys = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++*keys;
}

using Header = ::casework::store::testing::WalRecord;

// That `status`'s message holds `part`.
void ExpectHas(const absl::Status& status, const std::string& part) {
  EXPECT_NE(status.message().find(part), std::string_view::npos)
      << "no \"" << part << "\" in: " << status;
}

class WalTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_.seed(12345);
    wal_ = WriteWal(dir_.Sub("db"), 60, rng_);
    pristine_ = ReadFile(wal_);
    headers_ = ::casework::store::testing::WalRecords(pristine_);
    ASSERT_GT(pristine_.size(), 4 * kBlockSize);
    ASSERT_GT(headers_.size(), 60u);
  }

  absl::Status CheckWith(const std::string& bytes) {
    WriteFile(wal_, bytes);
    return CheckWalFiles(rocksdb::Env::Default(), dir_.Sub("db"));
  }

  TempDir dir_;
  std::mt19937_64 rng_;
  std::string wal_;
  std::string pristine_;
  std::vector<Header> headers_;
};

TEST_F(WalTailTest, RocksDbsOwnRecordsParseToTheEndWithTheirChecksums) {
  // The walk ends exactly at the end of the file, and every record's checksum holds:
  // the format read here is RocksDB's.
  const Header& last = headers_.back();
  EXPECT_EQ(last.offset + kHeaderSize + last.length, pristine_.size());
  for (const Header& header : headers_) {
    const std::string_view payload(pristine_.data() + header.offset + kHeaderSize, header.length);
    uint32_t stored = 0;
    for (int i = 3; i >= 0; --i) {
      stored = (stored << 8) | static_cast<uint8_t>(pristine_[header.offset + i]);
    }
    EXPECT_EQ(RecordChecksum(header.type, payload), stored) << "record at " << header.offset;
  }
  EXPECT_TRUE(CheckWith(pristine_).ok());
}

TEST_F(WalTailTest, AWholeRecordBehindALengthPastTheEndIsDamage) {
  // Every record that starts in the last block, with one or two bits of its length
  // flipped so that it runs past the end of the file.
  const uint64_t last_block = (pristine_.size() - 1) / kBlockSize * kBlockSize;
  int checked = 0;
  for (const Header& header : headers_) {
    if (header.offset < last_block) continue;
    for (uint32_t mask : {0x8000u, 0x4000u, 0xc000u, 0x2001u}) {
      const uint32_t flipped = header.length ^ mask;
      if (header.offset + kHeaderSize + flipped <= pristine_.size()) continue;
      std::string damaged = pristine_;
      damaged[header.offset + 4] = static_cast<char>(flipped & 0xff);
      damaged[header.offset + 5] = static_cast<char>(flipped >> 8);
      const absl::Status status = CheckWith(damaged);
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << header.offset << " " << mask;
      ExpectHas(status, absl::StrCat(" is damaged at byte ", header.offset, ":"));
      ExpectHas(status, absl::StrCat("holds over ", header.length, " bytes"));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

TEST_F(WalTailTest, AWholeRecordWithARecyclableTypeIsDamageAnywhere) {
  // A type turned into one of the recyclable format's (5 to 8), which RocksDB reads as
  // the end of the file: bit 2 of full, first and middle (1, 2, 3 to 5, 6, 7), bit 0 of
  // last (4 to 5), and three bits (1 to 6). Each is found, with its true type.
  int checked = 0;
  for (size_t i = 0; i < headers_.size(); i += 5) {
    const Header& header = headers_[i];
    for (const uint8_t mask : {0x04, 0x01, 0x07}) {
      const uint8_t damaged_type = header.type ^ mask;
      if (damaged_type < 5 || damaged_type > 8) continue;
      std::string damaged = pristine_;
      damaged[header.offset + 6] = static_cast<char>(damaged_type);
      const absl::Status status = CheckWith(damaged);
      EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << header.offset;
      ExpectHas(status, absl::StrCat(" is damaged at byte ", header.offset, ":"));
      ExpectHas(status, absl::StrCat("holds with type ", header.type, ")"));
      ++checked;
    }
  }
  EXPECT_GT(checked, 8);
}

// Damage that no value of the field explains (the type and the payload of one record,
// or a header of zeros inside a block) is still refused when a whole record follows it:
// a torn write is the last write to a file, so this one is not torn. It cannot be
// repaired in place.
TEST_F(WalTailTest, UnexplainedDamageBeforeAWholeRecordIsRefusedAndNotRepaired) {
  const Header* victim = nullptr;
  for (const Header& header : headers_) {
    if (header.type == 1 && header.offset > kBlockSize && header.length > 16 &&
        header.offset % kBlockSize + kHeaderSize + header.length + kHeaderSize < kBlockSize) {
      victim = &header;  // a full record with another record after it in its block
      break;
    }
  }
  ASSERT_NE(victim, nullptr);
  {
    std::string damaged = pristine_;
    damaged[victim->offset + 6] = '\x05';
    damaged[victim->offset + kHeaderSize + 8] ^= 0x10;
    const absl::Status status = CheckWith(damaged);
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    ExpectHas(status,
              absl::StrCat(" is damaged at byte ", victim->offset, ": its type field says 5"));
    ExpectHas(status, absl::StrCat("its length leads to a whole record at byte ",
                                   victim->offset + kHeaderSize + victim->length));
    ExpectHas(status, "cannot be repaired in place");
    const absl::StatusOr<std::vector<WalRepair>> repairs = RepairWalFiles(dir_.Sub("db"));
    EXPECT_EQ(repairs.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(ReadFile(wal_), damaged) << "the repair changed a file it cannot repair";
  }
  {
    std::string damaged = pristine_;
    for (uint64_t i = 0; i < kHeaderSize; ++i) damaged[victim->offset + i] = '\0';
    const absl::Status status = CheckWith(damaged);
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    ExpectHas(status, "its header is zeros");
    ExpectHas(status, absl::StrCat("whole records follow it from byte ",
                                   victim->offset + kHeaderSize + victim->length));
  }
}

// A header of zeros on the last record of a block: RocksDB skips the rest of the block
// and reads on at the next one. When that one starts a whole record, the zeros hid a
// record that was written whole (a torn write would be the last of its file).
TEST(WalTail, AZeroedHeaderOfABlocksLastRecordIsRefused) {
  TempDir dir;
  const std::string db_dir = dir.Sub("db");
  std::mt19937_64 rng(7);
  const std::string wal = WalOf(db_dir, [&](rocksdb::DB& db) {
    for (int i = 0; i < 20000; ++i) {
      EXPECT_TRUE(
          db.Put(rocksdb::WriteOptions(), absl::StrCat("k", i), std::string(50 + rng() % 100, 'v'))
              .ok());
    }
  });
  const std::string pristine = ReadFile(wal);
  const std::vector<Header> records = ::casework::store::testing::WalRecords(pristine);
  const Header* last_in_block = nullptr;
  for (size_t i = 0; i + 1 < records.size() && last_in_block == nullptr; ++i) {
    if (records[i].type == 1 && records[i + 1].offset % kBlockSize == 0 &&
        records[i + 1].type == 1) {
      last_in_block = &records[i];
    }
  }
  ASSERT_NE(last_in_block, nullptr) << "no full record ends a block here";
  std::string damaged = pristine;
  for (uint64_t i = 0; i < kHeaderSize; ++i) damaged[last_in_block->offset + i] = '\0';
  WriteFile(wal, damaged);
  const absl::Status status = CheckWalFiles(rocksdb::Env::Default(), db_dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  const uint64_t next_block = (last_in_block->offset / kBlockSize + 1) * kBlockSize;
  ExpectHas(status, absl::StrCat("whole records follow it from byte ", next_block));
}

TEST_F(WalTailTest, ATornTailIsNotDamage) {
  // Cut anywhere in the last two records (as a crash leaves the file): RocksDB is right
  // to drop what is cut, and the check does not refuse.
  const uint64_t from = headers_[headers_.size() - 2].offset;
  for (uint64_t cut = from; cut < pristine_.size(); cut += 1 + rng_() % 97) {
    const absl::Status status = CheckWith(pristine_.substr(0, cut));
    EXPECT_TRUE(status.ok()) << "cut at " << cut << ": " << status;
  }
  // And preallocated zeros after the last record.
  EXPECT_TRUE(CheckWith(pristine_ + std::string(5000, '\0')).ok());
}

// A client can write bytes that form a whole record into an event. When the batch that
// holds them is torn, they are the torn record's own payload: not refused, whether the
// torn record is cut short or its header reads as zeros.
TEST(WalTail, ARecordInsideATornRecordsPayloadIsNotDamage) {
  TempDir dir;
  const std::string db_dir = dir.Sub("db");
  std::string planted(200, 'p');
  const uint32_t crc = RecordChecksum(1, planted);
  std::string header(7, '\0');
  for (int i = 0; i < 4; ++i) header[i] = static_cast<char>(crc >> (8 * i));
  header[4] = static_cast<char>(planted.size() & 0xff);
  header[5] = static_cast<char>(planted.size() >> 8);
  header[6] = '\x01';
  const std::string value = std::string(300, 'v') + header + planted + std::string(3000, 'w');
  const std::string wal = WalOf(db_dir, [&](rocksdb::DB& db) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    EXPECT_TRUE(db.Put(sync, "first", std::string(500, 'a')).ok());
    EXPECT_TRUE(db.Put(sync, "planted", value).ok());
  });
  const std::string pristine = ReadFile(wal);
  const std::vector<Header> records = ::casework::store::testing::WalRecords(pristine);
  ASSERT_EQ(records.size(), 2u);
  const size_t inside = pristine.find(header + planted);
  ASSERT_NE(inside, std::string::npos);
  ASSERT_TRUE(WholeRecordAt(pristine.substr(0, kBlockSize), inside));
  // Cut after the planted bytes: the batch is torn.
  const std::string cut = pristine.substr(0, inside + header.size() + planted.size() + 100);
  WriteFile(wal, cut);
  EXPECT_TRUE(CheckWalFiles(rocksdb::Env::Default(), db_dir).ok());
  // And the torn record's header as zeros (a page that never reached the disk).
  std::string zeroed = cut;
  for (uint64_t i = 0; i < kHeaderSize; ++i) zeroed[records[1].offset + i] = '\0';
  WriteFile(wal, zeroed);
  EXPECT_TRUE(CheckWalFiles(rocksdb::Env::Default(), db_dir).ok());
}

TEST_F(WalTailTest, GarbageAfterTheLastRecordIsNotDamage) {
  // What a crash may leave after the last synced record besides a cut: bytes of no
  // record. Nothing whole follows them, so they are taken for a torn write.
  for (int trial = 0; trial < 50; ++trial) {
    std::string garbage(1 + rng_() % 6000, '\0');
    for (char& c : garbage) c = static_cast<char>(rng_());
    const std::string bytes = pristine_ + garbage;
    // RocksDB itself refuses garbage whose first header fits and fails its checksum; the
    // check must not refuse any of it.
    const absl::Status status = CheckWith(bytes);
    EXPECT_TRUE(status.ok()) << status;
  }
  bool in_fragment = false;
  EXPECT_FALSE(WalkBlock("", 0, &in_fragment).stop.has_value());
  EXPECT_FALSE(WalkBlock("abc", 0, &in_fragment).stop.has_value());
  EXPECT_FALSE(RecordsToTheEnd("abcdefgh", 0).has_value());
}

// What the check is for: RocksDB alone (7.8, with the log's recovery mode) opens a WAL
// with either damage without a word, and without the records from the damaged one on.
// When a RocksDB release reports these itself, this test fails and says so.
TEST_F(WalTailTest, RocksDbAloneOpensWithoutTheRecordsBehindTheDamage) {
  const uint64_t last_block = (pristine_.size() - 1) / kBlockSize * kBlockSize;
  const Header* in_last = nullptr;
  const Header* full_early = nullptr;
  for (const Header& header : headers_) {
    if (header.offset >= last_block && in_last == nullptr) in_last = &header;
    if (header.type == 1 && header.offset > 2 * kBlockSize && full_early == nullptr) {
      full_early = &header;
    }
  }
  ASSERT_NE(in_last, nullptr);
  ASSERT_NE(full_early, nullptr);
  for (const auto& [offset, mask] :
       {std::pair<uint64_t, char>{in_last->offset + 5, static_cast<char>(0x80)},
        std::pair<uint64_t, char>{full_early->offset + 6, static_cast<char>(0x04)}}) {
    SCOPED_TRACE(absl::StrCat("byte ", offset));
    const std::string db_dir = dir_.Sub(absl::StrCat("copy", offset));
    fs::copy(dir_.Sub("db"), db_dir, fs::copy_options::recursive);
    std::string damaged = pristine_;
    damaged[offset] = static_cast<char>(damaged[offset] ^ mask);
    WriteFile(db_dir + "/" + fs::path(wal_).filename().string(), damaged);
    EXPECT_EQ(CheckWalFiles(rocksdb::Env::Default(), db_dir).code(), absl::StatusCode::kDataLoss);
    int keys = 0;
    CountKeys(db_dir, &keys);
    EXPECT_LT(keys, 60) << "RocksDB kept every record";
  }
}

// Twenty synced writes of about 1 KiB (full records), then one of 70,000 bytes (a first
// fragment, a middle one and a last one, over three blocks).
void PutTwentyThenBig(rocksdb::DB& db) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(db.Put(sync, absl::StrCat("key", i), std::string(900 + 37 * i, 'k')).ok());
  }
  EXPECT_TRUE(db.Put(sync, "big", std::string(70000, 'z')).ok());
}

// A WAL file written into zeros (store/zero_filled_wal.h) whose last write a crash tore:
// its start on disk, zeros (whole sectors) where the rest was to be. RocksDB alone
// refuses it; TrimTornWrite cuts it where the write began, and RocksDB then reads every
// earlier record.
TEST(WalTail, AWriteTornOverZerosIsCutWhereItBegan) {
  TempDir dir;
  const std::string db_dir = dir.Sub("db");
  // The last write is split into fragments over three blocks.
  const std::string wal = WalOf(db_dir, [&](rocksdb::DB& db) { PutTwentyThenBig(db); });
  const std::string pristine = ReadFile(wal);
  const std::vector<Header> records = ::casework::store::testing::WalRecords(pristine);
  ASSERT_EQ(records.size(), 23u);
  const uint64_t last = records[20].offset;  // the first fragment of the last write
  ASSERT_EQ(records[20].type, 2);
  const uint64_t zeros_to = pristine.size() + (1u << 20);
  const std::string pristine_db = dir.Sub("pristine");
  fs::copy(db_dir, pristine_db, fs::copy_options::recursive);

  // The shapes a crash leaves: a prefix of the write (a process killed inside it: any
  // byte; a disk: whole sectors), or sectors of it lost in any order (a disk).
  auto prefix = [&](uint64_t end) {
    std::string torn = pristine.substr(0, end);
    torn.resize(zeros_to, '\0');
    return torn;
  };
  auto without = [&](uint64_t from, uint64_t to) {
    std::string torn = pristine;
    torn.resize(zeros_to, '\0');
    for (uint64_t i = from; i < to; ++i) torn[i] = '\0';
    return torn;
  };
  auto without_sector = [&](uint64_t sector) { return without(sector, sector + 512); };
  const std::vector<std::pair<std::string, std::string>> shapes = {
      {"a sector prefix inside the first fragment", prefix((last / 512 + 1) * 512)},
      {"a byte prefix inside the first fragment", prefix(last + kHeaderSize + 100)},
      {"up to the second fragment's header", prefix(records[21].offset)},
      {"a sector prefix inside the second fragment", prefix(records[21].offset + 4096)},
      {"the last fragment's header only", prefix(records[22].offset + kHeaderSize)},
      {"a sector prefix inside the last fragment", prefix(records[22].offset + 512)},
      {"a sector of the first fragment lost", without_sector((last / 512 + 2) * 512)},
      {"the second fragment's header lost", without_sector(records[21].offset)},
      {"a sector of the second fragment lost", without_sector(records[21].offset + 8192)},
      {"the first fragment lost whole", without(last, records[21].offset)},
      {"the second fragment's block lost whole",
       without(records[21].offset, records[21].offset + kBlockSize)},
  };
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& [shape, torn] = shapes[i];
    SCOPED_TRACE(shape);
    const std::string db = dir.Sub(absl::StrCat("torn", i));
    fs::copy(pristine_db, db, fs::copy_options::recursive);
    const std::string file = db + "/" + fs::path(wal).filename().string();
    WriteFile(file, torn);
    {
      rocksdb::Options options;
      options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
      options.paranoid_checks = true;
      rocksdb::DB* raw = nullptr;
      const rocksdb::Status opened = rocksdb::DB::Open(options, db, &raw);
      delete raw;
      EXPECT_TRUE(opened.IsCorruption()) << "RocksDB alone: " << opened.ToString();
    }
    // Restore the torn file (the refused open above left it as it was, but be sure).
    WriteFile(file, torn);
    absl::StatusOr<std::optional<TornWrite>> cut = TrimTornWrite(db);
    ASSERT_TRUE(cut.ok()) << cut.status();
    ASSERT_TRUE(cut->has_value());
    EXPECT_EQ((*cut)->file, file);
    EXPECT_EQ((*cut)->offset, last);
    EXPECT_EQ((*cut)->dropped, zeros_to - last);
    EXPECT_EQ(fs::file_size(file), last);
    EXPECT_TRUE(CheckWalFiles(rocksdb::Env::Default(), db).ok());
    int keys = 0;
    CountKeys(db, &keys);
    EXPECT_EQ(keys, 20);
  }
}

// A record damaged on disk with records after it, in a file with zeros after its last
// record: no tear (a later write was acknowledged), so nothing is cut, whatever the damaged
// header now says, and RocksDB refuses the file as it would without the zeros. (With the
// last fragment's header zeroed, the walk goes on through that block to the last write's
// last fragment: the records inside the block with the lost header must be seen.)
TEST(WalTail, DamageBeforeLaterRecordsIsNeverCutAsATear) {
  TempDir dir;
  const std::string db_dir = dir.Sub("db");
  const std::string wal = WalOf(db_dir, [&](rocksdb::DB& db) {
    PutTwentyThenBig(db);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(db.Put(sync, absl::StrCat("after", i), std::string(300, 'a')).ok());
    }
    // And one more write, from that block into the next.
    EXPECT_TRUE(db.Put(sync, "last", std::string(20000, 'l')).ok());
  });
  std::string pristine = ReadFile(wal);
  const std::vector<Header> records = ::casework::store::testing::WalRecords(pristine);
  ASSERT_EQ(records.size(), 28u);
  ASSERT_EQ(records[22].type, 4);  // the big write's last fragment, then three full records
  ASSERT_EQ(records[22].offset / kBlockSize, records[25].offset / kBlockSize);
  ASSERT_EQ(records[26].type, 2);  // and the last write, over two blocks
  ASSERT_EQ(records[27].offset / kBlockSize, records[22].offset / kBlockSize + 1);
  pristine.resize(pristine.size() + (1u << 20), '\0');
  const uint64_t s1 = records[23].offset;
  auto damaged = [&](const std::function<void(std::string*)>& damage) {
    std::string bytes = pristine;
    damage(&bytes);
    return bytes;
  };
  const std::vector<std::pair<std::string, std::string>> shapes = {
      {"a full record's type read as zero", damaged([&](std::string* b) { (*b)[s1 + 6] = '\0'; })},
      {"a full record's type read as a first fragment's",
       damaged([&](std::string* b) { (*b)[s1 + 6] = '\x02'; })},
      {"a full record's length one bit longer",
       damaged([&](std::string* b) { (*b)[s1 + 5] = static_cast<char>((*b)[s1 + 5] ^ 0x10); })},
      {"a last fragment's header zeroed", damaged([&](std::string* b) {
         for (uint64_t i = 0; i < kHeaderSize; ++i) (*b)[records[22].offset + i] = '\0';
       })},
      {"a last fragment's type read as a middle one's",
       damaged([&](std::string* b) { (*b)[records[22].offset + 6] = '\x03'; })},
  };
  for (const auto& [shape, bytes] : shapes) {
    SCOPED_TRACE(shape);
    WriteFile(wal, bytes);
    absl::StatusOr<std::optional<TornWrite>> cut = TrimTornWrite(db_dir);
    ASSERT_TRUE(cut.ok()) << cut.status();
    EXPECT_FALSE(cut->has_value()) << "cut at " << (*cut)->offset;
    EXPECT_TRUE(ReadFile(wal) == bytes) << "the file was changed";
  }
}

// What TrimTornWrite leaves alone: zeros after whole records (the end of the log), and
// damage that no tear leaves (a flipped bit in the last record, zeros that do not start
// inside the broken record, bytes after the zeros). RocksDB reads the first and refuses
// the others, as without zero-filled files.
TEST_F(WalTailTest, TrimTornWriteLeavesWholeRecordsAndOtherDamageAlone) {
  const std::string db_dir = dir_.Sub("db");
  std::string zero_tail = pristine_;
  zero_tail.resize(pristine_.size() + (1u << 20), '\0');
  std::string flipped = zero_tail;
  const Header& last = headers_.back();
  flipped[last.offset + kHeaderSize + last.length / 2] ^= 0x10;
  std::string garbage_after = zero_tail;
  garbage_after[zero_tail.size() - 100] = 'x';
  std::string torn_then_bytes = pristine_.substr(0, (last.offset / 512 + 1) * 512);
  torn_then_bytes.resize(zero_tail.size(), '\0');
  torn_then_bytes[torn_then_bytes.size() - 3000] = 'y';
  for (const std::string* bytes : {&zero_tail, &flipped, &garbage_after, &torn_then_bytes}) {
    WriteFile(wal_, *bytes);
    absl::StatusOr<std::optional<TornWrite>> cut = TrimTornWrite(db_dir);
    ASSERT_TRUE(cut.ok()) << cut.status();
    EXPECT_FALSE(cut->has_value()) << "cut at " << (*cut)->offset;
    EXPECT_TRUE(ReadFile(wal_) == *bytes) << "the file was changed";
  }
  WriteFile(wal_, zero_tail);
  int keys = 0;
  CountKeys(db_dir, &keys);
  EXPECT_EQ(keys, 60);
  EXPECT_TRUE(TrimTornWrite(dir_.Sub("missing")).ok());
}

TEST_F(WalTailTest, RepairRewritesTheDamagedFieldsAndKeepsTheFileAsItWas) {
  const uint64_t last_block = (pristine_.size() - 1) / kBlockSize * kBlockSize;
  const Header* in_last = nullptr;
  const Header* full_early = nullptr;
  for (const Header& header : headers_) {
    if (header.offset >= last_block && in_last == nullptr) in_last = &header;
    if (header.type == 1 && header.offset > kBlockSize && full_early == nullptr) {
      full_early = &header;
    }
  }
  ASSERT_NE(in_last, nullptr);
  ASSERT_NE(full_early, nullptr);
  std::string damaged = pristine_;
  damaged[in_last->offset + 5] = static_cast<char>(damaged[in_last->offset + 5] ^ 0x80);
  damaged[full_early->offset + 6] = static_cast<char>(damaged[full_early->offset + 6] ^ 0x04);
  WriteFile(wal_, damaged);
  ASSERT_EQ(CheckWalFiles(rocksdb::Env::Default(), dir_.Sub("db")).code(),
            absl::StatusCode::kDataLoss);

  int reported = 0;
  absl::StatusOr<std::vector<WalRepair>> repairs =
      RepairWalFiles(dir_.Sub("db"), [&](const WalRepair&) { ++reported; });
  ASSERT_TRUE(repairs.ok()) << repairs.status();
  ASSERT_EQ(repairs->size(), 2u);
  EXPECT_EQ(reported, 2);
  EXPECT_EQ((*repairs)[0].damage.field, HiddenDamage::Field::kType);
  EXPECT_EQ((*repairs)[0].damage.offset, full_early->offset);
  EXPECT_EQ((*repairs)[1].damage.field, HiddenDamage::Field::kLength);
  EXPECT_EQ((*repairs)[1].damage.offset, in_last->offset);
  EXPECT_EQ((*repairs)[1].kept, (*repairs)[0].kept);
  EXPECT_EQ(ReadFile(wal_), pristine_);
  EXPECT_EQ(ReadFile((*repairs)[0].kept), damaged);
  EXPECT_TRUE(CheckWalFiles(rocksdb::Env::Default(), dir_.Sub("db")).ok());
  // Nothing left to repair, and the kept copy is not taken for a WAL.
  repairs = RepairWalFiles(dir_.Sub("db"));
  ASSERT_TRUE(repairs.ok()) << repairs.status();
  EXPECT_TRUE(repairs->empty());

  // RocksDB reads every record again.
  int keys = 0;
  CountKeys(dir_.Sub("db"), &keys);
  EXPECT_EQ(keys, 60);
}

// All or nothing: a repairable record before damage that cannot be repaired is not
// rewritten either. The files stay exactly as found, with no kept copies, and the
// refusal names the damage that cannot be repaired.
TEST_F(WalTailTest, RepairChangesNothingWhenLaterDamageCannotBeRepaired) {
  const Header* repairable = nullptr;
  const Header* beyond_repair = nullptr;
  for (const Header& header : headers_) {
    if (header.type != 1 || header.offset < kBlockSize ||
        header.offset % kBlockSize + kHeaderSize + header.length + kHeaderSize >= kBlockSize) {
      continue;  // a full record with another record after it in its block
    }
    if (repairable == nullptr) {
      repairable = &header;
    } else if (header.offset / kBlockSize > repairable->offset / kBlockSize && header.length > 16) {
      beyond_repair = &header;
      break;
    }
  }
  ASSERT_NE(repairable, nullptr);
  ASSERT_NE(beyond_repair, nullptr);
  std::string damaged = pristine_;
  damaged[repairable->offset + 6] = '\x05';     // the type alone: its checksum shows the true one
  damaged[beyond_repair->offset + 6] = '\x05';  // the type and the payload
  damaged[beyond_repair->offset + kHeaderSize + 8] ^= 0x10;
  WriteFile(wal_, damaged);
  // The files of the directory, but the lock the repair takes (created if missing).
  auto files = [&] {
    size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.Sub("db"))) {
      n += entry.path().filename() != "casework.lock" ? 1 : 0;
    }
    return n;
  };
  const size_t files_before = files();

  int reported = 0;
  const absl::StatusOr<std::vector<WalRepair>> repairs =
      RepairWalFiles(dir_.Sub("db"), [&](const WalRepair&) { ++reported; });
  EXPECT_EQ(repairs.status().code(), absl::StatusCode::kFailedPrecondition) << repairs.status();
  ExpectHas(repairs.status(), absl::StrCat(" is damaged at byte ", beyond_repair->offset, ":"));
  ExpectHas(repairs.status(), "cannot be repaired in place");
  EXPECT_EQ(reported, 0);
  EXPECT_EQ(ReadFile(wal_), damaged) << "the repair changed a file it cannot repair whole";
  EXPECT_EQ(files(), files_before) << "the repair kept a copy of a file it did not change";
  // The check still names the first damage, the repairable one.
  const absl::Status status = CheckWalFiles(rocksdb::Env::Default(), dir_.Sub("db"));
  ExpectHas(status, absl::StrCat(" is damaged at byte ", repairable->offset, ":"));
}

TEST_F(WalTailTest, TheRepairRefusesALogThatIsOpen) {
  rocksdb::Options options;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir_.Sub("db"), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  const absl::StatusOr<std::vector<WalRepair>> repairs = RepairWalFiles(dir_.Sub("db"));
  EXPECT_EQ(repairs.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(repairs.status().message().find("stop the server"), std::string_view::npos)
      << repairs.status();
}

// RocksDB reads its manifest with the same reader and the same tolerance for a torn last
// record: a length flipped in its last block drops the newest version edits, and with
// them a flush's table file, in silence. The check reads the manifest CURRENT names too,
// and the repair restores it.
TEST(WalTail, ADamagedManifestIsRefusedAndRepaired) {
  TempDir dir;
  const std::string db_dir = dir.Sub("db");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, db_dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    for (const char* prefix : {"a", "b"}) {
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(db->Put(sync, absl::StrCat(prefix, i), "v").ok());
      ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    }
    ASSERT_TRUE(db->Close().ok());
  }
  std::string manifest;
  for (const fs::directory_entry& entry : fs::directory_iterator(db_dir)) {
    if (entry.path().filename().string().starts_with("MANIFEST-")) manifest = entry.path().string();
  }
  ASSERT_FALSE(manifest.empty());
  const std::string pristine = ReadFile(manifest);
  const std::vector<Header> records = ::casework::store::testing::WalRecords(pristine);
  ASSERT_GE(records.size(), 3u);
  ASSERT_LT(pristine.size(), kBlockSize);  // one block: its last
  // The second flush's edit: the one before the last.
  const Header& victim = records[records.size() - 2];
  std::string damaged = pristine;
  damaged[victim.offset + 5] = static_cast<char>(damaged[victim.offset + 5] ^ 0x80);

  // RocksDB alone: opens with the second flush's keys gone.
  const std::string copy = dir.Sub("copy");
  fs::copy(db_dir, copy, fs::copy_options::recursive);
  WriteFile(manifest, damaged);
  int keys = 0;
  CountKeys(db_dir, &keys);
  EXPECT_EQ(keys, 100) << "RocksDB kept the damaged manifest's last edits";
  fs::remove_all(db_dir);
  fs::copy(copy, db_dir, fs::copy_options::recursive);
  WriteFile(manifest, damaged);

  const absl::Status status = CheckWalFiles(rocksdb::Env::Default(), db_dir);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  ExpectHas(status,
            absl::StrCat("RocksDB's manifest ", manifest, " is damaged at byte ", victim.offset));
  const absl::StatusOr<std::vector<WalRepair>> repairs = RepairWalFiles(db_dir);
  ASSERT_TRUE(repairs.ok()) << repairs.status();
  ASSERT_EQ(repairs->size(), 1u);
  EXPECT_EQ(ReadFile(manifest), pristine);
  CountKeys(db_dir, &keys);
  EXPECT_EQ(keys, 200);
}

TEST(WalTail, AMissingDirectoryHoldsNoDamage) {
  TempDir dir;
  EXPECT_TRUE(CheckWalFiles(rocksdb::Env::Default(), dir.Sub("absent")).ok());
}

}  // namespace
}  // namespace casework::store::wal

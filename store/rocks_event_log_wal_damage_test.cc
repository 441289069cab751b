// Damage to the write-ahead log (docs/storage.md, "Damaged WAL records"):
//  - TornTail: the power fails while a batch is being synced (testing/power_loss_fs.h), so
//    the newest WAL ends in bytes that were written but neither synced nor acknowledged.
//    Cut at the tail's ends, at every block boundary inside it and at random points, the
//    log opens by itself with every acknowledged event at its position, Verify clean.
//  - FlippedByte: after a clean close, a bit flipped in the WAL (random positions, half of
//    them in its last 32 KiB block, where RocksDB tolerates a torn record, and the length
//    of every record that starts in that block). The log refuses to open (kDataLoss, with
//    a message naming the damage), or opens with every acknowledged event intact (the
//    byte was padding no record covers); it never opens with one missing or altered.
//  - FlippedLastRecordLengthAfterPowerLossIsRefused and FlippedRecordTypeAfterPowerLoss-
//    IsRefused: after a power loss (the checkpoint file then lags the log), a record whose
//    length or type was damaged so that RocksDB would take it for the end of the log. The
//    log refuses to open (store/wal_tail.h checks the WAL first).
// Each trial works on a fresh copy of one directory. CW_WAL_DAMAGE_TRIALS sets the number
// of random trials per test (default 30); CW_TEST_SEED replays the random choices.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "store/rocks_event_log.h"
#include "store/testing/power_loss_fs.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"
#include "store/testing/wal_records.h"
#include "store/wal_tail.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::PowerLossFs;
using ::casework::store::testing::TempDir;
namespace fs = std::filesystem;

constexpr int kThreads = 12;
constexpr int kAppendsPerThreadMax = 100'000;
constexpr uint64_t kWalBlock = 32 * 1024;  // RocksDB's log block size

uint64_t Seed() {
  const char* env = std::getenv("CW_TEST_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10)
                                       : static_cast<uint64_t>(std::random_device{}());
  std::printf("seed %llu (replay with CW_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  return seed;
}

int Trials() {
  const char* env = std::getenv("CW_WAL_DAMAGE_TRIALS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 30;
}

struct Ack {
  int64_t position = 0;
  std::string stream;
  int64_t version = 0;
  std::string bytes;
};

// A log in `root`/log written by kThreads appenders (1 to 5 KiB events, so that batches
// span WAL blocks), with the acknowledgements.
struct Written {
  std::vector<Ack> acks;
  std::string wal;  // the newest WAL, relative to `root`
  // The checkpoint file as the open of the empty log wrote it (size 0).
  std::string checkpoint_at_open;
  uint64_t synced = 0;
  uint64_t written = 0;
};

RocksEventLog::Options OptionsAt(const std::string& root) {
  RocksEventLog::Options options;
  options.path = root + "/log";
  options.checkpoint_interval_ms = 10;
  return options;
}

// Appends for `duration`, then destroys the log. With `cut_at_sync` > 0 the power fails
// at that WAL sync (and the appends stop); otherwise the log closes cleanly.
Written Write(const std::string& root, std::mt19937_64& rng, uint64_t cut_at_sync,
              std::chrono::milliseconds duration, int64_t checkpoint_interval_ms = 10) {
  fs::create_directories(root + "/log");
  auto disk = std::make_shared<PowerLossFs>(root + "/log");
  std::unique_ptr<rocksdb::Env> env = testing::NewPowerLossEnv(disk);
  RocksEventLog::Options options = OptionsAt(root);
  options.env = env.get();
  options.checkpoint_interval_ms = checkpoint_interval_ms;
  Written out;
  {
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
    EXPECT_THAT(log, IsOk());
    if (!log.ok()) return out;
    {
      std::ifstream file(root + "/log.checkpoint", std::ios::binary);
      out.checkpoint_at_open.assign(std::istreambuf_iterator<char>(file), {});
    }
    if (cut_at_sync > 0) disk->CutAtOp(PowerLossFs::kWalSync, cut_at_sync);
    absl::Mutex mu;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t, seed = rng()] {
        std::mt19937_64 mine(seed);
        const std::string stream = absl::StrCat("wal/t", t);
        int64_t version = 0;
        for (int i = 0; i < kAppendsPerThreadMax && !stop.load(); ++i) {
          std::string bytes = absl::StrCat(stream, "/v", version + 1, "/");
          bytes.resize(1024 + mine() % 4096, static_cast<char>('a' + mine() % 26));
          absl::StatusOr<AppendResult> result =
              (*log)->Append({.stream = stream, .expected_version = version, .events = {bytes}});
          if (!result.ok()) return;  // the power is off
          version = result->version;
          absl::MutexLock lock(&mu);
          out.acks.push_back(Ack{result->first_position, stream, version, std::move(bytes)});
        }
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < deadline && !disk->IsCut()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    stop.store(true);
    for (std::thread& thread : threads) thread.join();
    // Newest WAL: the largest number among the *.log files.
    for (const fs::directory_entry& entry : fs::directory_iterator(root + "/log")) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() == ".log" && ("log/" + name) > out.wal) out.wal = "log/" + name;
    }
    EXPECT_FALSE(out.wal.empty());
    EXPECT_TRUE(disk->FileState(root + "/" + out.wal, &out.written, &out.synced));
  }  // the log is destroyed: with the power off, nothing more reaches the disk
  return out;
}

// Opens a copy of `pristine` whose WAL was changed by `damage`, and checks it.
struct Outcome {
  bool opened = false;
  absl::Status status;
  int64_t missing = 0;  // acknowledged events absent or altered
  int64_t size = 0;
  bool verified = false;
};
Outcome OpenAndRead(const std::string& work, const Written& written);

template <typename Damage>
Outcome OpenDamaged(const std::string& pristine, const std::string& work, const Written& written,
                    Damage damage) {
  fs::remove_all(work);
  fs::copy(pristine, work, fs::copy_options::recursive);
  damage(work + "/" + written.wal);
  return OpenAndRead(work, written);
}

// Opens the log in `work` and compares what it holds with the acknowledgements.
Outcome OpenAndRead(const std::string& work, const Written& written) {
  Outcome outcome;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(OptionsAt(work));
  if (!log.ok()) {
    outcome.status = log.status();
    return outcome;
  }
  outcome.opened = true;
  outcome.size = (*log)->Size();
  std::vector<StoredEvent> events;
  for (int64_t from = 0; from < outcome.size;) {
    absl::StatusOr<std::vector<StoredEvent>> chunk = (*log)->ReadRange(from, 4096);
    if (!chunk.ok() || chunk->empty()) break;
    from += static_cast<int64_t>(chunk->size());
    for (StoredEvent& event : *chunk) events.push_back(std::move(event));
  }
  for (const Ack& ack : written.acks) {
    const auto i = static_cast<size_t>(ack.position);
    if (i >= events.size() || events[i].stream != ack.stream || events[i].version != ack.version ||
        events[i].bytes != ack.bytes) {
      ++outcome.missing;
    }
  }
  absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, outcome.size);
  outcome.verified = report.ok() && !report->first_mismatch.has_value() &&
                     static_cast<int64_t>(events.size()) == outcome.size;
  return outcome;
}

TEST(RocksEventLogWalDamage, TornTailOpensWithEveryAcknowledgedEvent) {
  const uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  const int trials = Trials();
  TempDir dir;
  const std::string pristine = dir.Sub("pristine");
  Written written;
  // The cut must find a batch in flight whose bytes were written: retry a few times.
  for (int attempt = 0; attempt < 5 && written.written <= written.synced; ++attempt) {
    fs::remove_all(pristine);
    written = Write(pristine, rng, 20 + rng() % 100, std::chrono::seconds(20));
  }
  ASSERT_GT(written.written, written.synced) << "no unsynced WAL tail to tear";
  ASSERT_FALSE(written.acks.empty());
  std::printf("%s: %llu bytes synced, %llu more written (%zu acknowledged events)\n",
              written.wal.c_str(), static_cast<unsigned long long>(written.synced),
              static_cast<unsigned long long>(written.written - written.synced),
              written.acks.size());

  // Both ends, every block boundary inside the tail, then random points.
  std::vector<uint64_t> points = {written.synced, written.written};
  for (uint64_t b = (written.synced / kWalBlock + 1) * kWalBlock; b < written.written;
       b += kWalBlock) {
    points.push_back(b);
  }
  while (static_cast<int>(points.size()) < trials) {
    points.push_back(std::uniform_int_distribution<uint64_t>(written.synced, written.written)(rng));
  }
  int64_t opened = 0;
  int64_t lost = 0;
  int64_t unacked_kept = 0;
  const auto acked = static_cast<int64_t>(written.acks.size());
  for (uint64_t point : points) {
    SCOPED_TRACE(absl::StrCat("WAL cut at byte ", point, ", seed ", seed));
    Outcome outcome = OpenDamaged(pristine, dir.Sub("work"), written,
                                  [&](const std::string& wal) { fs::resize_file(wal, point); });
    EXPECT_TRUE(outcome.opened) << outcome.status;
    if (!outcome.opened) continue;
    ++opened;
    lost += outcome.missing;
    EXPECT_EQ(outcome.missing, 0);
    EXPECT_TRUE(outcome.verified);
    EXPECT_GE(outcome.size, acked);
    unacked_kept += outcome.size - acked;
  }
  std::printf(
      "torn WAL tail: %zu cuts, %lld opened, %lld acknowledged events lost, %lld "
      "unacknowledged events kept\n",
      points.size(), static_cast<long long>(opened), static_cast<long long>(lost),
      static_cast<long long>(unacked_kept));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Flips the top bit, the next one, and both, of the length of every record that starts in
// the last 32 KiB block of the first `size` bytes of `wal`: the record then runs past the
// end of the file, as a torn write does (or, when it is long, its checksum fails).
std::vector<std::pair<uint64_t, char>> LastBlockLengthFlips(const std::string& wal, uint64_t size) {
  const std::string bytes = ReadAll(wal);
  std::vector<std::pair<uint64_t, char>> flips;
  if (bytes.size() < size) return flips;
  const uint64_t last_block = size > kWalBlock ? (size - 1) / kWalBlock * kWalBlock : 0;
  for (const testing::WalRecord& record :
       testing::WalRecords(std::string_view(bytes).substr(0, size))) {
    if (record.offset < last_block) continue;
    for (const int mask : {0x80, 0x40, 0xc0}) {
      flips.emplace_back(record.offset + 5, static_cast<char>(mask));
    }
  }
  return flips;
}

// Bit 2 of the type of every full, first or middle record in the first `size` bytes of
// `wal`.
std::vector<std::pair<uint64_t, char>> RecordTypeFlips(const std::string& wal, uint64_t size) {
  const std::string bytes = ReadAll(wal);
  std::vector<std::pair<uint64_t, char>> flips;
  if (bytes.size() < size) return flips;
  for (const testing::WalRecord& record :
       testing::WalRecords(std::string_view(bytes).substr(0, size))) {
    if (record.type >= 1 && record.type <= 3) flips.emplace_back(record.offset + 6, '\x04');
  }
  return flips;
}

// A log written until the power fails, before the first periodic checkpoint. What the
// disk then holds: the checkpoint file of the empty log, written when it was opened (the
// one written at close came after the power was off), and the WAL up to its synced
// length.
Written WriteUntilPowerLoss(const std::string& pristine, std::mt19937_64& rng) {
  Written written = Write(pristine, rng, 150 + rng() % 100, std::chrono::seconds(20),
                          /*checkpoint_interval_ms=*/3'600'000);
  EXPECT_FALSE(written.acks.empty());
  EXPECT_FALSE(written.checkpoint_at_open.empty());
  {
    std::ofstream file(pristine + "/log.checkpoint", std::ios::binary | std::ios::trunc);
    file << written.checkpoint_at_open;
  }
  fs::resize_file(pristine + "/" + written.wal, written.synced);
  return written;
}

// Applies each flip to a fresh copy of `pristine` and opens it: the log must refuse
// (kDataLoss) or keep every acknowledged event. Returns the silent losses.
int64_t CheckFlips(const TempDir& dir, const std::string& pristine, const Written& written,
                   const std::vector<std::pair<uint64_t, char>>& flips, uint64_t seed) {
  int64_t refused = 0;
  int64_t repaired_intact = 0;  // refused by the WAL check, then repaired: every event there
  int64_t intact = 0;
  int64_t silent = 0;
  std::map<std::string, int> reasons;  // what the refusals said
  for (const auto& [offset, mask] : flips) {
    SCOPED_TRACE(absl::StrCat("WAL byte ", offset, " ^ ", static_cast<int>(mask), ", seed ", seed));
    Outcome outcome = OpenDamaged(pristine, dir.Sub("work"), written, [&](const std::string& wal) {
      std::fstream file(wal, std::ios::in | std::ios::out | std::ios::binary);
      file.seekg(static_cast<std::streamoff>(offset));
      char byte = 0;
      file.read(&byte, 1);
      byte = static_cast<char>(byte ^ mask);
      file.seekp(static_cast<std::streamoff>(offset));
      file.write(&byte, 1);
    });
    if (!outcome.opened) {
      ++refused;
      EXPECT_EQ(outcome.status.code(), absl::StatusCode::kDataLoss) << outcome.status;
      const std::string message(outcome.status.message());
      if (message.find("caseworkd --repair-wal") != std::string::npos) {
        // The WAL check's refusal: the repair it offers loses nothing.
        absl::StatusOr<std::vector<wal::WalRepair>> repairs =
            wal::RepairWalFiles(dir.Sub("work") + "/log");
        EXPECT_TRUE(repairs.ok() && !repairs->empty()) << repairs.status();
        const Outcome repaired = OpenAndRead(dir.Sub("work"), written);
        EXPECT_TRUE(repaired.opened) << repaired.status;
        EXPECT_EQ(repaired.missing, 0);
        EXPECT_TRUE(repaired.verified);
        if (repaired.opened && repaired.missing == 0 && repaired.verified) ++repaired_intact;
      }
      std::string reason = "other: " + message.substr(0, 160);
      for (const char* known : {"checksum mismatch", "bad record length", "unknown record type",
                                "acknowledged events are missing", "but its length field says",
                                "but its type field says"}) {
        if (message.find(known) != std::string::npos) reason = known;
      }
      ++reasons[reason];
      continue;
    }
    if (outcome.missing == 0 && outcome.verified) {
      ++intact;
      continue;
    }
    ++silent;
    ADD_FAILURE() << "opened with " << outcome.missing << " acknowledged events missing or altered";
  }
  std::printf(
      "flipped WAL byte: %zu flips, %lld refused (%lld of them repaired with every event), %lld "
      "opened intact, %lld silent losses\n",
      flips.size(), static_cast<long long>(refused), static_cast<long long>(repaired_intact),
      static_cast<long long>(intact), static_cast<long long>(silent));
  for (const auto& [reason, count] : reasons) {
    std::printf("  refused %d x: %s\n", count, reason.c_str());
  }
  return silent;
}

TEST(RocksEventLogWalDamage, FlippedByteRefusesToOpenOrLosesNothing) {
  const uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  const int trials = Trials();
  TempDir dir;
  const std::string pristine = dir.Sub("pristine");
  // A clean close: the WAL is whole and synced, the checkpoint file covers every event.
  const Written written = Write(pristine, rng, 0, std::chrono::milliseconds(300));
  ASSERT_FALSE(written.acks.empty());
  ASSERT_EQ(written.written, written.synced);
  ASSERT_GT(written.synced, 0u);
  const uint64_t size = written.synced;
  std::printf("%s: %llu bytes (%zu acknowledged events)\n", written.wal.c_str(),
              static_cast<unsigned long long>(size), written.acks.size());
  // Random bytes, half of them in the last block, and the length of every record that
  // starts in the last block (RocksDB takes that for a torn write and drops the rest of
  // the WAL; the checkpoint file, which covers every event after a clean close, refuses).
  const uint64_t last_block = size > kWalBlock ? (size - 1) / kWalBlock * kWalBlock : 0;
  std::vector<std::pair<uint64_t, char>> flips;
  for (int trial = 0; trial < trials; ++trial) {
    const uint64_t offset =
        trial % 2 == 0 ? std::uniform_int_distribution<uint64_t>(0, size - 1)(rng)
                       : std::uniform_int_distribution<uint64_t>(last_block, size - 1)(rng);
    flips.emplace_back(offset, static_cast<char>(1u << (rng() % 8)));
  }
  const std::vector<std::pair<uint64_t, char>> lengths =
      LastBlockLengthFlips(pristine + "/" + written.wal, size);
  EXPECT_FALSE(lengths.empty());
  flips.insert(flips.end(), lengths.begin(), lengths.end());
  EXPECT_EQ(CheckFlips(dir, pristine, written, flips, seed), 0);
}

// After a power loss the checkpoint file lags the durable log by up to
// checkpoint_interval_ms, so it cannot catch a loss of the newest events. A record length
// damaged in the last 32 KiB block of the newest WAL looks like a torn write to RocksDB
// (kTolerateCorruptedTailRecords), which drops that record and those after it in silence;
// the log checks the WAL before RocksDB does (store/wal_tail.h) and refuses.
TEST(RocksEventLogWalDamage, FlippedLastRecordLengthAfterPowerLossIsRefused) {
  const uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::string pristine = dir.Sub("pristine");
  const Written written = WriteUntilPowerLoss(pristine, rng);
  ASSERT_GT(written.synced, 0u);
  const std::vector<std::pair<uint64_t, char>> flips =
      LastBlockLengthFlips(pristine + "/" + written.wal, written.synced);
  ASSERT_FALSE(flips.empty());
  EXPECT_EQ(CheckFlips(dir, pristine, written, flips, seed), 0);
}

// The same with bit 2 of a record's type flipped anywhere in the WAL: full, first and
// middle (1, 2, 3) become the recyclable format's 5, 6, 7, which RocksDB reads as a record
// left by an earlier use of the file, and so as the end of the log, in silence.
TEST(RocksEventLogWalDamage, FlippedRecordTypeAfterPowerLossIsRefused) {
  const uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::string pristine = dir.Sub("pristine");
  const Written written = WriteUntilPowerLoss(pristine, rng);
  ASSERT_GT(written.synced, 0u);
  std::vector<std::pair<uint64_t, char>> flips =
      RecordTypeFlips(pristine + "/" + written.wal, written.synced);
  ASSERT_FALSE(flips.empty());
  std::shuffle(flips.begin(), flips.end(), rng);
  flips.resize(std::min<size_t>(flips.size(), static_cast<size_t>(Trials())));
  EXPECT_EQ(CheckFlips(dir, pristine, written, flips, seed), 0);
}

}  // namespace
}  // namespace casework::store

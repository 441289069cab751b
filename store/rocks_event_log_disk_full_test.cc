// Disk full: the disk fills (FullDiskFs) at random moments while 8 writers append, and
// empties again. While it is full every append is refused with RESOURCE_EXHAUSTED and the
// reason DISK_FULL (none is acknowledged) and reads keep working; once space returns the
// log resumes by itself, and a refused request retried with its request id appends afresh
// at the next position. The oracle is the writers' own record: after a restart the log
// holds exactly the acknowledged events, each where it was acknowledged, every stream's
// versions 1..n, and the tree verifies.
//
// RocksDB checks the free space every 5 s while its recovery waits, so each fill takes a
// few seconds. CW_DISK_FULL_TRIALS sets the number of trials (default 2, each filling the
// disk 3 times);
// CW_TEST_SEED replays one run.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "rocksdb/utilities/backup_engine.h"
#include "store/checkpoint.h"
#include "store/rocks_event_log.h"
#include "store/testing/full_disk_fs.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"
#include "store/zero_filled_wal.h"

namespace casework::store {
namespace {

using ::casework::store::testing::FullDiskFs;
using ::casework::store::testing::IsOk;
using ::casework::store::testing::TempDir;
using Mode = RocksEventLog::WriteState::Mode;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

// Stops and joins threads when leaving a scope, also through a failed assertion.
struct JoinOnExit {
  std::atomic<bool>* stop;
  std::vector<std::thread>* threads;
  ~JoinOnExit() {
    *stop = true;
    for (std::thread& t : *threads) {
      if (t.joinable()) t.join();
    }
  }
};

struct Ack {
  std::string stream;
  int64_t version = 0;
  int64_t position = 0;
  std::string bytes;
};

// Waits up to `limit` for the log's write mode to become `mode`; true when it did.
bool AwaitMode(const RocksEventLog& log, Mode mode, std::chrono::milliseconds limit,
               std::chrono::microseconds* waited) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (log.GetWriteState().mode == mode) {
      *waited = std::chrono::duration_cast<std::chrono::microseconds>(elapsed);
      return true;
    }
    if (elapsed > limit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Fills the disk `fills_per_trial` times a trial while 8 writers append, and checks the
// oracle after each trial. `hidden`: the file system's free space does not show the full
// disk, so the log's guard lets the write through and RocksDB meets the full disk itself.
void RunFills(bool hidden, int trials, int fills_per_trial) {
  const int kFillsPerTrial = fills_per_trial;
  constexpr int kWriters = 8;
  const uint64_t seed = EnvInt("CW_TEST_SEED", 0) != 0
                            ? static_cast<uint64_t>(EnvInt("CW_TEST_SEED", 0))
                            : std::random_device{}();
  std::printf("seed %llu (replay with CW_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  int64_t total_acked = 0;
  int64_t total_refused = 0;
  int64_t total_fills = 0;
  int64_t total_syncs_failing = 0;
  int64_t total_turns = 0;
  std::chrono::microseconds resume_max{0};
  std::chrono::microseconds resume_sum{0};

  for (int trial = 0; trial < trials; ++trial) {
    SCOPED_TRACE(absl::StrCat("trial ", trial, ", seed ", seed));
    TempDir dir;
    RocksEventLog::Options options;
    options.path = dir.Sub("log");
    std::filesystem::create_directories(options.path);
    // Through RocksDB: small memtables, so that flushes (and their failures) happen during
    // the trial too. Through the guard: memtables that rarely flush, so that RocksDB meets
    // the full disk only when a flush was under way (a second read-only turn).
    options.memtable_bytes_max = hidden ? 1u << 20 : 16u << 20;
    options.wal_bytes_max = hidden ? 2u << 20 : 32u << 20;
    options.disk_reserve_bytes = 1u << 20;
    std::vector<Ack> acks;
    int64_t refused = 0;
    {
      auto fs = std::make_shared<FullDiskFs>(rocksdb::FileSystem::Default());
      std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
      RocksEventLog::Options faulty = options;
      faulty.env = env.get();
      faulty.disk_full_retry_ms = 50;
      absl::StatusOr<std::unique_ptr<RocksEventLog>> opened = RocksEventLog::Open(faulty);
      ASSERT_THAT(opened, IsOk());
      RocksEventLog& log = **opened;
      std::atomic<int> transitions{0};
      log.SetWriteStateListener([&](const RocksEventLog::WriteState&) { ++transitions; });

      absl::Mutex mu;
      std::atomic<bool> stop{false};
      std::vector<std::string> bad_refusals;
      std::vector<std::thread> writers;
      // A failed assertion returns early: the writers are stopped and joined all the same.
      JoinOnExit join_writers{&stop, &writers};
      for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
          const std::string stream = absl::StrCat("cases/t", trial, "w", w);
          int64_t version = 0;
          // Bounded: at most this many attempts, refusals included.
          for (int attempt = 0; attempt < 200000 && !stop.load(); ++attempt) {
            const std::string bytes = absl::StrCat("event ", w, "/", version + 1);
            absl::StatusOr<AppendResult> result =
                log.Append({.stream = stream,
                            .expected_version = version,
                            .events = {bytes},
                            .request_id = absl::StrCat("r", w, "-", version + 1),
                            .request_fingerprint = bytes});
            absl::MutexLock lock(&mu);
            if (!result.ok()) {
              ++refused;
              if (result.status().code() != absl::StatusCode::kResourceExhausted ||
                  RefusalReason(result.status()) != kRefusalDiskFull) {
                bad_refusals.push_back(result.status().ToString());
                return;
              }
              mu.Unlock();
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
              mu.Lock();
              continue;  // the same request id and expected version again
            }
            // A refused append was not written, so its retry is never a replay.
            if (result->replayed) {
              bad_refusals.push_back(absl::StrCat(stream, " v", version + 1, " replayed"));
              return;
            }
            acks.push_back({stream, result->version, result->first_position, bytes});
            version = result->version;
          }
        });
      }

      for (int fill = 0; fill < kFillsPerTrial; ++fill) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % 60));
        const bool syncs_fail = rng() % 2 == 1;
        total_syncs_failing += syncs_fail ? 1 : 0;
        if (!hidden) {
          // As a disk fills: its free space falls below the reserve before writes fail,
          // so the guard refuses the next batch; the one already past it still lands.
          fs->SetFreeBytes(0);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        fs->SetFull(true, syncs_fail, hidden);
        std::chrono::microseconds waited{};
        ASSERT_TRUE(AwaitMode(log, Mode::kDiskFull, std::chrono::seconds(30), &waited))
            << "the log did not notice the full disk";
        // Refused at once, with the reason and what to do.
        absl::StatusOr<AppendResult> now = log.Append(
            {.stream = "cases/probe", .expected_version = 0, .events = {"x"}, .request_id = "p"});
        ASSERT_FALSE(now.ok());
        EXPECT_EQ(now.status().code(), absl::StatusCode::kResourceExhausted);
        EXPECT_EQ(RefusalReason(now.status()), kRefusalDiskFull);
        EXPECT_NE(now.status().message().find("resumes by itself"), std::string::npos)
            << now.status();
        // Reads keep working and serve what was acknowledged.
        {
          absl::MutexLock lock(&mu);
          if (!acks.empty()) {
            const Ack& ack = acks[rng() % acks.size()];
            absl::StatusOr<std::vector<StoredEvent>> events =
                log.ReadStream(ack.stream, ack.version, 1);
            ASSERT_THAT(events, IsOk());
            ASSERT_EQ(events->size(), 1u);
            EXPECT_EQ((*events)[0].position, ack.position);
            EXPECT_EQ((*events)[0].bytes, ack.bytes);
          }
        }
        // Full for a while: several resume attempts fail (their flushes find no space).
        std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 150));
        EXPECT_EQ(log.GetWriteState().mode, Mode::kDiskFull);
        fs->SetFull(false);
        fs->SetFreeBytes(std::nullopt);
        ASSERT_TRUE(AwaitMode(log, Mode::kWritable, std::chrono::seconds(30), &waited))
            << "appends did not resume within 30 s of space returning: "
            << log.GetWriteState().detail;
        resume_max = std::max(resume_max, waited);
        resume_sum += waited;
        ++total_fills;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      stop = true;
      for (std::thread& t : writers) t.join();
      EXPECT_TRUE(bad_refusals.empty()) << bad_refusals.front();
      // A fill can take two turns: the guard refuses, and a flush that was due fails in
      // RocksDB meanwhile, whose error the first write after the guard lifts meets. Such a
      // second turn resumes by itself (RocksDB's recovery may take seconds), and the mode
      // listener runs after the state changed: wait for both (bounded: 30 s).
      for (int i = 0; i < 3000; ++i) {
        const RocksEventLog::WriteState now = log.GetWriteState();
        if (now.mode == Mode::kWritable && now.resumed_count == now.disk_full_count &&
            transitions.load() == 2 * now.disk_full_count) {
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      const RocksEventLog::WriteState state = log.GetWriteState();
      EXPECT_GE(state.disk_full_count, kFillsPerTrial);
      EXPECT_EQ(state.resumed_count, state.disk_full_count);
      EXPECT_EQ(transitions.load(), 2 * state.disk_full_count);
      total_turns += state.disk_full_count;
      // In process: exactly the acknowledged events.
      EXPECT_EQ(log.Size(), static_cast<int64_t>(acks.size()));
      opened->reset();
    }

    // Restart without the faulty file system: every acknowledged event where it was
    // acknowledged, nothing else, versions 1..n per stream, and the tree verifies.
    absl::StatusOr<std::unique_ptr<RocksEventLog>> reopened = RocksEventLog::Open(options);
    ASSERT_THAT(reopened, IsOk());
    ASSERT_EQ((*reopened)->Size(), static_cast<int64_t>(acks.size()));
    std::map<int64_t, const Ack*> by_position;
    for (const Ack& ack : acks) {
      EXPECT_TRUE(by_position.emplace(ack.position, &ack).second)
          << "two acknowledgements name position " << ack.position;
    }
    absl::StatusOr<std::vector<StoredEvent>> all = (*reopened)->ReadRange(0, acks.size() + 1);
    ASSERT_THAT(all, IsOk());
    ASSERT_EQ(all->size(), acks.size());
    for (const StoredEvent& event : *all) {
      auto it = by_position.find(event.position);
      ASSERT_NE(it, by_position.end())
          << "position " << event.position << " was never acknowledged";
      EXPECT_EQ(event.stream, it->second->stream);
      EXPECT_EQ(event.version, it->second->version);
      EXPECT_EQ(event.bytes, it->second->bytes);
    }
    absl::StatusOr<RocksEventLog::VerifyReport> report =
        (*reopened)->Verify(0, (*reopened)->Size());
    ASSERT_THAT(report, IsOk());
    EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
    total_acked += static_cast<int64_t>(acks.size());
    total_refused += refused;
  }
  std::printf(
      "disk full (%s): %d trials, %lld fills (%lld with failing syncs), %lld read-only turns; "
      "%lld appends acknowledged, all found after restart and nothing else; %lld refusals, all "
      "RESOURCE_EXHAUSTED DISK_FULL; appends resumed %.1f ms after space returned on average, "
      "%.1f ms at most\n",
      hidden ? "the full disk met by RocksDB" : "the full disk seen by the guard", trials,
      static_cast<long long>(total_fills), static_cast<long long>(total_syncs_failing),
      static_cast<long long>(total_turns), static_cast<long long>(total_acked),
      static_cast<long long>(total_refused),
      total_fills > 0 ? static_cast<double>(resume_sum.count()) / 1000.0 / total_fills : 0.0,
      static_cast<double>(resume_max.count()) / 1000.0);
}

// The guard sees the disk fill (its free space reads 0): nothing is written while it is full.
TEST(RocksEventLogDiskFull, RefusedWhileFullAndResumedByItselfWhenSpaceReturns) {
  RunFills(/*hidden=*/false, EnvInt("CW_DISK_FULL_TRIALS", 2), 5);
}

// The disk fills between two looks at its free space (the guard saw room): RocksDB's WAL
// write fails for lack of space. The log turns read-only until restart, and does not
// resume in place when space returns (RocksDB 7.8 could write the next batch into the
// WAL that holds the failed record, with the same sequence numbers); after a restart it
// holds exactly the acknowledged events and takes the failed append again.
TEST(RocksEventLogDiskFull, AWriteThatFindsNoSpaceIsReadOnlyUntilRestart) {
  TempDir dir;
  RocksEventLog::Options options;
  options.path = dir.Sub("log");
  std::filesystem::create_directories(options.path);
  options.disk_full_retry_ms = 10;
  {
    auto fs = std::make_shared<FullDiskFs>(rocksdb::FileSystem::Default());
    std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
    RocksEventLog::Options faulty = options;
    faulty.env = env.get();
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(faulty);
    ASSERT_THAT(log, IsOk());
    for (int v = 0; v < 2; ++v) {
      ASSERT_THAT((*log)->Append({.stream = "s",
                                  .expected_version = v,
                                  .events = {absl::StrCat("e", v + 1)},
                                  .request_id = absl::StrCat("r", v + 1)}),
                  IsOk());
    }
    fs->SetFull(true, /*syncs_fail=*/false, /*hidden=*/true);
    absl::StatusOr<AppendResult> failed = (*log)->Append(
        {.stream = "s", .expected_version = 2, .events = {"e3"}, .request_id = "r3"});
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
    EXPECT_EQ(RefusalReason(failed.status()), kRefusalReadOnly);
    EXPECT_NE(failed.status().message().find("outcome is unknown"), std::string::npos);
    EXPECT_GT(fs->refused(), 0u);
    RocksEventLog::WriteState state = (*log)->GetWriteState();
    EXPECT_EQ(state.mode, Mode::kFailed);
    EXPECT_EQ(state.disk_full_count, 1);
    // Space returns: still read-only (a restart is needed), reads served.
    fs->SetFull(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ((*log)->GetWriteState().mode, Mode::kFailed);
    absl::StatusOr<AppendResult> after = (*log)->Append(
        {.stream = "s", .expected_version = 2, .events = {"e3"}, .request_id = "r3"});
    ASSERT_FALSE(after.ok());
    EXPECT_EQ(RefusalReason(after.status()), kRefusalReadOnly);
    absl::StatusOr<std::vector<StoredEvent>> events = (*log)->ReadStream("s", 1, 10);
    ASSERT_THAT(events, IsOk());
    EXPECT_EQ(events->size(), 2u);
  }
  // The restart: the acknowledged events, a tree that verifies, and the failed append
  // taken afresh at the next position.
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->Size(), 2);
  absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, (*log)->Size());
  ASSERT_THAT(report, IsOk());
  EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
  absl::StatusOr<AppendResult> retried =
      (*log)->Append({.stream = "s", .expected_version = 2, .events = {"e3"}, .request_id = "r3"});
  ASSERT_THAT(retried, IsOk());
  EXPECT_FALSE(retried->replayed);
  EXPECT_EQ(retried->first_position, 2);
}

// A log on a FullDiskFs whose free space a test sets: appends are refused below 8 MiB
// free and taken again from 10 MiB, looked at every 10 ms.
struct LogOnFullDiskFs {
  TempDir dir;
  std::shared_ptr<FullDiskFs> fs = std::make_shared<FullDiskFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);

  RocksEventLog::Options Options() {
    RocksEventLog::Options options;
    options.path = dir.Sub("log");
    std::filesystem::create_directories(options.path);
    options.env = env.get();
    options.disk_full_retry_ms = 10;
    options.disk_reserve_bytes = 8u << 20;
    return options;
  }
  // The log opened, with `events` one-event appends on stream "s" ("e" each).
  absl::StatusOr<std::unique_ptr<RocksEventLog>> OpenWithEvents(int events) {
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(Options());
    if (!log.ok()) return log;
    for (int i = 0; i < events; ++i) {
      absl::StatusOr<AppendResult> appended =
          (*log)->Append({.stream = "s", .expected_version = i, .events = {"e"}});
      if (!appended.ok()) return appended.status();
    }
    return log;
  }
};

// The backups in `dir` (RocksDB's list, kept or not by a checkpoint beside them).
std::vector<rocksdb::BackupInfo> BackupsIn(const std::string& dir) {
  std::vector<rocksdb::BackupInfo> backups;
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  if (!rocksdb::BackupEngineReadOnly::Open(rocksdb::Env::Default(),
                                           rocksdb::BackupEngineOptions(dir), &raw)
           .ok()) {
    ADD_FAILURE() << "cannot open the backups in " << dir;
    return backups;
  }
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  engine->GetBackupInfo(&backups);
  return backups;
}

// Waits (bounded) until the spare WAL file at `spare` is there (or, `there` false, gone);
// whether it is.
bool AwaitSpare(const std::string& spare, bool there = true) {
  for (int i = 0; i < 2000 && std::filesystem::exists(spare) != there; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::filesystem::exists(spare) == there;
}

// The log holds exactly `version` events, stream "s" at versions 1..version each holding
// `event`, and its tree verifies.
void ExpectStreamWhole(RocksEventLog& log, int64_t version, const std::string& event) {
  EXPECT_EQ(log.Size(), version);
  absl::StatusOr<std::vector<StoredEvent>> events = log.ReadStream("s", 1, version + 10);
  ASSERT_THAT(events, IsOk());
  ASSERT_EQ(events->size(), static_cast<size_t>(version));
  for (size_t i = 0; i < events->size(); ++i) {
    ASSERT_EQ((*events)[i].version, static_cast<int64_t>(i) + 1);
    ASSERT_EQ((*events)[i].bytes, event);
  }
  absl::StatusOr<RocksEventLog::VerifyReport> report = log.Verify(0, log.Size());
  ASSERT_THAT(report, IsOk());
  EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
}

// The write state names the mode and the error; appends stay refused while the free space
// is below the reserve, and resume once a quarter more is free.
TEST(RocksEventLogDiskFull, WriteStateReportsTheModeAndWaitsForRoom) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(disk.Options());
  ASSERT_THAT(log, IsOk());
  ASSERT_THAT((*log)->Append({.stream = "s", .expected_version = 0, .events = {"a"}}), IsOk());
  EXPECT_EQ((*log)->GetWriteState().mode, Mode::kWritable);
  EXPECT_EQ((*log)->GetWriteState().read_only_since_us, 0);
  // Below the reserve (the disk is not full yet): refused, nothing written.
  fs->SetFreeBytes(7u << 20);
  absl::StatusOr<AppendResult> refused =
      (*log)->Append({.stream = "s", .expected_version = 1, .events = {"b"}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RefusalReason(refused.status()), kRefusalDiskFull);
  EXPECT_EQ(fs->refused(), 0u) << "the guard let a write reach the disk";
  RocksEventLog::WriteState state = (*log)->GetWriteState();
  EXPECT_EQ(state.mode, Mode::kDiskFull);
  EXPECT_NE(state.detail.find("7340032 bytes free"), std::string::npos) << state.detail;
  EXPECT_GT(state.read_only_since_us, 0);
  EXPECT_EQ(state.disk_full_count, 1);
  // Above the reserve but below the margin: still refused, reads served.
  fs->SetFreeBytes(9u << 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ((*log)->GetWriteState().mode, Mode::kDiskFull);
  EXPECT_EQ((*log)->Size(), 1);
  absl::StatusOr<std::vector<StoredEvent>> events = (*log)->ReadStream("s", 1, 10);
  ASSERT_THAT(events, IsOk());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].bytes, "a");
  // A quarter more than the reserve: appends resume.
  fs->SetFreeBytes(10u << 20);
  std::chrono::microseconds waited{};
  ASSERT_TRUE(AwaitMode(**log, Mode::kWritable, std::chrono::seconds(30), &waited));
  EXPECT_THAT((*log)->Append({.stream = "s", .expected_version = 1, .events = {"b"}}), IsOk());
  EXPECT_EQ((*log)->GetWriteState().resumed_count, 1);
}

// Below the reserve the spare WAL file's zeros are given back to the file system; once
// there is room again the log resumes, and the next WAL files get spares again.
TEST(RocksEventLogDiskFull, TheSpareWalFileIsGivenBackBelowTheReserve) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  RocksEventLog::Options options = disk.Options();
  options.wal_spare_bytes = 2u << 20;
  const std::string spare = options.path + "/" + ZeroFilledWalFs::kSpareName;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  ASSERT_THAT((*log)->Append({.stream = "s", .expected_version = 0, .events = {"a"}}), IsOk());
  ASSERT_TRUE(AwaitSpare(spare)) << "no spare was prepared after the first WAL file took one";
  fs->SetFreeBytes(7u << 20);
  absl::StatusOr<AppendResult> refused =
      (*log)->Append({.stream = "s", .expected_version = 1, .events = {"b"}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(RefusalReason(refused.status()), kRefusalDiskFull);
  EXPECT_FALSE(std::filesystem::exists(spare)) << "the spare kept its room on a full disk";
  fs->SetFreeBytes(std::nullopt);
  std::chrono::microseconds waited{};
  ASSERT_TRUE(AwaitMode(**log, Mode::kWritable, std::chrono::seconds(30), &waited));
  EXPECT_THAT((*log)->Append({.stream = "s", .expected_version = 1, .events = {"b"}}), IsOk());
  log->reset();
  // At the next start there is room: a spare again.
  log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->Size(), 2);
  ASSERT_THAT((*log)->Append({.stream = "s", .expected_version = 2, .events = {"c"}}), IsOk());
  EXPECT_TRUE(AwaitSpare(spare));
}

// RocksDB meets the full disk in a flush that began before the disk filled, while the guard
// still sees room (above the reserve, below the room to resume), and a spare WAL file was
// prepared after that flush's memtable switch. Appends are refused until there is room;
// meanwhile the spare's zeros go back to the file system, since they are room for the
// flush RocksDB's recovery starts with. Once there is room the log resumes by itself,
// every acknowledged append is there after a restart, and the tree verifies.
TEST(RocksEventLogDiskFull, AFlushThatMeetsTheFullDiskGivesTheSpareBack) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  RocksEventLog::Options options = disk.Options();
  options.wal_spare_bytes = 2u << 20;
  options.memtable_bytes_max = 1u << 20;  // flushes every few hundred appends
  const std::string spare = options.path + "/" + ZeroFilledWalFs::kSpareName;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  const std::string event(1000, 'e');
  int64_t version = 0;
  auto append = [&]() {
    absl::StatusOr<AppendResult> r = (*log)->Append({.stream = "s",
                                                     .expected_version = version,
                                                     .events = {event},
                                                     .request_id = absl::StrCat("r", version + 1)});
    if (r.ok()) ++version;
    return r;
  };
  // A flush begins (its memtable switch takes the spare ready then) and waits to create
  // its table file.
  fs->HoldTableFiles(true);
  // Whatever happens below, a held flush is let go before the log is closed.
  struct Release {
    FullDiskFs* fs;
    ~Release() { fs->HoldTableFiles(false); }
  } release{fs.get()};
  for (int i = 0; i < 20000 && fs->table_files_waiting() == 0; ++i) {
    ASSERT_THAT(append(), IsOk());
  }
  ASSERT_GT(fs->table_files_waiting(), 0) << "no flush began";
  ASSERT_TRUE(AwaitSpare(spare)) << "no spare was prepared after the memtable switch";
  // The spare held open: given back, its file has no name left (RocksDB's own recovery, a
  // few seconds on, begins a WAL file, which would take a spare still there and name it).
  // The open descriptor also keeps its inode from being reused meanwhile.
  const int spare_fd = ::open(spare.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(spare_fd, 0);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_spare{spare_fd};
  auto spare_still_named = [spare_fd]() {
    struct stat st {};
    return ::fstat(spare_fd, &st) == 0 && st.st_nlink > 0;
  };

  // The disk fills; the guard sees 9 MiB free, above the 8 MiB reserve and below the 10 MiB
  // it resumes at. The flush goes on and meets the full disk.
  fs->SetFreeBytes(9u << 20);
  fs->SetInPlaceWritesFit(true);
  fs->SetFull(true, /*syncs_fail=*/true, /*hidden=*/true);
  fs->HoldTableFiles(false);
  // No append until the flush has failed: one let through before RocksDB stops writes
  // could switch a memtable, whose new WAL file takes the spare.
  for (int i = 0; i < 3000 && fs->refused() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(fs->refused(), 0u) << "the flush did not meet the full disk";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  absl::StatusOr<AppendResult> refused = absl::UnknownError("no append tried");
  for (int i = 0; i < 3000; ++i) {
    refused = append();
    if (!refused.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(refused.ok()) << "appends went on after the flush met the full disk";
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_EQ(RefusalReason(refused.status()), kRefusalDiskFull) << refused.status();
  EXPECT_EQ((*log)->GetWriteState().mode, Mode::kDiskFull);
  EXPECT_GT(fs->refused(), 0u);
  EXPECT_TRUE(AwaitSpare(spare, false)) << "the spare kept its room while the log waited for room";
  EXPECT_FALSE(spare_still_named())
      << "the spare became a WAL file instead of going back to the file system";
  const int64_t before_room = version;

  fs->SetFull(false);
  fs->SetFreeBytes(std::nullopt);
  std::chrono::microseconds waited{};
  ASSERT_TRUE(AwaitMode(**log, Mode::kWritable, std::chrono::seconds(60), &waited))
      << (*log)->GetWriteState().detail;
  // The refused append, retried with its request id, is taken at the next position.
  absl::StatusOr<AppendResult> retried = append();
  ASSERT_THAT(retried, IsOk());
  EXPECT_FALSE(retried->replayed);
  EXPECT_EQ(retried->first_position, before_room);
  // A spare is made again at a later WAL file (bounded).
  for (int i = 0; i < 5000 && !std::filesystem::exists(spare); ++i) {
    ASSERT_THAT(append(), IsOk());
    if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(AwaitSpare(spare)) << "no spare after the resume";
  log->reset();

  log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  ExpectStreamWhole(**log, version, event);
}

// The disk fills between two looks at its free space while the WAL is written over zeros
// prepared ahead, which a full disk does not refuse: appends go on into the zeros. The
// first write that needs new room ends them, either a flush's table file (RocksDB's own
// recovery: refused as for a full disk, resumed by itself once there is room) or a WAL
// file begun after the one spare was taken (read-only until restart, the last append's
// outcome unknown); which of the two comes first depends on how the column families'
// flushes fall. Either way every acknowledged append is there after the room returns (and
// the restart), the refused append is taken when retried with its request id, and the
// tree verifies.
TEST(RocksEventLogDiskFull, ADiskThatFillsUnderAZeroFilledWalLosesNoAcknowledgedAppend) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  RocksEventLog::Options options = disk.Options();
  options.wal_spare_bytes = 4u << 20;
  options.memtable_bytes_max = 1u << 20;  // flushes every few hundred appends
  const std::string spare = options.path + "/" + ZeroFilledWalFs::kSpareName;
  // Whether the newest WAL file is one written over a spare (it is as long as the spare).
  auto newest_wal_in_zeros = [&options]() {
    std::filesystem::path newest;
    for (const auto& entry : std::filesystem::directory_iterator(options.path)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".log") && name != "LOG" && (newest.empty() || entry.path() > newest)) {
        newest = entry.path();
      }
    }
    return !newest.empty() && std::filesystem::file_size(newest) >= options.wal_spare_bytes;
  };
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  const std::string event(1000, 'e');
  int64_t version = 0;
  auto append = [&]() {
    absl::StatusOr<AppendResult> r = (*log)->Append({.stream = "s",
                                                     .expected_version = version,
                                                     .events = {event},
                                                     .request_id = absl::StrCat("r", version + 1)});
    if (r.ok()) ++version;
    return r;
  };
  // Appends until the WAL in use is one of zeros and the next spare is ready.
  for (int i = 0; i < 20000 && !(newest_wal_in_zeros() && std::filesystem::exists(spare)); ++i) {
    ASSERT_THAT(append(), IsOk());
  }
  ASSERT_TRUE(newest_wal_in_zeros()) << "no WAL file was written over a spare";
  ASSERT_TRUE(AwaitSpare(spare));
  // The flush that the last memtable switch began has ended (a flush under way when the
  // disk fills fails at once, before any append goes into the zeros; the check below would
  // then fail although the log is right). Bounded: 30 s.
  for (int i = 0; i < 3000 && (*log)->FlushesUnderWayForTesting(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE((*log)->FlushesUnderWayForTesting()) << "a flush did not end within 30 s";
  const int64_t before_full = version;

  // Full, while the guard sees room: only writes into space a file already holds land.
  fs->SetFreeBytes(64u << 20);
  fs->SetInPlaceWritesFit(true);
  fs->SetFull(true, /*syncs_fail=*/true, /*hidden=*/true);
  absl::StatusOr<AppendResult> refused = absl::UnknownError("no append tried");
  for (int i = 0; i < 20000; ++i) {
    refused = append();
    if (!refused.ok()) break;
  }
  ASSERT_FALSE(refused.ok()) << "no flush met the full disk";
  EXPECT_GT(version, before_full) << "the WAL's zeros took no append on the full disk";
  EXPECT_GT(fs->refused(), 0u);
  const int64_t acknowledged = version;
  EXPECT_EQ((*log)->Size(), acknowledged);
  const Mode mode = (*log)->GetWriteState().mode;
  fs->SetFull(false);
  fs->SetFreeBytes(std::nullopt);
  if (mode == Mode::kDiskFull) {
    std::printf("a flush met the full disk: resumed in place\n");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
    EXPECT_EQ(RefusalReason(refused.status()), kRefusalDiskFull) << refused.status();
    std::chrono::microseconds waited{};
    ASSERT_TRUE(AwaitMode(**log, Mode::kWritable, std::chrono::seconds(60), &waited));
    ASSERT_THAT(append(), IsOk());
    // A spare is made at the next WAL file: appends until one is there (bounded).
    for (int i = 0; i < 5000 && !std::filesystem::exists(spare); ++i) {
      ASSERT_THAT(append(), IsOk());
      if (i % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(AwaitSpare(spare)) << "no spare after the resume";
    log->reset();
  } else {
    std::printf("a new WAL file met the full disk: read-only until restart\n");
    EXPECT_EQ(mode, Mode::kFailed);
    EXPECT_EQ(RefusalReason(refused.status()), kRefusalReadOnly) << refused.status();
    EXPECT_NE(refused.status().message().find("outcome is unknown"), std::string::npos)
        << refused.status();
    log->reset();
    log = RocksEventLog::Open(options);
    ASSERT_THAT(log, IsOk());
    // The refused append may be on disk whole: its retry then answers it, appending nothing.
    ASSERT_GE((*log)->Size(), acknowledged);
    ASSERT_LE((*log)->Size(), acknowledged + 1);
    absl::StatusOr<AppendResult> retried = append();
    ASSERT_THAT(retried, IsOk());
    EXPECT_EQ(retried->first_position, acknowledged);
    log->reset();
  }
  log = RocksEventLog::Open(options);
  ASSERT_THAT(log, IsOk());
  // Every acknowledged append, the retried one and any after the resume, once each.
  ExpectStreamWhole(**log, version, event);
}

// A backup needs room for a copy of the log and a second copy to verify it, and, on the
// log's own disk, the room appends resume from: without it, it is refused before anything
// is copied, and appends go on; with room, it is taken.
TEST(RocksEventLogDiskFull, ABackupWithoutRoomIsRefusedAndAppendsGoOn) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = disk.OpenWithEvents(20);
  ASSERT_THAT(log, IsOk());
  // Above the 8 MiB reserve, so appends are taken, but below the 10 MiB they resume from.
  fs->SetFreeBytes(9u << 20);
  absl::StatusOr<uint32_t> refused = (*log)->Backup(disk.dir.Sub("backups"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_NE(refused.status().message().find("no room for a backup"), std::string::npos)
      << refused.status();
  EXPECT_THAT((*log)->Append({.stream = "s", .expected_version = 20, .events = {"f"}}), IsOk());
  EXPECT_EQ(BackupsIn(disk.dir.Sub("backups")).size(), 0u) << "a backup was taken";
  fs->SetFreeBytes(64u << 20);
  EXPECT_THAT((*log)->Backup(disk.dir.Sub("backups")), IsOk());
  EXPECT_EQ(BackupsIn(disk.dir.Sub("backups")).size(), 1u);
}

// A later backup copies only the table files no earlier backup there holds: it needs room
// for those and for a whole copy restored to verify it, not for two whole copies.
TEST(RocksEventLogDiskFull, ALaterBackupNeedsRoomOnlyForWhatItAdds) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(disk.Options());
  ASSERT_THAT(log, IsOk());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1500; ++i) {
    std::string event(4096, '\0');
    for (char& c : event) c = static_cast<char>(rng());  // incompressible
    ASSERT_THAT((*log)->Append({.stream = "s", .expected_version = i, .events = {event}}), IsOk());
  }
  fs->SetFreeBytes(uint64_t{1} << 30);
  ASSERT_THAT((*log)->Backup(disk.dir.Sub("backups")), IsOk());
  // The log's table files now (the backup flushed the memtables into them).
  uint64_t tables = 0;
  for (const auto& entry : std::filesystem::directory_iterator(disk.dir.Sub("log"))) {
    if (entry.path().extension() == ".sst") tables += entry.file_size();
  }
  ASSERT_GT(tables, 4u << 20);
  // Room for one copy and the 10 MiB appends resume from, and 2 MiB: a second whole copy
  // would not fit, the verification's copy does.
  fs->SetFreeBytes((10u << 20) + tables + (2u << 20));
  ASSERT_LT((10u << 20) + tables + (2u << 20), (10u << 20) + 2 * tables);
  EXPECT_THAT((*log)->Backup(disk.dir.Sub("backups")), IsOk());
  // Less than one copy beyond the reserve: refused.
  fs->SetFreeBytes((10u << 20) + tables / 2);
  EXPECT_EQ((*log)->Backup(disk.dir.Sub("backups")).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// A backup during which the log went read-only for a full disk and resumed is not kept:
// its copy may hold a batch that was never made durable. It says to take it again, and
// the next backup, with the disk fine, is kept.
TEST(RocksEventLogDiskFull, ABackupAcrossAResumeIsNotKept) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = disk.OpenWithEvents(20);
  ASSERT_THAT(log, IsOk());
  fs->SetFreeBytes(64u << 20);
  // While the backup is checked: the disk fills (an append is refused), then room returns
  // and the log resumes.
  bool resumed = false;
  (*log)->SetBackupStepHookForTesting([&](std::string_view step) {
    if (step != "checking") return;
    fs->SetFreeBytes(7u << 20);
    absl::StatusOr<AppendResult> refused =
        (*log)->Append({.stream = "s", .expected_version = 20, .events = {"f"}});
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
    fs->SetFreeBytes(64u << 20);
    std::chrono::microseconds waited{};
    resumed = AwaitMode(**log, Mode::kWritable, std::chrono::seconds(30), &waited);
  });
  absl::StatusOr<uint32_t> backup = (*log)->Backup(disk.dir.Sub("backups"));
  ASSERT_TRUE(resumed);
  ASSERT_FALSE(backup.ok());
  EXPECT_EQ(backup.status().code(), absl::StatusCode::kAborted) << backup.status();
  EXPECT_NE(backup.status().message().find("take the backup again"), std::string::npos)
      << backup.status();
  (*log)->SetBackupStepHookForTesting(nullptr);
  // Nothing of it is left for a restore to take: the next backup is the only one.
  absl::StatusOr<uint32_t> again = (*log)->Backup(disk.dir.Sub("backups"));
  ASSERT_THAT(again, IsOk());
  const std::vector<rocksdb::BackupInfo> backups = BackupsIn(disk.dir.Sub("backups"));
  ASSERT_EQ(backups.size(), 1u);
  EXPECT_EQ(backups[0].backup_id, *again);
}

// Resuming after a full disk reads the tree's right edge back from storage and checks it
// against the head committed before. When storage gives back other bytes (here one of the
// last events, which the right edge's lowest node is computed from), the log stays
// read-only, and the head it publishes, and signs, stays the committed one.
TEST(RocksEventLogDiskFull, ATreeReadBackOtherwiseOnResumeIsNeitherPublishedNorSigned) {
  LogOnFullDiskFs disk;
  const std::shared_ptr<FullDiskFs>& fs = disk.fs;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(disk.Options());
  ASSERT_THAT(log, IsOk());
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(
        (*log)->Append({.stream = "s", .expected_version = i, .events = {absl::StrCat("e", i)}}),
        IsOk());
  }
  const RocksEventLog::TreeHead committed = (*log)->Head();
  ASSERT_EQ(committed.size, 20);
  fs->SetFreeBytes(7u << 20);
  ASSERT_FALSE((*log)->Append({.stream = "s", .expected_version = 20, .events = {"x"}}).ok());
  ASSERT_EQ((*log)->GetWriteState().mode, Mode::kDiskFull);
  ASSERT_THAT((*log)->DamageEventForTesting(18), IsOk());
  fs->SetFreeBytes(10u << 20);
  std::chrono::microseconds waited{};
  ASSERT_TRUE(AwaitMode(**log, Mode::kFailed, std::chrono::seconds(30), &waited))
      << "the log resumed on a tree that does not match";
  EXPECT_NE((*log)->GetWriteState().detail.find("does not match the one committed"),
            std::string::npos)
      << (*log)->GetWriteState().detail;
  EXPECT_EQ((*log)->Head().size, committed.size);
  EXPECT_EQ((*log)->Head().root, committed.root) << "a head read back otherwise was published";
  absl::StatusOr<std::string> note = (*log)->SignedCheckpoint();
  ASSERT_THAT(note, IsOk());
  absl::StatusOr<Checkpoint> opened =
      OpenCheckpoint(*note, (*log)->CheckpointVerifier(), (*log)->CheckpointVerifier().name());
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->root, committed.root) << "a head read back otherwise was signed";
  EXPECT_FALSE((*log)->Append({.stream = "s", .expected_version = 20, .events = {"x"}}).ok());
}

}  // namespace
}  // namespace casework::store

// Proves durability under power loss (docs/storage.md, "Power loss"). The log runs on a
// RocksDB FileSystem that models a disk (testing/power_loss_fs.h): only synced bytes and
// fsynced directory entries survive, unsynced tails may be torn. Appender threads write to
// many streams with Append and AppendAsync and remember every acknowledged event; the
// power is cut at a random moment; the log is destroyed, the directory is rewritten to
// what the disk would hold, and the log is reopened with the default Env. Then:
//  - every acknowledged event is at its acknowledged position with its stream, version
//    and bytes, and its request id answers with that position;
//  - the log is a prefix of what was written: the log verified after the previous cut
//    is unchanged, positions are gapless, versions contiguous per stream, every event
//    beyond the previous log is one an appender submitted (unacknowledged ones may
//    survive), each append's projection counter matches its stream's version;
//  - Verify(0, Size()) finds no mismatch, the root equals a reference RFC 9162 tree and
//    extends the previous root, the checkpoint file is not ahead of the log;
//  - the reopened log accepts a new append at the next position.
// Cut moments alternate: a random delay (mostly mid-WAL-write), the n-th WAL append or
// sync, the n-th operation of a memtable flush or compaction (large events fill the
// memtable), and the n-th file operation of an Open that recovers a written WAL.
// CW_POWER_CUTS sets the number of cuts (default 30); CW_TEST_SEED replays the random
// choices (thread timing still varies).
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/rocks_event_log.h"
#include "store/testing/merkle_reference.h"
#include "store/testing/power_loss_fs.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::PowerLossFs;
using ::casework::store::testing::ReferenceTree;
using ::casework::store::testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr int kThreads = 6;  // even: Append; odd: AppendAsync
constexpr int kStreamsPerThread = 24;
constexpr int kStreams = kThreads * kStreamsPerThread;
constexpr int kAsyncWindow = 8;  // appends in flight per AsyncAppend thread
constexpr int kAppendsPerThreadMax = 1'000'000;
// A new log beyond these, so that each check stays short.
constexpr int64_t kFreshLogBytes = int64_t{32} << 20;
constexpr int64_t kFreshLogEvents = 30'000;
// One flush cut in this many fills the memtable with large events (slow: 64 MiB); the
// others flush with an online backup.
constexpr int kMemtableFullEvery = 32;
constexpr char kProjectionTable[] = "power-loss";
constexpr char kProbeStream[] = "pl/probe";

enum class Mode { kTimer, kWal, kFlush, kRecovery };
constexpr int kModes = 4;
const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kTimer:
      return "timer";
    case Mode::kWal:
      return "wal";
    case Mode::kFlush:
      return "flush";
    case Mode::kRecovery:
      return "recovery";
  }
  return "?";
}

// The file operations of a memtable flush or a compaction (and of the log switch and
// file deletions around them).
constexpr uint32_t kFlushOps = PowerLossFs::kTableAppend | PowerLossFs::kTableSync |
                               PowerLossFs::kManifestAppend | PowerLossFs::kManifestSync |
                               PowerLossFs::kDirSync | PowerLossFs::kDelete | PowerLossFs::kRename |
                               PowerLossFs::kCreate;

std::string StreamName(int stream) { return absl::StrCat("pl/s", stream); }

// -1 unless `name` is StreamName(k) for a k in [0, kStreams).
int StreamIndex(std::string_view name) {
  constexpr std::string_view kPrefix = "pl/s";
  if (name.substr(0, kPrefix.size()) != kPrefix) return -1;
  int index = -1;
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(name.data() + kPrefix.size(), end, index);
  if (ec != std::errc() || ptr != end || index < 0 || index >= kStreams) return -1;
  return index;
}

std::string RequestId(uint32_t epoch, int64_t first_version) {
  return absl::StrCat("e", epoch, "/v", first_version);
}

// The bytes of an event: a header naming it, then `filler` pseudo-random bytes.
std::string EventBytes(int stream, int64_t version, uint32_t epoch, uint32_t filler) {
  std::string out = absl::StrCat("s", stream, "/v", version, "/e", epoch, "/");
  const size_t header = out.size();
  out.resize(header + filler);
  uint64_t x = (static_cast<uint64_t>(stream) << 40) ^ static_cast<uint64_t>(version) ^
               (static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ull);
  for (size_t i = header; i < out.size(); i += 8) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(&out[i], &z, std::min<size_t>(8, out.size() - i));
  }
  return out;
}

Hash LeafOf(std::string_view stream, int64_t version, std::string_view bytes) {
  std::string record;
  format::AppendEventRecord(&record, stream, version, bytes);
  return rfc9162::HashLeaf(record);
}

// An event an appender submitted: its bytes are EventBytes(stream, version, epoch, filler).
struct Submitted {
  uint32_t epoch = 0;
  uint32_t filler = 0;
};

// An acknowledged event. `count` is the number of events of its append on the append's
// first event, else 0.
struct Ack {
  int64_t position = 0;
  int stream = 0;
  int64_t version = 0;
  uint32_t epoch = 0;
  uint32_t filler = 0;
  int count = 0;
};

// The appender threads of one epoch. Thread t owns streams [t * kStreamsPerThread, ...),
// so each stream has one writer and at most one append in flight.
class Appenders {
 public:
  Appenders(RocksEventLog* log, uint32_t epoch, uint64_t seed, bool large,
            std::vector<std::map<int64_t, Submitted>>* submitted)
      : log_(log), epoch_(epoch), seed_(seed), large_(large), submitted_(submitted) {
    for (int t = 0; t < kThreads; ++t) {
      threads_.emplace_back([this, t] { t % 2 == 0 ? RunBlocking(t) : RunAsync(t); });
    }
  }
  ~Appenders() { Stop(); }

  // Stops and joins the threads (every callback has run when this returns).
  void Stop() {
    stop_.store(true);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  std::vector<Ack> acks() {
    absl::MutexLock lock(&mu_);
    return acks_;
  }
  int64_t anomalies() {
    absl::MutexLock lock(&mu_);
    return anomalies_;
  }

 private:
  AppendRequest MakeRequest(int stream, int64_t expected, std::mt19937_64& rng,
                            std::vector<uint32_t>* fillers) {
    AppendRequest request;
    request.stream = StreamName(stream);
    request.expected_version = expected;
    const int count = large_ ? 1 + static_cast<int>(rng() % 2) : 1 + static_cast<int>(rng() % 3);
    fillers->clear();
    for (int i = 0; i < count; ++i) {
      const auto filler =
          static_cast<uint32_t>(large_ ? (16u << 10) + rng() % (80u << 10) : 8 + rng() % 200);
      fillers->push_back(filler);
      const int64_t version = expected + 1 + i;
      (*submitted_)[static_cast<size_t>(stream)][version] = Submitted{epoch_, filler};
      request.events.push_back(EventBytes(stream, version, epoch_, filler));
    }
    request.request_id = RequestId(epoch_, expected + 1);
    request.projections.push_back(ProjectionWrite{.op = ProjectionWrite::Op::kAddInt64,
                                                  .table = kProjectionTable,
                                                  .key = request.stream,
                                                  .value = {},
                                                  .delta = count});
    return request;
  }

  // Records the acknowledgement of an append of `fillers.size()` events.
  void Record(int stream, int64_t expected, const std::vector<uint32_t>& fillers,
              const AppendResult& result) {
    const auto count = static_cast<int64_t>(fillers.size());
    absl::MutexLock lock(&mu_);
    if (result.replayed || result.event_count != count || result.version != expected + count) {
      ++anomalies_;
      return;
    }
    for (int64_t i = 0; i < count; ++i) {
      acks_.push_back(Ack{.position = result.first_position + i,
                          .stream = stream,
                          .version = expected + 1 + i,
                          .epoch = epoch_,
                          .filler = fillers[static_cast<size_t>(i)],
                          .count = i == 0 ? static_cast<int>(count) : 0});
    }
  }

  bool ReadVersions(int t, std::vector<int64_t>* versions) {
    versions->assign(kStreamsPerThread, 0);
    for (int j = 0; j < kStreamsPerThread; ++j) {
      absl::StatusOr<int64_t> version = log_->StreamVersion(StreamName(t * kStreamsPerThread + j));
      if (!version.ok()) return false;
      (*versions)[static_cast<size_t>(j)] = *version;
    }
    return true;
  }

  void RunBlocking(int t) {
    std::mt19937_64 rng(seed_ * 1000 + static_cast<uint64_t>(t));
    std::vector<int64_t> versions;
    if (!ReadVersions(t, &versions)) return;
    std::vector<uint32_t> fillers;
    for (int i = 0; i < kAppendsPerThreadMax && !stop_.load(); ++i) {
      const int j = static_cast<int>(rng() % kStreamsPerThread);
      const int stream = t * kStreamsPerThread + j;
      const int64_t expected = versions[static_cast<size_t>(j)];
      absl::StatusOr<AppendResult> result =
          log_->Append(MakeRequest(stream, expected, rng, &fillers));
      if (!result.ok()) return;  // the power is off
      Record(stream, expected, fillers, *result);
      versions[static_cast<size_t>(j)] = result->version;
    }
  }

  void RunAsync(int t) {
    std::mt19937_64 rng(seed_ * 1000 + static_cast<uint64_t>(t));
    struct State {
      absl::Mutex mu;
      std::vector<int64_t> versions;
      std::vector<bool> busy;
      int inflight = 0;
      bool failed = false;
    } state;
    if (!ReadVersions(t, &state.versions)) return;
    state.busy.assign(kStreamsPerThread, false);
    for (int i = 0; i < kAppendsPerThreadMax && !stop_.load(); ++i) {
      int j = 0;
      int64_t expected = 0;
      {
        absl::MutexLock lock(&state.mu);
        auto room = [&state] { return state.failed || state.inflight < kAsyncWindow; };
        state.mu.Await(absl::Condition(&room));
        if (state.failed) break;
        do {
          j = static_cast<int>(rng() % kStreamsPerThread);
        } while (state.busy[static_cast<size_t>(j)]);
        state.busy[static_cast<size_t>(j)] = true;
        ++state.inflight;
        expected = state.versions[static_cast<size_t>(j)];
      }
      const int stream = t * kStreamsPerThread + j;
      std::vector<uint32_t> fillers;
      AppendRequest request = MakeRequest(stream, expected, rng, &fillers);
      log_->AppendAsync(std::move(request), [this, &state, j, stream, expected,
                                             fillers](absl::StatusOr<AppendResult> result) {
        if (result.ok()) Record(stream, expected, fillers, *result);
        absl::MutexLock lock(&state.mu);
        if (result.ok()) {
          state.versions[static_cast<size_t>(j)] = result->version;
        } else {
          state.failed = true;  // the power is off
        }
        state.busy[static_cast<size_t>(j)] = false;
        --state.inflight;
      });
    }
    absl::MutexLock lock(&state.mu);
    auto drained = [&state] { return state.inflight == 0; };
    state.mu.Await(absl::Condition(&drained));
  }

  RocksEventLog* const log_;
  const uint32_t epoch_;
  const uint64_t seed_;
  const bool large_;
  std::vector<std::map<int64_t, Submitted>>* const submitted_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<Ack> acks_ ABSL_GUARDED_BY(mu_);
  int64_t anomalies_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_;  // last: started after everything above exists
};

// The size line of the checkpoint file, or -1 when there is none.
int64_t CheckpointSize(const std::string& path) {
  std::ifstream in(path);
  std::string origin;
  std::string size;
  if (!std::getline(in, origin) || !std::getline(in, size)) return -1;
  int64_t value = -1;
  auto [ptr, ec] = std::from_chars(size.data(), size.data() + size.size(), value);
  return ec == std::errc() && ptr == size.data() + size.size() ? value : -2;
}

struct Totals {
  int cuts = 0;
  std::map<std::string, int> by_mode;
  std::map<std::string, int> landed;  // the first operation refused after the cut
  int opens_cut = 0;
  int fallback_cuts = 0;  // an armed cut that did not fire in time; cut by the clock
  int fresh_logs = 0;
  int64_t acks_checked = 0;
  int64_t lost = 0;
  int64_t unacked_recovered = 0;
  int64_t foreign = 0;  // recovered events nobody submitted, or altered earlier events
  int64_t anomalies = 0;
  int torn_files = 0;
  int torn_wal_files = 0;
  int torn_in_zeros = 0;
  int unsynced_tails_kept = 0;
  int files_truncated = 0;
  int dir_ops_reverted = 0;
  int dir_ops_kept = 0;
  int64_t max_log_size = 0;
};

// A write torn by a power cut inside a WAL file's zeros (store/zero_filled_wal.h): the
// start of the batch on disk and zeros where the rest was to be, or sectors of it lost
// anywhere. RocksDB alone refuses such a
// file (wal_tail_test); the log cuts the torn write off as it opens, and every
// acknowledged append is there.
TEST(RocksEventLogPowerLoss, AWriteTornInsideZerosIsCutOffAndEveryAcknowledgedAppendSurvives) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    TempDir dir;
    RocksEventLog::Options options;
    options.path = dir.Sub("log");
    options.wal_spare_bytes = 1u << 20;
    std::filesystem::create_directories(options.path);
    auto fs = std::make_shared<PowerLossFs>(options.path);
    std::unique_ptr<rocksdb::Env> env = testing::NewPowerLossEnv(fs);
    RocksEventLog::Options faulty = options;
    faulty.env = env.get();
    std::vector<std::string> acknowledged;
    {
      absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(faulty);
      ASSERT_THAT(log, IsOk());
      for (int i = 0; i < 30; ++i) {
        std::string bytes(1000 + rng() % 4000, static_cast<char>('a' + i % 26));
        ASSERT_THAT((*log)->Append(AppendRequest{.stream = absl::StrCat("s", i % 7),
                                                 .expected_version = i / 7,
                                                 .events = {bytes},
                                                 .request_id = absl::StrCat("r", i),
                                                 .request_fingerprint = "fp"}),
                    IsOk());
        acknowledged.push_back(bytes);
      }
      // The next batch is written to the WAL file; its sync is refused (the power is off).
      fs->CutAtOp(PowerLossFs::kWalSync, 1);
      absl::StatusOr<AppendResult> lost =
          (*log)->Append(AppendRequest{.stream = "torn",
                                       .expected_version = 0,
                                       .events = {std::string(20000 + rng() % 50000, 't')},
                                       .request_id = "torn",
                                       .request_fingerprint = "fp"});
      EXPECT_FALSE(lost.ok());
    }
    // Odd seeds: sectors lost anywhere in the write; even: a prefix of it kept.
    PowerLossFs::LossOptions loss{
        .tear = true, .directory_prefix = false, .always_tear = true, .scatter = seed % 2 == 1};
    PowerLossFs::LossReport report;
    ASSERT_TRUE(fs->ApplyPowerLoss(rng, loss, &report).ok());
    EXPECT_EQ(report.torn_in_zeros, 1);
    EXPECT_EQ(report.scattered_in_zeros, loss.scatter ? 1 : 0);
    EXPECT_EQ(fs->ReusesRefused(), 0u)
        << "a WAL file was made from a file that held more than zeros";
    env.reset();
    fs.reset();

    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
    ASSERT_THAT(log, IsOk());
    ASSERT_EQ((*log)->Size(), 30);
    absl::StatusOr<std::vector<StoredEvent>> events = (*log)->ReadRange(0, 100);
    ASSERT_THAT(events, IsOk());
    ASSERT_EQ(events->size(), 30u);
    for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].bytes, acknowledged[i]);
    std::ifstream info(options.path + "/LOG");
    const std::string text((std::istreambuf_iterator<char>(info)),
                           std::istreambuf_iterator<char>());
    // A prefix of the write is on disk, to be cut; lost pieces may be all of it.
    if (!loss.scatter) {
      EXPECT_NE(text.find("cut off a write torn by a crash"), std::string::npos);
    }
    ASSERT_THAT((*log)->Append(AppendRequest{.stream = "torn",
                                             .expected_version = 0,
                                             .events = {"after"},
                                             .request_id = "torn",
                                             .request_fingerprint = "fp"}),
                IsOk());
  }
}

TEST(RocksEventLogPowerLoss, EveryAcknowledgedAppendSurvivesPowerCuts) {
  const char* seed_env = std::getenv("CW_TEST_SEED");
  const uint64_t seed = seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                            : static_cast<uint64_t>(std::random_device{}());
  const char* cuts_env = std::getenv("CW_POWER_CUTS");
  const int cuts = cuts_env != nullptr ? std::max(1, std::atoi(cuts_env)) : 30;
  std::printf("seed %llu (replay with CW_TEST_SEED=%llu), %d power cuts\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), cuts);
  std::mt19937_64 rng(seed);
  const auto started = Clock::now();

  TempDir dir;
  RocksEventLog::Options options;
  options.path = dir.Sub("log");
  options.checkpoint_interval_ms = 10;  // checkpoint files are written all the time
  const std::string checkpoint_path = options.path + ".checkpoint";

  Totals totals;
  std::vector<Hash> base_leaves;  // the log as verified after the previous cut
  Hash base_root = rfc9162::EmptyRoot();
  int64_t log_bytes = 0;
  uint32_t epoch = 0;

  for (int cut = 0; cut < cuts; ++cut) {
    const Mode mode = static_cast<Mode>(cut % kModes);
    const bool memtable_full =
        mode == Mode::kFlush && cut % kMemtableFullEvery == static_cast<int>(Mode::kFlush);
    SCOPED_TRACE(absl::StrCat("cut ", cut, " (", ModeName(mode), "), seed ", seed));
    if (log_bytes > kFreshLogBytes || static_cast<int64_t>(base_leaves.size()) > kFreshLogEvents) {
      std::filesystem::remove_all(options.path);
      std::filesystem::remove(checkpoint_path);
      base_leaves.clear();
      base_root = rfc9162::EmptyRoot();
      log_bytes = 0;
      ++totals.fresh_logs;
    }
    std::filesystem::create_directories(options.path);

    auto fs = std::make_shared<PowerLossFs>(options.path);
    std::unique_ptr<rocksdb::Env> env = testing::NewPowerLossEnv(fs);
    RocksEventLog::Options faulty = options;
    faulty.env = env.get();
    // WAL files in zero-filled space (store/zero_filled_wal.h): small spares, so that a
    // WAL file also outgrows its zeros and grows as an appended file.
    faulty.wal_spare_bytes = (cut % 3 == 0 ? 4 : 1) << 20;
    std::vector<std::map<int64_t, Submitted>> submitted(kStreams);
    std::vector<Ack> acks;
    int64_t anomalies = 0;
    bool open_cut = false;
    bool fallback = false;
    int backups = 0;  // completed before the cut
    auto cut_at = Clock::now();
    {
      absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(faulty);
      ASSERT_THAT(log, IsOk());
      auto appenders =
          std::make_unique<Appenders>(log->get(), ++epoch, rng(), memtable_full, &submitted);
      const auto appending = Clock::now();
      // Waits (bounded) for an armed cut; cuts by the clock when it did not fire.
      auto await_cut = [&](std::chrono::milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        while (!fs->IsCut() && Clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!fs->IsCut()) {
          fallback = true;
          fs->Cut();
        }
      };
      switch (mode) {
        case Mode::kTimer:
          std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 250));
          fs->Cut();
          break;
        case Mode::kWal:
          // At a sync, the batch is in the file but not durable: a tail to tear.
          if (rng() % 2 == 0) {
            fs->CutAtOp(PowerLossFs::kWalSync, 1 + rng() % 120);
          } else {
            fs->CutAtOp(PowerLossFs::kWalAppend | PowerLossFs::kWalSync, 1 + rng() % 250);
          }
          await_cut(std::chrono::seconds(20));
          break;
        case Mode::kFlush: {
          if (memtable_full) {
            // Arm shortly before the events memtable (64 MiB) is full.
            const uint64_t wal_bytes = fs->BytesAppended(PowerLossFs::kWalAppend);
            const auto deadline = Clock::now() + std::chrono::seconds(60);
            while (fs->BytesAppended(PowerLossFs::kWalAppend) - wal_bytes < (uint64_t{60} << 20) &&
                   Clock::now() < deadline) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            fs->CutAtOp(kFlushOps, 1 + rng() % 60);
            await_cut(std::chrono::seconds(60));
            break;
          }
          // An online backup flushes every column family's memtable (the flush job of a
          // full memtable, after a switch to a new WAL) while the appenders go on.
          fs->CutAtOp(kFlushOps, 1 + rng() % 20);
          const std::string backup_dir = dir.Sub("backup");
          absl::Status backup_status;
          std::thread backup([&] {
            for (int b = 0; b < 20 && !fs->IsCut(); ++b) {
              std::filesystem::remove_all(backup_dir);
              absl::StatusOr<uint32_t> id = (*log)->Backup(backup_dir);
              if (!id.ok()) {
                backup_status = id.status();
                break;
              }
              ++backups;
            }
          });
          await_cut(std::chrono::seconds(30));
          backup.join();
          // A backup may fail only because the power went off.
          EXPECT_TRUE(backup_status.ok() || fs->FirstRefused() != 0) << backup_status;
          std::filesystem::remove_all(backup_dir);
          break;
        }
        case Mode::kRecovery: {
          // Write a WAL, close cleanly (nothing is flushed at close), and cut the power
          // during the Open that replays it into tables.
          std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 170));
          appenders->Stop();
          acks = appenders->acks();
          anomalies += appenders->anomalies();
          appenders.reset();
          log->reset();
          fs->CutAtOp(PowerLossFs::kAnyOp, 1 + rng() % 60);
          log = RocksEventLog::Open(faulty);
          if (!log.ok()) {
            ASSERT_TRUE(fs->IsCut()) << log.status();
            open_cut = true;
            break;
          }
          appenders = std::make_unique<Appenders>(log->get(), ++epoch, rng(), false, &submitted);
          await_cut(std::chrono::seconds(20));
          break;
        }
      }
      cut_at = Clock::now();
      const auto cut_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(cut_at - appending).count();
      if (appenders != nullptr) {
        appenders->Stop();
        std::vector<Ack> more = appenders->acks();
        acks.insert(acks.end(), more.begin(), more.end());
        anomalies += appenders->anomalies();
        appenders.reset();
      }
      if (log.ok()) log->reset();  // the process ends: queued appends fail
      std::printf(
          "cut %d [%s%s] after %lld ms at %s%s%s: %zu acknowledged, %d backups, %llu "
          "sst appends\n",
          cut, ModeName(mode), memtable_full ? ", memtable full" : "",
          static_cast<long long>(cut_ms), PowerLossFs::KindName(fs->FirstRefused()),
          open_cut ? " (during open)" : "", fallback ? " (fallback)" : "", acks.size(), backups,
          static_cast<unsigned long long>(fs->OpCount(PowerLossFs::kTableAppend)));
    }
    const auto closed_at = Clock::now();
    const int64_t checkpoint_size = CheckpointSize(checkpoint_path);
    PowerLossFs::LossOptions loss{.tear = rng() % 2 == 0, .directory_prefix = rng() % 2 == 0};
    PowerLossFs::LossReport report;
    rocksdb::IOStatus applied = fs->ApplyPowerLoss(rng, loss, &report);
    ASSERT_TRUE(applied.ok()) << applied.ToString();
    ++totals.cuts;
    ++totals.by_mode[ModeName(mode)];
    ++totals.landed[PowerLossFs::KindName(fs->FirstRefused())];
    totals.opens_cut += open_cut ? 1 : 0;
    totals.fallback_cuts += fallback ? 1 : 0;
    totals.anomalies += anomalies;
    totals.torn_files += report.torn_files;
    totals.torn_wal_files += report.torn_wal_files;
    totals.torn_in_zeros += report.torn_in_zeros;
    totals.unsynced_tails_kept += report.unsynced_tails_kept;
    totals.files_truncated += report.files_truncated;
    totals.dir_ops_reverted += report.dir_ops_reverted;
    totals.dir_ops_kept += report.dir_ops_kept;
    EXPECT_EQ(anomalies, 0) << "an append was acknowledged with an unexpected result";
    EXPECT_EQ(fs->ReusesRefused(), 0u)
        << "a WAL file was made from a file that held more than zeros";
    env.reset();
    fs.reset();

    // Power is back: open with the default Env.
    const auto lost_at = Clock::now();
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
    const auto reopened_at = Clock::now();
    ASSERT_THAT(log, IsOk()) << "after loss: tear " << loss.tear << ", directory prefix "
                             << loss.directory_prefix << ", files truncated "
                             << report.files_truncated << ", torn " << report.torn_files
                             << ", directory operations reverted " << report.dir_ops_reverted
                             << ", kept " << report.dir_ops_kept;
    RocksEventLog& reopened = **log;
    const int64_t size = reopened.Size();
    const auto base = static_cast<int64_t>(base_leaves.size());
    EXPECT_GE(size, base) << "events verified after the previous cut are gone";
    EXPECT_LE(checkpoint_size, size) << "the checkpoint file is ahead of the durable log";

    // Which acknowledgement names each position.
    std::vector<int32_t> ack_at(static_cast<size_t>(std::max(size, base)), -1);
    int64_t lost = 0;
    for (size_t a = 0; a < acks.size(); ++a) {
      const Ack& ack = acks[a];
      if (ack.position < base || ack.position >= size) {
        if (++lost <= 5) {
          ADD_FAILURE() << "acknowledged event " << StreamName(ack.stream) << " v" << ack.version
                        << " at position " << ack.position << " is past the end (" << size << ")";
        }
        continue;
      }
      ack_at[static_cast<size_t>(ack.position)] = static_cast<int32_t>(a);
    }

    // One pass over the whole log.
    std::vector<Hash> leaves;
    leaves.reserve(static_cast<size_t>(size) + 1);
    // Per stream: the version, the position of its last event before `base`, and the
    // positions of its events from `base` on.
    struct Seen {
      int64_t version = 0;
      int64_t last_old_position = -1;
      std::vector<int64_t> new_positions;
    };
    std::map<std::string, Seen> seen;
    int64_t foreign = 0;
    int64_t unacked = 0;
    log_bytes = 0;
    for (int64_t from = 0; from < size;) {
      absl::StatusOr<std::vector<StoredEvent>> events = reopened.ReadRange(from, 512);
      ASSERT_THAT(events, IsOk());
      ASSERT_FALSE(events->empty()) << "the log ends at " << from << " of " << size;
      for (const StoredEvent& event : *events) {
        const int64_t i = from++;
        ASSERT_EQ(event.position, i);
        log_bytes += static_cast<int64_t>(event.bytes.size());
        leaves.push_back(event.leaf_hash);
        Seen& stream_seen = seen[event.stream];
        ASSERT_EQ(event.version, stream_seen.version + 1)
            << "position " << i << " of " << event.stream;
        stream_seen.version = event.version;
        if (i < base) {
          stream_seen.last_old_position = i;
          if (event.leaf_hash != base_leaves[static_cast<size_t>(i)] && ++foreign <= 5) {
            ADD_FAILURE() << "position " << i << " changed since the previous cut";
          }
          continue;
        }
        stream_seen.new_positions.push_back(i);
        ASSERT_EQ(LeafOf(event.stream, event.version, event.bytes), event.leaf_hash)
            << "position " << i;
        // Beyond the previous log: something an appender submitted.
        const int stream = StreamIndex(event.stream);
        const Submitted* sub = nullptr;
        if (stream >= 0) {
          const std::map<int64_t, Submitted>& mine = submitted[static_cast<size_t>(stream)];
          if (auto it = mine.find(event.version); it != mine.end()) sub = &it->second;
        }
        if (sub == nullptr ||
            event.bytes != EventBytes(stream, event.version, sub->epoch, sub->filler)) {
          if (++foreign <= 5) {
            ADD_FAILURE() << "position " << i << " holds " << event.stream << " v" << event.version
                          << ", which no appender submitted";
          }
          continue;
        }
        const int32_t a = ack_at[static_cast<size_t>(i)];
        if (a < 0) {
          ++unacked;
          continue;
        }
        const Ack& ack = acks[static_cast<size_t>(a)];
        if (ack.stream != stream || ack.version != event.version ||
            event.bytes != EventBytes(ack.stream, ack.version, ack.epoch, ack.filler)) {
          if (++lost <= 5) {
            ADD_FAILURE() << "position " << i << " was acknowledged as " << StreamName(ack.stream)
                          << " v" << ack.version << " but holds " << event.stream << " v"
                          << event.version;
          }
        }
      }
    }
    // Every append's request id answers with its acknowledged result.
    for (const Ack& ack : acks) {
      if (ack.count == 0 || ack.position < base || ack.position >= size) continue;
      absl::StatusOr<std::optional<AppendResult>> found =
          reopened.FindRequest(StreamName(ack.stream), RequestId(ack.epoch, ack.version));
      ASSERT_THAT(found, IsOk());
      if (!found->has_value() || (*found)->first_position != ack.position ||
          (*found)->event_count != ack.count) {
        if (++lost <= 5) {
          ADD_FAILURE() << "the request of " << StreamName(ack.stream) << " v" << ack.version
                        << " does not answer with position " << ack.position;
        }
      }
    }
    // Projections travel in the same batch: each counter equals its stream's version.
    // The stream index agrees with the positions of the new events.
    for (const auto& [stream, stream_seen] : seen) {
      const int64_t version = stream_seen.version;
      if (StreamIndex(stream) >= 0) {
        absl::StatusOr<std::optional<std::string>> counter =
            reopened.GetProjection(kProjectionTable, stream);
        ASSERT_THAT(counter, IsOk());
        int64_t count = 0;
        ASSERT_TRUE(counter->has_value() && format::DecodeInt64(**counter, &count)) << stream;
        EXPECT_EQ(count, version) << stream;
      }
      if (stream_seen.new_positions.empty()) continue;
      std::vector<int64_t> expected = stream_seen.new_positions;
      if (stream_seen.last_old_position >= 0) {
        expected.insert(expected.begin(), stream_seen.last_old_position);
      }
      const int64_t first = version - static_cast<int64_t>(expected.size()) + 1;
      absl::StatusOr<std::vector<StoredEvent>> tail =
          reopened.ReadStream(stream, first, expected.size());
      ASSERT_THAT(tail, IsOk());
      ASSERT_EQ(tail->size(), expected.size()) << stream;
      for (size_t k = 0; k < expected.size(); ++k) {
        EXPECT_EQ((*tail)[k].position, expected[k]) << stream << " v" << first + k;
      }
    }
    EXPECT_EQ(lost, 0) << "of " << acks.size() << " acknowledged events";
    EXPECT_EQ(foreign, 0);

    absl::StatusOr<RocksEventLog::VerifyReport> verified = reopened.Verify(0, size);
    ASSERT_THAT(verified, IsOk());
    EXPECT_FALSE(verified->first_mismatch.has_value()) << verified->detail;
    const Hash root = ReferenceTree(leaves).Root(static_cast<uint64_t>(size));
    EXPECT_EQ(reopened.Head().size, size);
    EXPECT_EQ(reopened.Head().root, root);
    absl::StatusOr<Hash> root_at = reopened.RootAt(size);
    ASSERT_THAT(root_at, IsOk());
    EXPECT_EQ(*root_at, root);
    absl::StatusOr<Hash> base_root_now = reopened.RootAt(base);
    ASSERT_THAT(base_root_now, IsOk());
    EXPECT_EQ(*base_root_now, base_root) << "the tree of the previous log changed";

    // The log takes new appends at the next position.
    const std::string probe = absl::StrCat("probe after cut ", cut);
    absl::StatusOr<AppendResult> appended =
        reopened.Append({.stream = kProbeStream,
                         .expected_version = seen[kProbeStream].version,
                         .events = {probe}});
    ASSERT_THAT(appended, IsOk());
    EXPECT_EQ(appended->first_position, size);
    leaves.push_back(LeafOf(kProbeStream, appended->version, probe));
    EXPECT_EQ(reopened.Head().root, ReferenceTree(leaves).Root(leaves.size()));
    base_root = reopened.Head().root;
    base_leaves = std::move(leaves);
    const auto checked_at = Clock::now();
    log->reset();
    const auto ms = [](Clock::time_point from, Clock::time_point to) {
      return static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
    };
    const auto checked = static_cast<int64_t>(acks.size());
    totals.acks_checked += checked;
    totals.lost += lost;
    totals.unacked_recovered += unacked;
    totals.foreign += foreign;
    totals.max_log_size = std::max(totals.max_log_size, size + 1);
    std::printf(
        "  recovered %lld events (%lld new): %lld acknowledged checked, %lld lost, %lld "
        "unacknowledged kept; tear %d: %d torn (%d WAL, %d over zeros), %d whole tails; %d "
        "files cut; "
        "directory ops: %d reverted, %d kept; ms: stop %lld, reopen %lld, check %lld\n",
        static_cast<long long>(size), static_cast<long long>(size - base),
        static_cast<long long>(checked), static_cast<long long>(lost),
        static_cast<long long>(unacked), loss.tear ? 1 : 0, report.torn_files,
        report.torn_wal_files, report.torn_in_zeros, report.unsynced_tails_kept,
        report.files_truncated, report.dir_ops_reverted, report.dir_ops_kept, ms(cut_at, closed_at),
        ms(lost_at, reopened_at), ms(reopened_at, checked_at));
    if (::testing::Test::HasFatalFailure() || lost > 0 || foreign > 0) break;
  }

  const auto seconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() /
      1000.0;
  std::string modes;
  for (const auto& [name, count] : totals.by_mode) absl::StrAppend(&modes, " ", name, "=", count);
  std::string landed;
  for (const auto& [name, count] : totals.landed) absl::StrAppend(&landed, " ", name, "=", count);
  std::printf(
      "power loss: %d cuts (%s ) in %.1f s, seed %llu\n"
      "  cut at:%s; %d during open, %d by the clock after an armed cut did not fire\n"
      "  acknowledged events checked %lld, lost %lld, foreign %lld, unacknowledged recovered "
      "%lld\n"
      "  torn tails %d (WAL %d, over zeros %d), whole unsynced tails kept %d, files cut to "
      "their synced "
      "length %d, directory operations reverted %d, kept unsynced %d\n"
      "  fresh logs %d, largest log %lld events\n",
      totals.cuts, modes.c_str(), seconds, static_cast<unsigned long long>(seed), landed.c_str(),
      totals.opens_cut, totals.fallback_cuts, static_cast<long long>(totals.acks_checked),
      static_cast<long long>(totals.lost), static_cast<long long>(totals.foreign),
      static_cast<long long>(totals.unacked_recovered), totals.torn_files, totals.torn_wal_files,
      totals.torn_in_zeros, totals.unsynced_tails_kept, totals.files_truncated,
      totals.dir_ops_reverted, totals.dir_ops_kept, totals.fresh_logs,
      static_cast<long long>(totals.max_log_size));
  EXPECT_EQ(totals.lost, 0);
  EXPECT_EQ(totals.foreign, 0);
  EXPECT_GT(totals.acks_checked, 0);
}

}  // namespace
}  // namespace casework::store

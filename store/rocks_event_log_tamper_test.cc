// Two reliability campaigns over one log written as commands write it (docs/reliability.md,
// "Tampering" and "SST damage"):
//
//  - Tampering: someone with write access to the RocksDB directory edits it behind the
//    store's back (rocksdb::DB opened raw), and the store is reopened with the signed
//    checkpoint file it wrote at its last close, which a client kept too. Kinds: one
//    flipped bit in an event value, in a stored tree node, in a stream index entry; a
//    deleted, a swapped pair and an inserted event; an older copy of the directory served
//    again. Each edit must be caught by the store (the open refuses with DATA_LOSS, or
//    Verify names the altered position or its 16-event block) and by the read path (the
//    read refuses with DATA_LOSS, or the event's leaf hash fails its inclusion proof
//    against the kept checkpoint). When the open refuses, the edit is tried again with
//    the checkpoint file removed too (an attacker would): refused again, and opened only
//    with start_without_anchor, to show what Verify and a client see then.
//  - SST damage: one byte of one SST file flipped. The store refuses to open with an
//    actionable DATA_LOSS, or Verify or a read returns DATA_LOSS, or every event, index
//    entry, request and projection reads back exactly as written; never a wrong value.
//
// Each trial works on a fresh copy of one directory. CW_TAMPER_EDITS sets the number of
// single-bit event edits (default 100; the other kinds scale with it), CW_SST_FLIPS the
// number of SST flips (default 30); CW_TEST_SEED replays the random choices. Each test
// prints one summary line that docs/reliability.md quotes.
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/checkpoint.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"
#include "store/rocks_event_log.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::TempDir;
namespace fs = std::filesystem;

constexpr char kOrigin[] = "casework.test/log";
constexpr int64_t kBlock = int64_t{1} << format::kStoredLevelMin;
constexpr int kRounds = 4;            // closes and reopens: each reopen writes SST files
constexpr int kEventsPerRound = 900;  // about 3,600 events in all
constexpr int kStreams = 300;         // cases/c-0000 ... cases/c-0299
constexpr int kAppendsPerWave = 128;  // concurrent appends, on distinct streams

uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("CW_TEST_SEED");
    return env != nullptr ? std::strtoull(env, nullptr, 10)
                          : static_cast<uint64_t>(std::random_device{}());
  }();
  std::printf("seed %llu (replay with CW_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  return seed;
}

int EnvCount(const char* name, int fallback) {
  const char* env = std::getenv(name);
  return env != nullptr ? std::max(1, std::atoi(env)) : fallback;
}
int TamperEdits() { return EnvCount("CW_TAMPER_EDITS", 100); }
int SstFlips() { return EnvCount("CW_SST_FLIPS", 30); }

// ---------------------------------------------------------------------------------------
// The log under test and what was written to it.

struct Written {
  std::string stream;
  std::string request_id;
  AppendResult result;
};

struct Shared {
  TempDir dir;
  std::string key_path;
  std::string pristine;  // root of the final log: <root>/log, <root>/log.checkpoint
  std::string older;     // root of a copy taken after round 2, with its own checkpoint
  NoteVerifier verifier;
  // The truth, read back from the final log after it verified.
  int64_t size = 0;
  std::vector<StoredEvent> events;
  std::map<std::string, std::vector<int64_t>> stream_positions;
  std::vector<Written> appends;
  std::vector<std::pair<std::string, std::string>> projections;
  // What a client kept: the checkpoint of the final log, and that of the older copy.
  Checkpoint kept;
  Checkpoint kept_older;
};

RocksEventLog::Options OptionsAt(const Shared& shared, const std::string& root) {
  RocksEventLog::Options options;
  options.path = root + "/log";
  options.signing_key_path = shared.key_path;
  options.checkpoint_origin = kOrigin;
  return options;
}

std::string EventBytes(std::mt19937_64& rng, const std::string& stream, int64_t version) {
  static const char* const kKinds[] = {"CaseOpened", "MeasureAdded", "Inspected",
                                       "Assisted",   "Approved",     "Closed"};
  std::string bytes = absl::StrCat("{\"kind\":\"", kKinds[rng() % 6], "\",\"case\":\"", stream,
                                   "\",\"version\":", version, ",\"note\":\"");
  const size_t note = 40 + rng() % 300;
  for (size_t i = 0; i < note; ++i) bytes.push_back(static_cast<char>('a' + rng() % 26));
  bytes += "\"}";
  return bytes;
}

// Appends about `events` events as commands do: 1 to 3 events per append on one case,
// with a request id, a fingerprint and projection writes, many appends in flight.
void Fill(RocksEventLog& log, int events, std::mt19937_64& rng, std::vector<int64_t>& versions,
          std::vector<Written>& appends, int& next_request) {
  int appended = 0;
  while (appended < events) {
    std::vector<int> streams;
    for (int i = 0; i < kAppendsPerWave; ++i) streams.push_back(static_cast<int>(rng() % kStreams));
    std::sort(streams.begin(), streams.end());
    streams.erase(std::unique(streams.begin(), streams.end()), streams.end());
    absl::Mutex mu;
    int pending = static_cast<int>(streams.size());
    std::vector<absl::StatusOr<AppendResult>> results(streams.size(),
                                                      absl::UnknownError("no answer"));
    std::vector<Written> wave;
    for (size_t i = 0; i < streams.size(); ++i) {
      const int s = streams[i];
      char name[32];
      std::snprintf(name, sizeof name, "cases/c-%04d", s);
      AppendRequest request{.stream = name, .expected_version = versions[s]};
      request.request_id = absl::StrCat("req-", next_request);
      request.request_fingerprint = absl::StrCat("fp-", next_request, "-", rng() % 1000);
      ++next_request;
      const int count = 1 + static_cast<int>(rng() % 3);
      for (int n = 0; n < count; ++n) {
        request.events.push_back(EventBytes(rng, name, versions[s] + 1 + n));
      }
      const std::string state = absl::StrCat("state-", rng() % 5);
      request.projections = {
          {.op = ProjectionWrite::Op::kPut, .table = "case", .key = name, .value = state},
          {.op = ProjectionWrite::Op::kAddInt64, .table = "per_state", .key = state, .delta = 1},
      };
      wave.push_back(Written{.stream = name, .request_id = request.request_id});
      versions[s] += count;
      appended += count;
      log.AppendAsync(std::move(request), [&, i](absl::StatusOr<AppendResult> result) {
        absl::MutexLock lock(&mu);
        results[i] = std::move(result);
        --pending;
      });
    }
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* p) { return *p == 0; }, &pending));
    for (size_t i = 0; i < wave.size(); ++i) {
      ASSERT_THAT(results[i], IsOk());
      wave[i].result = *results[i];
      appends.push_back(std::move(wave[i]));
    }
  }
}

// The files of a log directory and its checkpoint file, copied from `from` to `to`
// (roots). SST files are hard-linked when `link_tables` (RocksDB never writes into one);
// the info logs are left behind.
void CopyLog(const std::string& from, const std::string& to, bool link_tables) {
  fs::remove_all(to);
  fs::create_directories(to + "/log");
  for (const fs::directory_entry& entry : fs::directory_iterator(from + "/log")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("LOG", 0) == 0) continue;
    const std::string target = to + "/log/" + name;
    if (link_tables && entry.path().extension() == ".sst") {
      fs::create_hard_link(entry.path(), target);
    } else {
      fs::copy_file(entry.path(), target);
    }
  }
  if (fs::exists(from + "/log.checkpoint")) {
    fs::copy_file(from + "/log.checkpoint", to + "/log.checkpoint");
  }
}

std::vector<std::pair<std::string, std::string>> DumpProjections(RocksEventLog& log,
                                                                 absl::Status* status) {
  std::vector<std::pair<std::string, std::string>> entries;
  *status = log.ScanAllProjections(
      [&](std::string_view k, std::string_view v) { entries.emplace_back(k, v); });
  return entries;
}

Checkpoint MustOpenCheckpoint(const std::string& note, const NoteVerifier& verifier) {
  absl::StatusOr<Checkpoint> checkpoint = OpenCheckpoint(note, verifier, kOrigin);
  EXPECT_THAT(checkpoint, IsOk());
  return checkpoint.ok() ? *checkpoint : Checkpoint{};
}

std::unique_ptr<Shared> Build() {
  auto shared = std::make_unique<Shared>();
  std::mt19937_64 rng(Seed());
  shared->key_path = shared->dir.Sub("server.key");
  shared->pristine = shared->dir.Sub("pristine");
  shared->older = shared->dir.Sub("older");
  fs::create_directories(shared->pristine);
  const RocksEventLog::Options options = OptionsAt(*shared, shared->pristine);
  std::vector<int64_t> versions(kStreams, 0);
  int next_request = 0;
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
    EXPECT_THAT(log, IsOk());
    if (!log.ok()) return nullptr;
    Fill(**log, kEventsPerRound, rng, versions, shared->appends, next_request);
    while (round == kRounds - 1 && (*log)->Size() % kBlock == 0) {
      // End inside a 16-event block, so that some events are covered by no stored node.
      const std::string stream = "cases/c-0000";
      AppendRequest request{.stream = stream, .expected_version = versions[0]};
      request.request_id = absl::StrCat("req-", next_request++);
      request.events.push_back(EventBytes(rng, stream, versions[0] + 1));
      absl::StatusOr<AppendResult> result = (*log)->Append(std::move(request));
      EXPECT_THAT(result, IsOk());
      if (!result.ok()) return nullptr;
      versions[0] = result->version;
      shared->appends.push_back(Written{.stream = stream,
                                        .request_id = absl::StrCat("req-", next_request - 1),
                                        .result = *result});
    }
    if (::testing::Test::HasFatalFailure()) return nullptr;
    log->reset();  // closes: the checkpoint file is written; the next open flushes the WAL
    if (round == 1) CopyLog(shared->pristine, shared->older, /*link_tables=*/false);
  }
  // One more open: the last round moves from the WAL into SST files. Read the truth.
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(options);
  EXPECT_THAT(log, IsOk());
  if (!log.ok()) return nullptr;
  shared->size = (*log)->Size();
  absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, shared->size);
  EXPECT_THAT(report, IsOk());
  EXPECT_FALSE(report.ok() && report->first_mismatch.has_value()) << report->detail;
  for (int64_t from = 0; from < shared->size;) {
    absl::StatusOr<std::vector<StoredEvent>> chunk = (*log)->ReadRange(from, 4096);
    EXPECT_THAT(chunk, IsOk());
    if (!chunk.ok() || chunk->empty()) return nullptr;
    from += static_cast<int64_t>(chunk->size());
    for (StoredEvent& event : *chunk) {
      shared->stream_positions[event.stream].push_back(event.position);
      shared->events.push_back(std::move(event));
    }
  }
  absl::Status scanned;
  shared->projections = DumpProjections(**log, &scanned);
  EXPECT_THAT(scanned, IsOk());
  shared->verifier = (*log)->CheckpointVerifier();
  absl::StatusOr<std::string> note = (*log)->SignedCheckpoint();
  EXPECT_THAT(note, IsOk());
  if (!note.ok()) return nullptr;
  shared->kept = MustOpenCheckpoint(*note, shared->verifier);
  EXPECT_EQ(shared->kept.size, shared->size);
  log->reset();
  absl::StatusOr<std::optional<std::string>> older_note =
      ReadSmallFile(shared->older + "/log.checkpoint", 64 * 1024);
  EXPECT_THAT(older_note, IsOk());
  if (!older_note.ok() || !older_note->has_value()) return nullptr;
  shared->kept_older = MustOpenCheckpoint(**older_note, shared->verifier);
  // The file beside the pristine log is the kept checkpoint (the store rewrote it at close).
  absl::StatusOr<std::optional<std::string>> file =
      ReadSmallFile(shared->pristine + "/log.checkpoint", 64 * 1024);
  EXPECT_THAT(file, IsOk());
  if (!file.ok() || !file->has_value()) return nullptr;
  EXPECT_EQ(MustOpenCheckpoint(**file, shared->verifier), shared->kept);
  int ssts = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(shared->pristine + "/log")) {
    if (entry.path().extension() == ".sst") ++ssts;
  }
  std::printf(
      "log: %lld events on %zu streams, %zu appends, %d SST files; kept checkpoints at "
      "%lld and %lld\n",
      static_cast<long long>(shared->size), shared->stream_positions.size(), shared->appends.size(),
      ssts, static_cast<long long>(shared->kept.size),
      static_cast<long long>(shared->kept_older.size));
  return shared;
}

// Built once per test program (tests run one after the other).
const Shared* GetShared() {
  static std::unique_ptr<Shared> shared = Build();
  return shared.get();
}

// ---------------------------------------------------------------------------------------
// Raw access, as someone with write access to the directory has it.

// The merge operator of the projections family, as the store registers it (its name is
// recorded with the family).
class AddInt64 final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    int64_t base = 0;
    int64_t delta = 0;
    if (existing != nullptr && !format::DecodeInt64({existing->data(), existing->size()}, &base)) {
      return false;
    }
    if (!format::DecodeInt64({value.data(), value.size()}, &delta)) return false;
    *new_value = format::EncodeInt64(
        static_cast<int64_t>(static_cast<uint64_t>(base) + static_cast<uint64_t>(delta)));
    return true;
  }
  const char* Name() const override { return "casework.AddInt64"; }
};

enum Family { kEventsCf = 1, kStreamsCf = 2, kRequestsCf = 3, kProjectionsCf = 4, kTreeCf = 5 };

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const char* name :
         {rocksdb::kDefaultColumnFamilyName.c_str(), format::kEventsFamily, format::kStreamsFamily,
          format::kRequestsFamily, format::kProjectionsFamily, format::kTreeFamily,
          format::kMetaFamily}) {
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    families[kProjectionsCf].options.merge_operator = std::make_shared<AddInt64>();
    rocksdb::DB* db = nullptr;
    rocksdb::DBOptions options;
    // A few writes: no statistics thread, no pass over the tables at open, small memtables.
    options.stats_dump_period_sec = 0;
    options.stats_persist_period_sec = 0;
    options.skip_stats_update_on_db_open = true;
    options.max_file_opening_threads = 1;
    for (rocksdb::ColumnFamilyDescriptor& family : families) {
      family.options.write_buffer_size = 1u << 20;
    }
    rocksdb::Status s = rocksdb::DB::Open(options, path, families, &handles_, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(db);
  }
  ~RawDb() {
    if (db_ == nullptr) return;
    // Into SST files, so that the store's open has no write-ahead log to replay.
    EXPECT_TRUE(db_->Flush(rocksdb::FlushOptions(), handles_).ok());
    for (rocksdb::ColumnFamilyHandle* handle : handles_) {
      EXPECT_TRUE(db_->DestroyColumnFamilyHandle(handle).ok());
    }
    EXPECT_TRUE(db_->Close().ok());
  }
  bool ok() const { return db_ != nullptr; }
  std::string Get(Family family, const std::string& key) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[family], key, &value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return value;
  }
  void Put(Family family, const std::string& key, const std::string& value) {
    EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), handles_[family], key, value).ok());
  }
  void Delete(Family family, const std::string& key) {
    EXPECT_TRUE(db_->Delete(rocksdb::WriteOptions(), handles_[family], key).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

// Flips one random bit of the value at `key` in `family`; returns the bit's index.
size_t FlipBit(RawDb& db, Family family, const std::string& key, std::mt19937_64& rng) {
  std::string value = db.Get(family, key);
  if (value.empty()) return 0;
  const size_t bit = rng() % (value.size() * 8);
  value[bit / 8] = static_cast<char>(value[bit / 8] ^ (1 << (bit % 8)));
  db.Put(family, key, value);
  return bit;
}

// ---------------------------------------------------------------------------------------
// What a client holding the kept checkpoint sees.

// True when the event at `position`, as served, is refused: the read fails with
// DATA_LOSS, or its leaf hash (recomputed from the served fields) fails the inclusion
// proof served for it against the kept root, or the log no longer reaches the kept size.
bool ReadPathRefuses(RocksEventLog& log, int64_t position, const Checkpoint& kept) {
  if (log.Size() < kept.size) return true;  // the log shrank: no proof at the kept size
  absl::StatusOr<std::vector<StoredEvent>> events = log.ReadRange(position, 1);
  if (!events.ok()) return events.status().code() == absl::StatusCode::kDataLoss;
  if (events->size() != 1) return false;
  const StoredEvent& event = events->front();
  std::string record;
  format::AppendEventRecord(&record, event.stream, event.version, event.bytes);
  const Hash leaf = rfc9162::HashLeaf(record);
  absl::StatusOr<std::vector<Hash>> proof = log.InclusionProof(position, kept.size);
  if (!proof.ok()) return proof.status().code() == absl::StatusCode::kDataLoss;
  return !merkle::VerifyInclusion(position, kept.size, rfc9162::AsBytes(leaf),
                                  merkle::ToBytes(*proof), rfc9162::AsBytes(kept.root))
              .ok();
}

// True when the served head is not a consistent extension of `kept`: shorter, or a
// different root at the same size, or a consistency proof that fails (or DATA_LOSS).
bool ConsistencyRefuses(RocksEventLog& log, const Checkpoint& kept, const NoteVerifier& verifier) {
  if (log.Size() < kept.size) return true;
  absl::StatusOr<std::string> note = log.SignedCheckpoint();
  if (!note.ok()) return note.status().code() == absl::StatusCode::kDataLoss;
  absl::StatusOr<Checkpoint> head = OpenCheckpoint(*note, verifier, kOrigin);
  if (!head.ok()) return true;
  if (head->size == kept.size) return head->root != kept.root;
  absl::StatusOr<std::vector<Hash>> proof = log.ConsistencyProof(kept.size, head->size);
  if (!proof.ok()) return proof.status().code() == absl::StatusCode::kDataLoss;
  return !merkle::VerifyConsistency(kept.size, head->size, merkle::ToBytes(*proof),
                                    rfc9162::AsBytes(kept.root), rfc9162::AsBytes(head->root))
              .ok();
}

// ---------------------------------------------------------------------------------------
// One tampering trial: open the edited copy as the server would, judge, and count.

struct Tally {
  int trials = 0;
  int refused_at_open = 0;  // DATA_LOSS at open, with the checkpoint file beside
  int opened = 0;           // opened with the checkpoint file
  int verify_named = 0;     // ... and Verify named the edit
  // Refused, then opened with the checkpoint file removed and start_without_anchor (an
  // operator's override; without it the missing file is refused).
  int reopened_without_file = 0;
  int verify_named_without_file = 0;
  int refused_without_file = 0;  // refused even without the file
  int store_detected = 0;        // refused at open, or Verify named it
  int read_path = 0;             // the read path refused the altered data
  std::vector<std::string> misses;
};

using VerifyNames = std::function<bool(const RocksEventLog::VerifyReport&)>;
using ReadRefuses = std::function<bool(RocksEventLog&)>;

void Judge(const Shared& shared, const std::string& root, const std::string& what,
           const VerifyNames& verify_names, const ReadRefuses& read_refuses, Tally& tally) {
  ++tally.trials;
  bool store = false;
  bool read = false;
  std::string note;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(OptionsAt(shared, root));
  if (!log.ok()) {
    note = absl::StrCat("open: ", log.status().ToString());
    if (log.status().code() == absl::StatusCode::kDataLoss) {
      ++tally.refused_at_open;
      store = true;
    }
    // The attacker removes the checkpoint file as well: a log with events and no
    // checkpoint file is refused too, unless an operator overrides that.
    fs::remove(root + "/log.checkpoint");
    log = RocksEventLog::Open(OptionsAt(shared, root));
    if (log.ok() || log.status().code() != absl::StatusCode::kDataLoss) {
      tally.misses.push_back(absl::StrCat(what, ": opened without its checkpoint file (",
                                          log.status().ToString(), ")"));
    }
    log = absl::StatusOr<std::unique_ptr<RocksEventLog>>(absl::UnknownError("closed"));
    RocksEventLog::Options overridden = OptionsAt(shared, root);
    overridden.start_without_anchor = true;
    log = RocksEventLog::Open(overridden);
    if (!log.ok()) {
      ++tally.refused_without_file;
      read = log.status().code() == absl::StatusCode::kDataLoss;  // nothing is served
    } else {
      ++tally.reopened_without_file;
      absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, (*log)->Size());
      if (report.ok() && verify_names(*report)) ++tally.verify_named_without_file;
      read = read_refuses(**log);
    }
  } else {
    ++tally.opened;
    absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, (*log)->Size());
    if (!report.ok()) {
      note = absl::StrCat("verify: ", report.status().ToString());
    } else {
      note = absl::StrCat("verify: ", report->detail);
      store = verify_names(*report);
    }
    if (store) ++tally.verify_named;
    read = read_refuses(**log);
  }
  if (store) ++tally.store_detected;
  if (read) ++tally.read_path;
  if (!store || !read) {
    tally.misses.push_back(absl::StrCat(what, ": store ", store ? "caught it" : "MISSED it",
                                        ", read path ", read ? "caught it" : "MISSED it", " (",
                                        note, ")"));
  }
}

void Report(const std::string& kind, const Tally& tally) {
  std::printf(
      "tamper: %d %s: %d detected by the store (%d refused at open with DATA_LOSS, %d of %d "
      "opened named by verify), %d by the read path against the kept checkpoint; with the "
      "checkpoint file also removed, %d of %d refused ones opened and verify named %d of "
      "them\n",
      tally.trials, kind.c_str(), tally.store_detected, tally.refused_at_open, tally.verify_named,
      tally.opened, tally.read_path, tally.reopened_without_file, tally.refused_at_open,
      tally.verify_named_without_file);
  for (size_t i = 0; i < tally.misses.size() && i < 20; ++i) {
    ADD_FAILURE() << tally.misses[i];
  }
  EXPECT_EQ(tally.store_detected, tally.trials);
  EXPECT_EQ(tally.read_path, tally.trials);
}

bool NamesBlockOf(const RocksEventLog::VerifyReport& report, int64_t position) {
  return report.first_mismatch.has_value() &&
         (*report.first_mismatch == position ||
          *report.first_mismatch == position / kBlock * kBlock);
}

// Runs trials 0..count-1 on a few threads, each trial with its own generator seeded from
// `seed` and the trial number (so a seed replays every trial, whatever the thread count)
// and each thread with its own work directory.
void Parallel(
    int count, uint64_t seed,
    const std::function<void(int trial, std::mt19937_64& rng, const std::string& work)>& trial) {
  const int workers = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
  std::atomic<int> next{0};
  TempDir dir;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      const std::string work = dir.Sub(absl::StrCat("work", w));
      for (int i = next++; i < count; i = next++) {
        std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                          static_cast<uint32_t>(i)};
        std::mt19937_64 rng(seq);
        trial(i, rng, work);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

void Merge(Tally& into, const Tally& from) {
  into.trials += from.trials;
  into.refused_at_open += from.refused_at_open;
  into.opened += from.opened;
  into.verify_named += from.verify_named;
  into.reopened_without_file += from.reopened_without_file;
  into.verify_named_without_file += from.verify_named_without_file;
  into.refused_without_file += from.refused_without_file;
  into.store_detected += from.store_detected;
  into.read_path += from.read_path;
  into.misses.insert(into.misses.end(), from.misses.begin(), from.misses.end());
}

// A fresh copy of the final log at `work`, edited by `edit` through raw RocksDB.
template <typename Edit>
bool Edited(const Shared& shared, const std::string& work, Edit edit) {
  CopyLog(shared.pristine, work, /*link_tables=*/true);
  RawDb db(work + "/log");
  if (!db.ok()) return false;
  edit(db);
  return true;
}

class Tamper : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = GetShared();
    ASSERT_NE(shared_, nullptr);
    seed_ = Seed() ^ std::hash<std::string>()(std::string(
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  int64_t RandomPosition(std::mt19937_64& rng) const {
    return static_cast<int64_t>(rng() % static_cast<uint64_t>(shared_->size));
  }
  // Runs `count` trials in parallel; each adds to a Tally of its own, merged here.
  Tally Run(int count,
            const std::function<void(std::mt19937_64& rng, const std::string& work, Tally& tally)>&
                trial) {
    absl::Mutex mu;
    Tally total;
    Parallel(count, seed_, [&](int, std::mt19937_64& rng, const std::string& work) {
      Tally one;
      trial(rng, work, one);
      absl::MutexLock lock(&mu);
      Merge(total, one);
    });
    return total;
  }

  const Shared* shared_ = nullptr;
  uint64_t seed_ = 0;
};

TEST_F(Tamper, SingleBitEditsOfEventValues) {
  // One edit in 25 goes to the last, incomplete 16-event block, which no stored node covers.
  const int64_t tail = shared_->size / kBlock * kBlock;
  ASSERT_LT(tail, shared_->size);
  int trial = 0;
  absl::Mutex mu;
  Tally tally = Run(TamperEdits(), [&](std::mt19937_64& rng, const std::string& work, Tally& one) {
    bool in_tail = false;
    {
      absl::MutexLock lock(&mu);
      in_tail = trial++ % 25 == 0;
    }
    const int64_t position =
        in_tail ? tail + static_cast<int64_t>(rng() % static_cast<uint64_t>(shared_->size - tail))
                : RandomPosition(rng);
    size_t bit = 0;
    if (!Edited(*shared_, work, [&](RawDb& db) {
          bit = FlipBit(db, kEventsCf, format::PositionKey(position), rng);
        })) {
      return;
    }
    Judge(
        *shared_, work, absl::StrCat("bit ", bit, " of position ", position),
        [&](const RocksEventLog::VerifyReport& r) { return NamesBlockOf(r, position); },
        [&](RocksEventLog& log) { return ReadPathRefuses(log, position, shared_->kept); }, one);
  });
  Report("single-bit edits of event values", tally);
}

TEST_F(Tamper, SingleBitEditsOfTreeNodes) {
  // Every stored node: the perfect subtrees of 16 leaves and more inside the log.
  std::vector<merkle::NodeId> nodes;
  for (int level = format::kStoredLevelMin; (int64_t{1} << level) <= shared_->size; ++level) {
    for (int64_t index = 0; ((index + 1) << level) <= shared_->size; ++index) {
      nodes.push_back({.level = level, .index = index});
    }
  }
  const int edits = std::max(20, TamperEdits() / 10);
  Tally tally = Run(edits, [&](std::mt19937_64& rng, const std::string& work, Tally& one) {
    const merkle::NodeId node = nodes[rng() % nodes.size()];
    if (!Edited(*shared_, work, [&](RawDb& db) {
          FlipBit(db, kTreeCf, format::NodeKey(node.level, node.index), rng);
        })) {
      return;
    }
    // A leaf whose inclusion proof holds the altered node: the first of its sibling.
    const merkle::NodeId sibling{.level = node.level, .index = node.index ^ 1};
    Judge(
        *shared_, work, absl::StrCat("tree node level ", node.level, " index ", node.index),
        [&](const RocksEventLog::VerifyReport& r) {
          return r.first_mismatch == std::optional<int64_t>(node.begin());
        },
        [&](RocksEventLog& log) {
          if (sibling.begin() < shared_->kept.size) {
            return ReadPathRefuses(log, sibling.begin(), shared_->kept);
          }
          return ConsistencyRefuses(log, shared_->kept, shared_->verifier);  // the right edge
        },
        one);
  });
  Report("single-bit edits of stored tree nodes", tally);
}

TEST_F(Tamper, DeletedEvents) {
  const int edits = std::max(15, TamperEdits() / 20);
  Tally tally = Run(edits, [&](std::mt19937_64& rng, const std::string& work, Tally& one) {
    // Now and then the first or the last event, otherwise anywhere.
    const uint64_t pick = rng() % 10;
    const int64_t position = pick == 0 ? 0 : (pick == 1 ? shared_->size - 1 : RandomPosition(rng));
    if (!Edited(*shared_, work,
                [&](RawDb& db) { db.Delete(kEventsCf, format::PositionKey(position)); })) {
      return;
    }
    Judge(
        *shared_, work, absl::StrCat("deleted position ", position),
        [&](const RocksEventLog::VerifyReport& r) {
          return r.first_mismatch == std::optional<int64_t>(position / kBlock * kBlock);
        },
        [&](RocksEventLog& log) { return ReadPathRefuses(log, position, shared_->kept); }, one);
  });
  Report("deleted events", tally);
}

TEST_F(Tamper, ReorderedEvents) {
  const int edits = std::max(15, TamperEdits() / 20);
  Tally tally = Run(edits, [&](std::mt19937_64& rng, const std::string& work, Tally& one) {
    // Half of the swaps are of neighbours, half of any two events.
    int64_t a = RandomPosition(rng);
    int64_t b = rng() % 2 == 0 ? (a + 1 < shared_->size ? a + 1 : a - 1) : RandomPosition(rng);
    while (b == a) b = RandomPosition(rng);
    if (a > b) std::swap(a, b);
    if (!Edited(*shared_, work, [&](RawDb& db) {
          const std::string va = db.Get(kEventsCf, format::PositionKey(a));
          const std::string vb = db.Get(kEventsCf, format::PositionKey(b));
          db.Put(kEventsCf, format::PositionKey(a), vb);
          db.Put(kEventsCf, format::PositionKey(b), va);
        })) {
      return;
    }
    Judge(
        *shared_, work, absl::StrCat("swapped positions ", a, " and ", b),
        [&](const RocksEventLog::VerifyReport& r) { return NamesBlockOf(r, a); },
        [&](RocksEventLog& log) {
          return ReadPathRefuses(log, a, shared_->kept) && ReadPathRefuses(log, b, shared_->kept);
        },
        one);
  });
  Report("swapped pairs of events", tally);
}

TEST_F(Tamper, InsertedEvents) {
  const int edits = std::max(15, TamperEdits() / 20);
  Tally tally = Run(edits, [&](std::mt19937_64& rng, const std::string& work, Tally& one) {
    // A well-formed event of an existing case, inserted at `position`; the events from
    // there on move up by one, as an insertion into a sequence does.
    const int64_t position = RandomPosition(rng);
    if (!Edited(*shared_, work, [&](RawDb& db) {
          const StoredEvent& near = shared_->events[static_cast<size_t>(position)];
          std::string forged;
          format::AppendEventRecord(&forged, near.stream, near.version,
                                    "{\"kind\":\"Approved\",\"note\":\"inserted\"}");
          for (int64_t p = shared_->size - 1; p >= position; --p) {
            db.Put(kEventsCf, format::PositionKey(p + 1),
                   db.Get(kEventsCf, format::PositionKey(p)));
          }
          db.Put(kEventsCf, format::PositionKey(position), forged);
        })) {
      return;
    }
    Judge(
        *shared_, work, absl::StrCat("inserted at position ", position),
        [&](const RocksEventLog::VerifyReport& r) { return NamesBlockOf(r, position); },
        [&](RocksEventLog& log) { return ReadPathRefuses(log, position, shared_->kept); }, one);
  });
  Report("inserted events", tally);
}

// The stream index (streams family) is outside the tree; ReadStream checks every event it
// serves against the index entry that led to it. A flipped bit must give DATA_LOSS or the
// stream exactly as written, never another event.
//
// An edit of a stream's index entry: ReadStream refuses an entry that is malformed or
// places a version before the previous one (also keeping MultiGet's keys sorted) with
// DATA_LOSS, and any other edit is caught by the event's own stream and version.
TEST_F(Tamper, SingleBitEditsOfStreamIndexEntries) {
  const int edits = std::max(40, TamperEdits() / 10);
  std::atomic<int> refused{0};
  std::atomic<int> intact{0};
  std::atomic<int> wrong{0};
  Parallel(edits, seed_, [&](int, std::mt19937_64& rng, const std::string& work) {
    const Written& append = shared_->appends[rng() % shared_->appends.size()];
    if (!Edited(*shared_, work, [&](RawDb& db) {
          FlipBit(db, kStreamsCf, format::StreamKey(append.stream, append.result.version), rng);
        })) {
      return;
    }
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log =
        RocksEventLog::Open(OptionsAt(*shared_, work));
    EXPECT_THAT(log, IsOk());  // the open does not read the index
    if (!log.ok()) return;
    absl::StatusOr<std::vector<StoredEvent>> events =
        (*log)->ReadStream(append.stream, 1, 1u << 20);
    if (!events.ok()) {
      EXPECT_EQ(events.status().code(), absl::StatusCode::kDataLoss) << events.status();
      ++refused;
      return;
    }
    const std::vector<int64_t>& positions = shared_->stream_positions.at(append.stream);
    bool same = events->size() == positions.size();
    for (size_t k = 0; same && k < positions.size(); ++k) {
      const StoredEvent& truth = shared_->events[static_cast<size_t>(positions[k])];
      const StoredEvent& got = (*events)[k];
      same = got.position == truth.position && got.version == truth.version &&
             got.stream == truth.stream && got.bytes == truth.bytes;
    }
    if (same) {
      ++intact;
    } else {
      ++wrong;
      ADD_FAILURE() << "stream " << append.stream << " served other events after an index edit";
    }
  });
  std::printf(
      "tamper: %d single-bit edits of stream index entries: %d refused by ReadStream with "
      "DATA_LOSS, %d read back exactly as written, %d served other events\n",
      edits, refused.load(), intact.load(), wrong.load());
  EXPECT_EQ(wrong.load(), 0);
}

// The request records and the projections are outside the tree by design (docs/storage.md):
// neither Verify nor a proof covers them. This measures what an edit there does; the log
// itself stays intact and verifiable.
TEST_F(Tamper, EditsOutsideTheTreeAreNotCoveredByVerify) {
  const int edits = std::max(10, TamperEdits() / 50);
  std::atomic<int> request_changed{0};
  std::atomic<int> request_refused{0};
  std::atomic<int> projection_changed{0};
  std::atomic<int> projection_refused{0};
  Parallel(edits, seed_, [&](int, std::mt19937_64& rng, const std::string& work) {
    const Written& append = shared_->appends[rng() % shared_->appends.size()];
    const auto& [projection_key, projection_value] =
        shared_->projections[rng() % shared_->projections.size()];
    if (!Edited(*shared_, work, [&](RawDb& db) {
          FlipBit(db, kRequestsCf, format::RequestKey(append.stream, append.request_id), rng);
          // A plain put over a counter too: what a rewrite of the value looks like.
          std::string value = projection_value;
          value[rng() % value.size()] ^= static_cast<char>(1 << (rng() % 8));
          db.Put(kProjectionsCf, projection_key, value);
        })) {
      return;
    }
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log =
        RocksEventLog::Open(OptionsAt(*shared_, work));
    EXPECT_THAT(log, IsOk());
    if (!log.ok()) return;
    absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, (*log)->Size());
    EXPECT_THAT(report, IsOk());
    if (report.ok()) {
      EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
    }
    absl::StatusOr<std::optional<AppendResult>> found =
        (*log)->FindRequest(append.stream, append.request_id);
    if (!found.ok()) {
      EXPECT_EQ(found.status().code(), absl::StatusCode::kDataLoss) << found.status();
      ++request_refused;
    } else if (!found->has_value() || (*found)->first_position != append.result.first_position ||
               (*found)->event_count != append.result.event_count ||
               (*found)->version != append.result.version ||
               (*found)->request_fingerprint != append.result.request_fingerprint) {
      ++request_changed;
    }
    absl::Status scanned;
    std::vector<std::pair<std::string, std::string>> dump = DumpProjections(**log, &scanned);
    if (!scanned.ok()) {
      ++projection_refused;
    } else if (dump != shared_->projections) {
      ++projection_changed;
    }
  });
  std::printf(
      "tamper: %d single-bit edits of request records: %d refused with DATA_LOSS, %d answered "
      "altered, 0 caught by verify; %d edits of projection values: %d refused, %d served "
      "altered, 0 caught by verify (outside the tree: rebuild projections from the log)\n",
      edits, request_refused.load(), request_changed.load(), edits, projection_refused.load(),
      projection_changed.load());
}

// An older copy of the directory served again, after a client kept a later checkpoint.
TEST_F(Tamper, OlderTreeServed) {
  const Checkpoint& kept = shared_->kept;
  const Checkpoint& older = shared_->kept_older;
  ASSERT_LT(older.size, kept.size);
  int caught = 0;
  TempDir dir;
  const std::string work = dir.Sub("work");
  // 1. With the later checkpoint file beside it (it is outside RocksDB): refused at open.
  CopyLog(shared_->older, work, /*link_tables=*/true);
  fs::copy_file(shared_->pristine + "/log.checkpoint", work + "/log.checkpoint",
                fs::copy_options::overwrite_existing);
  absl::StatusOr<std::unique_ptr<RocksEventLog>> log =
      RocksEventLog::Open(OptionsAt(*shared_, work));
  EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
  EXPECT_THAT(std::string(log.status().message()),
              ::testing::HasSubstr("acknowledged events are missing"));
  if (log.status().code() == absl::StatusCode::kDataLoss) ++caught;
  // 2. With its own, older checkpoint file: it opens; the client's kept checkpoint is
  // beyond the served tree, so no proof at the kept size exists.
  CopyLog(shared_->older, work, /*link_tables=*/true);
  log = RocksEventLog::Open(OptionsAt(*shared_, work));
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->Size(), older.size);
  EXPECT_EQ((*log)->ConsistencyProof(kept.size, kept.size).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ((*log)->InclusionProof(0, kept.size).status().code(), absl::StatusCode::kOutOfRange);
  if (ConsistencyRefuses(**log, kept, shared_->verifier)) ++caught;
  // 3. Regrown past the kept size with other events (a fork), and freshly signed with the
  // server key: the checkpoint verifies, the consistency proof from the kept one fails.
  std::mt19937_64 rng(seed_);
  std::vector<int64_t> versions(kStreams, 0);
  for (const auto& [stream, positions] : shared_->stream_positions) {
    const int s = std::atoi(stream.c_str() + std::string("cases/c-").size());
    for (int64_t p : positions) {
      if (p < older.size) versions[s] = shared_->events[static_cast<size_t>(p)].version;
    }
  }
  std::vector<Written> forked;
  int next_request = 1'000'000;
  Fill(**log, static_cast<int>(kept.size - older.size) + 40, rng, versions, forked, next_request);
  ASSERT_GT((*log)->Size(), kept.size);
  EXPECT_TRUE(ConsistencyRefuses(**log, older, shared_->verifier) == false)
      << "the fork extends the older tree consistently";
  const int64_t fork_size = (*log)->Size();
  const bool fork_caught = ConsistencyRefuses(**log, kept, shared_->verifier);
  EXPECT_TRUE(fork_caught);
  if (fork_caught) ++caught;
  // And the kept checkpoint file put back beside the fork: refused at open (another root).
  log->reset();
  fs::copy_file(shared_->pristine + "/log.checkpoint", work + "/log.checkpoint",
                fs::copy_options::overwrite_existing);
  absl::StatusOr<std::unique_ptr<RocksEventLog>> reopened =
      RocksEventLog::Open(OptionsAt(*shared_, work));
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss) << reopened.status();
  if (reopened.status().code() == absl::StatusCode::kDataLoss) ++caught;
  std::printf(
      "tamper: older tree served (a copy at %lld events, the client kept %lld): %d of 4 ways "
      "caught (later checkpoint file beside it: refused at open; its own older file: the kept "
      "size is beyond the served tree; forked and regrown to %lld events with a fresh signed "
      "checkpoint: the consistency proof from the kept checkpoint fails; the fork with the "
      "kept file: refused at open)\n",
      static_cast<long long>(older.size), static_cast<long long>(kept.size), caught,
      static_cast<long long>(fork_size));
  EXPECT_EQ(caught, 4);
}

// ---------------------------------------------------------------------------------------
// SST damage.

struct SstFile {
  std::string name;
  uintmax_t size = 0;
};

enum class SstOutcome { kRefusedAtOpen, kDataLossOnRead, kUnaffected, kWrongData, kOtherError };

struct Sweep {
  bool data_loss = false;
  bool other_error = false;
  std::vector<std::string> wrong;  // values served that differ from what was written
};

void Observe(Sweep& sweep, const absl::Status& status, const std::string& what) {
  if (status.code() == absl::StatusCode::kDataLoss) {
    sweep.data_loss = true;
  } else {
    sweep.other_error = true;
    ADD_FAILURE() << what << ": " << status;
  }
}

// Reads everything the log holds through the store and compares it with what was written.
Sweep ReadEverything(RocksEventLog& log, const Shared& shared) {
  Sweep sweep;
  if (log.Size() != shared.size) {
    sweep.wrong.push_back(absl::StrCat("size ", log.Size(), " instead of ", shared.size));
  }
  const int64_t size = std::min(log.Size(), shared.size);
  absl::StatusOr<RocksEventLog::VerifyReport> report = log.Verify(0, log.Size());
  if (!report.ok()) {
    Observe(sweep, report.status(), "verify");
  } else if (report->first_mismatch.has_value()) {
    sweep.data_loss = true;  // reported as a mismatch: detected
  }
  for (int64_t from = 0; from < size; from += 512) {
    absl::StatusOr<std::vector<StoredEvent>> chunk = log.ReadRange(from, 512);
    if (!chunk.ok()) {
      Observe(sweep, chunk.status(), "ReadRange");
      continue;
    }
    for (const StoredEvent& got : *chunk) {
      const StoredEvent& truth = shared.events[static_cast<size_t>(got.position)];
      if (got.stream != truth.stream || got.version != truth.version || got.bytes != truth.bytes ||
          got.leaf_hash != truth.leaf_hash) {
        sweep.wrong.push_back(absl::StrCat("event at position ", got.position));
      }
    }
  }
  for (const auto& [stream, positions] : shared.stream_positions) {
    absl::StatusOr<std::vector<StoredEvent>> events = log.ReadStream(stream, 1, 1u << 20);
    if (!events.ok()) {
      Observe(sweep, events.status(), "ReadStream");
      continue;
    }
    bool same = events->size() == positions.size();
    for (size_t k = 0; same && k < positions.size(); ++k) {
      const StoredEvent& truth = shared.events[static_cast<size_t>(positions[k])];
      const StoredEvent& got = (*events)[k];
      same = got.position == truth.position && got.version == truth.version &&
             got.stream == truth.stream && got.bytes == truth.bytes;
    }
    if (!same) sweep.wrong.push_back(absl::StrCat("stream ", stream));
    absl::StatusOr<int64_t> version = log.StreamVersion(stream);
    if (!version.ok()) {
      Observe(sweep, version.status(), "StreamVersion");
    } else if (*version != shared.events[static_cast<size_t>(positions.back())].version) {
      sweep.wrong.push_back(absl::StrCat("version of stream ", stream));
    }
  }
  for (const Written& append : shared.appends) {
    absl::StatusOr<std::optional<AppendResult>> found =
        log.FindRequest(append.stream, append.request_id);
    if (!found.ok()) {
      Observe(sweep, found.status(), "FindRequest");
    } else if (!found->has_value() || (*found)->first_position != append.result.first_position ||
               (*found)->event_count != append.result.event_count ||
               (*found)->version != append.result.version ||
               (*found)->request_fingerprint != append.result.request_fingerprint) {
      sweep.wrong.push_back(absl::StrCat("request ", append.request_id));
    }
  }
  absl::Status scanned;
  std::vector<std::pair<std::string, std::string>> dump = DumpProjections(log, &scanned);
  if (!scanned.ok()) {
    Observe(sweep, scanned, "ScanAllProjections");
  } else if (dump != shared.projections) {
    sweep.wrong.push_back("projections");
  }
  for (const auto& [key, value] : shared.projections) {
    const size_t separator = key.find('\0');
    absl::StatusOr<std::optional<std::string>> got =
        log.GetProjection(key.substr(0, separator), key.substr(separator + 1));
    if (!got.ok()) {
      Observe(sweep, got.status(), "GetProjection");
    } else if (*got != std::optional<std::string>(value)) {
      sweep.wrong.push_back(absl::StrCat("projection ", key));
    }
  }
  return sweep;
}

TEST(SstDamage, FlippedBytesAreRefusedOrHarmless) {
  const Shared* shared = GetShared();
  ASSERT_NE(shared, nullptr);
  const uint64_t seed = Seed();
  std::vector<SstFile> files;
  uintmax_t total = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(shared->pristine + "/log")) {
    if (entry.path().extension() != ".sst") continue;
    files.push_back({entry.path().filename().string(), entry.file_size()});
    total += entry.file_size();
  }
  std::sort(files.begin(), files.end(),
            [](const SstFile& a, const SstFile& b) { return a.name < b.name; });
  ASSERT_GE(files.size(), 3u) << "expected several SST files";
  const int flips = SstFlips();
  absl::Mutex mu;
  std::map<SstOutcome, int> outcomes;
  int refused_without_advice = 0;
  Parallel(flips, seed ^ 0x55aa, [&](int, std::mt19937_64& rng, const std::string& work) {
    // A byte position uniformly over all SST bytes.
    uintmax_t at = rng() % total;
    size_t f = 0;
    while (at >= files[f].size) at -= files[f++].size;
    const char mask = static_cast<char>(1 + rng() % 255);
    const std::string what = absl::StrCat(files[f].name, " byte ", at, " of ", files[f].size,
                                          " xor ", static_cast<int>(static_cast<uint8_t>(mask)));
    SCOPED_TRACE(absl::StrCat(what, ", seed ", seed));
    CopyLog(shared->pristine, work, /*link_tables=*/false);
    {
      std::fstream file(work + "/log/" + files[f].name,
                        std::ios::in | std::ios::out | std::ios::binary);
      ASSERT_TRUE(file.good());
      file.seekg(static_cast<std::streamoff>(at));
      char byte = 0;
      file.read(&byte, 1);
      byte = static_cast<char>(byte ^ mask);
      file.seekp(static_cast<std::streamoff>(at));
      file.write(&byte, 1);
      ASSERT_TRUE(file.good());
    }
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log =
        RocksEventLog::Open(OptionsAt(*shared, work));
    SstOutcome outcome;
    if (!log.ok()) {
      EXPECT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
      // The message names the damaged file where RocksDB does, and always says what to
      // do, whether RocksDB's own open failed or the store's first reads (the first and
      // last events, the right edge of the tree) found the damage.
      const std::string message(log.status().message());
      EXPECT_THAT(message, ::testing::AnyOf(::testing::HasSubstr(".sst"),
                                            ::testing::HasSubstr("restore the last verified")));
      if (message.find("restore the last verified backup") == std::string::npos) {
        absl::MutexLock lock(&mu);
        ++refused_without_advice;
      }
      outcome = log.status().code() == absl::StatusCode::kDataLoss ? SstOutcome::kRefusedAtOpen
                                                                   : SstOutcome::kOtherError;
    } else {
      Sweep sweep = ReadEverything(**log, *shared);
      for (size_t k = 0; k < sweep.wrong.size() && k < 5; ++k) {
        ADD_FAILURE() << "served altered: " << sweep.wrong[k];
      }
      outcome = !sweep.wrong.empty() ? SstOutcome::kWrongData
                : sweep.other_error  ? SstOutcome::kOtherError
                : sweep.data_loss    ? SstOutcome::kDataLossOnRead
                                     : SstOutcome::kUnaffected;
    }
    absl::MutexLock lock(&mu);
    ++outcomes[outcome];
  });
  std::printf(
      "sst damage: %d flipped bytes in %zu SST files (%llu bytes): %d refused at open with "
      "DATA_LOSS (%d of them with RocksDB's message alone, without the store's advice), %d "
      "opened and verify or a read returned DATA_LOSS, %d opened with every "
      "event, index entry, request and projection read back exactly, %d served altered data, "
      "%d other errors\n",
      flips, files.size(), static_cast<unsigned long long>(total),
      outcomes[SstOutcome::kRefusedAtOpen], refused_without_advice,
      outcomes[SstOutcome::kDataLossOnRead], outcomes[SstOutcome::kUnaffected],
      outcomes[SstOutcome::kWrongData], outcomes[SstOutcome::kOtherError]);
  EXPECT_EQ(outcomes[SstOutcome::kWrongData], 0);
  EXPECT_EQ(outcomes[SstOutcome::kOtherError], 0);
  EXPECT_EQ(refused_without_advice, 0);
}

}  // namespace
}  // namespace casework::store

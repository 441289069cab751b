// Benchmarks of the store, durable (every append synced before it is answered):
// append throughput by number of concurrent appenders, inclusion proofs, verify rate.
// Data lives under $TMPDIR and is removed afterwards.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"
#include "store/wal_tail.h"

namespace casework::store {
namespace {

constexpr size_t kEventBytes = 200;

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<RocksEventLog> log;
  Fixture() {
    RocksEventLog::Options options;
    options.path = dir.Sub("log");
    // CW_WAL_SPARE_MIB: the size of the zero-filled spare each WAL file is written into
    // (store/zero_filled_wal.h; 0: WAL files grow from empty), for an A/B of the two.
    if (const char* spare = std::getenv("CW_WAL_SPARE_MIB"); spare != nullptr) {
      options.wal_spare_bytes = std::strtoull(spare, nullptr, 10) << 20;
    }
    auto opened = RocksEventLog::Open(options);
    if (!opened.ok()) std::abort();
    log = *std::move(opened);
  }
};

// Issues `appends` one-event appends keeping `window` in flight, each on its own stream
// (a caller waiting on its own case), as a server with `window` concurrent requests
// would; returns when all are answered.
void AppendWindow(RocksEventLog& log, int64_t appends, int window) {
  absl::Mutex mu;
  std::vector<int64_t> versions(static_cast<size_t>(window));
  std::vector<std::string> streams;
  std::vector<int> free_slots;
  for (int w = 0; w < window; ++w) {
    streams.push_back(absl::StrCat("bench/w", w));
    versions[static_cast<size_t>(w)] = *log.StreamVersion(streams.back());
    free_slots.push_back(w);
  }
  const std::string payload(kEventBytes, 'e');
  int64_t errors = 0;
  for (int64_t i = 0; i < appends; ++i) {
    int slot = 0;
    int64_t version = 0;
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](std::vector<int>* f) { return !f->empty(); }, &free_slots));
      slot = free_slots.back();
      free_slots.pop_back();
      version = versions[static_cast<size_t>(slot)];
    }
    log.AppendAsync({.stream = streams[static_cast<size_t>(slot)],
                     .expected_version = version,
                     .events = {payload}},
                    [&, slot](absl::StatusOr<AppendResult> result) {
                      absl::MutexLock lock(&mu);
                      if (result.ok()) {
                        versions[static_cast<size_t>(slot)] = result->version;
                      } else {
                        ++errors;
                      }
                      free_slots.push_back(slot);
                    });
  }
  struct AllAnswered {
    const std::vector<int>* free_slots;
    size_t window;
    bool Ready() const { return free_slots->size() == window; }
  } all_answered{&free_slots, static_cast<size_t>(window)};
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&all_answered, &AllAnswered::Ready));
  if (errors != 0) std::abort();
}

// N appenders, each with one append in flight: args = N.
void BM_DurableAppend(benchmark::State& state) {
  Fixture fixture;
  const int window = static_cast<int>(state.range(0));
  constexpr int64_t kAppendsPerIteration = 20000;
  for (auto _ : state) AppendWindow(*fixture.log, kAppendsPerIteration, window);
  state.SetItemsProcessed(state.iterations() * kAppendsPerIteration);
  state.counters["events_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kAppendsPerIteration), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DurableAppend)
    ->Arg(1)
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->Iterations(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Blocking Append from N threads, one stream each.
void BM_DurableAppendThreads(benchmark::State& state) {
  static Fixture* fixture = nullptr;
  if (state.thread_index() == 0) fixture = new Fixture();
  const std::string stream = absl::StrCat("bench/t", state.thread_index());
  const std::string payload(kEventBytes, 'e');
  int64_t version = 0;
  for (auto _ : state) {
    auto result =
        fixture->log->Append({.stream = stream, .expected_version = version, .events = {payload}});
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      break;
    }
    version = result->version;
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete fixture;
    fixture = nullptr;
  }
}
BENCHMARK(BM_DurableAppendThreads)->Threads(1)->Threads(16)->Threads(64)->UseRealTime();

Fixture* filled = nullptr;  // made on first use, removed by main

Fixture& Filled() {
  if (filled == nullptr) {
    filled = new Fixture();
    AppendWindow(*filled->log, 200000, 512);
  }
  return *filled;
}

void BM_InclusionProof(benchmark::State& state) {
  RocksEventLog& log = *Filled().log;
  const int64_t size = log.Size();
  std::mt19937_64 rng(42);
  for (auto _ : state) {
    auto proof =
        log.InclusionProof(static_cast<int64_t>(rng() % static_cast<uint64_t>(size)), size);
    if (!proof.ok()) std::abort();
    benchmark::DoNotOptimize(proof);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_InclusionProof);

void BM_Verify(benchmark::State& state) {
  RocksEventLog& log = *Filled().log;
  const int64_t size = log.Size();
  for (auto _ : state) {
    auto report = log.Verify(0, size);
    if (!report.ok() || report->first_mismatch.has_value()) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * size);
}
BENCHMARK(BM_Verify)->Unit(benchmark::kMillisecond);

// The check of the stream and request-id indexes against the events that a backup and a
// restore run after Verify (RocksEventLog::CheckIndexes): here one stream entry per
// one-event append (no request ids), the most entries per event.
void BM_CheckIndexes(benchmark::State& state) {
  RocksEventLog& log = *Filled().log;
  for (auto _ : state) {
    if (!log.CheckIndexes().ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * log.Size());
}
BENCHMARK(BM_CheckIndexes)->Unit(benchmark::kMillisecond);

// The check of the write-ahead log before every open (store/wal_tail.h) on a WAL of the
// largest size the log keeps by default (wal_bytes_max, 64 MiB), as the page cache holds
// it after it was written. Bytes/s is the rate that bounds what it adds to a start-up.
void BM_CheckWalFiles(benchmark::State& state) {
  testing::TempDir dir;
  const std::string path = dir.Sub("wal");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.avoid_flush_during_shutdown = true;
    options.write_buffer_size = 256u << 20;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, path, &raw).ok()) std::abort();
    std::unique_ptr<rocksdb::DB> db(raw);
    const std::string value(1000, 'v');
    for (int i = 0; i < 64 * 1024; ++i) {
      if (!db->Put(rocksdb::WriteOptions(), absl::StrCat("key", i), value).ok()) std::abort();
    }
    if (!db->Close().ok()) std::abort();
  }
  int64_t bytes = 0;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() == ".log") bytes += static_cast<int64_t>(entry.file_size());
  }
  for (auto _ : state) {
    if (!wal::CheckWalFiles(rocksdb::Env::Default(), path).ok()) std::abort();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["wal_mib"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_CheckWalFiles)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace casework::store

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete casework::store::filled;  // closes the log and removes its directory
  return 0;
}

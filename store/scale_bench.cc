// The store at scale: fills a log to N events (default 10 million) on many streams, then
// measures what must not grow with the log:
//   - durable append throughput with 64 appends in flight, on the empty log and at N (each
//     append reads its stream's version first, on one of four feeder threads);
//   - opening the log as found (after a crash: its recovery) and reopening it (start-up
//     after the process stops; nothing is replayed);
//   - reading one stream's events by p50 / p99 / p99.9, and reading its state from a
//     projection (each append also puts one, as a command puts its case; GetCase reads it);
//   - the process's resident memory after reopening.
// Prints a table and one JSON line. Usage:
//   bench_store_scale [--events N] [--streams S] [--dir DIR] [--keep]
// DIR defaults to a fresh folder under $TMPDIR, removed unless --keep. An existing log in
// DIR is reused (and grown to N), so a second run measures without filling again.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "store/log_format.h"
#include "store/rocks_event_log.h"

namespace casework::store {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kEventBytes = 200;
// Each append also puts its stream's state into a projection table, as a command puts its
// case (GetCase reads it back): one more key per event.
constexpr size_t kStateBytes = 300;
constexpr char kStateTable[] = "case";

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

int64_t RssKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

// CPU time of the whole process (every thread, user and system), in seconds: the probe's
// cost per append includes the flushes and compactions its writes cause.
double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU time of the process's threads whose name starts with `prefix`, in seconds, from
// /proc/self/task/*/stat: "rocksdb:" for RocksDB's flushes and compactions (its threads
// "rocksdb:low" and "rocksdb:high"), "log-sequencer" and "log-writer" for the log's two
// serial threads.
double ThreadCpuSeconds(std::string_view prefix) {
  double ticks = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t open = stat.find('(');
    const size_t close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    if (stat.compare(open + 1, prefix.size(), prefix) != 0) continue;
    // After the name: state, then fields 4..; utime and stime are fields 14 and 15.
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 13 && rest >> field; ++i) {
    }
    long long utime = 0, stime = 0;
    rest >> utime >> stime;
    ticks += static_cast<double>(utime + stime);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Where a probe's CPU went, in µs per append.
struct CpuSplit {
  double total = 0;       // the whole process
  double background = 0;  // flushes and compactions
  double sequencer = 0;
  double writer = 0;

  static CpuSplit Now() {
    return {.total = CpuSeconds(),
            .background = ThreadCpuSeconds("rocksdb:"),
            .sequencer = ThreadCpuSeconds("log-sequencer"),
            .writer = ThreadCpuSeconds("log-writer")};
  }
  void Print() const {
    std::printf("%.1f us CPU each: %.1f flushes and compactions, %.1f sequencer, %.1f writer",
                total, background, sequencer, writer);
  }
  CpuSplit PerAppendSince(const CpuSplit& start, int64_t appends) const {
    const double scale = 1e6 / static_cast<double>(appends);
    return {.total = (total - start.total) * scale,
            .background = (background - start.background) * scale,
            .sequencer = (sequencer - start.sequencer) * scale,
            .writer = (writer - start.writer) * scale};
  }
};

std::string StreamName(int64_t i) { return absl::StrCat("cases/s", i); }

// A tag of this process's run: the wall clock at the first call, in microseconds.
const std::string& RunTag() {
  static const std::string tag =
      absl::StrCat(std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
  return tag;
}

// Appends `appends` one-event appends with request ids, `window` in flight, streams taken
// round-robin from `next_stream` over `streams`; returns events per second. Each append
// first reads its stream's state (a projection holding its version) with a read token,
// as a command reads its case; the reads run on `feeders` threads, as commands arrive on
// several of the server's.
double Fill(RocksEventLog& log, int64_t appends, int window, int64_t streams, int64_t* next_stream,
            bool progress, int feeders = 4) {
  absl::Mutex mu;
  int in_flight = 0;
  int64_t errors = 0;
  std::atomic<int64_t> issued{0};
  const int64_t first_stream = *next_stream;
  const std::string payload(kEventBytes, 'e');
  const std::string padding(kStateBytes - 8, 's');
  struct Room {
    const int* in_flight;
    int window;
    bool Ready() const { return *in_flight < window; }
  } room{&in_flight, window};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int f = 0; f < feeders; ++f) {
    threads.emplace_back([&, f] {
      auto last_print = Clock::now();
      for (;;) {
        const int64_t i = issued.fetch_add(1);
        if (i >= appends) return;
        const std::string stream = StreamName((first_stream + i) % streams);
        // As the server's command handler: the token, then the request id and the state.
        const ReadToken token = log.TakeReadToken();
        // Unique to this run as well: a run killed with appends in flight leaves some of
        // the next positions' ids written (appends complete out of their issue order).
        const std::string request_id = absl::StrCat("r", RunTag(), "-", first_stream + i);
        auto first = log.FindRequest(stream, request_id);
        if (!first.ok() || first->has_value()) {
          std::fprintf(stderr, "request id %s of stream %s: %s\n", request_id.c_str(),
                       stream.c_str(),
                       first.ok() ? "already used" : first.status().ToString().c_str());
          std::abort();
        }
        auto stored = log.GetProjection(kStateTable, stream);
        if (!stored.ok()) {
          std::fprintf(stderr, "reading %s: %s\n", stream.c_str(),
                       stored.status().ToString().c_str());
          std::abort();
        }
        int64_t version = 0;
        if (stored->has_value() &&
            !format::DecodeInt64(std::string_view(**stored).substr(0, 8), &version)) {
          std::abort();
        }
        {
          absl::MutexLock lock(&mu);
          mu.Await(absl::Condition(&room, &Room::Ready));
          ++in_flight;
        }
        log.AppendAsync({.stream = stream,
                         .expected_version = version,
                         .events = {payload},
                         .request_id = request_id,
                         .projections = {{.op = ProjectionWrite::Op::kPut,
                                          .table = kStateTable,
                                          .key = stream,
                                          .value = format::EncodeInt64(version + 1) + padding}},
                         .read_token = token,
                         .request_id_checked = true},
                        [&](absl::StatusOr<AppendResult> result) {
                          absl::MutexLock lock(&mu);
                          --in_flight;
                          if (!result.ok()) ++errors;
                        });
        if (progress && f == 0 && Seconds(last_print) > 2) {
          last_print = Clock::now();
          std::fprintf(stderr, "\r  %lld / %lld events, %.0f events/s   ",
                       static_cast<long long>(i), static_cast<long long>(appends),
                       static_cast<double>(i) / Seconds(start));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  *next_stream = first_stream + appends;
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight));
  if (progress) std::fprintf(stderr, "\n");
  if (errors != 0) {
    std::fprintf(stderr, "%lld appends failed\n", static_cast<long long>(errors));
    std::abort();
  }
  return static_cast<double>(appends) / Seconds(start);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace
}  // namespace casework::store

int main(int argc, char** argv) {
  using namespace casework::store;
  int64_t events = 10'000'000;
  int64_t streams = 100'000;
  std::string dir;
  bool keep = false;
  int64_t probe_appends = 20'000;
  bool reads = true;
  int64_t block_cache_mib = 0;  // 0: the log's default
  bool check = false;           // time Verify and CheckIndexes, as a restore runs them
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
      events = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--streams") == 0 && i + 1 < argc) {
      streams = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
      dir = argv[++i];
    } else if (std::strcmp(argv[i], "--keep") == 0) {
      keep = true;
    } else if (std::strcmp(argv[i], "--probe") == 0 && i + 1 < argc) {
      probe_appends = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--no-reads") == 0) {
      reads = false;
    } else if (std::strcmp(argv[i], "--block-cache-mib") == 0 && i + 1 < argc) {
      block_cache_mib = std::atoll(argv[++i]);
    } else if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--events N] [--streams S] [--dir DIR] [--keep] [--probe APPENDS] "
                   "[--no-reads] [--block-cache-mib M] [--check]\n",
                   argv[0]);
      return 2;
    }
  }
  const bool made_dir = dir.empty();
  if (made_dir) {
    std::string pattern = (std::filesystem::temp_directory_path() / "casework-scale-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) return 1;
    dir = pattern;
  }
  RocksEventLog::Options options;
  options.path = dir + "/log";
  if (block_cache_mib > 0) options.block_cache_bytes = static_cast<size_t>(block_cache_mib) << 20;
  auto open = [&options]() {
    auto log = RocksEventLog::Open(options);
    if (!log.ok()) {
      std::fprintf(stderr, "open: %s\n", log.status().ToString().c_str());
      std::exit(1);
    }
    return *std::move(log);
  };

  const int64_t kProbeAppends = probe_appends;
  constexpr int kProbeWindow = 64;
  // The first open, timed too: on a log a killed process left (kill -9 during a probe),
  // it is the start-up after a crash (the WAL checked, a torn write cut, the WAL replayed).
  const auto first_opening = Clock::now();
  auto log = open();
  const double first_open_seconds = Seconds(first_opening);
  int64_t next_stream = log->Size();
  double empty_rate = 0;
  CpuSplit empty_cpu;
  if (log->Size() == 0) {
    const CpuSplit start = CpuSplit::Now();
    empty_rate = Fill(*log, kProbeAppends, kProbeWindow, streams, &next_stream, false);
    empty_cpu = CpuSplit::Now().PerAppendSince(start, kProbeAppends);
  }
  if (log->Size() < events) {
    std::fprintf(stderr, "filling to %lld events on %lld streams\n", static_cast<long long>(events),
                 static_cast<long long>(streams));
    const double rate = Fill(*log, events - log->Size(), 4096, streams, &next_stream, true);
    std::fprintf(stderr, "filled at %.0f events/s\n", rate);
  }
  const int64_t size = log->Size();
  const CpuSplit full_start = CpuSplit::Now();
  const double full_rate = Fill(*log, kProbeAppends, kProbeWindow, streams, &next_stream, false);
  const CpuSplit full_cpu = CpuSplit::Now().PerAppendSince(full_start, kProbeAppends);
  log.reset();

  // Start-up: open the stopped log (the checkpoint is checked, nothing is replayed).
  const auto opening = Clock::now();
  log = open();
  const double open_seconds = Seconds(opening);
  const int64_t rss_after_open = RssKiB();

  // Reading one stream's events, as GetCase's fold does, for random streams.
  std::mt19937_64 rng(7);
  std::vector<double> read_micros;
  for (int i = 0; reads && i < 20'000; ++i) {
    const std::string stream =
        StreamName(static_cast<int64_t>(rng() % static_cast<uint64_t>(streams)));
    const auto t = Clock::now();
    auto version = log->StreamVersion(stream);
    auto events_read = log->ReadStream(stream, 1, 1000);
    if (!version.ok() || !events_read.ok()) std::abort();
    read_micros.push_back(Seconds(t) * 1e6);
  }
  // Reading one stream's state from its projection, as GetCase does: one point read.
  std::vector<double> get_micros;
  for (int i = 0; reads && i < 20'000; ++i) {
    const std::string stream =
        StreamName(static_cast<int64_t>(rng() % static_cast<uint64_t>(streams)));
    const auto t = Clock::now();
    auto value = log->GetProjection(kStateTable, stream);
    if (!value.ok()) std::abort();
    get_micros.push_back(Seconds(t) * 1e6);
  }
  const int64_t rss_after_reads = RssKiB();
  const RocksEventLog::MemoryUsage memory = log->GetMemoryUsage();
  // The checks a backup and a restore run over the whole log.
  double verify_seconds = 0;
  double check_seconds = 0;
  if (check) {
    auto t = Clock::now();
    auto report = log->Verify(0, log->Size());
    if (!report.ok() || report->first_mismatch.has_value()) std::abort();
    verify_seconds = Seconds(t);
    t = Clock::now();
    if (!log->CheckIndexes().ok()) std::abort();
    check_seconds = Seconds(t);
  }
  std::printf("| measure | value |\n|---|---|\n");
  std::printf("| events in the log | %lld on %lld streams |\n", static_cast<long long>(size),
              static_cast<long long>(streams));
  if (empty_rate > 0) {
    std::printf("| durable appends/s, 64 in flight, empty log | %.0f (", empty_rate);
    empty_cpu.Print();
    std::printf(") |\n");
  }
  std::printf("| durable appends/s, 64 in flight, at %lld events | %.0f (",
              static_cast<long long>(size), full_rate);
  full_cpu.Print();
  std::printf(") |\n");
  std::printf("| first open (the log as found; after a crash, its recovery) | %.3f s |\n",
              first_open_seconds);
  std::printf("| reopen (start-up) | %.3f s |\n", open_seconds);
  if (check) {
    std::printf(
        "| Verify / CheckIndexes over the whole log (as a backup or restore) | %.1f / %.1f s |\n",
        verify_seconds, check_seconds);
  }
  std::printf("| read one stream (version + events) p50 / p99 / p99.9 | %.0f / %.0f / %.0f us |\n",
              Percentile(read_micros, 0.5), Percentile(read_micros, 0.99),
              Percentile(read_micros, 0.999));
  std::printf(
      "| one stream's state (projection point read, as GetCase) p50 / p99 / p99.9 | %.1f / "
      "%.1f / %.1f us |\n",
      Percentile(get_micros, 0.5), Percentile(get_micros, 0.99), Percentile(get_micros, 0.999));
  std::printf("| RSS after reopen / after 40k reads | %lld / %lld MiB |\n",
              static_cast<long long>(rss_after_open / 1024),
              static_cast<long long>(rss_after_reads / 1024));
  std::printf(
      "| the log's memory after the reads: block cache / memtables / index and filter blocks | "
      "%lld / %lld / %lld MiB |\n",
      static_cast<long long>(memory.block_cache >> 20),
      static_cast<long long>(memory.memtables >> 20),
      static_cast<long long>(memory.table_readers >> 20));
  std::printf(
      "{\"events\":%lld,\"empty_appends_per_s\":%.0f,\"full_appends_per_s\":%.0f,"
      "\"empty_cpu_us\":%.1f,\"full_cpu_us\":%.1f,\"empty_background_us\":%.1f,"
      "\"full_background_us\":%.1f,\"full_sequencer_us\":%.1f,\"full_writer_us\":%.1f,"
      "\"open_s\":%.3f,\"read_p50_us\":%.0f,\"read_p99_us\":%.0f,\"get_p50_us\":%.1f,"
      "\"get_p99_us\":%.1f,\"rss_mib\":%lld,\"table_readers_mib\":%lld,"
      "\"empty_sequencer_us\":%.1f,\"empty_writer_us\":%.1f,\"first_open_s\":%.3f}\n",
      static_cast<long long>(size), empty_rate, full_rate, empty_cpu.total, full_cpu.total,
      empty_cpu.background, full_cpu.background, full_cpu.sequencer, full_cpu.writer, open_seconds,
      Percentile(read_micros, 0.5), Percentile(read_micros, 0.99), Percentile(get_micros, 0.5),
      Percentile(get_micros, 0.99), static_cast<long long>(rss_after_reads / 1024),
      static_cast<long long>(memory.table_readers >> 20), empty_cpu.sequencer, empty_cpu.writer,
      first_open_seconds);
  log.reset();
  if (made_dir && !keep) std::filesystem::remove_all(dir);
  return 0;
}

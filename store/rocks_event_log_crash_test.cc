// Proves durability under kill -9: a forked child appends from several threads and
// reports each acknowledged append through a pipe; the parent SIGKILLs it at a random
// moment, reopens the log, and finds every acknowledged event exactly where the
// acknowledgement said, with gapless positions, contiguous versions and a clean Verify.
// Several rounds on the same log; seeded (the seed is printed; CW_TEST_SEED replays).
#include <fcntl.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "store/rocks_event_log.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::TempDir;

constexpr int kRoundsMax = 3;
constexpr int kChildThreads = 16;
constexpr int kChildAppendsMax = 200000;  // per thread; the child is killed long before

struct Ack {
  int64_t position;
  int64_t thread;
  int64_t version;
};

std::string EventBytes(int64_t thread, int64_t version) {
  return absl::StrCat("t", thread, "/v", version);
}

// The child: never returns.
[[noreturn]] void RunChild(const RocksEventLog::Options& options, int ack_fd) {
  auto log = RocksEventLog::Open(options);
  if (!log.ok()) {
    std::fprintf(stderr, "child: %s\n", log.status().ToString().c_str());
    _exit(3);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kChildThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string stream = absl::StrCat("crash/t", t);
      auto version = (*log)->StreamVersion(stream);
      if (!version.ok()) _exit(4);
      int64_t v = *version;
      for (int i = 0; i < kChildAppendsMax; ++i) {
        auto result = (*log)->Append({.stream = stream,
                                      .expected_version = v,
                                      .events = {EventBytes(t, v + 1)},
                                      .request_id = absl::StrCat("r", v + 1)});
        if (!result.ok()) _exit(5);
        v = result->version;
        Ack ack{result->first_position, t, v};
        if (write(ack_fd, &ack, sizeof(ack)) != static_cast<ssize_t>(sizeof(ack))) _exit(6);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  _exit(0);
}

// Every event of the log, read page by page.
absl::StatusOr<std::vector<StoredEvent>> ReadAll(RocksEventLog& log) {
  std::vector<StoredEvent> all;
  while (static_cast<int64_t>(all.size()) < log.Size()) {
    absl::StatusOr<std::vector<StoredEvent>> page =
        log.ReadRange(static_cast<int64_t>(all.size()), 1 << 16);
    if (!page.ok()) return page.status();
    if (page->empty()) break;
    std::move(page->begin(), page->end(), std::back_inserter(all));
  }
  return all;
}

TEST(RocksEventLogCrash, EveryAcknowledgedAppendSurvivesKill9) {
  const char* env = std::getenv("CW_TEST_SEED");
  const unsigned seed = env != nullptr ? static_cast<unsigned>(std::strtoul(env, nullptr, 10))
                                       : std::random_device{}();
  std::printf("seed %u (replay with CW_TEST_SEED=%u)\n", seed, seed);
  std::mt19937 rng(seed);
  TempDir dir;
  RocksEventLog::Options options;
  options.path = dir.Sub("log");
  options.checkpoint_interval_ms = 20;  // so that kills land during checkpoint writes too
  std::vector<Ack> acks;
  for (int round = 0; round < kRoundsMax; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      RunChild(options, fds[1]);
    }
    close(fds[1]);
    // Wait (bounded) for the first acknowledgement, read more for a random while, then
    // kill without warning.
    size_t round_acks = 0;
    Ack ack;
    {
      fd_set readable;
      FD_ZERO(&readable);
      FD_SET(fds[0], &readable);
      timeval first_ack_timeout{.tv_sec = 60, .tv_usec = 0};
      ASSERT_EQ(select(fds[0] + 1, &readable, nullptr, nullptr, &first_ack_timeout), 1)
          << "no acknowledgement within 60 s";
    }
    const auto kill_after = std::chrono::milliseconds(50 + rng() % 700);
    const auto deadline = std::chrono::steady_clock::now() + kill_after;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    while (std::chrono::steady_clock::now() < deadline) {
      ssize_t n = read(fds[0], &ack, sizeof(ack));
      if (n == static_cast<ssize_t>(sizeof(ack))) {
        acks.push_back(ack);
        ++round_acks;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    ASSERT_EQ(kill(child, SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(child, &wstatus, 0), child);
    EXPECT_TRUE(WIFSIGNALED(wstatus)) << "the child ended by itself: status " << wstatus;
    // Acknowledgements already in the pipe were sent before the kill.
    fcntl(fds[0], F_SETFL, 0);
    for (;;) {
      ssize_t n = read(fds[0], &ack, sizeof(ack));
      if (n != static_cast<ssize_t>(sizeof(ack))) break;
      acks.push_back(ack);
      ++round_acks;
    }
    close(fds[0]);
    EXPECT_GT(round_acks, 0u);
    std::printf("round %d: %zu acknowledged appends before kill -9 after %lld ms\n", round,
                round_acks, static_cast<long long>(kill_after.count()));

    auto log = RocksEventLog::Open(options);
    ASSERT_THAT(log, IsOk());
    auto all = ReadAll(**log);  // in pages: one read returns at most read_events_max
    ASSERT_THAT(all, IsOk());
    ASSERT_EQ(static_cast<int64_t>(all->size()), (*log)->Size());
    std::map<std::string, int64_t> versions;
    for (size_t i = 0; i < all->size(); ++i) {
      ASSERT_EQ((*all)[i].position, static_cast<int64_t>(i));
      ASSERT_EQ((*all)[i].version, ++versions[(*all)[i].stream]) << "position " << i;
    }
    size_t missing = 0;
    for (const Ack& a : acks) {
      const bool found =
          a.position < static_cast<int64_t>(all->size()) &&
          (*all)[static_cast<size_t>(a.position)].bytes == EventBytes(a.thread, a.version);
      if (!found && ++missing <= 5) {
        ADD_FAILURE() << "acknowledged event t" << a.thread << " v" << a.version
                      << " is not at position " << a.position;
      }
    }
    EXPECT_EQ(missing, 0u) << "of " << acks.size() << " acknowledged appends";
    auto report = (*log)->Verify(0, (*log)->Size());
    ASSERT_THAT(report, IsOk());
    EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
  }
}

}  // namespace
}  // namespace casework::store

// Proves the contract of event_log.h on RocksEventLog: appends, reads, optimistic
// concurrency, idempotency across restarts, atomicity, projections and bounds, one test
// per case, plus seeded concurrent appenders checked for gapless positions.
#include "store/rocks_event_log.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"
#include "store/wal_tail.h"
#include "store/zero_filled_wal.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::IsOkAndHolds;
using ::casework::store::testing::StatusIs;
using ::casework::store::testing::TempDir;
using ::testing::ElementsAre;

std::unique_ptr<RocksEventLog> OpenLog(const std::string& path,
                                       RocksEventLog::Options options = {}) {
  options.path = path;
  auto log = RocksEventLog::Open(options);
  EXPECT_THAT(log, IsOk());
  return log.ok() ? *std::move(log) : nullptr;
}

AppendRequest Request(std::string stream, int64_t expected, std::vector<std::string> events,
                      std::string request_id = "") {
  return AppendRequest{.stream = std::move(stream),
                       .expected_version = expected,
                       .events = std::move(events),
                       .request_id = std::move(request_id),
                       .request_fingerprint = "fp"};
}

// `request` with a read token and the claim that its request id was looked up (and not
// found) after the token was taken.
AppendRequest Checked(AppendRequest request, ReadToken token) {
  request.read_token = token;
  request.request_id_checked = true;
  return request;
}

std::vector<std::string> Bytes(const std::vector<StoredEvent>& events) {
  std::vector<std::string> out;
  for (const StoredEvent& e : events) out.push_back(e.bytes);
  return out;
}

TEST(RocksEventLog, AppendThenReadStreamAndRange) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_NE(log, nullptr);
  auto first = log->Append(Request("cases/a", 0, {"a1", "a2"}));
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->first_position, 0);
  EXPECT_EQ(first->event_count, 2);
  EXPECT_EQ(first->version, 2);
  EXPECT_FALSE(first->replayed);
  auto second = log->Append(Request("cases/b", 0, {"b1"}));
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->first_position, 2);
  auto third = log->Append(Request("cases/a", 2, {"a3"}));
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(third->first_position, 3);
  EXPECT_EQ(third->version, 3);
  EXPECT_EQ(log->Size(), 4);

  EXPECT_THAT(log->StreamVersion("cases/a"), IsOkAndHolds(3));
  EXPECT_THAT(log->StreamVersion("cases/none"), IsOkAndHolds(0));

  auto stream = log->ReadStream("cases/a", 1, 100);
  ASSERT_THAT(stream, IsOk());
  EXPECT_THAT(Bytes(*stream), ElementsAre("a1", "a2", "a3"));
  EXPECT_EQ((*stream)[2].position, 3);
  EXPECT_EQ((*stream)[2].version, 3);
  auto tail = log->ReadStream("cases/a", 2, 1);
  ASSERT_THAT(tail, IsOk());
  EXPECT_THAT(Bytes(*tail), ElementsAre("a2"));

  auto range = log->ReadRange(1, 2);
  ASSERT_THAT(range, IsOk());
  ASSERT_EQ(range->size(), 2u);
  EXPECT_EQ((*range)[0].stream, "cases/a");
  EXPECT_EQ((*range)[0].version, 2);
  EXPECT_EQ((*range)[1].stream, "cases/b");
  std::string record;
  format::AppendEventRecord(&record, "cases/b", 1, "b1");
  EXPECT_EQ((*range)[1].leaf_hash, rfc9162::HashLeaf(record));
  EXPECT_THAT(log->ReadRange(4, 10), IsOkAndHolds(::testing::IsEmpty()));
}

TEST(RocksEventLog, PositionOfEachVersionMatchesTheStreamsEvents) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_THAT(log->Append(Request("other", 0, {"o1"})), IsOk());
  ASSERT_THAT(log->Append(Request("s", 0, {"a", "b", "c"})), IsOk());  // one extent
  ASSERT_THAT(log->Append(Request("other", 1, {"o2"})), IsOk());
  ASSERT_THAT(log->Append(Request("s", 3, {"d", "e"})), IsOk());
  auto events = log->ReadStream("s", 1, 10);
  ASSERT_THAT(events, IsOk());
  ASSERT_EQ(events->size(), 5u);
  for (const StoredEvent& e : *events) {
    EXPECT_THAT(log->PositionOf("s", e.version), IsOkAndHolds(e.position)) << e.version;
  }
  EXPECT_THAT(log->PositionOf("s", 6), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(log->PositionOf("s", 0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(log->PositionOf("none", 1), StatusIs(absl::StatusCode::kNotFound));
  // The interface's own reading (through the events) agrees.
  EXPECT_THAT(log->EventLog::PositionOf("s", 4), IsOkAndHolds((*events)[3].position));
  EXPECT_THAT(log->EventLog::PositionOf("s", 6), StatusIs(absl::StatusCode::kNotFound));
}

TEST(RocksEventLog, StaleExpectedVersionIsAborted) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_THAT(log->Append(Request("s", 0, {"e1"})), IsOk());
  EXPECT_THAT(log->Append(Request("s", 0, {"e2"})), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(log->Append(Request("s", 2, {"e2"})), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(log->Append(Request("new", 1, {"e"})), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(log->Size(), 1);
  EXPECT_THAT(log->Append(Request("s", 1, {"e2"})), IsOk());
}

TEST(RocksEventLog, MalformedRequestsAreInvalidArgument) {
  TempDir dir;
  RocksEventLog::Options options;
  options.event_bytes_max = 8;
  auto log = OpenLog(dir.Sub("log"), options);
  EXPECT_THAT(log->Append(Request("", 0, {"e"})), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(log->Append(Request(std::string("a\0b", 3), 0, {"e"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(log->Append(Request("s", 0, {})), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(log->Append(Request("s", -1, {"e"})), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(log->Append(Request("s", 0, {"123456789"})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  AppendRequest bad_table = Request("s", 0, {"e"});
  bad_table.projections.push_back({.op = ProjectionWrite::Op::kPut, .table = ""});
  EXPECT_THAT(log->Append(bad_table), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(log->Size(), 0);
}

TEST(RocksEventLog, RequestIdReplaysFirstResult) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  auto first = log->Append(Request("s", 0, {"e1", "e2"}, "req-1"));
  ASSERT_THAT(first, IsOk());
  // A retry, even with a stale version and other content, returns the first answer.
  AppendRequest retry = Request("s", 0, {"other"}, "req-1");
  retry.request_fingerprint = "different";
  auto replay = log->Append(retry);
  ASSERT_THAT(replay, IsOk());
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->first_position, 0);
  EXPECT_EQ(replay->event_count, 2);
  EXPECT_EQ(replay->version, 2);
  EXPECT_EQ(replay->request_fingerprint, "fp");
  EXPECT_EQ(log->Size(), 2);
  // The same id on another stream is another request.
  auto other = log->Append(Request("t", 0, {"x"}, "req-1"));
  ASSERT_THAT(other, IsOk());
  EXPECT_FALSE(other->replayed);
}

TEST(RocksEventLog, RequestIdReplaysAfterReopen) {
  TempDir dir;
  {
    auto log = OpenLog(dir.Sub("log"));
    ASSERT_THAT(log->Append(Request("s", 0, {"e1"}, "req-1")), IsOk());
    ASSERT_THAT(log->Append(Request("s", 1, {"e2"}, "req-2")), IsOk());
  }
  auto log = OpenLog(dir.Sub("log"));
  EXPECT_EQ(log->Size(), 2);
  auto found = log->FindRequest("s", "req-2");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->first_position, 1);
  EXPECT_EQ((*found)->version, 2);
  EXPECT_EQ((*found)->request_fingerprint, "fp");
  auto missing = log->FindRequest("s", "req-9");
  ASSERT_THAT(missing, IsOk());
  EXPECT_FALSE(missing->has_value());
  auto replay = log->Append(Request("s", 0, {"e1"}, "req-1"));
  ASSERT_THAT(replay, IsOk());
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->first_position, 0);
  EXPECT_EQ(replay->version, 1);
  auto next = log->Append(Request("s", 2, {"e3"}, "req-3"));
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(next->first_position, 2);
  EXPECT_EQ(next->version, 3);
}

// WAL files are written into zeros prepared ahead (store/zero_filled_wal.h): the live WAL
// file is a spare renamed, so it is as long as the spare while holding little, the next
// spare waits beside it, and a spare left from before is never reused.
TEST(RocksEventLog, WalFilesAreWrittenIntoZerosPreparedAhead) {
  TempDir dir;
  RocksEventLog::Options options;
  options.wal_spare_bytes = 2u << 20;
  const std::string path = dir.Sub("log");
  const std::string spare = path + "/" + ZeroFilledWalFs::kSpareName;
  auto live_wal_sizes = [&] {
    std::vector<uint64_t> sizes;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.path().extension() == ".log") sizes.push_back(entry.file_size());
    }
    return sizes;
  };
  {
    auto log = OpenLog(path, options);
    for (int i = 0; i < 20; ++i) {
      ASSERT_THAT(log->Append(Request(absl::StrCat("s", i), 0, {std::string(1000, 'e')})), IsOk());
    }
    // RocksDB's WAL file of this run is the spare renamed: 2 MiB long, 20 KiB written.
    EXPECT_THAT(live_wal_sizes(), ::testing::Contains(uint64_t{2} << 20));
    ASSERT_TRUE(std::filesystem::exists(spare));
    EXPECT_EQ(std::filesystem::file_size(spare), uint64_t{2} << 20);
  }
  // Closed: the WAL file keeps what was written and not its zeros, and no spare is left
  // half written.
  for (uint64_t size : live_wal_sizes()) EXPECT_LT(size, uint64_t{1} << 20);
  EXPECT_FALSE(std::filesystem::exists(path + "/" + ZeroFilledWalFs::kSpareTempName));
  // A spare left from before may hold records (a rename that a power cut undid): write
  // bytes into it, past anything the next run writes; that start replaces it rather than
  // reuse it.
  {
    std::FILE* f = std::fopen(spare.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fseek(f, (1 << 20) + 4321, SEEK_SET), 0);
    ASSERT_EQ(std::fwrite("not zeros", 1, 9, f), 9u);
    std::fclose(f);
  }
  auto log = OpenLog(path, options);
  EXPECT_EQ(log->Size(), 20);
  ASSERT_THAT(log->Append(Request("after", 0, {"e"})), IsOk());
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() != ".log" &&
        entry.path().filename() != ZeroFilledWalFs::kSpareName) {
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("not zeros"), std::string::npos) << entry.path();
  }
  log.reset();
  // Without spares the WAL files grow from empty, and the log reads the same.
  options.wal_spare_bytes = 0;
  log = OpenLog(path, options);
  EXPECT_EQ(log->Size(), 21);
  ASSERT_THAT(log->Append(Request("plain", 0, {"e"})), IsOk());
  EXPECT_THAT(live_wal_sizes(), ::testing::Not(::testing::Contains(uint64_t{2} << 20)));
}

// A second log on a directory that one has open is refused before it changes anything
// there (a torn write cut, a spare replaced; store/zero_filled_wal.h): the directory's own
// lock, taken before RocksDB's.
TEST(RocksEventLog, ASecondLogOnTheSameDirectoryIsRefusedBeforeItChangesAnything) {
  TempDir dir;
  const std::string path = dir.Sub("log");
  auto log = OpenLog(path);
  ASSERT_THAT(log->Append(Request("s", 0, {"e"})), IsOk());
  const std::string spare = path + "/" + ZeroFilledWalFs::kSpareName;
  // The next spare is prepared in the background after the WAL file took the first.
  for (int i = 0; i < 1000 && !std::filesystem::exists(spare); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(spare));
  const auto spare_time = std::filesystem::last_write_time(spare);
  RocksEventLog::Options options;
  options.path = path;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> second = RocksEventLog::Open(options);
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(second.status().message().find("is in use"), std::string::npos) << second.status();
  EXPECT_EQ(std::filesystem::last_write_time(spare), spare_time) << "the spare was replaced";
  ASSERT_THAT(log->Append(Request("s", 1, {"e2"})), IsOk());
  log.reset();
  log = OpenLog(path);
  EXPECT_EQ(log->Size(), 2);
}

// True when another process cannot take a write lock on `file` now (a child tries; a
// descriptor opened and closed here would give up this process's record locks on it).
bool LockedForOtherProcesses(const std::string& file) {
  const pid_t child = ::fork();
  if (child == 0) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    _exit(fd < 0 ? 2 : ::fcntl(fd, F_SETLK, &lock) == 0 ? 0 : 1);
  }
  int status = 0;
  pid_t waited = -1;
  do {
    waited = child < 0 ? -1 : ::waitpid(child, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited != child) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

// An inspection reads a stopped log: it is refused while a log is open on the directory
// (a live WAL may end in a write being made), and while it is open no log opens to serve;
// inspections share a directory, and one creates no lock file.
TEST(RocksEventLog, AnInspectionAndAServingLogExcludeEachOther) {
  TempDir dir;
  const std::string path = dir.Sub("log");
  RocksEventLog::Options inspect;
  inspect.path = path;
  inspect.create_if_missing = false;
  inspect.inspect_only = true;
  auto log = OpenLog(path);
  ASSERT_THAT(log->Append(Request("s", 0, {"e"})), IsOk());
  absl::StatusOr<std::unique_ptr<RocksEventLog>> refused = RocksEventLog::Open(inspect);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(refused.status().message().find("is in use"), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find("stop the server"), std::string::npos);
  // So is a second log to write under another spelling of the path (RocksDB's own check
  // within a process compares the strings).
  RocksEventLog::Options again;
  again.path = path + "/";
  absl::StatusOr<std::unique_ptr<RocksEventLog>> second_writer = RocksEventLog::Open(again);
  EXPECT_THAT(second_writer, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(second_writer.status().message().find("is in use"), std::string::npos)
      << second_writer.status();
  // And a WAL repair in this process (RocksDB's LockFile would take the locks again under
  // the other spelling, and give the writer's up with its own).
  absl::StatusOr<std::vector<wal::WalRepair>> repair = wal::RepairWalFiles(path + "/");
  EXPECT_THAT(repair, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(repair.status().message().find("is in use"), std::string::npos) << repair.status();
  // The refusals left the writer's locks in place, for other processes too.
  EXPECT_TRUE(LockedForOtherProcesses(path + "/" + ZeroFilledWalFs::kDirLockName));
  EXPECT_TRUE(LockedForOtherProcesses(path + "/LOCK"));
  ASSERT_THAT(log->Append(Request("s", 1, {"e2"})), IsOk());
  log.reset();

  absl::StatusOr<std::unique_ptr<RocksEventLog>> first = RocksEventLog::Open(inspect);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ((*first)->Size(), 2);
  // A repair beside an inspection of this process is refused as well; after both, the
  // directory is free again (below).
  EXPECT_THAT(wal::RepairWalFiles(path), StatusIs(absl::StatusCode::kUnavailable));
  absl::StatusOr<std::unique_ptr<RocksEventLog>> second = RocksEventLog::Open(inspect);
  ASSERT_THAT(second, IsOk());
  RocksEventLog::Options serve;
  serve.path = path;
  absl::StatusOr<std::unique_ptr<RocksEventLog>> serving = RocksEventLog::Open(serve);
  EXPECT_THAT(serving, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_NE(serving.status().message().find("is in use"), std::string::npos) << serving.status();
  first->reset();
  serving = RocksEventLog::Open(serve);
  EXPECT_THAT(serving, StatusIs(absl::StatusCode::kUnavailable)) << "the second still holds it";
  second->reset();
  serving = RocksEventLog::Open(serve);
  ASSERT_THAT(serving, IsOk());
  EXPECT_EQ((*serving)->Size(), 2);
  serving->reset();
  // Nothing open: the repair runs (there is nothing to repair) and lists nothing after.
  absl::StatusOr<std::vector<wal::WalRepair>> nothing = wal::RepairWalFiles(path);
  ASSERT_THAT(nothing, IsOk());
  EXPECT_TRUE(nothing->empty());
  serving = RocksEventLog::Open(serve);
  ASSERT_THAT(serving, IsOk());
  serving->reset();

  // A log written before the directory lock existed has none; inspecting it makes none.
  const std::string dir_lock = path + "/" + ZeroFilledWalFs::kDirLockName;
  ASSERT_TRUE(std::filesystem::remove(dir_lock));
  ASSERT_THAT(RocksEventLog::Open(inspect), IsOk());
  EXPECT_FALSE(std::filesystem::exists(dir_lock));
}

// Collects the answers of appends queued while the sequencer is paused, so that they
// form one batch.
struct Answers {
  absl::Mutex mu;
  std::vector<absl::StatusOr<AppendResult>> results ABSL_GUARDED_BY(mu);
  EventLog::AppendCallback Slot(size_t index) {
    {
      absl::MutexLock lock(&mu);
      if (results.size() <= index) results.resize(index + 1, absl::UnknownError("unset"));
    }
    return [this, index](absl::StatusOr<AppendResult> r) {
      absl::MutexLock lock(&mu);
      results[index] = std::move(r);
    };
  }
  void WaitAll() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<absl::StatusOr<AppendResult>>* r) {
          for (const auto& x : *r) {
            if (x.status().code() == absl::StatusCode::kUnknown) return false;
          }
          return true;
        },
        &results));
  }
  // False when some answer is still missing after `timeout`.
  bool WaitAllFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(
                                   +[](std::vector<absl::StatusOr<AppendResult>>* r) {
                                     for (const auto& x : *r) {
                                       if (x.status().code() == absl::StatusCode::kUnknown) {
                                         return false;
                                       }
                                     }
                                     return true;
                                   },
                                   &results),
                               timeout);
  }
};

TEST(RocksEventLog, OneBatchChecksVersionsAndRequestIdsOfItsOwnAppends) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  Answers answers;
  log->PauseCommitsForTesting(true);
  log->AppendAsync(Request("s", 0, {"e1"}, "r1"), answers.Slot(0));
  log->AppendAsync(Request("s", 1, {"e2"}, "r2"), answers.Slot(1));   // sees e1 pending
  log->AppendAsync(Request("s", 1, {"e2'"}, "r3"), answers.Slot(2));  // stale in-batch
  log->AppendAsync(Request("s", 0, {"e1"}, "r1"), answers.Slot(3));   // replay in-batch
  log->AppendAsync(Request("t", 0, {"t1"}), answers.Slot(4));
  log->PauseCommitsForTesting(false);
  answers.WaitAll();
  absl::MutexLock lock(&answers.mu);
  ASSERT_THAT(answers.results[0], IsOk());
  EXPECT_EQ(answers.results[0]->first_position, 0);
  ASSERT_THAT(answers.results[1], IsOk());
  EXPECT_EQ(answers.results[1]->version, 2);
  EXPECT_THAT(answers.results[2], StatusIs(absl::StatusCode::kAborted));
  ASSERT_THAT(answers.results[3], IsOk());
  EXPECT_TRUE(answers.results[3]->replayed);
  EXPECT_EQ(answers.results[3]->first_position, 0);
  ASSERT_THAT(answers.results[4], IsOk());
  EXPECT_EQ(answers.results[4]->first_position, 2);
  EXPECT_EQ(log->Size(), 3);
}

// The counter additions of one batch are summed into one merge operand per key (fewer
// memtable entries); the stored values are the same as without summing: a Put between
// additions keeps its place, a refused append adds nothing, and a sum of 0 still leaves
// the key in place.
TEST(RocksEventLog, CounterAdditionsOfOneBatchAreSummedInOrder) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  auto with = [](std::string stream, int64_t expected, std::vector<ProjectionWrite> writes) {
    AppendRequest request = Request(std::move(stream), expected, {"e"});
    request.projections = std::move(writes);
    return request;
  };
  auto add = [](std::string key, int64_t delta) {
    return ProjectionWrite{
        .op = ProjectionWrite::Op::kAddInt64, .table = "n", .key = std::move(key), .delta = delta};
  };
  Answers answers;
  log->PauseCommitsForTesting(true);
  log->AppendAsync(with("s1", 0, {add("k", 5), add("z", 1)}), answers.Slot(0));
  log->AppendAsync(with("s2", 0, {add("k", -2)}), answers.Slot(1));
  log->AppendAsync(with("s3", 0,
                        {{.op = ProjectionWrite::Op::kPut,
                          .table = "n",
                          .key = "k",
                          .value = format::EncodeInt64(100)}}),
                   answers.Slot(2));
  log->AppendAsync(with("s4", 0, {add("k", 7), add("z", -1)}), answers.Slot(3));
  log->AppendAsync(with("s4", 0, {add("k", 1000)}), answers.Slot(4));  // stale: refused
  log->AppendAsync(
      with("s5", 0,
           {add("gone", 3), {.op = ProjectionWrite::Op::kDelete, .table = "n", .key = "gone"}}),
      answers.Slot(5));
  log->AppendAsync(with("s6", 0, {add("max", INT64_MAX), add("max", 2)}), answers.Slot(6));
  log->PauseCommitsForTesting(false);
  answers.WaitAll();
  {
    absl::MutexLock lock(&answers.mu);
    for (int i : {0, 1, 2, 3, 5, 6}) EXPECT_THAT(answers.results[i], IsOk()) << i;
    EXPECT_THAT(answers.results[4], StatusIs(absl::StatusCode::kAborted));
  }
  EXPECT_THAT(log->GetProjection("n", "k"),
              IsOkAndHolds(std::optional<std::string>(format::EncodeInt64(107))));
  EXPECT_THAT(log->GetProjection("n", "z"),
              IsOkAndHolds(std::optional<std::string>(format::EncodeInt64(0))));
  EXPECT_THAT(log->GetProjection("n", "gone"), IsOkAndHolds(std::optional<std::string>()));
  // Wraps around as the merge operator does.
  EXPECT_THAT(log->GetProjection("n", "max"),
              IsOkAndHolds(std::optional<std::string>(format::EncodeInt64(INT64_MIN + 1))));
}

TEST(RocksEventLog, RefusedAppendWritesNothing) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  AppendRequest first = Request("s", 0, {"e1"});
  first.projections.push_back(
      {.op = ProjectionWrite::Op::kPut, .table = "by_state", .key = "open/s", .value = "1"});
  ASSERT_THAT(log->Append(first), IsOk());
  AppendRequest stale = Request("s", 0, {"x1", "x2"}, "req-stale");
  stale.projections.push_back(
      {.op = ProjectionWrite::Op::kPut, .table = "by_state", .key = "closed/s", .value = "1"});
  stale.projections.push_back(
      {.op = ProjectionWrite::Op::kAddInt64, .table = "n", .key = "k", .delta = 5});
  EXPECT_THAT(log->Append(stale), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(log->Size(), 1);
  EXPECT_THAT(log->GetProjection("by_state", "closed/s"),
              IsOkAndHolds(std::optional<std::string>()));
  EXPECT_THAT(log->GetProjection("n", "k"), IsOkAndHolds(std::optional<std::string>()));
  // The refused request id was not recorded: the same id may succeed later.
  auto retry = log->Append(Request("s", 1, {"x1"}, "req-stale"));
  ASSERT_THAT(retry, IsOk());
  EXPECT_FALSE(retry->replayed);
}

TEST(RocksEventLog, ProjectionsPutDeleteAndCount) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  AppendRequest request = Request("s", 0, {"e1"});
  request.projections = {
      {.op = ProjectionWrite::Op::kPut, .table = "ledger", .key = "b", .value = "vb"},
      {.op = ProjectionWrite::Op::kPut, .table = "ledger", .key = "a", .value = "va"},
      {.op = ProjectionWrite::Op::kPut, .table = "ledger", .key = "c", .value = "vc"},
      {.op = ProjectionWrite::Op::kPut, .table = "ledger2", .key = "a", .value = "other"},
      {.op = ProjectionWrite::Op::kAddInt64, .table = "counts", .key = "x", .delta = 5},
      {.op = ProjectionWrite::Op::kAddInt64, .table = "counts", .key = "x", .delta = -7},
  };
  ASSERT_THAT(log->Append(request), IsOk());
  AppendRequest next = Request("s", 1, {"e2"});
  next.projections = {
      {.op = ProjectionWrite::Op::kDelete, .table = "ledger", .key = "c"},
      {.op = ProjectionWrite::Op::kAddInt64, .table = "counts", .key = "x", .delta = 10},
  };
  ASSERT_THAT(log->Append(next), IsOk());

  EXPECT_THAT(log->GetProjection("ledger", "a"), IsOkAndHolds(std::optional<std::string>("va")));
  EXPECT_THAT(log->GetProjection("counts", "x"),
              IsOkAndHolds(std::optional<std::string>(format::EncodeInt64(8))));
  std::vector<std::pair<std::string, std::string>> seen;
  ASSERT_THAT(log->ScanProjection("ledger", "", 10,
                                  [&](std::string_view k, std::string_view v) {
                                    seen.emplace_back(k, v);
                                    return true;
                                  }),
              IsOk());
  EXPECT_THAT(seen, ElementsAre(std::pair<std::string, std::string>("a", "va"),
                                std::pair<std::string, std::string>("b", "vb")));
  seen.clear();
  ASSERT_THAT(log->ScanProjection("ledger", "b", 1,
                                  [&](std::string_view k, std::string_view v) {
                                    seen.emplace_back(k, v);
                                    return true;
                                  }),
              IsOk());
  EXPECT_THAT(seen, ElementsAre(std::pair<std::string, std::string>("b", "vb")));
}

TEST(RocksEventLog, FullQueueIsResourceExhausted) {
  TempDir dir;
  RocksEventLog::Options options;
  options.queue_appends_max = 2;
  auto log = OpenLog(dir.Sub("log"), options);
  Answers answers;
  log->PauseCommitsForTesting(true);
  log->AppendAsync(Request("a", 0, {"e"}), answers.Slot(0));
  log->AppendAsync(Request("b", 0, {"e"}), answers.Slot(1));
  log->AppendAsync(Request("c", 0, {"e"}), answers.Slot(2));  // refused inline
  {
    absl::MutexLock lock(&answers.mu);
    EXPECT_THAT(answers.results[2], StatusIs(absl::StatusCode::kResourceExhausted));
    EXPECT_EQ(RefusalReason(answers.results[2].status()), kRefusalQueueFull);
    EXPECT_THAT(std::string(answers.results[2].status().message()),
                ::testing::HasSubstr("queue_appends_max = 2"));
  }
  log->PauseCommitsForTesting(false);
  answers.WaitAll();
  absl::MutexLock lock(&answers.mu);
  EXPECT_THAT(answers.results[0], IsOk());
  EXPECT_THAT(answers.results[1], IsOk());
}

// An open batch that the next queued append does not fit is written at once, whatever
// the size of the last batch: it can take nothing more. Three appends of 3 events (or of
// 3 KiB) arrive after a batch of five; the batch limit (8 events, or 8 KiB) fits two of
// them, so the first batch holds two appends and the third follows in a second one.
class AnAppendThatDoesNotFit : public ::testing::TestWithParam<bool> {};

TEST_P(AnAppendThatDoesNotFit, ClosesTheOpenBatch) {
  const bool by_bytes = GetParam();
  TempDir dir;
  RocksEventLog::Options options;
  if (by_bytes) {
    options.batch_bytes_max = 8 * 1024;
  } else {
    options.batch_events_max = 8;
  }
  Answers first;
  Answers answers;  // outlives the log, which answers what is left when destroyed
  auto log = OpenLog(dir.Sub("log"), options);
  // A batch of five appends: the log then waits for about five before it writes.
  log->PauseCommitsForTesting(true);
  for (size_t i = 0; i < 5; ++i) {
    log->AppendAsync(Request(absl::StrCat("small", i), 0, {"e"}), first.Slot(i));
  }
  log->PauseCommitsForTesting(false);
  first.WaitAll();
  log->PauseCommitsForTesting(true);
  const std::vector<std::string> events = by_bytes
                                              ? std::vector<std::string>{std::string(3 * 1024, 'x')}
                                              : std::vector<std::string>{"e1", "e2", "e3"};
  for (size_t i = 0; i < 3; ++i) {
    log->AppendAsync(Request(absl::StrCat("large", i), 0, events), answers.Slot(i));
  }
  log->PauseCommitsForTesting(false);
  ASSERT_TRUE(answers.WaitAllFor(absl::Seconds(20)))
      << "appends that do not fit one batch were not written";
  absl::MutexLock lock(&answers.mu);
  for (const auto& r : answers.results) EXPECT_THAT(r, IsOk());
  EXPECT_EQ(log->Size(), by_bytes ? 8 : 14);
}

INSTANTIATE_TEST_SUITE_P(RocksEventLog, AnAppendThatDoesNotFit, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ByBytes" : "ByEvents";
                         });

// Appends queued behind paused commits are written and answered when the log is
// destroyed, with the answer thread or with the writer answering.
class DestructionCommitsWhatIsQueued : public ::testing::TestWithParam<bool> {};

TEST_P(DestructionCommitsWhatIsQueued, AndAnswersIt) {
  TempDir dir;
  Answers answers;
  RocksEventLog::Options options;
  options.answer_thread = GetParam();
  {
    auto log = OpenLog(dir.Sub("log"), options);
    log->PauseCommitsForTesting(true);
    for (size_t i = 0; i < 10; ++i) {
      log->AppendAsync(Request(absl::StrCat("s", i), 0, {"e"}), answers.Slot(i));
    }
  }
  answers.WaitAll();
  {
    absl::MutexLock lock(&answers.mu);
    for (const auto& r : answers.results) EXPECT_THAT(r, IsOk());
  }
  auto log = OpenLog(dir.Sub("log"), options);
  EXPECT_EQ(log->Size(), 10);
}

INSTANTIATE_TEST_SUITE_P(RocksEventLog, DestructionCommitsWhatIsQueued, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "AnswerThread" : "WriterAnswers";
                         });

// An append that arrives once the log has begun to close (here: from the answer of an
// append the closing log still commits) is refused with UNAVAILABLE and the reason
// SHUTTING_DOWN, writes nothing, and what was queued before stays committed.
TEST_P(DestructionCommitsWhatIsQueued, AndRefusesAnAppendThatArrivesMeanwhile) {
  TempDir dir;
  Answers answers;
  RocksEventLog::Options options;
  options.answer_thread = GetParam();
  {
    auto log = OpenLog(dir.Sub("log"), options);
    RocksEventLog* closing = log.get();
    EventLog::AppendCallback late = answers.Slot(1);
    EventLog::AppendCallback first = answers.Slot(0);
    log->PauseCommitsForTesting(true);
    log->AppendAsync(Request("queued", 0, {"e"}),
                     [closing, first = std::move(first),
                      late = std::move(late)](absl::StatusOr<AppendResult> result) mutable {
                       std::move(first)(std::move(result));
                       closing->AppendAsync(Request("late", 0, {"e"}), std::move(late));
                     });
  }
  answers.WaitAll();
  {
    absl::MutexLock lock(&answers.mu);
    EXPECT_THAT(answers.results[0], IsOk());
    EXPECT_THAT(answers.results[1], StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(RefusalReason(answers.results[1].status()), kRefusalShuttingDown);
    EXPECT_THAT(std::string(answers.results[1].status().message()),
                ::testing::HasSubstr("retry after restart"));
  }
  auto log = OpenLog(dir.Sub("log"), options);
  EXPECT_EQ(log->Size(), 1);
  EXPECT_THAT(log->StreamVersion("late"), IsOkAndHolds(0));
}

// Options::answer_thread off: the writer (or, for a lone append, the calling thread) runs
// each batch's callbacks itself before it takes the next batch. Callbacks that append
// again from there are taken into later batches, answers keep the order of the log, and
// nothing is lost or answered twice.
TEST(RocksEventLog, WithoutTheAnswerThreadCallbacksRunInOrderAndMayAppendAgain) {
  TempDir dir;
  RocksEventLog::Options options;
  options.answer_thread = false;
  auto log = OpenLog(dir.Sub("log"), options);
  constexpr int kChains = 8;
  constexpr int kAppendsPerChain = 40;
  absl::Mutex mu;
  std::vector<int64_t> answered_positions;  // in the order the callbacks ran
  int failures = 0;
  int chains_done = 0;
  absl::Notification all_done;
  // Appends event `i` to chain `c`; its callback appends event i + 1.
  std::function<void(int, int)> append = [&](int c, int i) {
    log->AppendAsync(Request(absl::StrCat("chain/", c), i, {absl::StrCat(c, "/", i)}),
                     [&, c, i](absl::StatusOr<AppendResult> result) {
                       {
                         absl::MutexLock lock(&mu);
                         if (!result.ok()) {
                           ++failures;
                         } else {
                           answered_positions.push_back(result->first_position);
                         }
                         if (!result.ok() || i + 1 == kAppendsPerChain) {
                           if (++chains_done == kChains) all_done.Notify();
                           return;
                         }
                       }
                       append(c, i + 1);
                     });
  };
  for (int c = 0; c < kChains; ++c) append(c, 0);
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(120)));
  EXPECT_EQ(log->Size(), kChains * kAppendsPerChain);
  for (int c = 0; c < kChains; ++c) {
    EXPECT_THAT(log->StreamVersion(absl::StrCat("chain/", c)), IsOkAndHolds(kAppendsPerChain));
  }
  // The log's threads end before the state their callbacks touched.
  log.reset();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(failures, 0);
  ASSERT_EQ(answered_positions.size(), static_cast<size_t>(kChains * kAppendsPerChain));
  for (size_t i = 1; i < answered_positions.size(); ++i) {
    ASSERT_LT(answered_positions[i - 1], answered_positions[i]) << "answer " << i;
  }
}

TEST(RocksEventLog, CommitListenerSeesEachDurableSize) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  std::atomic<int64_t> last{0};
  log->SetCommitListener([&](int64_t size) { last.store(size); });
  ASSERT_THAT(log->Append(Request("s", 0, {"e1", "e2"})), IsOk());
  EXPECT_EQ(last.load(), 2);
  ASSERT_THAT(log->Append(Request("s", 2, {"e3"})), IsOk());
  EXPECT_EQ(last.load(), 3);
}

// Options::direct_commit: an append that may block, sent to an idle log, is checked,
// written and synced on the calling thread and answered before AppendAsync returns; one
// that may not block is answered on the log's thread.
TEST(RocksEventLog, ALoneAppendThatMayBlockIsWrittenOnTheCallingThread) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  std::atomic<int64_t> committed{0};
  log->SetCommitListener([&](int64_t size) { committed.store(size); });

  AppendRequest request = Request("cases/a", 0, {"a1", "a2"}, "r1");
  request.may_block = true;
  std::thread::id answered_on;
  std::optional<absl::StatusOr<AppendResult>> result;
  log->AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) {
    answered_on = std::this_thread::get_id();
    result = std::move(r);
  });
  ASSERT_TRUE(result.has_value()) << "not answered before AppendAsync returned";
  EXPECT_EQ(answered_on, std::this_thread::get_id());
  ASSERT_THAT(*result, IsOk());
  EXPECT_EQ((*result)->first_position, 0);
  EXPECT_EQ((*result)->version, 2);
  EXPECT_EQ(log->Size(), 2);
  EXPECT_EQ(committed.load(), 2);
  EXPECT_THAT(log->StreamVersion("cases/a"), IsOkAndHolds(2));

  // A stale version and a repeated request id are answered the same way on this path.
  request = Request("cases/a", 1, {"a3"}, "r2");
  request.may_block = true;
  result.reset();
  log->AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) { result = r; });
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(*result, StatusIs(absl::StatusCode::kAborted));
  request = Request("cases/a", 0, {"a1", "a2"}, "r1");
  request.may_block = true;
  result.reset();
  log->AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) { result = r; });
  ASSERT_TRUE(result.has_value());
  ASSERT_THAT(*result, IsOk());
  EXPECT_TRUE((*result)->replayed);
  EXPECT_EQ(log->Size(), 2);

  // Without may_block the caller's thread is never the one that writes.
  absl::Notification done;
  std::thread::id other;
  log->AppendAsync(Request("cases/a", 2, {"a3"}, "r3"), [&](absl::StatusOr<AppendResult> r) {
    EXPECT_THAT(r, IsOk());
    other = std::this_thread::get_id();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_NE(other, std::this_thread::get_id());
  EXPECT_EQ(log->Size(), 3);
}

// With direct_commit off, an append that may block still goes through the log's threads.
TEST(RocksEventLog, DirectCommitCanBeTurnedOff) {
  TempDir dir;
  RocksEventLog::Options options;
  options.direct_commit = false;
  auto log = OpenLog(dir.Sub("log"), options);
  AppendRequest request = Request("cases/a", 0, {"a1"});
  request.may_block = true;
  absl::Notification done;
  std::thread::id answered_on;
  log->AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) {
    EXPECT_THAT(r, IsOk());
    answered_on = std::this_thread::get_id();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_NE(answered_on, std::this_thread::get_id());
}

// Appends that may block and appends that may not, from many threads at once, interleave
// the direct path with the sequencer's batches; positions stay gapless and every stream's
// versions contiguous, also after a reopen.
TEST(RocksEventLog, DirectAndBatchedAppendsInterleave) {
  TempDir dir;
  constexpr int kThreads = 6;
  constexpr int kAppends = 200;
  {
    auto log = OpenLog(dir.Sub("log"));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string stream = absl::StrCat("cases/", t);
        for (int i = 0; i < kAppends; ++i) {
          AppendRequest request = Request(stream, i, {absl::StrCat(t, "/", i)});
          // Odd threads wait for each answer on a notification instead of blocking.
          request.may_block = t % 2 == 0;
          absl::Notification done;
          log->AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) {
            EXPECT_THAT(r, IsOk());
            done.Notify();
          });
          done.WaitForNotification();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(log->Size(), kThreads * kAppends);
  }
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_EQ(log->Size(), kThreads * kAppends);
  auto all = log->ReadRange(0, kThreads * kAppends);
  ASSERT_THAT(all, IsOk());
  std::map<std::string, int64_t> versions;
  for (size_t i = 0; i < all->size(); ++i) {
    const StoredEvent& event = (*all)[i];
    EXPECT_EQ(event.position, static_cast<int64_t>(i));
    EXPECT_EQ(event.version, ++versions[event.stream]);
  }
  EXPECT_EQ(versions.size(), static_cast<size_t>(kThreads));
}

TEST(RocksEventLog, ReopenRecoversSizeAndVersions) {
  TempDir dir;
  {
    auto log = OpenLog(dir.Sub("log"));
    for (int i = 0; i < 20; ++i) {
      ASSERT_THAT(log->Append(Request(absl::StrCat("s", i % 3), i / 3, {"e"})), IsOk());
    }
  }
  auto log = OpenLog(dir.Sub("log"));
  EXPECT_EQ(log->Size(), 20);
  EXPECT_THAT(log->StreamVersion("s0"), IsOkAndHolds(7));
  EXPECT_THAT(log->Append(Request("s0", 6, {"e"})), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(log->Append(Request("s0", 7, {"e"})), IsOk());
}

// A stream's reads (its version, an event's position, its events) seek within its own
// prefix of the stream index, behind a Bloom filter of streams in each table file.
// Streams whose names begin with another's are written in three phases, each phase's
// streams flushed into table files of their own ("s" in every phase), and read back
// after a reopen: each finds exactly its own entries, an absent name finds none, and the
// filter spares reading the files of the other phases.
TEST(RocksEventLog, StreamReadsAreExactAcrossTableFilesAndNamesThatBeginAlike) {
  TempDir dir;
  const std::vector<std::vector<std::string>> phases = {
      {"s", "s1", "cases/a"}, {"s", "s10", "cases/a/b", "t"}, {"s", "s100", "s2", "cases/ab"}};
  std::map<std::string, std::vector<std::string>> written;
  std::mt19937 random(7);
  for (const std::vector<std::string>& names : phases) {
    // Each phase in a log opened anew: the opening writes what the last one left in the
    // write-ahead log into table files of its own.
    auto log = OpenLog(dir.Sub("log"));
    ASSERT_NE(log, nullptr);
    for (int round = 0; round < 20; ++round) {
      for (const std::string& name : names) {
        const auto version = static_cast<int64_t>(written[name].size());
        std::vector<std::string> events;
        for (int i = 0; i < 1 + static_cast<int>(random() % 2); ++i) {
          events.push_back(absl::StrCat(name, "#", version + i + 1));
        }
        ASSERT_THAT(log->Append(Request(name, version, events)), IsOk());
        written[name].insert(written[name].end(), events.begin(), events.end());
      }
    }
  }
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_NE(log, nullptr);
  {
    // The stream index is in several table files (read with RocksDB itself).
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.Sub("log"), &names).ok());
    for (const std::string& name : names)
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    ASSERT_TRUE(
        rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir.Sub("log"), families, &handles, &raw)
            .ok());
    std::vector<rocksdb::LiveFileMetaData> files;
    raw->GetLiveFilesMetaData(&files);
    size_t stream_tables = 0;
    for (const auto& file : files)
      stream_tables += file.column_family_name == format::kStreamsFamily;
    EXPECT_EQ(stream_tables, 3u);  // one a phase
    for (auto* handle : handles) raw->DestroyColumnFamilyHandle(handle);
    delete raw;
  }
  for (const auto& [name, events] : written) {
    EXPECT_THAT(log->StreamVersion(name), IsOkAndHolds(static_cast<int64_t>(events.size())))
        << name;
    auto read = log->ReadStream(name, 1, 1000);
    ASSERT_THAT(read, IsOk()) << name;
    EXPECT_EQ(Bytes(*read), events) << name;
    for (const StoredEvent& e : *read) {
      EXPECT_THAT(log->PositionOf(name, e.version), IsOkAndHolds(e.position)) << name;
    }
    auto tail = log->ReadStream(name, static_cast<int64_t>(events.size()), 10);
    ASSERT_THAT(tail, IsOk()) << name;
    EXPECT_THAT(Bytes(*tail), ElementsAre(events.back())) << name;
  }
  for (const std::string absent : {"s3", "s1000", "r", "cases/", "cases/a/", "u"}) {
    EXPECT_THAT(log->StreamVersion(absent), IsOkAndHolds(0)) << absent;
    EXPECT_THAT(log->ReadStream(absent, 1, 10), IsOkAndHolds(::testing::IsEmpty())) << absent;
    EXPECT_THAT(log->PositionOf(absent, 1), StatusIs(absl::StatusCode::kNotFound)) << absent;
  }
  // The reads of a stream of one phase skip the other phases' files by their filters
  // (RocksDB counts, on this thread, the files its prefix filters spared).
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::get_perf_context()->Reset();
  EXPECT_THAT(log->StreamVersion("s1"), IsOkAndHolds(static_cast<int64_t>(written["s1"].size())));
  EXPECT_THAT(log->PositionOf("s2", 1), IsOk());
  EXPECT_THAT(log->StreamVersion("never-written"), IsOkAndHolds(0));
  const rocksdb::PerfContext spared = *rocksdb::get_perf_context();
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  // Three files: "s1" and "s2" are each in one (two spared each), the absent name in none.
  EXPECT_EQ(spared.bloom_sst_miss_count, 7u);
  EXPECT_EQ(spared.bloom_sst_hit_count, 2u);
}

TEST(RocksEventLog, MemoryUsageNamesWhatTheLogHolds) {
  TempDir dir;
  RocksEventLog::Options options;
  options.memtable_bytes_max = 1u << 20;  // flushed after about a MiB of appends
  options.block_cache_bytes = 8u << 20;
  auto log = OpenLog(dir.Sub("log"), options);
  EXPECT_EQ(log->GetMemoryUsage().table_readers, 0);  // no table file yet
  const std::string event(2000, 'x');
  for (int i = 0; i < 2000; ++i) {
    ASSERT_THAT(log->Append(Request(absl::StrCat("s", i % 20), i / 20, {event})), IsOk());
  }
  // Flushes run in the background: wait (bounded) for the first table file.
  RocksEventLog::MemoryUsage usage = log->GetMemoryUsage();
  for (int i = 0; i < 200 && usage.table_readers == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    usage = log->GetMemoryUsage();
  }
  EXPECT_GT(usage.table_readers, 0);
  EXPECT_GT(usage.memtables, 0);
  // Reading the flushed events brings their blocks into the cache, within its bound.
  ASSERT_THAT(log->ReadRange(0, 2000), IsOk());
  usage = log->GetMemoryUsage();
  EXPECT_GT(usage.block_cache, 0);
  EXPECT_LE(usage.block_cache, static_cast<int64_t>(options.block_cache_bytes));
  EXPECT_LE(usage.block_cache_pinned, usage.block_cache);
}

// Many threads append to many streams, reading the version and retrying on kAborted.
// Afterwards positions are gapless, each stream's versions contiguous, and every
// acknowledged append is found at its positions.
// Concurrent appenders, each reading a stream's version and appending at it; with read
// tokens (the log then trusts the version the caller read when nothing was appended to
// the stream since the token) and a version cache of four entries, emptied all the time,
// so that tokens go stale: a token trusted wrongly would put two events at one version.
// Both with the answer thread and with the writer answering each batch itself.
class ConcurrentAppenders : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(ConcurrentAppenders, KeepPositionsGaplessAndVersionsContiguous) {
  const auto [tokens, answer_thread] = GetParam();
  TempDir dir;
  RocksEventLog::Options options;
  options.batch_events_max = 64;  // many batches, so pipelining is exercised
  options.answer_thread = answer_thread;
  if (tokens) options.version_cache_entries_max = 4;
  auto log = OpenLog(dir.Sub("log"), options);
  constexpr int kThreads = 8;
  constexpr int kAppendsPerThread = 150;
  constexpr int kStreams = 12;
  constexpr int kAttemptsMax = 1000;
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  struct Acked {
    std::string stream;
    AppendResult result;
    std::vector<std::string> events;
  };
  absl::Mutex mu;
  std::vector<Acked> acked;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<unsigned>(t));
      for (int i = 0; i < kAppendsPerThread; ++i) {
        std::string stream = absl::StrCat("cases/", rng() % kStreams);
        std::vector<std::string> events;
        for (unsigned n = 0; n < 1 + rng() % 3; ++n)
          events.push_back(absl::StrCat(t, "/", i, "/", n));
        for (int attempt = 0; attempt < kAttemptsMax; ++attempt) {
          const ReadToken token = tokens ? log->TakeReadToken() : ReadToken{};
          const std::string request_id = absl::StrCat(t, "-", i);
          auto first = log->FindRequest(stream, request_id);
          ASSERT_THAT(first, IsOk());
          if (first->has_value()) {
            // An earlier attempt that was refused as stale did not store its id.
            FAIL() << "request id " << request_id << " stored before it was appended";
          }
          auto version = log->StreamVersion(stream);
          ASSERT_THAT(version, IsOk());
          AppendRequest request = Request(stream, *version, events, request_id);
          request.read_token = token;
          request.request_id_checked = tokens;
          auto result = log->Append(std::move(request));
          if (result.status().code() == absl::StatusCode::kAborted) continue;
          ASSERT_THAT(result, IsOk());
          absl::MutexLock lock(&mu);
          acked.push_back({stream, *result, events});
          break;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(acked.size(), static_cast<size_t>(kThreads * kAppendsPerThread));

  auto all = log->ReadRange(0, 1 << 20);
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(static_cast<int64_t>(all->size()), log->Size());
  std::map<std::string, int64_t> versions;
  for (size_t i = 0; i < all->size(); ++i) {
    const StoredEvent& event = (*all)[i];
    ASSERT_EQ(event.position, static_cast<int64_t>(i));
    ASSERT_EQ(event.version, ++versions[event.stream]) << "position " << i;
  }
  for (const Acked& a : acked) {
    for (size_t n = 0; n < a.events.size(); ++n) {
      const StoredEvent& event = (*all)[static_cast<size_t>(a.result.first_position) + n];
      EXPECT_EQ(event.stream, a.stream);
      EXPECT_EQ(event.bytes, a.events[n]);
    }
  }
  for (const auto& [stream, version] : versions) {
    auto events = log->ReadStream(stream, 1, 1 << 20);
    ASSERT_THAT(events, IsOk());
    ASSERT_EQ(static_cast<int64_t>(events->size()), version);
  }
}

INSTANTIATE_TEST_SUITE_P(RocksEventLog, ConcurrentAppenders,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<bool, bool>>& info) {
                           return absl::StrCat(
                               std::get<0>(info.param) ? "WithReadTokens" : "WithoutReadTokens",
                               std::get<1>(info.param) ? "AnswerThread" : "WriterAnswers");
                         });

// A token taken before another append to the stream does not make a stale version pass:
// that append is in the version cache.
TEST(RocksEventLog, AReadTokenDoesNotHideAnAppendMadeSince) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_THAT(log->Append(Request("s", 0, {"a"})), IsOk());
  const ReadToken token = log->TakeReadToken();
  ASSERT_THAT(log->StreamVersion("s"), IsOkAndHolds(1));
  ASSERT_THAT(log->Append(Request("s", 1, {"b"})), IsOk());  // another writer
  AppendRequest stale = Request("s", 1, {"c"});
  stale.read_token = token;
  EXPECT_THAT(log->Append(std::move(stale)), StatusIs(absl::StatusCode::kAborted));
}

// Nor a request id stored since: a retry whose first attempt another thread appended after
// the retry's token (and lookup) was taken gets the first answer, not a second append.
TEST(RocksEventLog, AReadTokenDoesNotHideARequestIdStoredSince) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_THAT(log->Append(Request("s", 0, {"a"}, "first")), IsOk());
  const ReadToken token = log->TakeReadToken();
  auto absent = log->FindRequest("s", "r");
  ASSERT_THAT(absent, IsOk());
  ASSERT_FALSE(absent->has_value());
  auto original = log->Append(Request("s", 1, {"b"}, "r"));  // the first attempt, elsewhere
  ASSERT_THAT(original, IsOk());
  // Another stream's append, so that the first attempt is durable and no longer the batch
  // in flight: the log finds it among the stored ids, after the token's size.
  ASSERT_THAT(log->Append(Request("t", 0, {"c"})), IsOk());
  auto answer = log->Append(Checked(Request("s", 1, {"b"}, "r"), token));
  ASSERT_THAT(answer, IsOk());
  EXPECT_TRUE(answer->replayed);
  EXPECT_EQ(answer->first_position, original->first_position);
  EXPECT_EQ(log->Size(), 3);
}

// The log trusts a request id that the caller checked after taking a token, when nothing
// was stored for the stream since: it does not look it up again. (So a caller must only
// claim a check it made: here it claims one it did not, and a second append goes through.)
TEST(RocksEventLog, ARequestIdCheckedAfterTheTokenIsNotLookedUpAgain) {
  TempDir dir;
  auto log = OpenLog(dir.Sub("log"));
  ASSERT_THAT(log->Append(Request("s", 0, {"a"}, "r")), IsOk());
  AppendRequest unchecked = Request("s", 1, {"b"}, "r");
  unchecked.read_token = log->TakeReadToken();
  auto replayed = log->Append(std::move(unchecked));
  ASSERT_THAT(replayed, IsOk());
  EXPECT_TRUE(replayed->replayed);
  auto appended = log->Append(Checked(Request("s", 1, {"b"}, "r"), log->TakeReadToken()));
  ASSERT_THAT(appended, IsOk());
  EXPECT_FALSE(appended->replayed);
  EXPECT_EQ(log->Size(), 2);
}

// Nor after the version cache was emptied (the stream fell out of it): the token is then
// stale and the log reads the stream's version itself.
TEST(RocksEventLog, AReadTokenGoesStaleWhenTheVersionCacheIsEmptied) {
  TempDir dir;
  RocksEventLog::Options options;
  options.version_cache_entries_max = 2;
  auto log = OpenLog(dir.Sub("log"), options);
  ASSERT_THAT(log->Append(Request("s", 0, {"a"})), IsOk());
  const ReadToken token = log->TakeReadToken();
  ASSERT_THAT(log->StreamVersion("s"), IsOkAndHolds(1));
  ASSERT_THAT(log->Append(Request("s", 1, {"b"}, "r")), IsOk());  // another writer
  for (const char* other : {"x", "y", "z", "w"}) {
    ASSERT_THAT(log->Append(Request(other, 0, {"o"})), IsOk());  // s falls out of the cache
  }
  EXPECT_NE(log->TakeReadToken().epoch, token.epoch);
  AppendRequest stale = Request("s", 1, {"c"});
  stale.read_token = token;
  EXPECT_THAT(log->Append(std::move(stale)), StatusIs(absl::StatusCode::kAborted));
  // The same for a request id: the other writer's "r" is found, though the caller claims
  // it looked (before that append) and did not find it.
  auto answer = log->Append(Checked(Request("s", 1, {"b"}, "r"), token));
  ASSERT_THAT(answer, IsOk());
  EXPECT_TRUE(answer->replayed);
  // A fresh token and version go through.
  AppendRequest fresh = Request("s", 2, {"c"});
  fresh.read_token = log->TakeReadToken();
  EXPECT_THAT(log->Append(std::move(fresh)), IsOk());
}

}  // namespace
}  // namespace casework::store

// Proves the tamper evidence of RocksEventLog: its tree equals the reference tree of
// the stored events, its proofs verify, its signed checkpoints open with the server key,
// it refuses to open behind or beside its checkpoint file, and Verify names the first
// altered position. Seeded; the seed is printed.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/utilities/backup_engine.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
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
#include "store/testing/merkle_reference.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::ReferenceTree;
using ::casework::store::testing::StatusIs;
using ::casework::store::testing::TempDir;

unsigned Seed() {
  const char* env = std::getenv("CW_TEST_SEED");
  unsigned seed = env != nullptr ? static_cast<unsigned>(std::strtoul(env, nullptr, 10))
                                 : std::random_device{}();
  std::printf("seed %u (replay with CW_TEST_SEED=%u)\n", seed, seed);
  return seed;
}

RocksEventLog::Options LogOptions(const TempDir& dir, const std::string& name) {
  RocksEventLog::Options options;
  options.path = dir.Sub(name);
  options.signing_key_path = dir.Sub("server.key");  // one key for every log of a test
  options.checkpoint_origin = "casework.test/log";
  return options;
}

std::unique_ptr<RocksEventLog> MustOpen(const RocksEventLog::Options& options) {
  auto log = RocksEventLog::Open(options);
  EXPECT_THAT(log, IsOk());
  return log.ok() ? *std::move(log) : nullptr;
}

// Appends `count` single-event appends over a few streams.
void Fill(RocksEventLog& log, int count, const std::string& tag, std::mt19937& rng) {
  for (int i = 0; i < count; ++i) {
    std::string stream = absl::StrCat("s", rng() % 5);
    auto version = log.StreamVersion(stream);
    ASSERT_THAT(version, IsOk());
    std::vector<std::string> events;
    for (unsigned n = 0; n < 1 + rng() % 3; ++n) events.push_back(absl::StrCat(tag, i, "/", n));
    ASSERT_THAT(log.Append({.stream = stream, .expected_version = *version, .events = events}),
                IsOk());
  }
}

std::vector<Hash> LeafHashes(RocksEventLog& log) {
  auto events = log.ReadRange(0, 1 << 20);
  EXPECT_THAT(events, IsOk());
  std::vector<Hash> leaves;
  for (const StoredEvent& e : *events) leaves.push_back(e.leaf_hash);
  return leaves;
}

TEST(RocksEventLogTree, RootsAndProofsMatchTheReferenceTree) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  Fill(*log, 150, "e", rng);
  const int64_t size = log->Size();
  ASSERT_GT(size, 150);
  ReferenceTree reference(LeafHashes(*log));
  EXPECT_EQ(log->Head().size, size);
  EXPECT_EQ(log->Head().root, reference.Root(static_cast<uint64_t>(size)));
  for (int probe = 0; probe < 40; ++probe) {
    const int64_t tree_size = 1 + static_cast<int64_t>(rng() % static_cast<unsigned>(size));
    const int64_t index = static_cast<int64_t>(rng() % static_cast<unsigned>(tree_size));
    SCOPED_TRACE(absl::StrCat("leaf ", index, " of ", tree_size));
    auto root = log->RootAt(tree_size);
    ASSERT_THAT(root, IsOk());
    EXPECT_EQ(*root, reference.Root(static_cast<uint64_t>(tree_size)));
    auto proof = log->InclusionProof(index, tree_size);
    ASSERT_THAT(proof, IsOk());
    EXPECT_EQ(*proof,
              reference.Path(static_cast<uint64_t>(index), 0, static_cast<uint64_t>(tree_size)));
    EXPECT_THAT(
        merkle::VerifyInclusion(index, tree_size,
                                rfc9162::AsBytes(reference.Root(static_cast<uint64_t>(index),
                                                                static_cast<uint64_t>(index) + 1)),
                                merkle::ToBytes(*proof), rfc9162::AsBytes(*root)),
        IsOk());
    const int64_t old_size = 1 + static_cast<int64_t>(rng() % static_cast<unsigned>(tree_size));
    auto consistency = log->ConsistencyProof(old_size, tree_size);
    ASSERT_THAT(consistency, IsOk());
    EXPECT_THAT(
        merkle::VerifyConsistency(old_size, tree_size, merkle::ToBytes(*consistency),
                                  rfc9162::AsBytes(reference.Root(static_cast<uint64_t>(old_size))),
                                  rfc9162::AsBytes(*root)),
        IsOk());
  }
  EXPECT_THAT(log->InclusionProof(0, size + 1), StatusIs(absl::StatusCode::kOutOfRange));
  auto note = log->SignedCheckpoint();
  ASSERT_THAT(note, IsOk());
  auto checkpoint = OpenCheckpoint(*note, log->CheckpointVerifier(), "casework.test/log");
  ASSERT_THAT(checkpoint, IsOk());
  EXPECT_EQ(checkpoint->size, size);
  EXPECT_EQ(checkpoint->root, log->Head().root);
  auto report = log->Verify(0, size);
  ASSERT_THAT(report, IsOk());
  EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
}

TEST(RocksEventLogTree, ReopenRestoresTheRightEdgeAndChecksTheCheckpointFile) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  Hash root;
  {
    auto log = MustOpen(options);
    Fill(*log, 77, "a", rng);
    root = log->Head().root;
  }
  ASSERT_TRUE(std::filesystem::exists(dir.Sub("log.checkpoint")));
  auto log = MustOpen(options);
  EXPECT_EQ(log->Head().root, root);
  Fill(*log, 40, "b", rng);
  ReferenceTree reference(LeafHashes(*log));
  EXPECT_EQ(log->Head().root, reference.Root(static_cast<uint64_t>(log->Size())));
}

TEST(RocksEventLogTree, RefusesALogShorterThanItsCheckpoint) {
  TempDir dir;
  std::mt19937 rng(Seed());
  {
    auto longer = MustOpen(LogOptions(dir, "long"));
    Fill(*longer, 50, "x", rng);
  }
  {
    auto shorter = MustOpen(LogOptions(dir, "short"));
    Fill(*shorter, 20, "x", rng);
  }
  std::filesystem::copy_file(dir.Sub("long.checkpoint"), dir.Sub("short.checkpoint"),
                             std::filesystem::copy_options::overwrite_existing);
  auto reopened = RocksEventLog::Open(LogOptions(dir, "short"));
  EXPECT_THAT(reopened, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(reopened.status().message()),
              ::testing::HasSubstr("acknowledged events are missing"));
}

TEST(RocksEventLogTree, RefusesALogWhoseRootDiffersFromItsCheckpoint) {
  TempDir dir;
  std::mt19937 rng(Seed());
  {
    auto a = MustOpen(LogOptions(dir, "a"));
    Fill(*a, 30, "a", rng);
  }
  {
    auto b = MustOpen(LogOptions(dir, "b"));
    Fill(*b, 60, "b", rng);
  }
  std::filesystem::copy_file(dir.Sub("a.checkpoint"), dir.Sub("b.checkpoint"),
                             std::filesystem::copy_options::overwrite_existing);
  auto reopened = RocksEventLog::Open(LogOptions(dir, "b"));
  EXPECT_THAT(reopened, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(reopened.status().message()), ::testing::HasSubstr("root"));
}

TEST(RocksEventLogTree, RefusesAnAlteredCheckpointFile) {
  TempDir dir;
  std::mt19937 rng(Seed());
  {
    auto log = MustOpen(LogOptions(dir, "log"));
    Fill(*log, 10, "a", rng);
  }
  auto text = ReadSmallFile(dir.Sub("log.checkpoint"), 4096);
  ASSERT_THAT(text, IsOk());
  ASSERT_TRUE(text->has_value());
  std::string altered = **text;
  altered.insert(altered.find('\n') + 1, "9");  // the size line now says 9...
  ASSERT_THAT(WriteFileDurably(dir.Sub("log.checkpoint"), altered), IsOk());
  EXPECT_THAT(RocksEventLog::Open(LogOptions(dir, "log")), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(RocksEventLogTree, ANewLogSignsItsEmptyTreeAtOnce) {
  TempDir dir;
  auto log = MustOpen(LogOptions(dir, "log"));
  auto text = ReadSmallFile(dir.Sub("log.checkpoint"), 4096);
  ASSERT_THAT(text, IsOk());
  ASSERT_TRUE(text->has_value()) << "no checkpoint file beside a new log";
  auto opened = OpenCheckpoint(**text, log->CheckpointVerifier(), "casework.test/log");
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->size, 0);
}

TEST(RocksEventLogTree, RefusesALogWithEventsWithoutItsCheckpointFileOrKey) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  {
    auto log = MustOpen(options);
    Fill(*log, 20, "a", rng);
  }
  // A copy of the directory without the file beside it (or the file removed): refused,
  // naming the file and the way out.
  std::filesystem::rename(dir.Sub("log.checkpoint"), dir.Sub("kept.checkpoint"));
  auto refused = RocksEventLog::Open(options);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::AllOf(::testing::HasSubstr("checkpoint file"),
                               ::testing::HasSubstr("--start-without-checkpoint")));
  std::filesystem::rename(dir.Sub("kept.checkpoint"), dir.Sub("log.checkpoint"));
  // The key removed: refused, not replaced by a new one.
  std::filesystem::rename(dir.Sub("server.key"), dir.Sub("kept.key"));
  auto no_key = RocksEventLog::Open(options);
  EXPECT_THAT(no_key, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(no_key.status().message()), ::testing::HasSubstr("signing key"));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("server.key")));
  std::filesystem::rename(dir.Sub("kept.key"), dir.Sub("server.key"));
  EXPECT_THAT(RocksEventLog::Open(options), IsOk());
  // The operator's override opens it and signs what it holds.
  std::filesystem::remove(dir.Sub("log.checkpoint"));
  options.start_without_anchor = true;
  {
    auto log = MustOpen(options);
    EXPECT_GT(log->Size(), 0);
  }
  options.start_without_anchor = false;
  EXPECT_THAT(RocksEventLog::Open(options), IsOk());
  // The key lost for good, with the override: a new key, and the checkpoint file the lost
  // key signed kept aside (renamed) instead of refusing the open.
  std::filesystem::remove(dir.Sub("server.key"));
  options.start_without_anchor = true;
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
  }
  int set_aside = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(dir.Sub("log")).parent_path())) {
    if (entry.path().filename().string().rfind("log.checkpoint.set-aside-", 0) == 0) ++set_aside;
  }
  EXPECT_EQ(set_aside, 1);
  options.start_without_anchor = false;
  EXPECT_THAT(RocksEventLog::Open(options), IsOk());
}

// Opened for inspection, a log records why a serving open would refuse it (AnchorProblem)
// and opens, with the refusal's code: a checkpoint file that cannot be read is told apart
// from a finding about the log (which a restore would take for a damaged backup).
TEST(RocksEventLogTree, InspectionRecordsAnchorProblemsWithTheirCodes) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  {
    auto log = MustOpen(options);
    Fill(*log, 20, "a", rng);
  }
  RocksEventLog::Options inspect = options;
  inspect.inspect_only = true;
  const std::string checkpoint = options.path + ".checkpoint";
  std::filesystem::rename(checkpoint, dir.Sub("kept.checkpoint"));
  {
    auto log = MustOpen(inspect);
    ASSERT_NE(log, nullptr);
    EXPECT_THAT(log->AnchorProblem(), ::testing::HasSubstr("is missing"));
    EXPECT_EQ(log->AnchorProblemCode(), absl::StatusCode::kDataLoss);
  }
  std::filesystem::create_directory(checkpoint);  // open(2) works, read(2) fails: EISDIR
  {
    auto log = MustOpen(inspect);
    ASSERT_NE(log, nullptr);
    EXPECT_THAT(log->AnchorProblem(), ::testing::HasSubstr(checkpoint));
    EXPECT_EQ(log->AnchorProblemCode(), absl::StatusCode::kUnavailable);
    auto report = log->Verify(0, log->Size());  // the events still verify against the tree
    ASSERT_THAT(report, IsOk());
    EXPECT_FALSE(report->first_mismatch.has_value()) << report->detail;
  }
  std::filesystem::remove(checkpoint);
  std::filesystem::rename(dir.Sub("kept.checkpoint"), checkpoint);
  auto log = MustOpen(inspect);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->AnchorProblem(), "");
  EXPECT_EQ(log->AnchorProblemCode(), absl::StatusCode::kOk);
}

TEST(RocksEventLogTree, AFailingCheckpointFileIsReportedAndItsRecovery) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  options.checkpoint_interval_ms = 10;
  auto log = MustOpen(options);
  absl::Mutex mu;
  std::vector<absl::Status> heard;
  log->SetCheckpointFileListener([&](const absl::Status& status) {
    absl::MutexLock lock(&mu);
    heard.push_back(status);
  });
  auto wait_for = [&](size_t count) {
    for (int i = 0; i < 500; ++i) {  // at most 5 s
      {
        absl::MutexLock lock(&mu);
        if (heard.size() >= count) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  // Writing goes through path + ".tmp": a directory there makes every write fail.
  std::filesystem::create_directory(dir.Sub("log.checkpoint.tmp"));
  Fill(*log, 5, "a", rng);
  ASSERT_TRUE(wait_for(1)) << "the failure was not reported";
  Fill(*log, 5, "b", rng);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::filesystem::remove(dir.Sub("log.checkpoint.tmp"));
  ASSERT_TRUE(wait_for(2)) << "the recovery was not reported";
  absl::MutexLock lock(&mu);
  ASSERT_EQ(heard.size(), 2u) << "each change is reported once";
  EXPECT_FALSE(heard[0].ok());
  EXPECT_THAT(std::string(heard[0].message()), ::testing::HasSubstr("log.checkpoint.tmp"));
  EXPECT_TRUE(heard[1].ok()) << heard[1];
}

// Opens a closed log's RocksDB behind the log's back and hands `edit` its column families
// in the order of log_format.h: default, events, streams, requests, projections, tree,
// meta.
void EditBehindTheLogsBack(
    const std::string& path,
    const std::function<void(rocksdb::DB&, const std::vector<rocksdb::ColumnFamilyHandle*>&)>&
        edit) {
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const char* name : {rocksdb::kDefaultColumnFamilyName.c_str(), format::kEventsFamily,
                           format::kStreamsFamily, format::kRequestsFamily,
                           format::kProjectionsFamily, format::kTreeFamily, format::kMetaFamily}) {
    families.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, families, &handles, &db).ok());
  edit(*db, handles);
  for (auto* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  delete db;
}

// A forged backup: `edit` applied to the closed log at `path` behind its back, then a
// backup of that RocksDB made with RocksDB's own engine into `backups`, beside a copy of
// the signed checkpoint of backup `good` (which still matches the events unless `edit`
// changed them). Returns the forged backup's id (0 on failure, with the failure added).
uint32_t ForgeBackup(
    const std::string& path, const std::string& backups, uint32_t good,
    const std::function<void(rocksdb::DB&, const std::vector<rocksdb::ColumnFamilyHandle*>&)>&
        edit) {
  uint32_t forged = 0;
  EditBehindTheLogsBack(path, [&](rocksdb::DB& db, const auto& handles) {
    edit(db, handles);
    rocksdb::BackupEngine* raw = nullptr;
    ASSERT_TRUE(rocksdb::BackupEngine::Open(rocksdb::Env::Default(),
                                            rocksdb::BackupEngineOptions(backups), &raw)
                    .ok());
    std::unique_ptr<rocksdb::BackupEngine> engine(raw);
    ASSERT_TRUE(engine->CreateNewBackup(&db, /*flush_before_backup=*/true).ok());
    std::vector<rocksdb::BackupInfo> infos;
    engine->GetBackupInfo(&infos);
    ASSERT_FALSE(infos.empty());
    forged = infos.back().backup_id;
  });
  EXPECT_GT(forged, good);
  std::error_code copied;
  std::filesystem::copy_file(absl::StrCat(backups, "/checkpoint-", good),
                             absl::StrCat(backups, "/checkpoint-", forged), copied);
  EXPECT_FALSE(copied) << copied.message();
  return forged;
}

// Rewrites one stored event behind the log's back.
void Overwrite(const std::string& path, int64_t position, const std::string& value) {
  EditBehindTheLogsBack(path, [&](rocksdb::DB& db, const auto& handles) {
    ASSERT_TRUE(
        db.Put(rocksdb::WriteOptions(), handles[1], format::PositionKey(position), value).ok());
  });
}

TEST(RocksEventLogTree, VerifyNamesTheFirstAlteredPosition) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  {
    auto log = MustOpen(options);
    Fill(*log, 100, "a", rng);
  }
  std::string forged;
  format::AppendEventRecord(&forged, "s0", 1, "forged");
  Overwrite(options.path, 37, forged);
  // Open checks the checkpoint against the stored subtrees in O(log n) reads, which the
  // forgery left intact; rehashing the events is Verify's job.
  auto log = MustOpen(options);
  auto report = log->Verify(0, log->Size());
  ASSERT_THAT(report, IsOk());
  ASSERT_TRUE(report->first_mismatch.has_value());
  EXPECT_EQ(*report->first_mismatch, 32);  // the 16-event subtree [32, 48)
  EXPECT_THAT(report->detail, ::testing::HasSubstr("[32, 48)"));
  auto later = log->Verify(48, log->Size());
  ASSERT_THAT(later, IsOk());
  EXPECT_FALSE(later->first_mismatch.has_value()) << later->detail;
}

TEST(RocksEventLogTree, VerifyNamesAMalformedEventExactly) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  options.checkpoint_path = dir.Sub("elsewhere.checkpoint");
  {
    auto log = MustOpen(options);
    Fill(*log, 40, "a", rng);
  }
  Overwrite(options.path, 21, "garbage");
  std::filesystem::remove(options.checkpoint_path);
  // Without its checkpoint file the log is refused unless the operator overrides that.
  EXPECT_THAT(RocksEventLog::Open(options), StatusIs(absl::StatusCode::kDataLoss));
  options.start_without_anchor = true;
  auto log = MustOpen(options);
  auto report = log->Verify(0, log->Size());
  ASSERT_THAT(report, IsOk());
  // The 16-event subtree that holds it: its earlier events cannot be checked either.
  EXPECT_EQ(report->first_mismatch, std::optional<int64_t>(16));
  EXPECT_NE(report->detail.find("position 21"), std::string::npos) << report->detail;
  EXPECT_THAT(log->ReadRange(21, 1), StatusIs(absl::StatusCode::kDataLoss));
}

// The projection of one event: depends on the event alone, as the shell's does.
std::vector<ProjectionWrite> Project(const StoredEvent& event) {
  // Event bytes: "<jurisdiction>/<state>".
  const std::string jurisdiction = event.bytes.substr(0, event.bytes.find('/'));
  const std::string state = event.bytes.substr(event.bytes.find('/') + 1);
  std::vector<ProjectionWrite> writes = {
      {.op = ProjectionWrite::Op::kPut, .table = "case", .key = event.stream, .value = state},
      {.op = ProjectionWrite::Op::kPut,
       .table = "by_state",
       .key = state + "/" + event.stream,
       .value = jurisdiction},
      {.op = ProjectionWrite::Op::kAddInt64,
       .table = "per_jurisdiction",
       .key = jurisdiction,
       .delta = 1},
  };
  if (state == "closed") {
    writes.push_back(
        {.op = ProjectionWrite::Op::kDelete, .table = "by_state", .key = "open/" + event.stream});
  }
  return writes;
}

std::vector<std::pair<std::string, std::string>> DumpProjections(RocksEventLog& log) {
  std::vector<std::pair<std::string, std::string>> entries;
  EXPECT_THAT(log.ScanAllProjections(
                  [&](std::string_view k, std::string_view v) { entries.emplace_back(k, v); }),
              IsOk());
  return entries;
}

TEST(RocksEventLogProjections, RebuildEqualsIncrementalByteForByte) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  const std::vector<std::string> states = {"open", "assisted", "inspected", "closed"};
  for (int i = 0; i < 400; ++i) {
    const std::string stream = absl::StrCat("cases/", rng() % 40);
    auto version = log->StreamVersion(stream);
    ASSERT_THAT(version, IsOk());
    AppendRequest request{.stream = stream, .expected_version = *version};
    for (unsigned n = 0; n < 1 + rng() % 3; ++n) {
      request.events.push_back(absl::StrCat("j", rng() % 7, "/", states[rng() % states.size()]));
      for (ProjectionWrite& w : Project(StoredEvent{
               .stream = stream, .version = *version + 1 + n, .bytes = request.events.back()})) {
        request.projections.push_back(std::move(w));
      }
    }
    ASSERT_THAT(log->Append(request), IsOk());
  }
  ASSERT_GT(DumpProjections(*log).size(), 40u);
  // One more append whose writes also hold a stray entry that no event explains: the
  // rebuild must drop it and reproduce everything else.
  AppendRequest stray{.stream = "stray", .expected_version = 0, .events = {"j0/open"}};
  stray.projections = Project(StoredEvent{.stream = "stray", .version = 1, .bytes = "j0/open"});
  stray.projections.push_back(
      {.op = ProjectionWrite::Op::kPut, .table = "junk", .key = "k", .value = "v"});
  ASSERT_THAT(log->Append(stray), IsOk());
  auto expected = DumpProjections(*log);
  const auto junk = std::find(expected.begin(), expected.end(),
                              std::pair<std::string, std::string>(std::string("junk\0k", 6), "v"));
  ASSERT_NE(junk, expected.end());
  expected.erase(junk);
  ASSERT_THAT(log->RebuildProjections(Project), IsOk());
  EXPECT_EQ(DumpProjections(*log), expected);
  // And a rebuild of a rebuild is the same bytes, counters included.
  const auto once = DumpProjections(*log);
  ASSERT_THAT(log->RebuildProjections(Project), IsOk());
  EXPECT_EQ(DumpProjections(*log), once);
}

// The layout of the projections: recorded when the log is created empty and when a
// rebuild completes; a log with events and no record (from a build before layouts were
// recorded) reads 0, and reopening with another layout changes nothing until a rebuild.
TEST(RocksEventLogProjections, TheLayoutIsRecordedAtCreationAndByARebuild) {
  TempDir dir;
  RocksEventLog::Options options = LogOptions(dir, "log");
  options.projection_layout = 3;
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->ProjectionLayout(), 3u);
    ASSERT_THAT(log->Append({.stream = "s", .expected_version = 0, .events = {"j0/open"}}), IsOk());
  }
  options.projection_layout = 4;
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->ProjectionLayout(), 3u) << "an open must not claim a layout it did not write";
    // A rebuild that fails part way leaves "being rebuilt", which matches no layout, so
    // it is done again (also by a build whose layout the log had before).
    EXPECT_THAT(log->RebuildProjections(
                    [](const StoredEvent&) -> absl::StatusOr<std::vector<ProjectionWrite>> {
                      return absl::DataLossError("does not parse");
                    }),
                StatusIs(absl::StatusCode::kDataLoss));
    EXPECT_EQ(log->ProjectionLayout(), RocksEventLog::kProjectionLayoutRebuilding);
  }
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->ProjectionLayout(), RocksEventLog::kProjectionLayoutRebuilding);
    ASSERT_THAT(log->RebuildProjections(Project), IsOk());
    EXPECT_EQ(log->ProjectionLayout(), 4u);
  }
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->ProjectionLayout(), 4u);
  }

  // A log with events whose layout was never recorded.
  RocksEventLog::Options old_options = LogOptions(dir, "old");
  {
    auto log = MustOpen(old_options);
    ASSERT_NE(log, nullptr);
    ASSERT_THAT(log->Append({.stream = "s", .expected_version = 0, .events = {"j0/open"}}), IsOk());
  }
  {
    // What a build before the record left: drop the record.
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    std::vector<std::string> names;
    ASSERT_TRUE(
        rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), old_options.path, &names).ok());
    for (const std::string& name : names)
      families.emplace_back(name, rocksdb::ColumnFamilyOptions());
    ASSERT_TRUE(
        rocksdb::DB::Open(rocksdb::DBOptions(), old_options.path, families, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const size_t meta = std::find(names.begin(), names.end(), "meta") - names.begin();
    ASSERT_LT(meta, names.size());
    rocksdb::WriteOptions synced;
    synced.sync = true;
    ASSERT_TRUE(db->Delete(synced, handles[meta], "projection_layout").ok());
    for (auto* handle : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  }
  old_options.projection_layout = 2;
  auto log = MustOpen(old_options);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->ProjectionLayout(), 0u);
  ASSERT_THAT(log->RebuildProjections(Project), IsOk());
  EXPECT_EQ(log->ProjectionLayout(), 2u);
}

TEST(RocksEventLogBackup, BackupVerifiesAndRestores) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  int64_t backed_up = 0;
  Hash root;
  {
    auto log = MustOpen(options);
    Fill(*log, 60, "a", rng);
    backed_up = log->Size();
    root = log->Head().root;
    ASSERT_THAT(log->Backup(dir.Sub("backups")), IsOk());
    Fill(*log, 10, "b", rng);
  }
  // The live WAL file is written into zeros (store/zero_filled_wal.h): the backup copies
  // what was written to it, not its zeros.
  uintmax_t backup_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.Sub("backups"))) {
    if (entry.is_regular_file()) backup_bytes += entry.file_size();
  }
  EXPECT_LT(backup_bytes, options.wal_spare_bytes / 4);
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  ASSERT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored), IsOk());
  // Installed: nothing staged is left, nor the mark of its verification.
  EXPECT_FALSE(std::filesystem::exists(restored.path + ".restoring"));
  EXPECT_FALSE(std::filesystem::exists(restored.path + ".restoring.verified"));
  auto log = MustOpen(restored);
  EXPECT_EQ(log->Size(), backed_up);
  EXPECT_EQ(log->Head().root, root);
  // Its projections are not covered by the checkpoint: marked to be rebuilt from the
  // verified events before the log is served.
  EXPECT_EQ(log->ProjectionLayout(), RocksEventLog::kProjectionLayoutRebuilding);
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored),
              StatusIs(absl::StatusCode::kFailedPrecondition));  // target exists
}

// With `keep`, a kept backup leaves the newest `keep` in the directory, each with its
// checkpoint; the older go with theirs, and the newest restores.
TEST(RocksEventLogBackup, OnlyTheNewestBackupsAreKeptWhenAsked) {
  TempDir dir;
  std::mt19937 rng(11);
  auto log = MustOpen(LogOptions(dir, "log"));
  std::vector<uint32_t> ids;
  for (int round = 0; round < 4; ++round) {
    Fill(*log, 10, absl::StrCat("r", round), rng);
    absl::StatusOr<uint32_t> id = log->Backup(dir.Sub("backups"), /*keep=*/2);
    ASSERT_THAT(id, IsOk());
    ids.push_back(*id);
  }
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  ASSERT_TRUE(rocksdb::BackupEngineReadOnly::Open(
                  rocksdb::Env::Default(), rocksdb::BackupEngineOptions(dir.Sub("backups")), &raw)
                  .ok());
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
  std::vector<rocksdb::BackupInfo> kept;
  engine->GetBackupInfo(&kept);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].backup_id, ids[2]);
  EXPECT_EQ(kept[1].backup_id, ids[3]);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(std::filesystem::exists(dir.Sub("backups") + "/checkpoint-" + std::to_string(ids[i])),
              i >= 2)
        << "backup " << ids[i];
  }
  engine.reset();
  const int64_t size = log->Size();
  log.reset();
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  ASSERT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored), IsOk());
  EXPECT_EQ(MustOpen(restored)->Size(), size);
}

// A backup whose verification was cut short has no checkpoint beside it: a restore takes
// the newest one that has, names it, and takes an older one on request.
TEST(RocksEventLogBackup, RestoreTakesTheNewestVerifiedBackupOrTheOneNamed) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  std::vector<int64_t> sizes;
  std::vector<uint32_t> ids;
  {
    auto log = MustOpen(options);
    for (int b = 0; b < 3; ++b) {
      Fill(*log, 20, absl::StrCat("b", b), rng);
      auto id = log->Backup(dir.Sub("backups"));
      ASSERT_THAT(id, IsOk());
      ids.push_back(*id);
      sizes.push_back(log->Size());
    }
  }
  // The newest was cut short: its checkpoint was never written.
  std::filesystem::remove(dir.Sub(absl::StrCat("backups/checkpoint-", ids[2])));
  uint32_t restored_id = 0;
  RocksEventLog::Options first = LogOptions(dir, "restored-newest");
  ASSERT_THAT(RocksEventLog::Restore(dir.Sub("backups"), first, 0, &restored_id), IsOk());
  EXPECT_EQ(restored_id, ids[1]);
  EXPECT_EQ(MustOpen(first)->Size(), sizes[1]);
  RocksEventLog::Options named = LogOptions(dir, "restored-named");
  ASSERT_THAT(RocksEventLog::Restore(dir.Sub("backups"), named, ids[0], &restored_id), IsOk());
  EXPECT_EQ(restored_id, ids[0]);
  EXPECT_EQ(MustOpen(named)->Size(), sizes[0]);
  RocksEventLog::Options cut = LogOptions(dir, "restored-cut");
  absl::Status refused = RocksEventLog::Restore(dir.Sub("backups"), cut, ids[2]);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("no signed checkpoint"));
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), cut, 99),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(std::filesystem::exists(cut.path));

  // The next backup clears what one cut short left: its scratch copy, and the backup
  // without its checkpoint, which no restore would take.
  std::filesystem::create_directories(dir.Sub(absl::StrCat("backups/verify-", ids[2])));
  ASSERT_THAT(WriteFileDurably(dir.Sub(absl::StrCat("backups/verify-", ids[2], "/000001.sst")),
                               std::string(1 << 16, 'x')),
              IsOk());
  {
    auto log = MustOpen(options);
    ASSERT_THAT(log->Backup(dir.Sub("backups")), IsOk());
  }
  EXPECT_FALSE(std::filesystem::exists(dir.Sub(absl::StrCat("backups/verify-", ids[2]))));
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), cut, ids[2]),
              StatusIs(absl::StatusCode::kNotFound));
  RocksEventLog::Options older = LogOptions(dir, "restored-older");
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), older, ids[0]), IsOk());
}

TEST(RocksEventLogBackup, RestoreRefusesABackupThatDoesNotVerify) {
  TempDir dir;
  std::mt19937 rng(Seed());
  std::string other_checkpoint;
  {
    auto other = MustOpen(LogOptions(dir, "other"));
    Fill(*other, 200, "o", rng);
    auto note = other->SignedCheckpoint();
    ASSERT_THAT(note, IsOk());
    other_checkpoint = *note;
  }
  uint32_t id = 0;
  {
    auto log = MustOpen(LogOptions(dir, "log"));
    Fill(*log, 30, "a", rng);
    auto backup = log->Backup(dir.Sub("backups"));
    ASSERT_THAT(backup, IsOk());
    id = *backup;
  }
  // A checkpoint (validly signed) of another, longer log: the backup cannot match it.
  ASSERT_THAT(WriteFileDurably(dir.Sub(absl::StrCat("backups/checkpoint-", id)), other_checkpoint),
              IsOk());
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_FALSE(std::filesystem::exists(restored.path));
}

// A backup holding events past its signed checkpoint is refused: those events are covered
// by no signature (someone who can write the backup directory could have added or altered
// them and rebuilt its tree), and a restore would sign them. Here the backup's own
// checkpoint is replaced by a validly signed one of the same log taken earlier, which
// covers only a prefix of the backup.
TEST(RocksEventLogBackup, RestoreRefusesEventsPastTheCheckpoint) {
  TempDir dir;
  std::mt19937 rng(Seed());
  std::string earlier;
  uint32_t id = 0;
  {
    auto log = MustOpen(LogOptions(dir, "log"));
    Fill(*log, 40, "a", rng);
    auto note = log->SignedCheckpoint();
    ASSERT_THAT(note, IsOk());
    earlier = *note;
    Fill(*log, 20, "b", rng);
    auto backup = log->Backup(dir.Sub("backups"));
    ASSERT_THAT(backup, IsOk());
    id = *backup;
  }
  ASSERT_THAT(WriteFileDurably(dir.Sub(absl::StrCat("backups/checkpoint-", id)), earlier), IsOk());
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  absl::Status refused = RocksEventLog::Restore(dir.Sub("backups"), restored);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_NE(refused.message().find("covered by no signature"), std::string::npos) << refused;
  EXPECT_FALSE(std::filesystem::exists(restored.path));
  EXPECT_FALSE(std::filesystem::exists(restored.path + ".checkpoint"));
}

// The checkpoint kept beside a backup covers exactly what the backup holds, also while
// appends go on during the backup.
TEST(RocksEventLogBackup, TheBackupsCheckpointCoversExactlyTheBackup) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  Fill(*log, 100, "a", rng);
  std::atomic<bool> stop{false};
  std::thread appender([&] {
    for (int i = 0; !stop.load() && i < 100000; ++i) {
      AppendRequest request{.stream = absl::StrCat("during/", i % 7),
                            .expected_version = 0,
                            .events = {absl::StrCat("e", i)}};
      auto version = log->StreamVersion(request.stream);
      ASSERT_THAT(version, IsOk());
      request.expected_version = *version;
      auto appended = log->Append(std::move(request));
      ASSERT_THAT(appended, IsOk());
    }
  });
  std::vector<uint32_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto backup = log->Backup(dir.Sub("backups"));
    ASSERT_THAT(backup, IsOk());
    ids.push_back(*backup);
  }
  stop = true;
  appender.join();
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  ASSERT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored), IsOk());
  auto copy = MustOpen(restored);
  ASSERT_NE(copy, nullptr);
  EXPECT_GE(copy->Size(), 100);
  EXPECT_LE(copy->Size(), log->Size());
  // Its head is a prefix of the log's tree.
  if (copy->Size() < log->Size()) {
    auto proof = log->ConsistencyProof(copy->Size(), log->Size());
    ASSERT_THAT(proof, IsOk());
    const std::vector<std::string> bytes = merkle::ToBytes(*proof);
    EXPECT_THAT(merkle::VerifyConsistency(copy->Size(), log->Size(), bytes,
                                          rfc9162::AsBytes(copy->Head().root),
                                          rfc9162::AsBytes(log->Head().root)),
                IsOk());
  }
}

// A log whose stored event no longer hashes to its subtree gives a backup that does not
// verify: DATA_LOSS naming the block, and neither the backup nor its checkpoint is kept
// (a restore would take the newest one with a checkpoint).
TEST(RocksEventLogBackup, ABackupOfADamagedLogIsNotKept) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  Fill(*log, 40, "a", rng);
  ASSERT_GE(log->Size(), 32);
  ASSERT_THAT(log->DamageEventForTesting(5), IsOk());
  auto backup = log->Backup(dir.Sub("backups"));
  EXPECT_THAT(backup, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_NE(backup.status().message().find("[0, 16)"), std::string::npos) << backup.status();
  bool kept = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir.Sub("backups"))) {
    const std::string name = entry.path().filename().string();
    kept = kept || name.rfind("checkpoint-", 0) == 0 || name.rfind("verify-", 0) == 0;
  }
  EXPECT_FALSE(kept) << "a checkpoint or scratch copy of the bad backup was left";
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored),
              StatusIs(absl::StatusCode::kFailedPrecondition));  // no backup to take
  EXPECT_FALSE(std::filesystem::exists(restored.path));
}

// The indexes that find events by stream and by request id are covered by no signature:
// a backup and a restore check them against the verified events. Each forgery is made in
// a log's own RocksDB behind its back. A backup of that log is refused; a forged backup
// (made from the altered RocksDB with RocksDB's own backup engine, beside a copy of the
// good backup's signed checkpoint, which still matches the events) is refused by the
// restore.
TEST(RocksEventLogBackup, RestoreRefusesABackupWhoseIndexesDoNotMatchItsEvents) {
  TempDir dir;
  // Positions: a/1 0, a/2 1, b/1 2, a/3 3, b/2 4, b/3 5, b/4 6. Each event carries the
  // request id of its append before a colon, as the owner's format would (b's last
  // append has none).
  auto fill = [](RocksEventLog& log) {
    ASSERT_THAT(log.Append({.stream = "a", .events = {"ra1:a1", "ra1:a2"}, .request_id = "ra1"}),
                IsOk());
    ASSERT_THAT(log.Append({.stream = "b", .events = {"rb1:b1"}, .request_id = "rb1"}), IsOk());
    ASSERT_THAT(
        log.Append(
            {.stream = "a", .expected_version = 2, .events = {"ra2:a3"}, .request_id = "ra2"}),
        IsOk());
    ASSERT_THAT(log.Append({.stream = "b", .expected_version = 1, .events = {":b2", ":b3", ":b4"}}),
                IsOk());
    ASSERT_EQ(log.Size(), 7);
  };
  auto options_of = [&dir](const std::string& name) {
    RocksEventLog::Options options = LogOptions(dir, name);
    options.request_id_of_event = [](std::string_view event) -> std::optional<std::string> {
      const size_t colon = event.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      return std::string(event.substr(0, colon));
    };
    return options;
  };
  using Handles = std::vector<rocksdb::ColumnFamilyHandle*>;
  auto extent = [](int64_t first_version, int64_t first_position) {
    return format::EncodeStreamExtent(
        {.first_version = first_version, .first_position = first_position});
  };
  auto request = [](int64_t first_position, int64_t count, int64_t version) {
    return format::EncodeRequestRecord({.first_position = first_position,
                                        .event_count = count,
                                        .version = version,
                                        .fingerprint = ""});
  };
  struct Forgery {
    const char* name;
    std::function<void(rocksdb::DB&, const Handles&)> edit;
    const char* refusal;  // in the message
  };
  const rocksdb::WriteOptions w;
  const std::vector<Forgery> forgeries = {
      {"a's version 3 placed at b's version 2",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[2], format::StreamKey("a", 3), extent(3, 4)).ok());
       },
       "names position 4 as a version 3; it holds b version 2"},
      {"b's last entry dropped",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Delete(w, h[2], format::StreamKey("b", 4)).ok());
       },
       "names 4 events; the log holds 7"},
      {"a's first entry dropped",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Delete(w, h[2], format::StreamKey("a", 2)).ok());
       },
       "a versions 3-3 does not follow version 0"},
      {"a's versions 1-2 named twice",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[2], format::StreamKey("a", 1), extent(1, 0)).ok());
       },
       "a versions 1-2 does not follow version 1"},
      {"a request id answered with another stream's events",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("a", "ra2"), request(2, 1, 3)).ok());
       },
       "request id ra2 names 1 events from position 2 ending at version 3, which is no "
       "append"},
      {"a request id answered with part of an append",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("a", "ra1"), request(1, 1, 2)).ok());
       },
       "request id ra1 names 1 events from position 1 ending at version 2, which is no append"},
      {"a request id past the log's end",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("b", "rb9"), request(6, 3, 6)).ok());
       },
       "request id rb9 names 3 events from position 6 ending at version 6, which is no "
       "append"},
      {"a stream entry past the log's end",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[2], format::StreamKey("c", 1), extent(1, 7)).ok());
       },
       "names 1 events from position 7, outside the log's 7 events"},
      {"a request id moved onto another whole append of its stream",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("a", "ra1"), request(3, 1, 3)).ok());
       },
       "request id ra1 names the append from position 3, whose first event carries request "
       "id ra2"},
      {"a request id given to an append that had none",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("b", "rb2"), request(4, 3, 4)).ok());
       },
       "request id rb2 names the append from position 4, whose first event carries no request "
       "id"},
      {"a malformed request record",
       [&](rocksdb::DB& db, const Handles& h) {
         ASSERT_TRUE(db.Put(w, h[3], format::RequestKey("b", "rb1"), "\x01short").ok());
       },
       "malformed entry"},
  };

  {  // Untouched, the indexes match and the backup restores.
    RocksEventLog::Options options = options_of("clean");
    auto log = MustOpen(options);
    fill(*log);
    EXPECT_THAT(log->CheckIndexes(), IsOk());
    ASSERT_THAT(log->Backup(dir.Sub("clean-backups")), IsOk());
    EXPECT_THAT(RocksEventLog::Restore(dir.Sub("clean-backups"), options_of("clean-restored")),
                IsOk());
  }
  for (size_t i = 0; i < forgeries.size(); ++i) {
    SCOPED_TRACE(forgeries[i].name);
    RocksEventLog::Options options = options_of(absl::StrCat("log", i));
    {
      auto log = MustOpen(options);
      ASSERT_NE(log, nullptr);
      fill(*log);
    }
    const std::string backups = dir.Sub(absl::StrCat("backups", i));
    uint32_t good = 0;
    {
      auto log = MustOpen(options);
      auto id = log->Backup(backups);
      ASSERT_THAT(id, IsOk());
      good = *id;
    }
    ASSERT_GT(ForgeBackup(options.path, backups, good, forgeries[i].edit), good);
    {
      auto log = MustOpen(options);
      absl::Status check = log->CheckIndexes();
      EXPECT_THAT(check, StatusIs(absl::StatusCode::kDataLoss));
      EXPECT_THAT(std::string(check.message()), ::testing::HasSubstr(forgeries[i].refusal));
      auto refused = log->Backup(dir.Sub(absl::StrCat("more-backups", i)));
      EXPECT_THAT(refused, StatusIs(absl::StatusCode::kDataLoss));
      EXPECT_THAT(std::string(refused.status().message()),
                  ::testing::HasSubstr("the backup's indexes do not match its events"));
      EXPECT_FALSE(
          std::filesystem::exists(dir.Sub(absl::StrCat("more-backups", i, "/checkpoint-1"))));
    }
    RocksEventLog::Options restored = options_of(absl::StrCat("restored", i));
    absl::Status refused = RocksEventLog::Restore(backups, restored);
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kDataLoss));
    EXPECT_THAT(std::string(refused.message()),
                ::testing::HasSubstr("does not match its own events"));
    EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr(forgeries[i].refusal));
    EXPECT_FALSE(std::filesystem::exists(restored.path));
    EXPECT_FALSE(std::filesystem::exists(restored.path + ".checkpoint"));
    // The good backup beside it still restores.
    EXPECT_THAT(RocksEventLog::Restore(backups, options_of(absl::StrCat("older", i)), good),
                IsOk());
  }
}

// A forged backup whose stored subtrees and checkpoint are intact but one of whose events
// was rewritten: the open's checks (the root from the stored subtrees) pass, and the
// restore's full Verify finds it.
TEST(RocksEventLogBackup, RestoreVerifiesEveryEventAgainstTheStoredTree) {
  TempDir dir;
  std::mt19937 rng(Seed());
  RocksEventLog::Options options = LogOptions(dir, "log");
  const std::string backups = dir.Sub("backups");
  uint32_t good = 0;
  {
    auto log = MustOpen(options);
    Fill(*log, 60, "a", rng);
    ASSERT_GE(log->Size(), 48);
    auto id = log->Backup(backups);
    ASSERT_THAT(id, IsOk());
    good = *id;
  }
  const uint32_t forged =
      ForgeBackup(options.path, backups, good, [](rocksdb::DB& db, const auto& h) {
        std::string value;
        ASSERT_TRUE(db.Get(rocksdb::ReadOptions(), h[1], format::PositionKey(21), &value).ok());
        format::EventRecord record;
        ASSERT_TRUE(format::DecodeEventRecord(value, &record));
        std::string forged_record;
        format::AppendEventRecord(&forged_record, record.stream, record.version, "forged");
        ASSERT_TRUE(
            db.Put(rocksdb::WriteOptions(), h[1], format::PositionKey(21), forged_record).ok());
      });
  ASSERT_GT(forged, good);
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  absl::Status refused = RocksEventLog::Restore(backups, restored);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("does not verify"));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("[16, 32)"));
  EXPECT_FALSE(std::filesystem::exists(restored.path));
  EXPECT_FALSE(std::filesystem::exists(restored.path + ".checkpoint"));
}

// The check reads the events a stream index names in chunks of 8,192: here 9,000 events
// in three-event appends, so one append's events straddle the chunks' boundary, and a
// forgery of the last append of a stream lies in the second chunk.
TEST(RocksEventLogBackup, CheckIndexesAcrossChunks) {
  TempDir dir;
  RocksEventLog::Options options = LogOptions(dir, "log");
  {
    auto log = MustOpen(options);
    ASSERT_NE(log, nullptr);
    std::vector<std::string> events = {"x", "y", "z"};
    for (int i = 0; i < 3000; ++i) {
      const std::string stream = absl::StrCat("s", i % 3);
      ASSERT_THAT(log->Append({.stream = stream,
                               .expected_version = i / 3 * 3,
                               .events = events,
                               .request_id = absl::StrCat("r", i)}),
                  IsOk());
    }
    ASSERT_EQ(log->Size(), 9000);
    EXPECT_THAT(log->CheckIndexes(), IsOk());
  }
  // s2's last append (versions 2998-3000) at s1's last append's positions.
  EditBehindTheLogsBack(options.path, [&](rocksdb::DB& db, const auto& h) {
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), h[2], format::StreamKey("s2", 3000),
                       format::EncodeStreamExtent({.first_version = 2998, .first_position = 8994}))
                    .ok());
  });
  auto log = MustOpen(options);
  absl::Status check = log->CheckIndexes();
  EXPECT_THAT(check, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(check.message()),
              ::testing::HasSubstr("s2 versions 2998-3000 names position 8994 as s2 version 2998; "
                                   "it holds s1 version 2998"));
}

// A backup missing one of its files is a damaged backup (DATA_LOSS), not a failure of
// the restore; and two logs backing up into one directory take turns: the second is
// refused while the first is being taken.
TEST(RocksEventLogBackup, AMissingFileIsDamageAndOneDirectoryTakesOneBackupAtATime) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  Fill(*log, 40, "a", rng);
  ASSERT_THAT(log->Backup(dir.Sub("backups")), IsOk());
  int removed = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.Sub("backups"))) {
    if (removed == 0 && entry.is_regular_file() && entry.path().extension() == ".sst") {
      std::filesystem::remove(entry.path());
      ++removed;
    }
  }
  ASSERT_EQ(removed, 1);
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  absl::Status missing = RocksEventLog::Restore(dir.Sub("backups"), restored);
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_NE(missing.message().find("the backup's files are damaged"), std::string::npos) << missing;
  EXPECT_FALSE(std::filesystem::exists(restored.path));

  auto other = MustOpen(LogOptions(dir, "other"));
  Fill(*other, 5, "b", rng);
  absl::Status second = absl::OkStatus();
  log->SetBackupStepHookForTesting([&](std::string_view step) {
    if (step == "verifying") {
      auto refused = other->Backup(dir.Sub("shared-backups"));
      second = refused.ok() ? absl::OkStatus() : refused.status();
    }
  });
  EXPECT_THAT(log->Backup(dir.Sub("shared-backups")), IsOk());
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(second.message().find("another process is taking a backup"), std::string::npos)
      << second;
  log->SetBackupStepHookForTesting(nullptr);
  EXPECT_THAT(other->Backup(dir.Sub("shared-backups")), IsOk());  // its turn now
}

// A server that shuts down stops the backup it is taking, whichever step it is at, and
// keeps nothing of it: no backup a restore could take, no checkpoint, no scratch copy.
// The log goes on taking appends; later backups are refused the same way.
TEST(RocksEventLogBackup, AStoppedBackupKeepsNothing) {
  for (const std::string_view step : {"copying", "checking", "verifying", "signing"}) {
    SCOPED_TRACE(step);
    TempDir dir;
    std::mt19937 rng(Seed());
    auto log = MustOpen(LogOptions(dir, "log"));
    Fill(*log, 60, "a", rng);
    std::vector<std::string> steps;
    log->SetBackupStepHookForTesting([&](std::string_view at) {
      steps.emplace_back(at);
      if (at == step) log->StopBackups();
    });
    auto backup = log->Backup(dir.Sub("backups"));
    EXPECT_THAT(backup, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(RefusalReason(backup.status()), kRefusalShuttingDown);
    EXPECT_EQ(steps.back(), step);  // it went no further
    // Only the engine's empty folders are left: no file of the backup, no checkpoint, no
    // scratch copy.
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.Sub("backups"))) {
      const std::string name = entry.path().filename().string();
      EXPECT_TRUE(entry.is_directory() || name == "LOCK") << entry.path();
      EXPECT_FALSE(name.starts_with("verify-")) << entry.path();
    }
    rocksdb::BackupEngineReadOnly* raw = nullptr;
    ASSERT_TRUE(rocksdb::BackupEngineReadOnly::Open(
                    rocksdb::Env::Default(), rocksdb::BackupEngineOptions(dir.Sub("backups")), &raw)
                    .ok());
    std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
    std::vector<rocksdb::BackupInfo> backups;
    engine->GetBackupInfo(&backups);
    EXPECT_TRUE(backups.empty());
    const int64_t size = log->Size();
    Fill(*log, 5, "b", rng);
    EXPECT_GT(log->Size(), size);
    auto later = log->Backup(dir.Sub("backups"));
    EXPECT_THAT(later, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(RefusalReason(later.status()), kRefusalShuttingDown);
  }
}

// One backup at a time: another asked for while one is being taken is refused, and the
// first goes on to be kept.
TEST(RocksEventLogBackup, OneBackupAtATime) {
  TempDir dir;
  std::mt19937 rng(Seed());
  auto log = MustOpen(LogOptions(dir, "log"));
  Fill(*log, 20, "a", rng);
  std::optional<absl::StatusOr<uint32_t>> second;
  log->SetBackupStepHookForTesting([&](std::string_view step) {
    if (step == "verifying" && !second.has_value()) second = log->Backup(dir.Sub("other"));
  });
  EXPECT_THAT(log->Backup(dir.Sub("backups")), IsOk());
  ASSERT_TRUE(second.has_value());
  EXPECT_THAT(*second, StatusIs(absl::StatusCode::kFailedPrecondition));
  log->SetBackupStepHookForTesting(nullptr);
  EXPECT_THAT(log->Backup(dir.Sub("other")), IsOk());  // and once it is done, another
}

TEST(RocksEventLogBackup, RestoreRefusesWithoutTheKeyOrOverAnExistingCheckpoint) {
  TempDir dir;
  std::mt19937 rng(Seed());
  {
    auto log = MustOpen(LogOptions(dir, "log"));
    Fill(*log, 20, "a", rng);
    ASSERT_THAT(log->Backup(dir.Sub("backups")), IsOk());
  }
  RocksEventLog::Options restored = LogOptions(dir, "restored");
  restored.signing_key_path = dir.Sub("missing.key");
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("missing.key")));  // no key made up
  // Another server's key: not the backup's fault (FAILED_PRECONDITION, not DATA_LOSS),
  // and the message names both keys.
  ASSERT_THAT(LoadOrCreateSigningKey(dir.Sub("other.key"), "casework.test/log"), IsOk());
  restored.signing_key_path = dir.Sub("other.key");
  absl::Status wrong_key = RocksEventLog::Restore(dir.Sub("backups"), restored);
  EXPECT_THAT(wrong_key, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(wrong_key.message().find("is signed by key casework.test/log+"), std::string::npos)
      << wrong_key;
  EXPECT_FALSE(std::filesystem::exists(restored.path));
  restored = LogOptions(dir, "restored");
  ASSERT_THAT(WriteFileDurably(restored.path + ".checkpoint", "evidence\n"), IsOk());
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), restored),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(std::filesystem::exists(restored.path));
  // A restore cut short before its log verified (the copy stopped, say) left a staged log
  // no restore vouched for: the refusal says not to use it.
  std::filesystem::create_directories(restored.path + ".restoring");
  absl::Status unfinished = RocksEventLog::Restore(dir.Sub("backups"), restored);
  EXPECT_THAT(unfinished, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(unfinished.message().find("is not to be used"), std::string::npos) << unfinished;
  EXPECT_EQ(unfinished.message().find("rename it to"), std::string::npos) << unfinished;
  // One cut short after it installed its checkpoint left its verified log staged, with the
  // mark of its verification: the refusal says how to finish it.
  ASSERT_THAT(WriteFileDurably(restored.path + ".restoring.verified", "verified\n"), IsOk());
  absl::Status staged = RocksEventLog::Restore(dir.Sub("backups"), restored);
  EXPECT_THAT(staged, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(staged.message().find("rename it to " + restored.path), std::string::npos) << staged;
  // Another restore into the same place under way (its lock held): refused, nothing made.
  {
    RocksEventLog::Options busy = LogOptions(dir, "busy");
    const int fd =
        ::open((busy.path + ".restore.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    absl::Status refused = RocksEventLog::Restore(dir.Sub("backups"), busy);
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_NE(refused.message().find("another restore"), std::string::npos) << refused;
    EXPECT_FALSE(std::filesystem::exists(busy.path));
    ::close(fd);
    EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backups"), busy), IsOk());
  }
  // A mistyped backup directory: not found, and not made (the engine only reads).
  RocksEventLog::Options typo = LogOptions(dir, "restored-typo");
  EXPECT_THAT(RocksEventLog::Restore(dir.Sub("backupz"), typo),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("backupz")));
}

}  // namespace
}  // namespace casework::store

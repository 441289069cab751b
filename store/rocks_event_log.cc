#include "store/rocks_event_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/backup_engine.h>
#include <rocksdb/write_batch.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "store/hasher.h"
#include "store/info_log.h"
#include "store/internal/held_directories.h"
#include "store/internal/status_macros.h"
#include "store/log_format.h"
#include "store/merkle.h"
#include "store/wal_tail.h"
#include "store/zero_filled_wal.h"

namespace casework::store {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
// This Abseil's StrCat takes absl::string_view, which is not std::string_view here.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

// Maps a RocksDB status to the codes of event_log.h. `context` says what was being done.
absl::Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat(Sv(context), ": ", s.ToString());
  if (s.IsCorruption()) {
    // Stored data is damaged: say what an operator can do about it.
    return absl::DataLossError(absl::StrCat(
        message,
        ". Stored data is damaged; find the first damaged position with verify (casectl "
        "verify, or caseworkd --verify-offline with the server stopped), keep the directory "
        "as it is for inspection, and restore the last verified backup (docs/storage.md, "
        "recovery)"));
  }
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsInvalidArgument() || s.IsNotSupported()) return absl::FailedPreconditionError(message);
  return absl::UnavailableError(message);
}

// Watches RocksDB's background errors. A failed WAL write (the write path's own error,
// BackgroundErrorReason::kWriteCallback or kMemTable) is remembered and RocksDB's own
// recovery from it vetoed: the log turns read-only until restart instead (see the
// writer). A failed flush or compaction (the disk full, say) is left to RocksDB's
// recovery, which rewrites nothing of the WAL.
class RecoveryGate final : public rocksdb::EventListener {
 public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* /*error*/) override {
    if (FromWritePath(reason)) wal_write_failed_.store(true, std::memory_order_release);
  }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status /*error*/,
                            bool* auto_recovery) override {
    if (FromWritePath(reason)) *auto_recovery = false;
  }
  bool wal_write_failed() const { return wal_write_failed_.load(std::memory_order_acquire); }

 private:
  static bool FromWritePath(rocksdb::BackgroundErrorReason reason) {
    return reason == rocksdb::BackgroundErrorReason::kWriteCallback ||
           reason == rocksdb::BackgroundErrorReason::kMemTable;
  }
  std::atomic<bool> wal_write_failed_{false};
};

// The merge operator of counters: value += operand, both int64 big-endian (8 bytes).
// A malformed operand or base fails the merge, which RocksDB reports as corruption on
// read. DO NOT CHANGE the name: RocksDB records it with the column family.
class AddInt64Operator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    int64_t base = 0;
    if (existing != nullptr && !format::DecodeInt64(ToView(*existing), &base)) return false;
    int64_t delta = 0;
    if (!format::DecodeInt64(ToView(value), &delta)) return false;
    // Two's complement wrap-around, never undefined behaviour.
    *new_value = format::EncodeInt64(
        static_cast<int64_t>(static_cast<uint64_t>(base) + static_cast<uint64_t>(delta)));
    return true;
  }
  const char* Name() const override { return "casework.AddInt64"; }
};

// The stream a key of the streams family belongs to: every key there is the stream's
// name, the separator and an 8-byte version (format::StreamKey), so the prefix is the key
// without its last 8 bytes. A Bloom filter of these prefixes lets a read of one stream
// (its version, an event's position, its events) skip every sorted run that holds no
// entry of it: a case's entries are written within minutes, so most runs hold none.
// DO NOT CHANGE the name: RocksDB records it in every table file, and a table built with
// another name is read without its prefix filter.
class StreamPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "casework.StreamPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    // RocksDB also asks for the prefix of keys outside the domain (a damaged key met by
    // an iterator): never past the key's start.
    return key.size() < 9 ? key : rocksdb::Slice(key.data(), key.size() - 8);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() >= 10 && key[key.size() - 9] == format::kSeparator;
  }
};

// `status` with the refusal reason payload of event_log.h.
absl::Status WithReason(absl::Status status, std::string_view reason) {
  status.SetPayload(absl::string_view(kRefusalPayloadUrl.data(), kRefusalPayloadUrl.size()),
                    absl::Cord(absl::string_view(reason.data(), reason.size())));
  return status;
}

// RocksDB counts comparisons, reads and more per thread (its perf context) unless the
// thread turns that off. The log reads none of those counters; on the writer, which
// inserts every key of every batch into the memtables, counting each comparison (a
// thread-local lookup through the shared library) took 5% of its time. So the log's own
// threads turn them off.
void QuietPerfContext() { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

bool ValidName(std::string_view name, size_t bytes_max) {
  return !name.empty() && name.size() <= bytes_max &&
         name.find(format::kSeparator) == std::string_view::npos;
}

size_t RequestBytes(const AppendRequest& request) {
  size_t bytes = 0;
  for (const std::string& event : request.events) bytes += event.size();
  return bytes;
}

// Counter additions waiting to be written into a batch, by projection key. The merge
// operator is associative and a batch is atomic, so the additions of one batch to one key
// are written as one merge operand holding their sum: the stored result is the same, with
// fewer memtable entries (the per-jurisdiction counts of a batch's cases share their
// upper levels). A pending sum is written before any later Put or Delete of its key, so
// the order of writes to a key is kept; a sum of 0 is written too, so that a key exists
// exactly when it would without summing.
using CounterSums = absl::flat_hash_map<std::string, uint64_t>;

struct Pending {
  AppendRequest request;
  EventLog::AppendCallback done;
};

struct Outcome {
  EventLog::AppendCallback done;
  absl::StatusOr<AppendResult> result;
};

// One synced write and the answers that wait for it.
struct Batch {
  rocksdb::WriteBatch write;
  CounterSums counter_sums;  // written into `write` by FlushCounterSums before it is synced
  std::vector<Outcome> outcomes;
  size_t events = 0;  // events and event bytes of the appends taken into it
  size_t bytes = 0;
  int64_t size_before = 0;
  int64_t size_after = 0;
  Hash root_after{};
};

// A thread named `name` (15 bytes at most), so that top -H, perf and a debugger tell the
// log's threads apart.
std::thread NamedThread(const char* name, std::function<void()> body) {
  return std::thread([name, body = std::move(body)] {
    pthread_setname_np(pthread_self(), name);
    body();
  });
}

// What a batch changes, kept by the sequencer until the batch is durable, so that the
// next batch is checked against it.
struct Overlay {
  absl::flat_hash_map<std::string, int64_t> versions;       // stream -> version
  absl::flat_hash_map<std::string, AppendResult> requests;  // request key -> result
};

void ApplyProjection(rocksdb::WriteBatch& write, rocksdb::ColumnFamilyHandle* family,
                     const ProjectionWrite& projection, CounterSums* sums) {
  std::string key = format::ProjectionKey(projection.table, projection.key);
  if (projection.op == ProjectionWrite::Op::kAddInt64) {
    // Two's complement wrap-around, as the merge operator adds.
    sums->try_emplace(std::move(key), 0).first->second += static_cast<uint64_t>(projection.delta);
    return;
  }
  if (auto it = sums->find(key); it != sums->end()) {
    STORE_CHECK(
        write.Merge(family, key, format::EncodeInt64(static_cast<int64_t>(it->second))).ok());
    sums->erase(it);
  }
  switch (projection.op) {
    case ProjectionWrite::Op::kPut:
      STORE_CHECK(write.Put(family, key, projection.value).ok());
      break;
    case ProjectionWrite::Op::kDelete:
      STORE_CHECK(write.Delete(family, key).ok());
      break;
    case ProjectionWrite::Op::kAddInt64:
      break;
  }
}

// Writes the pending sums; before the batch is written.
void FlushCounterSums(rocksdb::WriteBatch& write, rocksdb::ColumnFamilyHandle* family,
                      CounterSums* sums) {
  for (const auto& [key, sum] : *sums) {
    STORE_CHECK(write.Merge(family, key, format::EncodeInt64(static_cast<int64_t>(sum))).ok());
  }
  sums->clear();
}

}  // namespace

class RocksEventLog::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}

  ~Impl() {
    Shutdown();
    if (db_ != nullptr) {
      for (rocksdb::ColumnFamilyHandle* handle : handles_) {
        rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
        STORE_CHECK(s.ok());
      }
      handles_.clear();
      rocksdb::Status s = db_->Close();
      (void)s;  // Nothing left to do about it: every acknowledged write is synced.
    }
    db_.reset();
    // Its thread ends before the directory is given up (RocksDB may hold the FileSystem
    // itself longer).
    if (wal_fs_ != nullptr) wal_fs_->Stop();
    wal_env_.reset();
    wal_fs_.reset();
    if (dir_lock_ != nullptr) (void)dir_lock_env_->UnlockFile(dir_lock_);
    for (int fd : inspection_lock_fds_) ::close(fd);
    if (held_dir_.has_value()) internal::HeldDirectories::Remove(*held_dir_, held_role_);
  }

  absl::Status OpenDb();
  // A shared lock on the lock file at `path` for an inspection, kept in
  // inspection_lock_fds_. It is an open file description lock: it conflicts with the
  // exclusive record lock that RocksDB's LockFile takes, also within this process (where
  // a record lock would be merged with that one and given up with any descriptor of the
  // file; HeldDirectories keeps an inspection from opening the lock files of a log this
  // process writes). A missing file is not created (an inspection writes nothing): no
  // process of a version that takes it holds it then. The file is opened directly, not
  // through options_.env: locks are between processes of this machine's file system.
  absl::Status TakeSharedLock(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return absl::UnavailableError(absl::StrCat("opening the lock file ", path,
                                                 " of the event log: ", std::strerror(errno)));
    }
    struct flock shared = {};
    shared.l_type = F_RDLCK;
    shared.l_whence = SEEK_SET;
    if (::fcntl(fd, F_OFD_SETLK, &shared) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EAGAIN || error == EACCES) {
        return absl::UnavailableError(absl::StrCat(
            "the event log at ", options_.path, " is in use: its lock ", path,
            " is held by a server or a WAL repair; an inspection reads a stopped log, so stop "
            "the server first, or check the live log through the server (casectl verify)"));
      }
      return absl::UnavailableError(
          absl::StrCat("locking ", path, " of the event log: ", std::strerror(error)));
    }
    inspection_lock_fds_.push_back(fd);
    return absl::OkStatus();
  }
  void Start() {
    started_ = true;
    sequencer_ = NamedThread("log-sequencer", [this] { SequencerLoop(); });
    writer_ = NamedThread("log-writer", [this] { WriterLoop(); });
    if (options_.answer_thread) answerer_ = NamedThread("log-answerer", [this] { AnswererLoop(); });
    checkpointer_ = NamedThread("log-checkpoint", [this] { CheckpointerLoop(); });
  }
  void Shutdown();

  void AppendAsync(AppendRequest request, AppendCallback done);
  absl::StatusOr<int64_t> StoredVersion(std::string_view stream) const;
  absl::StatusOr<int64_t> PositionOf(std::string_view stream, int64_t version) const;
  absl::StatusOr<std::vector<StoredEvent>> ReadStream(std::string_view stream, int64_t from_version,
                                                      size_t limit) const;
  absl::StatusOr<std::vector<StoredEvent>> ReadRange(int64_t from_position, size_t limit) const;
  int64_t Size() const { return size_.load(std::memory_order_acquire); }
  absl::StatusOr<std::optional<AppendResult>> StoredRequest(const std::string& key) const;
  absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view table,
                                                           std::string_view key) const;
  absl::Status ScanProjection(
      std::string_view table, std::string_view start_key, size_t limit,
      const std::function<bool(std::string_view, std::string_view)>& visit) const;
  void SetCommitListener(std::function<void(int64_t)> listener) {
    auto shared = std::make_shared<const std::function<void(int64_t)>>(std::move(listener));
    absl::MutexLock lock(&listener_mu_);
    listener_ = std::move(shared);
  }
  WriteState GetWriteState() const {
    absl::MutexLock lock(&mu_);
    return WriteStateLocked();
  }
  MemoryUsage GetMemoryUsage() const {
    MemoryUsage usage;
    auto aggregated = [&](const std::string& property) {
      uint64_t value = 0;
      return db_->GetAggregatedIntProperty(property, &value) ? static_cast<int64_t>(value) : 0;
    };
    auto one = [&](const std::string& property) {  // the cache is shared by every family
      uint64_t value = 0;
      return db_->GetIntProperty(events_, property, &value) ? static_cast<int64_t>(value) : 0;
    };
    usage.block_cache = one(rocksdb::DB::Properties::kBlockCacheUsage);
    usage.block_cache_pinned = one(rocksdb::DB::Properties::kBlockCachePinnedUsage);
    usage.memtables = aggregated(rocksdb::DB::Properties::kSizeAllMemTables);
    usage.table_readers = aggregated(rocksdb::DB::Properties::kEstimateTableReadersMem);
    return usage;
  }
  void SetWriteStateListener(std::function<void(const WriteState&)> listener) {
    auto shared =
        std::make_shared<const std::function<void(const WriteState&)>>(std::move(listener));
    absl::MutexLock lock(&listener_mu_);
    state_listener_ = std::move(shared);
  }
  void SetCheckpointFileListener(std::function<void(const absl::Status&)> listener) {
    auto shared =
        std::make_shared<const std::function<void(const absl::Status&)>>(std::move(listener));
    absl::MutexLock lock(&listener_mu_);
    checkpoint_listener_ = std::move(shared);
  }
  void Pause(bool paused) {
    absl::MutexLock lock(&mu_);
    paused_ = paused;
  }
  size_t Queued() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }
  absl::Status DamageEvent(int64_t position);
  // A memtable switched out stays counted as immutable until its flush is installed:
  // one property covers a flush that is due and one that runs.
  bool FlushesUnderWay() const {
    for (rocksdb::ColumnFamilyHandle* handle : handles_) {
      uint64_t value = 0;
      if (db_->GetIntProperty(handle, rocksdb::DB::Properties::kNumImmutableMemTable, &value) &&
          value > 0) {
        return true;
      }
    }
    return false;
  }

  TreeHead Head() const {
    absl::MutexLock lock(&head_mu_);
    return head_;
  }
  absl::StatusOr<Hash> NodeHash(const merkle::NodeId& node) const;
  absl::StatusOr<Hash> RangeHash(int64_t begin, int64_t end) const;
  absl::StatusOr<Hash> RootAt(int64_t size) const;
  absl::StatusOr<std::vector<Hash>> Proof(const std::vector<merkle::Range>& ranges) const;
  absl::StatusOr<std::string> SignedCheckpoint();
  absl::StatusOr<std::string> SignHead(const TreeHead& head);
  absl::Status WriteCheckpointFile();
  // `stop` (optional): when it turns true, Verify returns kCancelled within 4,096 events.
  absl::StatusOr<VerifyReport> Verify(int64_t from, int64_t to,
                                      const std::atomic<bool>* stop = nullptr) const;
  absl::Status CheckIndexes(const std::atomic<bool>* stop = nullptr) const;
  absl::Status RebuildProjections(
      const std::function<absl::StatusOr<std::vector<ProjectionWrite>>(const StoredEvent&)>&
          project);
  absl::Status ScanAllProjections(
      const std::function<void(std::string_view, std::string_view)>& visit) const;
  rocksdb::DB* db() const { return db_.get(); }
  const std::string& key_path() const { return key_path_; }
  const std::string& origin() const { return options_.checkpoint_origin; }
  const std::function<std::optional<std::string>(std::string_view)>& request_id_of_event() const {
    return options_.request_id_of_event;
  }
  const std::string& checkpoint_path() const { return checkpoint_path_; }
  const NoteVerifier& verifier() const { return signer_->verifier(); }
  bool has_signer() const { return signer_.has_value(); }
  const std::string& anchor_problem() const { return anchor_problem_; }
  absl::StatusCode anchor_problem_code() const { return anchor_problem_code_; }
  absl::Status MarkProjectionsStale() {
    return RecordProjectionLayout(kProjectionLayoutRebuilding);
  }

  // Backups (RocksEventLog::Backup, StopBackups).
  bool backups_stopped() const { return backups_stopped_.load(std::memory_order_acquire); }
  // Whether `backup_dir` has room for a backup: a copy of the log and a second copy
  // restored to verify it, and, on the log's own file system, the room appends resume
  // from, so that taking a backup never stops the log's writes.
  absl::Status CheckBackupRoom(const std::string& backup_dir) const;
  const std::atomic<bool>* backups_stopped_flag() const { return &backups_stopped_; }
  void StopBackups() {
    backups_stopped_.store(true, std::memory_order_release);
    absl::MutexLock lock(&backup_mu_);
    if (running_backup_ != nullptr) running_backup_->StopBackup();
  }
  // Registers the engine of the backup being taken, for StopBackups; false when another
  // backup is being taken. Cleared (nullptr) before the engine is destroyed.
  bool SetRunningBackup(rocksdb::BackupEngine* engine) {
    absl::MutexLock lock(&backup_mu_);
    if (engine != nullptr && running_backup_ != nullptr) return false;
    running_backup_ = engine;
    if (engine != nullptr && backups_stopped()) engine->StopBackup();
    return true;
  }
  void BackupStep(std::string_view step) {
    std::function<void(std::string_view)> hook;
    {
      absl::MutexLock lock(&backup_mu_);
      hook = backup_step_hook_;
    }
    if (hook) hook(step);
  }
  void SetBackupStepHook(std::function<void(std::string_view)> hook) {
    absl::MutexLock lock(&backup_mu_);
    backup_step_hook_ = std::move(hook);
  }

 private:
  absl::Status Validate(const AppendRequest& request) const;
  absl::Status RecoverSize();
  absl::StatusOr<merkle::CompactRange> ReadFrontier(int64_t size) const;
  absl::Status RecoverTree();
  absl::Status CheckAnchor();
  // Options::inspect_only: the checks of CheckAnchor without writing; the first problem.
  absl::Status InspectAnchor(int64_t held);
  absl::Status RecoverProjectionLayout();
  // Records `layout` as the stored projections' layout (synced).
  absl::Status RecordProjectionLayout(uint32_t layout);
  void CheckpointerLoop();
  // The maintenance thread, after a write failed for lack of space: once RocksDB has
  // recovered, lets the sequencer reset and take appends again.
  void TryResume();
  // The sequencer, with the writer idle and no batch open, after RocksDB resumed: forgets
  // the batches that failed and continues from the durable log.
  absl::Status ResetAfterResume();
  // The free space of the log's file system (through its Env); nullopt when unknown.
  std::optional<uint64_t> FreeBytes() const;
  // Appends are refused below this much free space, and taken again from the second.
  uint64_t DiskReserveBytes() const {
    return options_.disk_reserve_bytes != 0 ? options_.disk_reserve_bytes
                                            : options_.memtable_bytes_max;
  }
  uint64_t DiskResumeBytes() const { return DiskReserveBytes() + DiskReserveBytes() / 4; }
  WriteState WriteStateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyWriteState();
  void SequencerLoop();
  void WriterLoop();
  void AnswererLoop();
  void Answer(std::unique_ptr<Batch> batch);
  // Takes queued appends that fit a batch already holding `events` and `bytes`; sets
  // `*blocked` when the queue's first append does not fit.
  std::vector<Pending> Take(size_t events, size_t bytes, bool* blocked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<AppendResult> Apply(const AppendRequest& request, Batch* batch, Overlay* overlay);
  absl::StatusOr<std::optional<AppendResult>> FindRequest(const std::string& key,
                                                          const AppendRequest& request,
                                                          const Overlay& overlay) const;
  absl::StatusOr<int64_t> CurrentVersion(const AppendRequest& request, const Overlay& overlay);
  // Whether nothing was stored for the request's stream since its read token was taken:
  // appends not yet durable aside (overlay, inflight_), which FindRequest and
  // CurrentVersion check first.
  bool UnchangedSinceToken(const AppendRequest& request) const;
  // Empties the version cache; tokens taken before are no longer trusted.
  void ClearVersionCache() {
    version_epoch_.fetch_add(1, std::memory_order_acq_rel);
    version_cache_.clear();
  }
  // Hands a built batch to the writer thread (the writer is idle). Returns the batch
  // instead when a previous write failed, its outcomes set to the failure, to be answered
  // once mu_ is released (AnswerNow).
  [[nodiscard]] std::unique_ptr<Batch> Publish(std::unique_ptr<Batch> batch, Overlay overlay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What a hand-off to the writer changes in the sequencer's state: the previous batch is
  // durable, so its versions join the cache, and `overlay` is the one in flight. False
  // (and every outcome of `batch` set to the failure) when a previous write failed.
  bool Promote(Batch& batch, Overlay overlay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the callbacks of a batch that was never written, on this thread.
  static void AnswerNow(Batch& batch);
  // Writes one batch as one synced RocksDB write and answers it; `writing_` is set, and
  // cleared here once the batch is answered.
  void WriteAndAnswer(std::unique_ptr<Batch> batch);
  // Options::direct_commit: the caller holds the sequencer's state (direct_) and the
  // writer's turn (writing_).
  void CommitDirect(Pending pending);
  absl::StatusOr<StoredEvent> DecodeEvent(int64_t position, std::string_view value) const;

  // The sequencer wakes for new appends it has room for, and for an idle writer when it
  // holds an open batch. While the writer is busy it waits until as many appends as the
  // last batch held have queued, not for each one: at 32 in flight it woke about 4 times
  // per batch of 10 when it took each append, and a wake-up (a context switch, about
  // 10 us of CPU on these virtual CPUs) cost more than taking the appends a few at a time
  // saves. Waiting for half a batch was better, waiting for a whole one better still
  // (docs/benchmarks.md). When appends arrive faster than the writer syncs, the next
  // batch is still built while the previous one syncs. A full queue wakes it too: the
  // open batch, gathered over several takes, can have held more appends than the queue
  // can (queue_appends_max), and the appends beyond would be refused as QUEUE_FULL.
  bool SequencerHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t wake_at =
        std::min(std::max<size_t>(1, last_answered_), options_.queue_appends_max);
    return (stopping_ && !open_pending_ && !direct_) || ResetDue() ||
           (!direct_ && (!paused_ || stopping_) && !queue_.empty() && !open_full_ &&
            (WriterIdle() || stopping_ || queue_.size() >= wake_at)) ||
           (open_pending_ && WriterIdle() && OpenReady());
  }
  // A caller may write its append itself: nothing is queued, built or written (nor is
  // another caller's direct append still being answered), and the last batch held at
  // most one append (a lone caller; under concurrency the sequencer batches).
  bool DirectCommitAllowed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return options_.direct_commit && queue_.empty() && !open_pending_ && !seq_busy_ &&
           !direct_active_ && WriterIdle() && last_answered_ <= 1 && !paused_ && !resume_ready_ &&
           write_status_.ok();
  }
  bool SequencerHasWorkOrIdleWriter() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return SequencerHasWork() || (open_pending_ && WriterIdle());
  }
  // The open batch is handed over at once when it holds as many appends as the writer
  // last answered (or is full, or the log stops); otherwise it lingers.
  bool OpenReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return open_appends_ >= last_answered_ || open_full_ || stopping_;
  }
  bool WriterIdle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return slot_ == nullptr && !writing_;
  }
  bool ResetDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return resume_ready_ && !open_pending_ && WriterIdle();
  }
  bool WriterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return slot_ != nullptr || writer_exit_;
  }

  const Options options_;
  // The directory's own lock (ZeroFilledWalFs::kDirLockName), released after db_ closes.
  rocksdb::Env* dir_lock_env_ = nullptr;
  rocksdb::FileLock* dir_lock_ = nullptr;
  // Options::inspect_only: shared locks on the lock files, held while open (TakeSharedLock).
  std::vector<int> inspection_lock_fds_;
  // The directory as listed in HeldDirectories, and how.
  std::optional<internal::HeldDirectories::Id> held_dir_;
  internal::HeldDirectories::Role held_role_ = internal::HeldDirectories::Role::kWriter;
  // WAL files in zero-filled space; declared before db_, so that they outlive it.
  std::shared_ptr<ZeroFilledWalFs> wal_fs_;
  std::unique_ptr<rocksdb::Env> wal_env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* streams_ = nullptr;
  rocksdb::ColumnFamilyHandle* requests_ = nullptr;
  rocksdb::ColumnFamilyHandle* projections_ = nullptr;
  rocksdb::ColumnFamilyHandle* tree_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;

  // Backups: once stopped, the running backup's engine is told to stop (StopBackup,
  // which its copies, checks and restores heed between chunks) and no other starts.
  std::atomic<bool> backups_stopped_{false};
  absl::Mutex backup_mu_;
  rocksdb::BackupEngine* running_backup_ ABSL_GUARDED_BY(backup_mu_) = nullptr;
  std::function<void(std::string_view)> backup_step_hook_ ABSL_GUARDED_BY(backup_mu_);

  // The committed (durable) size, published by the writer before it answers.
  std::atomic<int64_t> size_{0};

  // The queue of appends, filled by callers and drained by the sequencer.
  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status read_only_ ABSL_GUARDED_BY(mu_);  // not OK once a write failed
  // A full disk (Options::disk_full_retry_ms): read_only_ is a lack of space, which the
  // maintenance thread lifts once space returns.
  bool disk_full_ ABSL_GUARDED_BY(mu_) = false;
  // ... refused by the free-space guard before anything was written (RocksDB has no
  // error to recover from).
  bool disk_guarded_ ABSL_GUARDED_BY(mu_) = false;
  bool resume_ready_ ABSL_GUARDED_BY(mu_) = false;  // RocksDB resumed; the sequencer resets
  int64_t disk_full_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t resumed_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t read_only_since_us_ ABSL_GUARDED_BY(mu_) = 0;

  // The hand-off of one built batch from the sequencer to the writer. The sequencer keeps
  // one batch open and adds every arriving append to it until the writer is idle (the
  // previous batch synced and answered); only then is it handed over. So a batch holds
  // everything that arrived during the previous sync and its answers, and callers that
  // resubmit as soon as they are answered join the next batch instead of forming a
  // small one of their own.
  std::unique_ptr<Batch> slot_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;  // a taken batch is not yet synced and answered
  bool writer_exit_ ABSL_GUARDED_BY(mu_) = false;
  // The sequencer's state (next_position_, inflight_, version_cache_, frontier_, failed_)
  // belongs to one thread at a time: the sequencer thread while it applies what it took
  // (seq_busy_), or a caller writing a lone append itself (direct_, Options::direct_commit).
  bool seq_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool direct_ ABSL_GUARDED_BY(mu_) = false;
  bool direct_active_ ABSL_GUARDED_BY(mu_) = false;  // ... until its append is answered
  bool open_pending_ ABSL_GUARDED_BY(mu_) = false;   // the sequencer holds an open batch
  bool open_full_ ABSL_GUARDED_BY(mu_) = false;      // ... that has no room for more
  size_t open_appends_ ABSL_GUARDED_BY(mu_) = 0;     // ... with this many appends
  size_t last_answered_ ABSL_GUARDED_BY(mu_) = 0;    // appends of the last batch written
  absl::Time writer_idle_at_ ABSL_GUARDED_BY(mu_);   // when the writer last turned idle
  absl::Status write_status_ ABSL_GUARDED_BY(mu_);   // the first failed write

  absl::Mutex listener_mu_;
  std::shared_ptr<const std::function<void(int64_t)>> listener_ ABSL_GUARDED_BY(listener_mu_);
  std::shared_ptr<const std::function<void(const WriteState&)>> state_listener_
      ABSL_GUARDED_BY(listener_mu_);
  std::shared_ptr<const std::function<void(const absl::Status&)>> checkpoint_listener_
      ABSL_GUARDED_BY(listener_mu_);
  bool checkpoint_file_failing_ = false;  // owned by the checkpointer thread

  // Owned by the sequencer thread.
  int64_t next_position_ = 0;
  Overlay inflight_;                 // the batch handed to the writer and not yet known durable
  int64_t inflight_size_after_ = 0;  // the log's size once inflight_ is durable
  struct CachedVersion {
    int64_t version = 0;
    // The log's size after the batch with the stream's last append since the cache was
    // emptied; 0 when it had none since.
    int64_t appended_by = 0;
  };
  absl::flat_hash_map<std::string, CachedVersion> version_cache_;  // durable versions

 public:
  // The read token's epoch (AppendRequest::read_token): the number of times the version
  // cache was emptied, plus one. Every append that became durable since the cache was
  // last emptied is in it or in a batch not yet merged into it, so a stream found in none
  // of them had no append since a token of the current epoch was taken: the version the
  // caller read after taking it is still the stored one. A stream in the cache had none
  // since either when its appended_by is at most the token's size: the caller's reads
  // (its request id) saw everything stored for it.
  std::atomic<uint64_t> version_epoch_{1};
  // The recorded layout of the stored projections (Options::projection_layout).
  std::atomic<uint32_t> projection_layout_{0};

 private:
  absl::Status failed_;  // sticky: once a write failed, everything fails

  merkle::CompactRange frontier_;  // the right edge of the tree after the built batches

  // The committed tree head, published by the writer after each durable batch.
  mutable absl::Mutex head_mu_;
  TreeHead head_ ABSL_GUARDED_BY(head_mu_);

  std::shared_ptr<RecoveryGate> recovery_gate_ = std::make_shared<RecoveryGate>();
  std::optional<NoteSigner> signer_;  // set by OpenDb
  std::string checkpoint_path_;
  std::string key_path_;
  std::optional<Checkpoint> anchor_;  // the checkpoint file found at open
  std::string anchor_problem_;        // inspect_only: why the open would have been refused
  absl::StatusCode anchor_problem_code_ = absl::StatusCode::kOk;  // and that refusal's code
  absl::Mutex signed_mu_;
  int64_t signed_size_ ABSL_GUARDED_BY(signed_mu_) = -1;
  std::string signed_note_ ABSL_GUARDED_BY(signed_mu_);
  absl::Mutex file_mu_;
  int64_t file_size_ ABSL_GUARDED_BY(file_mu_) = -1;
  bool checkpointer_exit_ ABSL_GUARDED_BY(mu_) = false;

  bool started_ = false;
  std::thread sequencer_;
  std::thread writer_;
  std::thread answerer_;
  std::thread checkpointer_;

  // Synced (or failed) batches whose callers are not yet answered, in order.
  absl::Mutex answer_mu_;
  std::deque<std::unique_ptr<Batch>> answers_ ABSL_GUARDED_BY(answer_mu_);
  bool answerer_exit_ ABSL_GUARDED_BY(answer_mu_) = false;
  bool answering_ ABSL_GUARDED_BY(answer_mu_) = false;  // callbacks of a batch are running
};

absl::Status RocksEventLog::Impl::OpenDb() {
  rocksdb::DBOptions db_options;
  if (options_.env != nullptr) db_options.env = options_.env;
  db_options.create_if_missing = options_.create_if_missing;
  db_options.create_missing_column_families = true;
  // Fail closed: a torn tail after kill -9 is dropped (it was never acknowledged), a
  // corrupt record before the tail refuses to open instead of dropping what follows.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.paranoid_checks = true;
  db_options.max_background_jobs = 2;
  db_options.bytes_per_sync = 1u << 20;
  db_options.keep_log_file_num = 10;
  db_options.listeners.push_back(recovery_gate_);
  // Our own LOG writer: RocksDB's aborts on the line after a failed append (info_log.h).
  std::error_code dir_error;
  if (options_.create_if_missing && !options_.inspect_only) {
    std::filesystem::create_directories(options_.path, dir_error);
  }
  db_options.info_log =
      NewInfoLog(options_.inspect_only ? "" : options_.path + "/LOG", options_.info_log_bytes_max);
  // Bounded memory and a bounded replay at start-up (see Options).
  db_options.db_write_buffer_size = options_.memtable_bytes_max;
  db_options.max_total_wal_size = options_.wal_bytes_max;

  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  rocksdb::BlockBasedTableOptions cached;
  cached.block_cache = cache;
  rocksdb::BlockBasedTableOptions point_lookups = cached;
  point_lookups.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions plain;
  // One column family's memtable: half of all of them. It is also the free space RocksDB
  // waits for before it resumes after a full disk (its SstFileManager reserves the largest
  // write_buffer_size for the flush that resuming starts with).
  plain.write_buffer_size = std::max<size_t>(options_.memtable_bytes_max / 2, 1u << 20);
  plain.table_factory.reset(rocksdb::NewBlockBasedTableFactory(cached));
  // Levels sized from the last one up, with a small base: a flush is merged into a level
  // of about 16 MiB, not into one that grows with the log (with the static default, L1 is
  // filled to 256 MiB first, and every compaction of a few MiB of new keys rewrote all of
  // it). Keys that only grow (events) still move down whole, without a rewrite.
  plain.level_compaction_dynamic_level_bytes = true;
  plain.max_bytes_for_level_base = 16u << 20;
  plain.target_file_size_base = 4u << 20;
  rocksdb::ColumnFamilyOptions with_filter = plain;
  with_filter.table_factory.reset(rocksdb::NewBlockBasedTableFactory(point_lookups));
  // The same filter in front of the memtable: a lookup of an absent key (a new request id,
  // a new case) skips the skip-list search there too.
  with_filter.memtable_prefix_bloom_size_ratio = 0.02;
  with_filter.memtable_whole_key_filtering = true;
  // Positions are big-endian and only grow: every insert into the events memtable lands
  // right after the last one, so a hint shared by all keys (the same 4-byte prefix below
  // 2^32 events) makes it O(1) instead of a skip-list search.
  // Events and tree nodes are only read where they exist, so a Bloom filter would never
  // spare a read there; it would only take memory and block cache. Request ids are looked
  // up mostly where they do not exist (a first attempt), which is what the filter is for.
  rocksdb::ColumnFamilyOptions events = plain;
  events.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
  // Events are read in runs (verification, export, the event stream) or one at a time by
  // position, and every table file keeps its index in memory: 16 KiB blocks make that
  // index a quarter of what 4 KiB blocks need (at 21 M events, the events' index was 21
  // of the 88 MiB of index and filter blocks held for all families).
  rocksdb::BlockBasedTableOptions large_blocks = cached;
  large_blocks.block_size = 16u << 10;
  events.table_factory.reset(rocksdb::NewBlockBasedTableFactory(large_blocks));
  // Projections: a command reads its case's entry first, and for a new case (the most
  // common first command) the entry does not exist yet: the filter answers that without
  // reading a block in every level.
  rocksdb::ColumnFamilyOptions counters = with_filter;
  counters.merge_operator = std::make_shared<AddInt64Operator>();
  // Streams, request ids and tree nodes: one new key per append (per 8 appends for nodes)
  // in no useful order, never overwritten, so the set only grows. Universal compaction
  // merges sorted runs of similar size and rewrites each key a few times (about log2 of
  // the log's size in flushes), where levels rewrite it about ten times per level; at 10
  // million events it spent under half the compaction CPU per append (docs/benchmarks.md,
  // the log at scale). A point read checks a few more runs, each behind its Bloom filter
  // for request ids; a stream's read seeks in each run.
  auto universal = [](rocksdb::ColumnFamilyOptions options) {
    options.compaction_style = rocksdb::kCompactionStyleUniversal;
    return options;
  };

  // Stream extents and request ids: 16 KiB blocks as for events, for the same reason (an
  // index held in memory for every table file, a quarter the size). A request id is
  // looked up mostly where it does not exist, which the filter answers without a block;
  // a stream's extents are read in runs.
  // Stream extents are only read by seeks within one stream (StreamPrefix), never by a
  // point lookup: their filter holds streams, not whole keys.
  rocksdb::ColumnFamilyOptions streams = plain;
  rocksdb::BlockBasedTableOptions stream_blocks = large_blocks;
  stream_blocks.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  stream_blocks.whole_key_filtering = false;
  streams.table_factory.reset(rocksdb::NewBlockBasedTableFactory(stream_blocks));
  streams.prefix_extractor = std::make_shared<StreamPrefix>();
  streams.memtable_prefix_bloom_size_ratio = 0.02;
  rocksdb::ColumnFamilyOptions requests = with_filter;
  rocksdb::BlockBasedTableOptions large_filtered_blocks = point_lookups;
  large_filtered_blocks.block_size = 16u << 10;
  requests.table_factory.reset(rocksdb::NewBlockBasedTableFactory(large_filtered_blocks));

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, plain},
      {format::kEventsFamily, events},
      {format::kStreamsFamily, universal(streams)},
      {format::kRequestsFamily, universal(requests)},
      {format::kProjectionsFamily, counters},
      {format::kTreeFamily, universal(plain)},
      {format::kMetaFamily, plain},
  };
  // RocksDB's LOCK, held from the check of the WAL to just before DB::Open takes it.
  struct HeldLock {
    rocksdb::Env* env = nullptr;
    rocksdb::FileLock* lock = nullptr;
    void Release() {
      if (lock != nullptr) (void)env->UnlockFile(lock);
      lock = nullptr;
    }
    ~HeldLock() { Release(); }
  } rocks_lock;
  std::error_code exists_error;
  const bool dir_exists = std::filesystem::is_directory(options_.path, exists_error);
  if (dir_exists) {
    // Listed before any lock file of the directory is opened (HeldDirectories).
    const internal::HeldDirectories::Role role = options_.inspect_only
                                                     ? internal::HeldDirectories::Role::kInspector
                                                     : internal::HeldDirectories::Role::kWriter;
    STORE_ASSIGN_OR_RETURN(const internal::HeldDirectories::Id id,
                           internal::HeldDirectories::IdOf(options_.path));
    if (!internal::HeldDirectories::TryAdd(id, role)) {
      return absl::UnavailableError(absl::StrCat(
          "the event log at ", options_.path,
          role == internal::HeldDirectories::Role::kWriter
              ? " is in use: this process has it open already (to write, or to inspect it)"
              : " is in use: this process has it open to write; an inspection reads a stopped "
                "log, so stop the server first, or check the live log through the server "
                "(casectl verify)"));
    }
    held_dir_ = id;
    held_role_ = role;
  }
  if (!options_.inspect_only && dir_exists) {
    // Nothing of the directory changes before this process holds it (zero_filled_wal.h).
    // RocksDB's own LOCK is taken only inside DB::Open, so it is taken here as well (and
    // let go just before DB::Open), for a process that holds only it: a WAL repair, or a
    // server of a version without this lock.
    dir_lock_env_ = db_options.env;
    const std::string lock_path = absl::StrCat(options_.path, "/", ZeroFilledWalFs::kDirLockName);
    auto in_use = [&](const std::string& lock, const rocksdb::Status& s) {
      return absl::UnavailableError(
          absl::StrCat("the event log at ", options_.path, " is in use: its lock ", lock,
                       " is held (", s.ToString(),
                       "); stop the server, the repair or the inspection (--verify-offline, the "
                       "check of a backup) that has it open, or check the folder's permissions"));
    };
    if (rocksdb::Status s = dir_lock_env_->LockFile(lock_path, &dir_lock_); !s.ok()) {
      dir_lock_ = nullptr;
      return in_use(lock_path, s);
    }
    const std::string rocks_lock_path = options_.path + "/LOCK";
    rocks_lock.env = dir_lock_env_;
    if (rocksdb::Status s = dir_lock_env_->LockFile(rocks_lock_path, &rocks_lock.lock); !s.ok()) {
      rocks_lock.lock = nullptr;
      return in_use(rocks_lock_path, s);
    }
  }
  if (options_.inspect_only && dir_exists) {
    // An inspection reads a stopped log. A running server's newest WAL file may end in a
    // write it is making, which would read as torn, and its table files change under the
    // reader. So an inspection takes a shared lock on both lock files, which a server (and
    // a WAL repair) holds exclusively, and keeps it while open, so that none starts under
    // it either; several inspections may share a log.
    for (const char* name : {ZeroFilledWalFs::kDirLockName, "LOCK"}) {
      STORE_RETURN_IF_ERROR(TakeSharedLock(absl::StrCat(options_.path, "/", name)));
    }
  }
  // RocksDB drops, as a torn write and in silence, a whole record whose length or type
  // was damaged on disk, with everything after it (store/wal_tail.h): look first.
  STORE_RETURN_IF_ERROR(wal::CheckWalFiles(db_options.env, options_.path));
  if (options_.inspect_only) {
    // RocksDB read-only refuses a torn write inside zeros; say what it is (an inspection
    // changes nothing, so it does not cut it).
    absl::StatusOr<std::optional<wal::TornWrite>> torn =
        wal::TrimTornWrite(options_.path, /*cut=*/false);
    if (!torn.ok()) return torn.status();
    if (torn->has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the write-ahead log ", (*torn)->file, " ends in a write that a crash tore, from byte ",
          (*torn)->offset,
          " (it was never acknowledged); start the server once, which cuts it off, and "
          "inspect again"));
    }
  } else {
    // A write torn inside a WAL file's zeros (zero_filled_wal.h) is cut off, as RocksDB
    // drops a torn write at the end of a file; it was never synced, so never acknowledged.
    absl::StatusOr<std::optional<wal::TornWrite>> torn = wal::TrimTornWrite(options_.path);
    if (!torn.ok()) return torn.status();
    if (torn->has_value()) {
      rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, db_options.info_log,
                   "cut off a write torn by a crash: %s from byte %" PRIu64 " (%" PRIu64
                   " bytes, with the zeros after it); it was never synced",
                   (*torn)->file.c_str(), (*torn)->offset, (*torn)->dropped);
    }
  }
  if (!options_.inspect_only && options_.wal_spare_bytes == 0) {
    // Spares turned off: one left from before is only space.
    if (rocksdb::IOStatus s =
            ZeroFilledWalFs::RemoveSpares(db_options.env->GetFileSystem().get(), options_.path);
        !s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("removing a spare WAL file in ", options_.path, ": ", s.ToString()));
    }
  }
  if (!options_.inspect_only && options_.wal_spare_bytes > 0 && dir_exists) {
    rocksdb::Env* base = db_options.env;
    wal_fs_ = std::make_shared<ZeroFilledWalFs>(base->GetFileSystem(), options_.path,
                                                options_.wal_spare_bytes, 2 * DiskResumeBytes());
    STORE_RETURN_IF_ERROR(wal_fs_->Start());
    wal_env_ = std::make_unique<FileSystemEnv>(base, wal_fs_);
    db_options.env = wal_env_.get();
  }
  rocks_lock.Release();
  rocksdb::DB* db = nullptr;
  // Inspection opens RocksDB read-only: its WAL is replayed in memory, nothing is flushed.
  rocksdb::Status s =
      options_.inspect_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options_.path, families, &handles_, &db)
          : rocksdb::DB::Open(db_options, options_.path, families, &handles_, &db);
  if (!s.ok()) {
    if (s.IsCorruption()) {
      return absl::DataLossError(absl::StrCat(
          "the event log at ", options_.path, " is corrupt and was not opened: ", s.ToString(),
          s.ToString().find(".sst") != std::string::npos
              ? ". A table file (.sst) is damaged"
              : ". A record before the end of the write-ahead log (or another file RocksDB "
                "reads at open) is damaged",
          ", so acknowledged events could be missing; refusing to serve. Keep the directory "
          "as it is for inspection and restore the last verified backup (docs/storage.md, "
          "recovery)"));
    }
    return FromRocks(s, absl::StrCat("opening the event log at ", options_.path));
  }
  db_.reset(db);
  STORE_CHECK(handles_.size() == families.size());
  events_ = handles_[1];
  streams_ = handles_[2];
  requests_ = handles_[3];
  projections_ = handles_[4];
  tree_ = handles_[5];
  meta_ = handles_[6];
  STORE_RETURN_IF_ERROR(RecoverSize());
  STORE_RETURN_IF_ERROR(RecoverTree());
  STORE_RETURN_IF_ERROR(CheckAnchor());
  return RecoverProjectionLayout();
}

absl::Status RocksEventLog::Impl::RecoverProjectionLayout() {
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, format::kProjectionLayoutKey, &value);
  if (s.ok()) {
    if (value.size() != 4) {
      return absl::DataLossError(absl::StrCat("the projection layout recorded in ", options_.path,
                                              " is ", value.size(), " bytes, not 4"));
    }
    projection_layout_ = format::DecodeFixed32BE(value.data());
    return absl::OkStatus();
  }
  if (!s.IsNotFound()) return FromRocks(s, "reading the projection layout");
  if (Size() > 0 || options_.inspect_only) return absl::OkStatus();  // 0: not recorded
  return RecordProjectionLayout(options_.projection_layout);         // a new log: the owner's
}

absl::Status RocksEventLog::Impl::RecordProjectionLayout(uint32_t layout) {
  std::string value;
  format::PutFixed32BE(&value, layout);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  STORE_RETURN_IF_ERROR(FromRocks(db_->Put(synced, meta_, format::kProjectionLayoutKey, value),
                                  "recording the projection layout"));
  projection_layout_ = layout;
  return absl::OkStatus();
}

absl::StatusOr<merkle::CompactRange> RocksEventLog::Impl::ReadFrontier(int64_t size) const {
  // O(log n) reads: the stored nodes of the right edge, and at most 15 events.
  std::vector<Hash> hashes;
  for (const merkle::NodeId& node : merkle::RangeNodes(0, size)) {
    STORE_ASSIGN_OR_RETURN(Hash hash, NodeHash(node));
    hashes.push_back(hash);
  }
  return merkle::CompactRange::FromNodes(size, std::move(hashes));
}

absl::Status RocksEventLog::Impl::RecoverTree() {
  const int64_t size = Size();
  STORE_ASSIGN_OR_RETURN(frontier_, ReadFrontier(size));
  absl::MutexLock lock(&head_mu_);
  head_ = TreeHead{.size = size, .root = frontier_.Root()};
  return absl::OkStatus();
}

absl::Status RocksEventLog::Impl::DamageEvent(int64_t position) {
  const std::string key = format::PositionKey(position);
  std::string value;
  STORE_RETURN_IF_ERROR(FromRocks(db_->Get(rocksdb::ReadOptions(), events_, key, &value),
                                  "reading an event to damage"));
  value.back() = static_cast<char>(value.back() ^ 0x01);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  return FromRocks(db_->Put(synced, events_, key, value), "damaging an event");
}

absl::Status RocksEventLog::Impl::CheckAnchor() {
  key_path_ =
      options_.signing_key_path.empty() ? options_.path + ".key" : options_.signing_key_path;
  const std::string& key_path = key_path_;
  checkpoint_path_ =
      options_.checkpoint_path.empty() ? options_.path + ".checkpoint" : options_.checkpoint_path;
  const int64_t held = Size();
  std::error_code exists_error;
  if (options_.inspect_only) {
    // What the open would be refused for is recorded, with its code: a key or checkpoint
    // file missing, one that does not verify or does not match (kDataLoss,
    // kFailedPrecondition), or one that could not be read (an I/O error, which says
    // nothing about the log). The events can be verified against the stored tree either
    // way.
    absl::Status inspected = InspectAnchor(held);
    if (!inspected.ok()) {
      anchor_problem_ = std::string(inspected.message());
      anchor_problem_code_ = inspected.code();
    }
    return absl::OkStatus();
  }
  if (held > 0 && !options_.start_without_anchor &&
      !std::filesystem::exists(key_path, exists_error) && !exists_error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the event log at ", options_.path, " holds ", held, " events but its signing key ",
        key_path,
        " is missing. The key signed this log's checkpoints and exports; a new one would "
        "leave them unverifiable. Put the key back (from where it is kept safe, or with the "
        "backup the log came from); refusing to serve (docs/storage.md, recovery)"));
  }
  const bool key_missing = !std::filesystem::exists(key_path, exists_error) && !exists_error;
  STORE_ASSIGN_OR_RETURN(NoteSigner signer,
                         LoadOrCreateSigningKey(key_path, options_.checkpoint_origin));
  signer_ = std::move(signer);
  if (held > 0 && key_missing && options_.start_without_anchor) {
    // The key was made anew: the checkpoint file beside the log (signed with the lost key)
    // cannot be checked. It is kept, renamed, as the evidence it is; the log signs what it
    // holds from here on.
    std::error_code moved;
    const std::string aside = absl::StrCat(checkpoint_path_, ".set-aside-", NowMicros());
    if (std::filesystem::exists(checkpoint_path_, moved)) {
      std::filesystem::rename(checkpoint_path_, aside, moved);
      if (moved) {
        return absl::UnavailableError(absl::StrCat(
            "setting aside ", checkpoint_path_, ", which the lost key signed: ", moved.message()));
      }
      STORE_RETURN_IF_ERROR(SyncDirectoryOf(checkpoint_path_));
    }
  }
  constexpr size_t kCheckpointFileBytesMax = 64 * 1024;
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> text,
                         ReadSmallFile(checkpoint_path_, kCheckpointFileBytesMax));
  if (!text.has_value()) {
    if (held == 0) {
      // A new log signs its empty tree at once: from here on a log with events always
      // has a checkpoint file beside it, so one without it was tampered with.
      return WriteCheckpointFile();
    }
    if (options_.start_without_anchor) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        "the event log at ", options_.path, " holds ", held, " events but its checkpoint file ",
        checkpoint_path_,
        " is missing: it was removed, or the log is not the one it signed (a copy of the "
        "directory from earlier would serve a rolled-back log). Refusing to serve. Restore "
        "the last verified backup; or, once you have checked this log against a checkpoint "
        "kept elsewhere (an auditor's, a backup's), start once with "
        "--start-without-checkpoint (docs/storage.md, recovery)"));
  }
  absl::StatusOr<Checkpoint> checkpoint =
      OpenCheckpoint(*text, signer_->verifier(), options_.checkpoint_origin);
  if (!checkpoint.ok()) {
    return absl::DataLossError(absl::StrCat(
        "the checkpoint file ", checkpoint_path_, " does not verify with the server key ", key_path,
        " (", signer_->verifier().VerifierKey(), "): ", checkpoint.status().message(),
        ". Put back the key that signed it, or find out who altered the file; refusing to "
        "serve"));
  }
  const int64_t size = held;
  if (checkpoint->size > size) {
    return absl::DataLossError(absl::StrCat(
        "the event log at ", options_.path, " holds ", size,
        " events but its last signed checkpoint (", checkpoint_path_, ") covers ", checkpoint->size,
        ": acknowledged events are missing. Refusing to serve; restore the last verified "
        "backup (docs/storage.md, recovery)"));
  }
  STORE_ASSIGN_OR_RETURN(Hash root, RootAt(checkpoint->size));
  if (root != checkpoint->root) {
    return absl::DataLossError(absl::StrCat(
        "the event log at ", options_.path, " does not match its last signed checkpoint (",
        checkpoint_path_, "): the root of the first ", checkpoint->size,
        " events differs, so stored events were altered. Refusing to serve; caseworkd "
        "--verify-offline (writes nothing) names the first altered position; restore the "
        "last verified backup"));
  }
  anchor_ = *std::move(checkpoint);
  return absl::OkStatus();
}

absl::Status RocksEventLog::Impl::InspectAnchor(int64_t held) {
  // The checks of CheckAnchor, writing nothing; the first problem is returned.
  std::error_code exists_error;
  const bool key_exists = std::filesystem::exists(key_path_, exists_error);
  if (exists_error) {
    return absl::UnavailableError(
        absl::StrCat("cannot look at the signing key ", key_path_, ": ", exists_error.message()));
  }
  if (!key_exists) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the signing key ", key_path_, " is missing: the checkpoint file cannot be checked"));
  }
  STORE_ASSIGN_OR_RETURN(NoteSigner signer,
                         LoadOrCreateSigningKey(key_path_, options_.checkpoint_origin));
  signer_ = std::move(signer);
  constexpr size_t kCheckpointFileBytesMax = 64 * 1024;
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> text,
                         ReadSmallFile(checkpoint_path_, kCheckpointFileBytesMax));
  if (!text.has_value()) {
    if (held == 0) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("the log holds ", held,
                                            " events but its checkpoint file ", checkpoint_path_,
                                            " is missing"));
  }
  absl::StatusOr<Checkpoint> checkpoint =
      OpenCheckpoint(*text, signer_->verifier(), options_.checkpoint_origin);
  if (!checkpoint.ok()) {
    return absl::DataLossError(absl::StrCat("the checkpoint file ", checkpoint_path_,
                                            " does not verify with the server key ", key_path_,
                                            ": ", checkpoint.status().message()));
  }
  if (checkpoint->size > held) {
    return absl::DataLossError(absl::StrCat(
        "the log holds ", held, " events but its last signed checkpoint covers ", checkpoint->size,
        ": ", checkpoint->size - held, " acknowledged events are missing"));
  }
  // Verify compares the events with the signed root from here (and names where they
  // differ); the root of the stored subtrees is compared here.
  anchor_ = *checkpoint;
  STORE_ASSIGN_OR_RETURN(Hash root, RootAt(checkpoint->size));
  if (root != checkpoint->root) {
    return absl::DataLossError(absl::StrCat("the root of the first ", checkpoint->size,
                                            " events differs from the signed checkpoint"));
  }
  return absl::OkStatus();
}

absl::Status RocksEventLog::Impl::RecoverSize() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), events_));
  it->SeekToLast();
  if (!it->Valid()) {
    STORE_RETURN_IF_ERROR(FromRocks(it->status(), "finding the last event"));
    return absl::OkStatus();
  }
  int64_t last = 0;
  if (!format::DecodePositionKey(ToView(it->key()), &last)) {
    return absl::DataLossError(absl::StrCat("the last key of the events column family in ",
                                            options_.path, " is not a position"));
  }
  it->SeekToFirst();
  int64_t first = -1;
  if (!it->Valid()) STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading the first event"));
  if (!it->Valid() || !format::DecodePositionKey(ToView(it->key()), &first) || first != 0) {
    return absl::DataLossError(absl::StrCat("the event log in ", options_.path,
                                            " does not start at position 0 (found ", first,
                                            "); restore the last verified backup"));
  }
  next_position_ = last + 1;
  size_.store(last + 1, std::memory_order_release);
  return absl::OkStatus();
}

void RocksEventLog::Impl::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // A caller writing its own append (direct_commit) finishes first.
    mu_.Await(absl::Condition(
        +[](Impl* impl) ABSL_NO_THREAD_SAFETY_ANALYSIS { return !impl->direct_active_; }, this));
  }
  if (sequencer_.joinable()) sequencer_.join();
  if (writer_.joinable()) writer_.join();
  {
    absl::MutexLock lock(&answer_mu_);
    answerer_exit_ = true;
  }
  if (answerer_.joinable()) answerer_.join();
  {
    absl::MutexLock lock(&mu_);
    checkpointer_exit_ = true;
  }
  if (checkpointer_.joinable()) checkpointer_.join();
  if (started_) {
    // Best effort: the periodic checkpoint is at most one interval behind.
    absl::Status ignored = WriteCheckpointFile();
    (void)ignored;
    started_ = false;
  }
}

void RocksEventLog::Impl::CheckpointerLoop() {
  const absl::Duration interval =
      absl::Milliseconds(std::max<int64_t>(options_.checkpoint_interval_ms, 10));
  const absl::Duration retry =
      std::min(interval, absl::Milliseconds(std::max<int64_t>(options_.disk_full_retry_ms, 10)));
  for (;;) {
    bool disk_full = false;
    {
      absl::MutexLock lock(&mu_);
      const bool waiting = disk_full_ && !resume_ready_;
      // Woken at once when the log turns read-only for lack of space, so that the first
      // look at the free space comes `retry` after it, not up to an interval later.
      auto wake = [this, waiting]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return checkpointer_exit_ || (!waiting && disk_full_ && !resume_ready_);
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), waiting ? retry : interval);
      if (!waiting && disk_full_ && !resume_ready_ && !checkpointer_exit_) {
        mu_.AwaitWithTimeout(absl::Condition(&checkpointer_exit_), retry);
      }
      if (checkpointer_exit_) return;
      disk_full = disk_full_ && !resume_ready_;
    }
    if (disk_full) TryResume();
    // A failure is retried at the next interval; the file only ever lags. While it lags,
    // a rollback of the log to a size between the file's and the log's would go unseen
    // at the next start, so the owner hears of the first failure and of the recovery.
    const absl::Status written = WriteCheckpointFile();
    if (written.ok() == checkpoint_file_failing_) {
      checkpoint_file_failing_ = !written.ok();
      std::shared_ptr<const std::function<void(const absl::Status&)>> listener;
      {
        absl::MutexLock lock(&listener_mu_);
        listener = checkpoint_listener_;
      }
      if (listener != nullptr && *listener) (*listener)(written);
    }
  }
}

absl::Status RocksEventLog::Impl::CheckBackupRoom(const std::string& backup_dir) const {
  uint64_t memtables = 0;
  (void)db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
  // What the backup copies: the table files an earlier backup does not hold already (the
  // engine shares them, named "<number>_s<session>_<size>.sst" in shared_checksum), and
  // the memtables it flushes first. The copy restored to verify it is whole.
  std::vector<std::string> shared_names;
  {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(backup_dir + "/shared_checksum", ec), end;
         !ec && it != end; it.increment(ec)) {
      shared_names.push_back(it->path().filename().string());
    }
  }
  std::vector<rocksdb::LiveFileMetaData> live;
  db_->GetLiveFilesMetaData(&live);
  uint64_t tables = 0;
  uint64_t new_bytes = memtables;
  for (const rocksdb::LiveFileMetaData& file : live) {
    tables += file.size;
    std::string base = file.name;  // "/000123.sst"
    if (!base.empty() && base.front() == '/') base.erase(0, 1);
    if (base.size() > 4 && base.ends_with(".sst")) base.resize(base.size() - 4);
    const std::string suffix = absl::StrCat("_", file.size, ".sst");
    const bool held = std::any_of(shared_names.begin(), shared_names.end(), [&](const auto& n) {
      return n.starts_with(base + "_") && n.ends_with(suffix);
    });
    if (!held) new_bytes += file.size;
  }
  const uint64_t copy = tables + memtables;
  const uint64_t need = new_bytes + copy;
  rocksdb::Env* env = options_.env != nullptr ? options_.env : rocksdb::Env::Default();
  uint64_t free_bytes = 0;
  if (!env->GetFreeSpace(backup_dir, &free_bytes).ok()) return absl::OkStatus();  // unknown
  struct stat backups_at {};
  struct stat log_at {};
  const bool same_disk = ::stat(backup_dir.c_str(), &backups_at) == 0 &&
                         ::stat(options_.path.c_str(), &log_at) == 0 &&
                         backups_at.st_dev == log_at.st_dev;
  const uint64_t keep = same_disk ? DiskResumeBytes() : 0;
  if (free_bytes >= need + keep) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "no room for a backup in ", backup_dir, ": it needs up to ", need, " bytes (", new_bytes,
      " copied that no earlier backup there holds, and a whole copy of the log, ", copy,
      " bytes, restored to verify it)",
      same_disk ? absl::StrCat(" and, on the log's own disk, ", keep,
                               " bytes more so that appends go on while it is taken")
                : std::string(),
      ", and ", free_bytes,
      " are free. Nothing was copied; free space, or give the server a backup directory on "
      "another disk"));
}

std::optional<uint64_t> RocksEventLog::Impl::FreeBytes() const {
  uint64_t free_bytes = 0;
  rocksdb::Env* env = options_.env != nullptr ? options_.env : rocksdb::Env::Default();
  if (!env->GetFreeSpace(options_.path, &free_bytes).ok()) return std::nullopt;
  return free_bytes;
}

void RocksEventLog::Impl::TryResume() {
  bool guarded = false;
  {
    absl::MutexLock lock(&mu_);
    guarded = disk_guarded_;
  }
  const std::optional<uint64_t> free_bytes = FreeBytes();
  const bool short_of_room = !free_bytes.has_value() || *free_bytes < DiskResumeBytes();
  // While the disk is short of room a spare WAL file is only space: one that was ready, or
  // that was finished after an earlier look, goes back to the file system (also when
  // RocksDB itself met the full disk, in a flush or a compaction, where it is room for the
  // flush that its recovery starts with).
  if (short_of_room && wal_fs_ != nullptr) wal_fs_->ReleaseSpare();
  if (guarded) {
    // Nothing failed inside RocksDB: wait for room, with a margin so that the log does
    // not flap at the reserve.
    if (short_of_room) return;
    absl::MutexLock lock(&mu_);
    resume_ready_ = true;
    return;
  }
  // RocksDB recovers from a lack of space by itself: its SstFileManager checks the free
  // space every 5 s and, once one memtable (write_buffer_size) fits, flushes every
  // memtable (what was acknowledged is in them) into new table files and switches to a
  // new write-ahead log, so the record of the failed write, torn or whole, becomes
  // obsolete with the old log and is never replayed. A write that failed was never
  // applied to a memtable. Its recovery is in progress from the failure on, so flushes
  // that were due then still run (and fail, and are retried) instead of being left
  // queued, which would leave a manual Resume waiting for them for good. Resume answers
  // Busy while that recovery runs, OK once the database takes writes again, and resumes
  // by itself where no automatic recovery was started.
  rocksdb::Status s = db_->Resume();
  if (!s.ok()) return;
  absl::MutexLock lock(&mu_);
  resume_ready_ = true;
}

absl::Status RocksEventLog::Impl::ResetAfterResume() {
  // The sequencer's state ran ahead of the log by the failed batch (and any batch built
  // on it, all refused): positions, the tree's right edge, versions and request ids.
  // The version cache holds durable versions only, so it stays.
  const TreeHead durable = Head();
  STORE_CHECK(durable.size == Size());
  // Pair assertion: the tree rebuilt from storage is the one published after the last
  // durable batch. Only then does it replace the right edge: a head that does not match
  // is never published (the checkpointer would sign it). Until then the sequencer's
  // state stays as it was, failed, so that an append still queued is refused with the
  // failure instead of being placed after a right edge that is not the log's.
  STORE_ASSIGN_OR_RETURN(merkle::CompactRange rebuilt, ReadFrontier(durable.size));
  if (rebuilt.Root() != durable.root) {
    return absl::DataLossError(absl::StrCat("the tree read back at size ", durable.size,
                                            " does not match the one committed; run verify"));
  }
  failed_ = absl::OkStatus();
  inflight_ = Overlay();
  next_position_ = durable.size;
  frontier_ = std::move(rebuilt);
  return absl::OkStatus();
}

RocksEventLog::WriteState RocksEventLog::Impl::WriteStateLocked() const {
  WriteState state;
  state.mode = read_only_.ok() ? WriteState::Mode::kWritable
               : disk_full_    ? WriteState::Mode::kDiskFull
                               : WriteState::Mode::kFailed;
  state.detail = std::string(read_only_.message());
  state.disk_full_count = disk_full_count_;
  state.resumed_count = resumed_count_;
  state.read_only_since_us = read_only_since_us_;
  return state;
}

void RocksEventLog::Impl::NotifyWriteState() {
  std::shared_ptr<const std::function<void(const WriteState&)>> listener;
  {
    absl::MutexLock lock(&listener_mu_);
    listener = state_listener_;
  }
  if (listener == nullptr || !*listener) return;
  (*listener)(GetWriteState());
}

absl::Status RocksEventLog::Impl::Validate(const AppendRequest& request) const {
  if (!ValidName(request.stream, options_.stream_bytes_max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream name must be 1 to ", options_.stream_bytes_max,
                     " bytes without a NUL byte; got ", request.stream.size(), " bytes"));
  }
  if (request.events.empty() || request.events.size() > options_.append_events_max) {
    return absl::InvalidArgumentError(absl::StrCat("an append needs 1 to ",
                                                   options_.append_events_max, " events; got ",
                                                   request.events.size()));
  }
  for (size_t i = 0; i < request.events.size(); ++i) {
    if (request.events[i].size() > options_.event_bytes_max) {
      return absl::InvalidArgumentError(absl::StrCat("event ", i, " has ", request.events[i].size(),
                                                     " bytes; at most ", options_.event_bytes_max,
                                                     " are allowed"));
    }
  }
  if (request.expected_version < 0 ||
      request.expected_version > INT64_MAX - static_cast<int64_t>(request.events.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected_version must be >= 0; got ", request.expected_version));
  }
  if (request.request_id.size() > options_.request_id_bytes_max ||
      request.request_fingerprint.size() > options_.request_id_bytes_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id and request_fingerprint must be at most ",
                     options_.request_id_bytes_max, " bytes"));
  }
  if (request.projections.size() > options_.append_projections_max) {
    return absl::InvalidArgumentError(
        absl::StrCat("an append may carry at most ", options_.append_projections_max,
                     " projection writes; got ", request.projections.size()));
  }
  for (const ProjectionWrite& write : request.projections) {
    if (!ValidName(write.table, options_.stream_bytes_max) ||
        write.key.size() > options_.projection_key_bytes_max ||
        write.value.size() > options_.event_bytes_max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "projection table names must be 1 to ", options_.stream_bytes_max,
          " bytes without a NUL byte, keys at most ", options_.projection_key_bytes_max,
          " bytes, values at most ", options_.event_bytes_max, " bytes"));
    }
    switch (write.op) {
      case ProjectionWrite::Op::kPut:
      case ProjectionWrite::Op::kDelete:
      case ProjectionWrite::Op::kAddInt64:
        break;
      default:
        return absl::InvalidArgumentError("unknown projection operation");
    }
  }
  return absl::OkStatus();
}

void RocksEventLog::Impl::AppendAsync(AppendRequest request, AppendCallback done) {
  absl::Status status = Validate(request);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      status =
          WithReason(absl::UnavailableError("the event log is shutting down; retry after restart"),
                     kRefusalShuttingDown);
    } else if (options_.inspect_only) {
      status =
          WithReason(absl::FailedPreconditionError("the event log is open for inspection only"),
                     kRefusalReadOnly);
    } else if (!read_only_.ok()) {
      status = read_only_;
    } else if (queue_.size() >= options_.queue_appends_max) {
      status = WithReason(absl::ResourceExhaustedError(absl::StrCat(
                              "the append queue is full (queue_appends_max = ",
                              options_.queue_appends_max, "); retry after a short backoff")),
                          kRefusalQueueFull);
    } else if (request.may_block && DirectCommitAllowed()) {
      direct_ = true;
      direct_active_ = true;
      writing_ = true;
    } else {
      queue_.push_back(Pending{std::move(request), std::move(done)});
      return;
    }
  }
  if (status.ok()) {
    CommitDirect(Pending{std::move(request), std::move(done)});
    return;
  }
  std::move(done)(std::move(status));
}

void RocksEventLog::Impl::CommitDirect(Pending pending) {
  auto batch = std::make_unique<Batch>();
  Overlay overlay;
  batch->size_before = next_position_;
  batch->events = pending.request.events.size();
  batch->bytes = RequestBytes(pending.request);
  absl::StatusOr<AppendResult> result = Apply(pending.request, batch.get(), &overlay);
  batch->outcomes.push_back(Outcome{std::move(pending.done), std::move(result)});
  batch->size_after = next_position_;
  batch->root_after = frontier_.Root();
  bool promoted = false;
  {
    absl::MutexLock lock(&mu_);
    promoted = Promote(*batch, std::move(overlay));
    // The sequencer may build the next batch on top of this one from here on.
    direct_ = false;
    if (!promoted) {
      writing_ = false;
      direct_active_ = false;
    }
  }
  if (!promoted) {
    AnswerNow(*batch);
    return;
  }
  WriteAndAnswer(std::move(batch));
  absl::MutexLock lock(&mu_);
  direct_active_ = false;
}

void RocksEventLog::Impl::AnswerNow(Batch& batch) {
  for (Outcome& outcome : batch.outcomes) std::move(outcome.done)(std::move(outcome.result));
}

std::vector<Pending> RocksEventLog::Impl::Take(size_t events, size_t bytes, bool* blocked) {
  // `events` and `bytes` are already in the open batch; a batch always takes at least one
  // append, whatever its size (Validate bounds each append).
  std::vector<Pending> taken;
  while (!queue_.empty()) {
    const AppendRequest& next = queue_.front().request;
    size_t next_events = next.events.size();
    size_t next_bytes = RequestBytes(next);
    if ((events > 0 || !taken.empty()) && (events + next_events > options_.batch_events_max ||
                                           bytes + next_bytes > options_.batch_bytes_max)) {
      *blocked = true;
      break;
    }
    events += next_events;
    bytes += next_bytes;
    taken.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return taken;
}

void RocksEventLog::Impl::SequencerLoop() {
  QuietPerfContext();
  std::unique_ptr<Batch> open;  // the batch being filled
  Overlay overlay;              // what `open` changes
  const int64_t linger_us = std::max<int64_t>(options_.batch_linger_us, 0);
  for (;;) {
    std::vector<Pending> taken;
    bool lingered = false;
    bool reset = false;
    bool blocked = false;  // the queue's first append does not fit the open batch
    {
      absl::MutexLock lock(&mu_);
      while (!SequencerHasWork()) {
        if (open_pending_ && WriterIdle()) {
          // Linger for the appends that the last answers released.
          if (!mu_.AwaitWithDeadline(absl::Condition(this, &Impl::SequencerHasWork),
                                     writer_idle_at_ + absl::Microseconds(linger_us))) {
            lingered = true;
            break;
          }
        } else {
          mu_.Await(absl::Condition(this, &Impl::SequencerHasWorkOrIdleWriter));
        }
      }
      if (stopping_ && queue_.empty() && open == nullptr) break;
      if (ResetDue() && open == nullptr) {
        reset = true;
      } else if ((!paused_ || stopping_) && !direct_) {
        taken = open == nullptr ? Take(0, 0, &blocked) : Take(open->events, open->bytes, &blocked);
      }
      seq_busy_ = true;
    }
    if (reset) {
      // Nothing is in flight: every batch built on the failed one was refused.
      absl::Status status = ResetAfterResume();
      {
        absl::MutexLock lock(&mu_);
        seq_busy_ = false;
        resume_ready_ = false;
        disk_full_ = false;
        disk_guarded_ = false;
        if (status.ok()) {
          write_status_ = absl::OkStatus();
          read_only_ = absl::OkStatus();
          read_only_since_us_ = 0;
          ++resumed_count_;
        } else {
          write_status_ = status;
          read_only_ = WithReason(
              absl::UnavailableError(absl::StrCat(
                  "resuming after a full disk failed and the event log stays read-only: ",
                  status.message(), "; restart the server")),
              kRefusalReadOnly);
        }
      }
      NotifyWriteState();
      continue;
    }
    if (!failed_.ok()) {
      for (Pending& pending : taken) std::move(pending.done)(failed_);
      taken.clear();
    }
    if (!taken.empty()) {
      if (open == nullptr) {
        open = std::make_unique<Batch>();
        open->size_before = next_position_;
      }
      open->outcomes.reserve(open->outcomes.size() + taken.size());
      for (Pending& pending : taken) {
        open->events += pending.request.events.size();
        open->bytes += RequestBytes(pending.request);
        absl::StatusOr<AppendResult> result = Apply(pending.request, open.get(), &overlay);
        open->outcomes.push_back(Outcome{std::move(pending.done), std::move(result)});
      }
      open->size_after = next_position_;
      open->root_after = frontier_.Root();
    }
    std::unique_ptr<Batch> refused;
    {
      absl::MutexLock lock(&mu_);
      seq_busy_ = false;
      open_pending_ = open != nullptr;
      // An open batch that the next queued append does not fit is full as well: it cannot
      // grow (only this thread takes from the queue, callers add at its back), so it is
      // handed over as soon as the writer is idle, and the sequencer does not wake for a
      // queue it cannot take from.
      open_full_ =
          open != nullptr && (open_full_ || blocked || open->events >= options_.batch_events_max ||
                              open->bytes >= options_.batch_bytes_max);
      open_appends_ = open == nullptr ? 0 : open->outcomes.size();
      if (open != nullptr && WriterIdle() && (lingered || OpenReady())) {
        refused = Publish(std::move(open), std::move(overlay));
        open = nullptr;
        overlay = Overlay();
        open_pending_ = false;
        open_full_ = false;
        open_appends_ = 0;
      }
    }
    // Outside mu_: a callback may append again.
    if (refused != nullptr) AnswerNow(*refused);
  }
  absl::MutexLock lock(&mu_);
  writer_exit_ = true;
}

absl::StatusOr<std::optional<AppendResult>> RocksEventLog::Impl::FindRequest(
    const std::string& key, const AppendRequest& request, const Overlay& overlay) const {
  if (auto it = overlay.requests.find(key); it != overlay.requests.end()) return it->second;
  if (auto it = inflight_.requests.find(key); it != inflight_.requests.end()) {
    return it->second;
  }
  // The caller looked among the stored request ids after taking its token, and nothing
  // was stored for the stream since: its lookup stands and spares this one.
  if (request.request_id_checked && UnchangedSinceToken(request)) return std::nullopt;
  return StoredRequest(key);
}

bool RocksEventLog::Impl::UnchangedSinceToken(const AppendRequest& request) const {
  const ReadToken& token = request.read_token;
  if (token.epoch == 0 || token.epoch != version_epoch_.load(std::memory_order_acquire)) {
    return false;
  }
  auto it = version_cache_.find(request.stream);
  return it == version_cache_.end() || it->second.appended_by <= token.size;
}

absl::StatusOr<std::optional<AppendResult>> RocksEventLog::Impl::StoredRequest(
    const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), requests_, key, &value);
  if (s.IsNotFound()) return std::nullopt;
  STORE_RETURN_IF_ERROR(FromRocks(s, "reading a request id"));
  format::RequestRecord record;
  if (!format::DecodeRequestRecord(value, &record)) {
    return absl::DataLossError("a stored request record is malformed");
  }
  return AppendResult{.first_position = record.first_position,
                      .event_count = record.event_count,
                      .version = record.version,
                      .replayed = false,
                      .request_fingerprint = std::move(record.fingerprint)};
}

absl::StatusOr<int64_t> RocksEventLog::Impl::CurrentVersion(const AppendRequest& request,
                                                            const Overlay& overlay) {
  const std::string& stream = request.stream;
  if (auto it = overlay.versions.find(stream); it != overlay.versions.end()) return it->second;
  if (auto it = inflight_.versions.find(stream); it != inflight_.versions.end()) {
    return it->second;
  }
  if (auto it = version_cache_.find(stream); it != version_cache_.end()) {
    return it->second.version;
  }
  // Not in a batch that is not yet durable, so the stored version is the current one. The
  // caller read it after taking a token that is still current: nothing was appended to
  // the stream since (see version_epoch_), so its read stands and spares this one.
  int64_t version = 0;
  if (UnchangedSinceToken(request)) {
    version = request.expected_version;
  } else {
    STORE_ASSIGN_OR_RETURN(version, StoredVersion(stream));
  }
  if (version_cache_.size() >= options_.version_cache_entries_max) ClearVersionCache();
  version_cache_.emplace(stream, CachedVersion{.version = version, .appended_by = 0});
  return version;
}

absl::StatusOr<AppendResult> RocksEventLog::Impl::Apply(const AppendRequest& request, Batch* batch,
                                                        Overlay* overlay) {
  // Every check reads before anything is written, so a refused request adds nothing.
  std::string request_key;
  if (!request.request_id.empty()) {
    request_key = format::RequestKey(request.stream, request.request_id);
    STORE_ASSIGN_OR_RETURN(std::optional<AppendResult> prior,
                           FindRequest(request_key, request, *overlay));
    if (prior.has_value()) {
      prior->replayed = true;
      return *std::move(prior);
    }
  }
  STORE_ASSIGN_OR_RETURN(int64_t current, CurrentVersion(request, *overlay));
  if (current != request.expected_version) {
    return absl::AbortedError(absl::StrCat("stream ", request.stream, " is at version ", current,
                                           ", not at the expected version ",
                                           request.expected_version, "; read it again and retry"));
  }
  const auto count = static_cast<int64_t>(request.events.size());
  AppendResult result{.first_position = next_position_,
                      .event_count = count,
                      .version = current + count,
                      .replayed = false,
                      .request_fingerprint = request.request_fingerprint};
  rocksdb::WriteBatch& write = batch->write;
  std::string record;
  result.leaf_hashes.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    record.clear();
    format::AppendEventRecord(&record, request.stream, current + 1 + i,
                              request.events[static_cast<size_t>(i)]);
    STORE_CHECK(write.Put(events_, format::PositionKey(next_position_ + i), record).ok());
    const Hash& leaf = result.leaf_hashes.emplace_back(rfc9162::HashLeaf(record));
    frontier_.Append(leaf, [&](const merkle::NodeId& node, const Hash& hash) {
      if (node.level >= format::kStoredLevelMin) {
        STORE_CHECK(
            write.Put(tree_, format::NodeKey(node.level, node.index), rfc9162::AsBytes(hash)).ok());
      }
    });
  }
  STORE_CHECK(frontier_.size() == next_position_ + count);
  STORE_CHECK(write
                  .Put(streams_, format::StreamKey(request.stream, result.version),
                       format::EncodeStreamExtent(
                           {.first_version = current + 1, .first_position = next_position_}))
                  .ok());
  if (!request_key.empty()) {
    STORE_CHECK(write
                    .Put(requests_, request_key,
                         format::EncodeRequestRecord({.first_position = result.first_position,
                                                      .event_count = result.event_count,
                                                      .version = result.version,
                                                      .fingerprint = request.request_fingerprint}))
                    .ok());
    AppendResult& first = overlay->requests[request_key] = result;
    first.leaf_hashes.clear();  // a retry answers no hashes (AppendResult)
  }
  for (const ProjectionWrite& projection : request.projections) {
    ApplyProjection(write, projections_, projection, &batch->counter_sums);
  }
  overlay->versions[request.stream] = result.version;
  next_position_ += count;
  return result;
}

std::unique_ptr<Batch> RocksEventLog::Impl::Publish(std::unique_ptr<Batch> batch, Overlay overlay) {
  if (!Promote(*batch, std::move(overlay))) return batch;
  slot_ = std::move(batch);
  return nullptr;
}

bool RocksEventLog::Impl::Promote(Batch& batch, Overlay overlay) {
  // The writer is idle: every batch before this one is durable (or failed).
  if (!write_status_.ok()) {
    // The batch was built on top of one that did not become durable.
    failed_ = write_status_;
    for (Outcome& outcome : batch.outcomes) outcome.result = failed_;
    return false;
  }
  // The previous batch is durable: its versions join the cache.
  for (auto& [stream, version] : inflight_.versions) {
    if (version_cache_.size() >= options_.version_cache_entries_max) ClearVersionCache();
    version_cache_[stream] = CachedVersion{.version = version, .appended_by = inflight_size_after_};
  }
  inflight_ = std::move(overlay);
  inflight_size_after_ = batch.size_after;
  return true;
}

void RocksEventLog::Impl::WriterLoop() {
  QuietPerfContext();
  for (;;) {
    std::unique_ptr<Batch> batch;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Impl::WriterHasWork));
      if (slot_ == nullptr) return;
      batch = std::move(slot_);
      writing_ = true;
    }
    WriteAndAnswer(std::move(batch));
  }
}

void RocksEventLog::Impl::WriteAndAnswer(std::unique_ptr<Batch> batch) {
  FlushCounterSums(batch->write, projections_, &batch->counter_sums);
  absl::Status status;
  bool no_space = false;
  bool guarded = false;
  bool counted_no_space = false;  // a WAL write failed for lack of space (not resumed)
  if (batch->write.Count() > 0) {
    // The guard: below the reserve, nothing is written, so RocksDB never meets a full
    // disk in its own write path (docs/storage.md, "Write failures").
    if (const std::optional<uint64_t> free_bytes = FreeBytes();
        free_bytes.has_value() && *free_bytes < DiskReserveBytes()) {
      no_space = true;
      guarded = true;
      status = WithReason(
          absl::ResourceExhaustedError(absl::StrCat(
              "the disk is nearly full (", *free_bytes, " bytes free, below the ",
              DiskReserveBytes(),
              " the event log keeps for its own flushes), so it takes no appends for now "
              "(reads keep working); it resumes by itself once ",
              DiskResumeBytes(), " bytes are free. Free space or retry later")),
          kRefusalDiskFull);
      // A spare WAL file is only zeros written ahead: its room goes back to the disk.
      if (wal_fs_ != nullptr) wal_fs_->ReleaseSpare();
    }
  }
  if (batch->write.Count() > 0 && !guarded) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    rocksdb::Status s = db_->Write(write_options, &batch->write);
    // A write of its own that failed in RocksDB's WAL (rather than one refused because a
    // flush had failed before it) turns the log read-only until restart, the disk full
    // included: RocksDB 7.8 resuming in place after a failed WAL write can write the next
    // batch into the same WAL after the failed record, with the same sequence numbers,
    // when the memtables are empty (facebook/rocksdb#12873; upstream later made WAL write
    // errors fatal, #12995). Positions reused after it could meet the failed record again
    // at the next open. So its recovery is vetoed (RecoveryGate), and at the restart the
    // log is read back as it is on disk; the failed record may be whole there, so the
    // outcome is unknown to its callers. The guard above keeps this rare.
    if (!s.ok() && recovery_gate_->wal_write_failed()) {
      status = WithReason(
          absl::UnavailableError(absl::StrCat(
              s.IsNoSpace() ? "the disk filled up during a write" : "a write failed",
              " and the event log turned read-only until restart (reads keep working): ",
              s.ToString(),
              s.IsNoSpace() ? "; free space and restart the server"
                            : "; fix the disk and restart the server",
              ". This append's outcome is unknown: after the restart, read it back or retry "
              "it with the same request id")),
          kRefusalReadOnly);
      counted_no_space = s.IsNoSpace();
    } else if (!s.ok()) {
      no_space = s.IsNoSpace();
      status =
          no_space
              ? WithReason(absl::ResourceExhaustedError(absl::StrCat(
                               "the disk is full, so the event log takes no appends for "
                               "now (reads keep working); it resumes by itself within "
                               "about 5 s of the file system having ",
                               std::max<size_t>(options_.memtable_bytes_max / 2, 1u << 20),
                               " bytes free. Free space or retry later: ", s.ToString())),
                           kRefusalDiskFull)
              : WithReason(absl::UnavailableError(absl::StrCat(
                               "a write failed and the event log turned read-only: ", s.ToString(),
                               "; fix the disk and restart the server")),
                           kRefusalReadOnly);
    }
  }
  if (!status.ok()) {
    bool turned = false;
    {
      absl::MutexLock lock(&mu_);
      if (write_status_.ok()) write_status_ = status;
      if (read_only_.ok()) {
        // The first failure decides: a full disk is lifted by itself, anything else only
        // by a restart.
        read_only_ = status;
        read_only_since_us_ = NowMicros();
        disk_full_ = no_space;
        disk_guarded_ = guarded;
        if (no_space || counted_no_space) ++disk_full_count_;
        turned = true;
      }
    }
    if (turned) NotifyWriteState();
    for (Outcome& outcome : batch->outcomes) outcome.result = status;
  } else if (batch->size_after > batch->size_before) {
    // The size first: a reader that sees the new head (and asks for proofs up to its size)
    // must find Size() at least as large.
    size_.store(batch->size_after, std::memory_order_release);
    {
      absl::MutexLock lock(&head_mu_);
      head_ = TreeHead{.size = batch->size_after, .root = batch->root_after};
    }
    std::shared_ptr<const std::function<void(int64_t)>> listener;
    {
      absl::MutexLock lock(&listener_mu_);
      listener = listener_;
    }
    if (listener != nullptr && *listener) (*listener)(batch->size_after);
  }
  const size_t answered = batch->outcomes.size();
  Answer(std::move(batch));
  // Idle only now; the open batch lingers for the appends that these answers release.
  absl::MutexLock lock(&mu_);
  writing_ = false;
  last_answered_ = answered;
  writer_idle_at_ = absl::Now();
}

void RocksEventLog::Impl::Answer(std::unique_ptr<Batch> batch) {
  bool here = !options_.answer_thread;
  if (!here) {
    // Nothing waits to be written, so the writer has no next sync to start: answering
    // here spares the hand-off to the answer thread, a thread switch in a lone caller's
    // round trip. Only when the answer thread is idle, so answers keep their order.
    {
      absl::MutexLock lock(&mu_);
      here = queue_.empty() && !open_pending_ && slot_ == nullptr;
    }
    absl::MutexLock lock(&answer_mu_);
    here = here && answers_.empty() && !answering_;
    if (here) {
      answering_ = true;
    } else {
      answers_.push_back(std::move(batch));
      return;
    }
  }
  for (Outcome& outcome : batch->outcomes) std::move(outcome.done)(std::move(outcome.result));
  if (options_.answer_thread) {
    absl::MutexLock lock(&answer_mu_);
    answering_ = false;
  }
}

void RocksEventLog::Impl::AnswererLoop() {
  QuietPerfContext();
  for (;;) {
    std::unique_ptr<Batch> batch;
    {
      absl::MutexLock lock(&answer_mu_);
      answer_mu_.Await(absl::Condition(
          +[](Impl* impl) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return !impl->answers_.empty() || impl->answerer_exit_;
          },
          this));
      if (answers_.empty()) return;
      batch = std::move(answers_.front());
      answers_.pop_front();
      answering_ = true;
    }
    for (Outcome& outcome : batch->outcomes) std::move(outcome.done)(std::move(outcome.result));
    absl::MutexLock lock(&answer_mu_);
    answering_ = false;
  }
}

absl::StatusOr<int64_t> RocksEventLog::Impl::StoredVersion(std::string_view stream) const {
  std::string lower = format::StreamKeyBegin(stream);
  rocksdb::Slice lower_slice = ToSlice(lower);
  rocksdb::ReadOptions read_options;
  read_options.iterate_lower_bound = &lower_slice;
  read_options.prefix_same_as_start = true;  // one stream: its prefix filter applies
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, streams_));
  it->SeekForPrev(format::StreamKey(stream, INT64_MAX));
  if (!it->Valid()) {
    STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading a stream version"));
    return 0;
  }
  std::string_view found;
  int64_t version = 0;
  if (!format::DecodeStreamKey(ToView(it->key()), &found, &version) || found != stream) {
    return absl::DataLossError(absl::StrCat("a key of stream ", Sv(stream), " is malformed"));
  }
  return version;
}

absl::StatusOr<StoredEvent> RocksEventLog::Impl::DecodeEvent(int64_t position,
                                                             std::string_view value) const {
  format::EventRecord record;
  if (!format::DecodeEventRecord(value, &record)) {
    return absl::DataLossError(
        absl::StrCat("the event at position ", position, " is malformed; run verify"));
  }
  return StoredEvent{.position = position,
                     .stream = std::string(record.stream),
                     .version = record.version,
                     .bytes = std::string(record.event),
                     .leaf_hash = rfc9162::HashLeaf(value)};
}

// The stream extent an iterator over `streams` is on, checked: it belongs to `stream`,
// its versions run forward from 1, and its positions do not overflow.
static absl::Status DecodeExtent(const rocksdb::Iterator& it, std::string_view stream,
                                 int64_t* last_version, format::StreamExtent* extent) {
  std::string_view found;
  if (!format::DecodeStreamKey(ToView(it.key()), &found, last_version) || found != stream ||
      !format::DecodeStreamExtent(ToView(it.value()), extent) || extent->first_version < 1 ||
      extent->first_version > *last_version || extent->first_position < 0 ||
      *last_version - extent->first_version > INT64_MAX - extent->first_position) {
    return absl::DataLossError(
        absl::StrCat("an index entry of stream ", Sv(stream), " is malformed; run verify"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RocksEventLog::Impl::PositionOf(std::string_view stream,
                                                        int64_t version) const {
  if (!ValidName(stream, options_.stream_bytes_max)) {
    return absl::InvalidArgumentError("stream name must be non-empty, without a NUL byte");
  }
  if (version < 1) return absl::NotFoundError("the stream has no such version");
  // The extent holding `version`: the first whose last version is at or after it.
  std::string upper = format::StreamKeyEnd(stream);
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.prefix_same_as_start = true;  // one stream: its prefix filter applies
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, streams_));
  it->Seek(format::StreamKey(stream, version));
  STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading a stream's index"));
  if (!it->Valid()) return absl::NotFoundError("the stream has no such version");
  int64_t last_version = 0;
  format::StreamExtent extent;
  STORE_RETURN_IF_ERROR(DecodeExtent(*it, stream, &last_version, &extent));
  if (version < extent.first_version) {
    return absl::DataLossError(absl::StrCat("the index of stream ", Sv(stream),
                                            " has no entry for version ", version, "; run verify"));
  }
  return extent.first_position + (version - extent.first_version);
}

absl::StatusOr<std::vector<StoredEvent>> RocksEventLog::Impl::ReadStream(std::string_view stream,
                                                                         int64_t from_version,
                                                                         size_t limit) const {
  if (!ValidName(stream, options_.stream_bytes_max)) {
    return absl::InvalidArgumentError("stream name must be non-empty, without a NUL byte");
  }
  limit = std::min(limit, options_.read_events_max);
  from_version = std::max<int64_t>(from_version, 1);
  std::vector<StoredEvent> events;
  if (limit == 0) return events;

  const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
  struct Release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* snapshot;
    ~Release() { db->ReleaseSnapshot(snapshot); }
  } release{db_.get(), snapshot};

  std::string upper = format::StreamKeyEnd(stream);
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.prefix_same_as_start = true;         // one stream: its prefix filter applies
  std::vector<std::pair<int64_t, int64_t>> wanted;  // (position, version)
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, streams_));
  for (it->Seek(format::StreamKey(stream, from_version)); it->Valid() && wanted.size() < limit;
       it->Next()) {
    int64_t last_version = 0;
    format::StreamExtent extent;
    STORE_RETURN_IF_ERROR(DecodeExtent(*it, stream, &last_version, &extent));
    for (int64_t v = std::max(from_version, extent.first_version);
         v <= last_version && wanted.size() < limit; ++v) {
      const int64_t position = extent.first_position + (v - extent.first_version);
      // A stream's events only move forward in the log; anything else is a damaged index
      // (and MultiGet below needs its keys sorted).
      if (!wanted.empty() && position <= wanted.back().first) {
        return absl::DataLossError(absl::StrCat("the index of stream ", Sv(stream),
                                                " places version ", v, " at position ", position,
                                                ", not after the previous version; run verify"));
      }
      wanted.emplace_back(position, v);
    }
  }
  STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading a stream"));

  std::vector<std::string> keys;
  keys.reserve(wanted.size());
  for (const auto& [position, version] : wanted) keys.push_back(format::PositionKey(position));
  std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  rocksdb::ReadOptions get_options;
  get_options.snapshot = snapshot;
  db_->MultiGet(get_options, events_, keys.size(), key_slices.data(), values.data(),
                statuses.data(), /*sorted_input=*/true);
  events.reserve(wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    const auto [position, version] = wanted[i];
    if (statuses[i].IsNotFound()) {
      return absl::DataLossError(absl::StrCat("the index of stream ", Sv(stream),
                                              " names position ", position,
                                              ", which is missing; run verify"));
    }
    STORE_RETURN_IF_ERROR(FromRocks(statuses[i], "reading an event"));
    STORE_ASSIGN_OR_RETURN(StoredEvent event, DecodeEvent(position, ToView(values[i])));
    if (event.stream != stream || event.version != version) {
      return absl::DataLossError(absl::StrCat("position ", position, " holds ", event.stream,
                                              " version ", event.version, ", not ", Sv(stream),
                                              " version ", version, "; run verify"));
    }
    events.push_back(std::move(event));
  }
  return events;
}

absl::StatusOr<std::vector<StoredEvent>> RocksEventLog::Impl::ReadRange(int64_t from_position,
                                                                        size_t limit) const {
  if (from_position < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("from_position must be >= 0; got ", from_position));
  }
  limit = std::min(limit, options_.read_events_max);
  const int64_t size = Size();
  const int64_t end =
      from_position >= size
          ? from_position
          : from_position + std::min<int64_t>(static_cast<int64_t>(limit), size - from_position);
  std::vector<StoredEvent> events;
  if (end <= from_position) return events;
  events.reserve(static_cast<size_t>(end - from_position));
  std::string upper = format::PositionKey(end);
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, events_));
  int64_t expected = from_position;
  for (it->Seek(format::PositionKey(from_position)); it->Valid(); it->Next(), ++expected) {
    int64_t position = 0;
    if (!format::DecodePositionKey(ToView(it->key()), &position) || position != expected) {
      return absl::DataLossError(
          absl::StrCat("position ", expected, " is missing from the event log; run verify"));
    }
    STORE_ASSIGN_OR_RETURN(StoredEvent event, DecodeEvent(position, ToView(it->value())));
    events.push_back(std::move(event));
  }
  STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading events"));
  if (expected != end) {
    return absl::DataLossError(
        absl::StrCat("position ", expected, " is missing from the event log; run verify"));
  }
  return events;
}

absl::StatusOr<std::optional<std::string>> RocksEventLog::Impl::GetProjection(
    std::string_view table, std::string_view key) const {
  if (!ValidName(table, options_.stream_bytes_max)) {
    return absl::InvalidArgumentError("table name must be non-empty, without a NUL byte");
  }
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), projections_, format::ProjectionKey(table, key), &value);
  if (s.IsNotFound()) return std::nullopt;
  STORE_RETURN_IF_ERROR(FromRocks(s, "reading a projection"));
  return value;
}

absl::Status RocksEventLog::Impl::ScanProjection(
    std::string_view table, std::string_view start_key, size_t limit,
    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  if (!ValidName(table, options_.stream_bytes_max)) {
    return absl::InvalidArgumentError("table name must be non-empty, without a NUL byte");
  }
  std::string upper = format::ProjectionTableEnd(table);
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, projections_));
  const size_t prefix = table.size() + 1;
  size_t visited = 0;
  for (it->Seek(format::ProjectionKey(table, start_key)); it->Valid() && visited < limit;
       it->Next(), ++visited) {
    std::string_view key = ToView(it->key());
    STORE_CHECK(key.size() >= prefix);
    if (!visit(key.substr(prefix), ToView(it->value()))) break;
  }
  return FromRocks(it->status(), "scanning a projection");
}

absl::StatusOr<Hash> RocksEventLog::Impl::NodeHash(const merkle::NodeId& node) const {
  if (node.level >= format::kStoredLevelMin) {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), tree_, format::NodeKey(node.level, node.index), &value);
    if (s.IsNotFound() || (s.ok() && value.size() != 32)) {
      return absl::DataLossError(absl::StrCat("the tree node of positions [", node.begin(), ", ",
                                              node.end(), ") is missing or malformed; run verify"));
    }
    STORE_RETURN_IF_ERROR(FromRocks(s, "reading a tree node"));
    Hash hash;
    std::copy(value.begin(), value.end(), hash.begin());
    return hash;
  }
  // Below the stored levels: recompute from the (at most 8) events.
  std::string upper = format::PositionKey(node.end());
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, events_));
  merkle::CompactRange range;
  int64_t expected = node.begin();
  for (it->Seek(format::PositionKey(node.begin())); it->Valid(); it->Next(), ++expected) {
    int64_t position = 0;
    if (!format::DecodePositionKey(ToView(it->key()), &position) || position != expected) break;
    range.Append(rfc9162::HashLeaf(ToView(it->value())));
  }
  STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading events"));
  if (expected != node.end()) {
    return absl::DataLossError(
        absl::StrCat("position ", expected, " is missing from the event log; run verify"));
  }
  return range.Root();
}

absl::StatusOr<Hash> RocksEventLog::Impl::RangeHash(int64_t begin, int64_t end) const {
  std::vector<Hash> hashes;
  for (const merkle::NodeId& node : merkle::RangeNodes(begin, end)) {
    STORE_ASSIGN_OR_RETURN(Hash hash, NodeHash(node));
    hashes.push_back(hash);
  }
  if (hashes.empty()) return rfc9162::EmptyRoot();
  return merkle::FoldRange(hashes);
}

absl::StatusOr<Hash> RocksEventLog::Impl::RootAt(int64_t size) const {
  if (size < 0 || size > Size()) {
    return absl::OutOfRangeError(
        absl::StrCat("no tree of size ", size, "; the log holds ", Size(), " events"));
  }
  return RangeHash(0, size);
}

absl::StatusOr<std::vector<Hash>> RocksEventLog::Impl::Proof(
    const std::vector<merkle::Range>& ranges) const {
  std::vector<Hash> proof;
  proof.reserve(ranges.size());
  for (const merkle::Range& range : ranges) {
    STORE_ASSIGN_OR_RETURN(Hash hash, RangeHash(range.begin, range.end));
    proof.push_back(hash);
  }
  return proof;
}

absl::StatusOr<std::string> RocksEventLog::Impl::SignedCheckpoint() { return SignHead(Head()); }

absl::StatusOr<std::string> RocksEventLog::Impl::SignHead(const TreeHead& head) {
  absl::MutexLock lock(&signed_mu_);
  if (signed_size_ != head.size) {
    STORE_ASSIGN_OR_RETURN(
        signed_note_,
        signer_->Sign(FormatCheckpoint(Checkpoint{
            .origin = options_.checkpoint_origin, .size = head.size, .root = head.root})));
    signed_size_ = head.size;
  }
  return signed_note_;
}

absl::Status RocksEventLog::Impl::WriteCheckpointFile() {
  if (options_.inspect_only) return absl::OkStatus();  // nothing is written
  absl::MutexLock lock(&file_mu_);
  // The head is published only after its batch is durable, so the file never runs
  // ahead of the log.
  const TreeHead head = Head();
  if (file_size_ == head.size) return absl::OkStatus();
  STORE_ASSIGN_OR_RETURN(std::string note, SignHead(head));
  STORE_RETURN_IF_ERROR(WriteFileDurably(checkpoint_path_, note));
  file_size_ = head.size;
  return absl::OkStatus();
}

absl::StatusOr<RocksEventLog::VerifyReport> RocksEventLog::Impl::Verify(
    int64_t from, int64_t to, const std::atomic<bool>* stop) const {
  if (from < 0 || from > to || to > Size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot verify [", from, ", ", to, "): need 0 <= from <= to <= ", Size()));
  }
  VerifyReport report{.from = from, .to = to};
  constexpr int64_t kBlock = int64_t{1} << format::kStoredLevelMin;
  const int64_t start = from / kBlock * kBlock;  // stored subtrees need all their leaves
  const bool anchored = from == 0 && anchor_.has_value() && anchor_->size <= to;
  merkle::CompactRange whole;  // from position 0, for the anchor root
  // Perfect nodes at stored levels completed so far in [start, ...), as a stack.
  struct Pending {
    merkle::NodeId node;
    Hash hash;
  };
  std::vector<Pending> stack;
  merkle::CompactRange block;  // the current block of kBlock leaves
  // OK(true) when the stored node equals `hash`; sets the report otherwise.
  auto matches = [&](const merkle::NodeId& node, const Hash& hash) -> absl::StatusOr<bool> {
    std::string stored;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), tree_, format::NodeKey(node.level, node.index), &stored);
    if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "reading a tree node");
    if (s.ok() && stored == rfc9162::AsBytes(hash)) return true;
    report.first_mismatch = node.begin();
    report.detail = absl::StrCat("the events in [", node.begin(), ", ", node.end(),
                                 ") do not hash to the stored subtree (level ", node.level,
                                 s.IsNotFound() ? ", missing)" : ")");
    return false;
  };
  bool anchor_differs = false;
  std::string upper = format::PositionKey(to);
  rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.readahead_size = 2u << 20;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, events_));
  int64_t expected = anchored ? 0 : start;
  for (it->Seek(format::PositionKey(expected)); it->Valid(); it->Next(), ++expected) {
    if (stop != nullptr && expected % 4096 == 0 && stop->load(std::memory_order_acquire)) {
      return absl::CancelledError(
          absl::StrCat("the verification was stopped at position ", expected));
    }
    int64_t position = 0;
    format::EventRecord record;
    // A missing or malformed event also leaves the earlier events of its 16-event subtree
    // unchecked (the subtree's hash needs all of them), so the report names where that
    // subtree begins: nothing before the first mismatch is left unverified.
    const int64_t unchecked_from = std::max(start, expected / kBlock * kBlock);
    if (!format::DecodePositionKey(ToView(it->key()), &position) || position != expected) {
      report.first_mismatch = unchecked_from;
      report.detail = absl::StrCat("position ", expected, " is missing (the events from ",
                                   unchecked_from, " on are not verified)");
      return report;
    }
    if (!format::DecodeEventRecord(ToView(it->value()), &record)) {
      report.first_mismatch = unchecked_from;
      report.detail =
          absl::StrCat("the event at position ", position, " is malformed (the events from ",
                       unchecked_from, " on are not verified)");
      return report;
    }
    const Hash leaf = rfc9162::HashLeaf(ToView(it->value()));
    if (anchored) {
      whole.Append(leaf);
      // Keep going on a difference: the stored subtrees may name the altered position.
      if (whole.size() == anchor_->size && whole.Root() != anchor_->root) anchor_differs = true;
    }
    if (position < start) continue;
    block.Append(leaf);
    if (block.size() < kBlock) continue;
    merkle::NodeId node{.level = format::kStoredLevelMin, .index = position / kBlock};
    Hash hash = block.Root();
    block = merkle::CompactRange();
    // Climb while the node is a right child whose left sibling was verified here.
    for (;;) {
      STORE_ASSIGN_OR_RETURN(bool same, matches(node, hash));
      if (!same) return report;
      if ((node.index & 1) == 0 || stack.empty() || stack.back().node.level != node.level ||
          stack.back().node.index != node.index - 1) {
        break;
      }
      hash = rfc9162::HashChildren(stack.back().hash, hash);
      stack.pop_back();
      node = merkle::NodeId{.level = node.level + 1, .index = node.index / 2};
    }
    stack.push_back({node, hash});
  }
  STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading events"));
  if (expected != to) {
    const int64_t unchecked_from = std::max(start, expected / kBlock * kBlock);
    report.first_mismatch = unchecked_from;
    report.detail = absl::StrCat("position ", expected, " is missing (the events from ",
                                 unchecked_from, " on are not verified)");
  } else if (anchor_differs || (anchored && whole.size() < anchor_->size)) {
    // Every stored subtree agrees with the events, yet the signed root does not: the
    // change is among the last events before the checkpoint that no stored subtree
    // covers, or the stored subtrees were rewritten along with the events.
    report.first_mismatch = anchor_->size / kBlock * kBlock;
    report.detail = absl::StrCat(
        "the root of the first ", anchor_->size,
        " events differs from the signed checkpoint although every stored subtree matches; "
        "the first difference is at or after position ",
        *report.first_mismatch,
        " unless the stored subtrees were rewritten too: compare with a verified backup");
  }
  return report;
}

// The stream and request-id indexes against the events, which the tree covers. Every
// stream extent must name events of its stream at the versions it says, a stream's
// extents must run from version 1 without a gap or an overlap, and together they must
// name as many events as the log holds: with each event holding one (stream, version),
// that makes the extents name every event exactly once. Every request record must be one
// of its stream's extents (one append). One pass over both indexes side by side, stream by
// stream; the events the extents name are read in sorted chunks.
absl::Status RocksEventLog::Impl::CheckIndexes(const std::atomic<bool>* stop) const {
  const int64_t size = Size();
  rocksdb::ManagedSnapshot snapshot(db_.get());  // snapshot() is not const
  rocksdb::ReadOptions read_options;
  read_options.snapshot = snapshot.snapshot();
  read_options.total_order_seek = true;  // every stream, not one prefix
  uint64_t visited = 0;
  auto stopped = [&]() -> absl::Status {
    if (stop != nullptr && ++visited % 4096 == 0 && stop->load(std::memory_order_acquire)) {
      return absl::CancelledError("the check of the indexes was stopped");
    }
    return absl::OkStatus();
  };
  struct Entry {
    std::string stream;
    int64_t first_version = 0;  // of a stream entry
    int64_t last_version = 0;
    std::optional<std::string> request_id;  // of a request-id entry
  };
  // Names an index entry in a message (only then: most entries are fine).
  auto describe = [](const Entry& entry) {
    return entry.request_id.has_value()
               ? absl::StrCat("the request-id index's entry for ", absl::CHexEscape(entry.stream),
                              " request id ", absl::CHexEscape(*entry.request_id))
               : absl::StrCat("the stream index's entry for ", absl::CHexEscape(entry.stream),
                              " versions ", entry.first_version, "-", entry.last_version);
  };
  // The events that index entries name, checked in chunks with one sorted MultiGet each
  // (a seek per entry was slower: BM_CheckIndexes, docs/benchmarks.md).
  struct Named {
    int64_t position;
    int64_t version;
    size_t entry;
  };
  constexpr size_t kChunk = 8192;
  std::vector<Entry> entries;
  std::vector<Named> chunk;
  chunk.reserve(kChunk);
  auto check_chunk = [&]() -> absl::Status {
    std::sort(chunk.begin(), chunk.end(),
              [](const Named& a, const Named& b) { return a.position < b.position; });
    // Each position read once: a request id's entry names the first event of an append
    // that its stream's entry names too.
    std::vector<std::string> keys;
    std::vector<size_t> key_of(chunk.size());
    keys.reserve(chunk.size());
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (i == 0 || chunk[i].position != chunk[i - 1].position) {
        keys.push_back(format::PositionKey(chunk[i].position));
      }
      key_of[i] = keys.size() - 1;
    }
    std::vector<rocksdb::Slice> key_slices(keys.begin(), keys.end());
    std::vector<rocksdb::PinnableSlice> values(keys.size());
    std::vector<rocksdb::Status> statuses(keys.size());
    db_->MultiGet(read_options, events_, keys.size(), key_slices.data(), values.data(),
                  statuses.data(), /*sorted_input=*/true);
    for (size_t i = 0; i < chunk.size(); ++i) {
      const Named& n = chunk[i];
      const Entry& entry = entries[n.entry];
      const rocksdb::Status& read = statuses[key_of[i]];
      if (!read.ok() && !read.IsNotFound()) return FromRocks(read, "reading events");
      format::EventRecord record;
      if (read.IsNotFound() || !format::DecodeEventRecord(ToView(values[key_of[i]]), &record)) {
        return absl::DataLossError(absl::StrCat(describe(entry), " names position ", n.position,
                                                ", which is missing or malformed"));
      }
      if (record.stream != entry.stream || record.version != n.version) {
        return absl::DataLossError(
            absl::StrCat(describe(entry), " names position ", n.position, " as ",
                         absl::CHexEscape(entry.stream), " version ", n.version, "; it holds ",
                         absl::CHexEscape(Sv(record.stream)), " version ", record.version));
      }
      if (entry.request_id.has_value()) {
        // The first event of the append a request id's entry names: it must carry that
        // request id.
        const std::optional<std::string> carried =
            options_.request_id_of_event(std::string_view(record.event));
        if (carried != entry.request_id) {
          return absl::DataLossError(absl::StrCat(
              describe(entry), " names the append from position ", n.position,
              !carried.has_value() ? std::string(", whose first event is malformed")
              : carried->empty()   ? std::string(", whose first event carries no request id")
                                   : absl::StrCat(", whose first event carries request id ",
                                                  absl::CHexEscape(*carried))));
        }
      }
    }
    chunk.clear();
    entries.clear();
    return absl::OkStatus();
  };
  // The entry's events [first_position, first_position + count) must be its stream's
  // versions ending at its last version: checked at once against the log's size, in
  // chunks against the events.
  auto names_events = [&](Entry entry, int64_t first_position, int64_t count) -> absl::Status {
    if (first_position < 0 || count < 1 || first_position > size - count) {
      return absl::DataLossError(absl::StrCat(describe(entry), " names ", count,
                                              " events from position ", first_position,
                                              ", outside the log's ", size, " events"));
    }
    const int64_t last_version = entry.last_version;
    entries.push_back(std::move(entry));
    for (int64_t i = 0; i < count; ++i) {
      if (chunk.size() == kChunk) {
        Entry current = entries.back();
        STORE_RETURN_IF_ERROR(check_chunk());
        entries.push_back(std::move(current));
      }
      chunk.push_back({.position = first_position + i,
                       .version = last_version - count + 1 + i,
                       .entry = entries.size() - 1});
    }
    return absl::OkStatus();
  };

  // A request id's entry answers a retry with the append it names: that must be one
  // append of its stream as the stream index has it, so the entry must equal one of its
  // stream's entries in versions and positions. Both indexes are keyed by the stream
  // first (its name, then 0x00), so they are read side by side, stream by stream: a
  // stream's entries are held (by last version) while its request ids are checked.
  std::unique_ptr<rocksdb::Iterator> requests(db_->NewIterator(read_options, requests_));
  requests->SeekToFirst();
  absl::flat_hash_map<int64_t, format::StreamExtent> appends;  // of `stream`, by last version
  // Checks the request ids of every stream up to and including `stream` (all when null):
  // those of streams before it have no appends at all.
  auto check_requests = [&](const std::string* stream) -> absl::Status {
    for (; requests->Valid(); requests->Next()) {
      STORE_RETURN_IF_ERROR(stopped());
      const std::string_view key = ToView(requests->key());
      const size_t separator = key.find(format::kSeparator);
      format::RequestRecord record;
      if (separator == 0 || separator == std::string_view::npos ||
          !format::DecodeRequestRecord(ToView(requests->value()), &record)) {
        return absl::DataLossError(absl::StrCat(
            "the request-id index holds a malformed entry (key ", absl::CHexEscape(Sv(key)), ")"));
      }
      const std::string_view of = key.substr(0, separator);
      if (stream != nullptr && of > std::string_view(*stream)) break;  // a later stream's
      const bool ours = stream != nullptr && of == std::string_view(*stream);
      const auto found = ours ? appends.find(record.version) : appends.end();
      if (found == appends.end() || found->second.first_position != record.first_position ||
          record.event_count < 1 ||
          found->second.first_version != record.version - record.event_count + 1) {
        // The stream's own entries may be what is wrong: checked against the events
        // first, so that the message names the cause.
        STORE_RETURN_IF_ERROR(check_chunk());
        const Entry entry{.stream = std::string(of),
                          .last_version = record.version,
                          .request_id = std::string(key.substr(separator + 1))};
        return absl::DataLossError(
            absl::StrCat(describe(entry), " names ", record.event_count, " events from position ",
                         record.first_position, " ending at version ", record.version,
                         ", which is no append of that stream in the stream index"));
      }
      if (options_.request_id_of_event) {
        // Its append's first event, read with the chunk (its stream and version checked
        // there too), must carry this request id.
        const int64_t first_version = record.version - record.event_count + 1;
        STORE_RETURN_IF_ERROR(
            names_events(Entry{.stream = std::string(of),
                               .first_version = first_version,
                               .last_version = first_version,
                               .request_id = std::string(key.substr(separator + 1))},
                         record.first_position, 1));
      }
    }
    return FromRocks(requests->status(), "reading the request-id index");
  };

  int64_t named = 0;  // events named by stream entries
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options, streams_));
    std::string stream;          // the stream of the entries seen last
    int64_t stream_version = 0;  // its last version so far
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      STORE_RETURN_IF_ERROR(stopped());
      std::string_view found;
      int64_t last_version = 0;
      format::StreamExtent extent;
      if (!format::DecodeStreamKey(ToView(it->key()), &found, &last_version) ||
          !format::DecodeStreamExtent(ToView(it->value()), &extent) || extent.first_version < 1 ||
          extent.first_version > last_version) {
        return absl::DataLossError(absl::StrCat("the stream index holds a malformed entry (key ",
                                                absl::CHexEscape(Sv(ToView(it->key()))), ")"));
      }
      if (found != stream) {
        if (!stream.empty()) STORE_RETURN_IF_ERROR(check_requests(&stream));
        stream.assign(found.data(), found.size());
        stream_version = 0;
        appends.clear();
      }
      Entry entry{
          .stream = stream, .first_version = extent.first_version, .last_version = last_version};
      if (extent.first_version != stream_version + 1) {
        return absl::DataLossError(absl::StrCat(describe(entry), " does not follow version ",
                                                stream_version, " (a gap or an overlap)"));
      }
      const int64_t count = last_version - extent.first_version + 1;
      STORE_RETURN_IF_ERROR(names_events(std::move(entry), extent.first_position, count));
      appends[last_version] = extent;
      stream_version = last_version;
      named += count;
    }
    STORE_RETURN_IF_ERROR(FromRocks(it->status(), "reading the stream index"));
    if (!stream.empty()) STORE_RETURN_IF_ERROR(check_requests(&stream));
  }
  STORE_RETURN_IF_ERROR(check_chunk());
  if (named != size) {
    return absl::DataLossError(absl::StrCat("the stream index names ", named,
                                            " events; the log holds ", size,
                                            " (an entry is missing)"));
  }
  appends.clear();
  return check_requests(nullptr);  // those of no stream left: none has an append
}

absl::Status RocksEventLog::Impl::RebuildProjections(
    const std::function<absl::StatusOr<std::vector<ProjectionWrite>>(const StoredEvent&)>&
        project) {
  constexpr size_t kKeysPerWriteMax = 4096;
  // Every write synced, as every other write of the log is: the check of the write-ahead
  // log before an open (wal_tail.h) counts on a torn write being the last record of its
  // file, which unsynced writes (whose pages reach the disk in any order) would not keep.
  rocksdb::WriteOptions synced;
  synced.sync = true;
  // First, durably, "being rebuilt": a rebuild cut short (a crash, an event that does not
  // parse) leaves projections half dropped, and a layout that matches no build's, so the
  // next start rebuilds again instead of serving them.
  STORE_RETURN_IF_ERROR(RecordProjectionLayout(kProjectionLayoutRebuilding));
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), projections_));
    rocksdb::WriteBatch drop;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      STORE_CHECK(drop.Delete(projections_, it->key()).ok());
      if (static_cast<size_t>(drop.Count()) >= kKeysPerWriteMax) {
        STORE_RETURN_IF_ERROR(FromRocks(db_->Write(synced, &drop), "dropping projections"));
        drop.Clear();
      }
    }
    STORE_RETURN_IF_ERROR(FromRocks(it->status(), "scanning projections"));
    STORE_RETURN_IF_ERROR(FromRocks(db_->Write(synced, &drop), "dropping projections"));
  }
  // One event at a time from an iterator, the projections written in batches of a bounded
  // size: memory stays small whatever the events weigh (up to event_bytes_max each).
  constexpr size_t kRebuildBatchBytes = 16u << 20;
  const int64_t size = Size();
  const std::string upper = format::PositionKey(size);
  const rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper_slice;
  read_options.fill_cache = false;  // read once, in order
  std::unique_ptr<rocksdb::Iterator> events(db_->NewIterator(read_options, events_));
  rocksdb::WriteBatch write;
  CounterSums sums;
  auto write_out = [&]() -> absl::Status {
    FlushCounterSums(write, projections_, &sums);
    STORE_RETURN_IF_ERROR(FromRocks(db_->Write(synced, &write), "writing projections"));
    write.Clear();
    return absl::OkStatus();
  };
  int64_t expected = 0;
  for (events->Seek(format::PositionKey(0)); events->Valid(); events->Next(), ++expected) {
    int64_t position = 0;
    if (!format::DecodePositionKey(ToView(events->key()), &position) || position != expected) {
      return absl::DataLossError(
          absl::StrCat("position ", expected, " is missing from the event log; run verify"));
    }
    STORE_ASSIGN_OR_RETURN(StoredEvent event, DecodeEvent(position, ToView(events->value())));
    STORE_ASSIGN_OR_RETURN(std::vector<ProjectionWrite> writes, project(event));
    for (const ProjectionWrite& projection : writes) {
      ApplyProjection(write, projections_, projection, &sums);
    }
    if (write.GetDataSize() >= kRebuildBatchBytes) STORE_RETURN_IF_ERROR(write_out());
  }
  STORE_RETURN_IF_ERROR(FromRocks(events->status(), "reading events for a rebuild"));
  if (expected != size) return absl::DataLossError("the log ended early during a rebuild");
  STORE_RETURN_IF_ERROR(write_out());
  STORE_RETURN_IF_ERROR(FromRocks(db_->FlushWAL(/*sync=*/true), "syncing rebuilt projections"));
  return RecordProjectionLayout(options_.projection_layout);
}

absl::Status RocksEventLog::Impl::ScanAllProjections(
    const std::function<void(std::string_view, std::string_view)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), projections_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) visit(ToView(it->key()), ToView(it->value()));
  return FromRocks(it->status(), "scanning projections");
}

namespace {

// std::filesystem::exists without its exception: a path that cannot be looked at (no
// permission, say) is an error naming it, not the end of the process.
absl::StatusOr<bool> PathExists(const std::string& path) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot look at ", path, ": ", ec.message()));
  }
  return exists;
}

// An advisory lock (flock) on a file, released when destroyed (or when the process ends):
// on <backup dir>/LOCK, so that a second server given the same backup directory waits its
// turn instead of deleting the first one's backup in progress; beside a restore's target.
class FileLock {
 public:
  static absl::StatusOr<FileLock> Take(const std::string& dir) {
    return TakeFile(absl::StrCat(dir, "/LOCK"),
                    absl::StrCat("another process is taking a backup into ", dir,
                                 "; take one at a time, and give each server a backup "
                                 "directory of its own"));
  }
  // An advisory lock on the file at `path` (made if missing), held until destroyed;
  // kFailedPrecondition saying `busy` while another holds it.
  static absl::StatusOr<FileLock> TakeFile(const std::string& path, std::string busy) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::UnavailableError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK) return absl::FailedPreconditionError(std::move(busy));
      return absl::UnavailableError(absl::StrCat("cannot lock ", path, ": ", std::strerror(error)));
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

absl::StatusOr<std::unique_ptr<rocksdb::BackupEngine>> OpenBackupEngine(const std::string& dir) {
  rocksdb::BackupEngine* engine = nullptr;
  rocksdb::BackupEngineOptions options(dir);
  options.sync = true;
  STORE_RETURN_IF_ERROR(
      FromRocks(rocksdb::BackupEngine::Open(rocksdb::Env::Default(), options, &engine),
                absl::StrCat("opening the backup directory ", dir)));
  return std::unique_ptr<rocksdb::BackupEngine>(engine);
}

// For a restore: reads only, so it neither makes folders under a mistyped path nor acts
// as a writer on a directory the live server may be backing up into.
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenBackupEngineReadOnly(
    const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat("no backup directory ", dir, ec ? absl::StrCat(" (", ec.message(), ")") : ""));
  }
  rocksdb::BackupEngineReadOnly* engine = nullptr;
  rocksdb::BackupEngineOptions options(dir);
  STORE_RETURN_IF_ERROR(
      FromRocks(rocksdb::BackupEngineReadOnly::Open(options, rocksdb::Env::Default(), &engine),
                absl::StrCat("opening the backup directory ", dir)));
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(engine);
}

// Checks the files of backup `id` and restores them into `target`; nothing is left at
// `target` when either fails.
absl::Status RestoreFiles(rocksdb::BackupEngineReadOnlyBase& engine, uint32_t id,
                          const std::string& target, bool restoring) {
  // A damaged file here is the backup's, not the live log's: FromRocks's advice (which is
  // about the live log) does not apply.
  const auto backup_status = [&](const rocksdb::Status& s, const std::string& what) {
    // A file of the backup missing (NotFound, RocksDB's "File missing") is damage too.
    if (!s.IsCorruption() && !s.IsNotFound()) return FromRocks(s, what);
    const char* advice =
        restoring ? "nothing of it was restored and the live data was not touched; restore an "
                    "older backup (--restore-backup-id) or take a new one from a running server"
                  : "it is not kept. Its files were copied from the live log: verify the log "
                    "(casectl verify) to learn whether those are damaged too";
    return absl::DataLossError(
        absl::StrCat(what, ": ", s.ToString(), ". The backup's files are damaged; ", advice));
  };

  absl::Status status = backup_status(engine.VerifyBackup(id, /*verify_with_checksum=*/true),
                                      absl::StrCat("checking the files of backup ", id));
  if (status.ok()) {
    status = backup_status(engine.RestoreDBFromBackup(id, target, target),
                           absl::StrCat("restoring backup ", id));
  }
  if (!status.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(target, ec);
  }
  return status;
}

// Restores the latest backup of `dir` into `target` and verifies it in full against the
// checkpoint saved with it: its tree must have exactly the checkpoint's size and root
// (an event past the checkpoint is covered by no signature), and every stored event and
// subtree must match. Leaves the restored log at `target` only when it verifies.
absl::Status RestoreAndVerify(rocksdb::BackupEngineReadOnlyBase& engine, const std::string& dir,
                              const RocksEventLog::Options& options, const std::string& target,
                              uint32_t wanted, uint32_t* restored_id) {
  std::vector<rocksdb::BackupInfo> backups;
  engine.GetBackupInfo(&backups);
  // Backups the engine found damaged as it opened (a file missing, say) are not listed
  // above: the one asked for, or every one there is, damaged is DATA_LOSS.
  std::vector<rocksdb::BackupID> damaged;
  engine.GetCorruptedBackups(&damaged);
  if (std::find(damaged.begin(), damaged.end(), wanted) != damaged.end() ||
      (backups.empty() && !damaged.empty())) {
    return absl::DataLossError(absl::StrCat(
        "the backup's files are damaged: backup ", wanted != 0 ? wanted : damaged.back(), " in ",
        dir, " misses files or does not parse (RocksDB's backup engine found ",
        absl::StrJoin(damaged, ", "),
        " damaged); nothing of it was restored and the live data was not touched; restore "
        "an older backup (--restore-backup-id) or take a new one from a running server"));
  }
  if (backups.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no backup in ", dir));
  }
  // The newest backup that was called good: one without its checkpoint beside it was cut
  // short (the server stopped while verifying it) or failed, and never was.
  uint32_t id = 0;
  std::vector<uint32_t> unverified;
  for (auto it = backups.rbegin(); it != backups.rend(); ++it) {
    if (wanted != 0 && it->backup_id != wanted) continue;
    STORE_ASSIGN_OR_RETURN(const bool checked,
                           PathExists(absl::StrCat(dir, "/checkpoint-", it->backup_id)));
    if (checked) {
      id = it->backup_id;
      break;
    }
    unverified.push_back(it->backup_id);
  }
  if (id == 0) {
    if (wanted != 0 && unverified.empty()) {
      return absl::NotFoundError(absl::StrCat("no backup ", wanted, " in ", dir));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        wanted != 0 ? absl::StrCat("backup ", wanted) : absl::StrCat("no backup"), " in ", dir,
        wanted != 0 ? " has no signed checkpoint beside it" : " has a signed checkpoint beside it",
        " (backups without one were cut short or failed and are never restored: ",
        absl::StrJoin(unverified, ", "), "); take a new backup from a running server"));
  }
  *restored_id = id;
  const std::string checkpoint = absl::StrCat(dir, "/checkpoint-", id);
  constexpr size_t kCheckpointFileBytesMax = 64 * 1024;
  STORE_ASSIGN_OR_RETURN(std::optional<std::string> checkpoint_text,
                         ReadSmallFile(checkpoint, kCheckpointFileBytesMax));
  if (!checkpoint_text.has_value()) {
    return absl::DataLossError(absl::StrCat("backup ", id, " in ", dir,
                                            " has no signed checkpoint beside it; refusing it"));
  }
  // The server key signed it (Restore checked that the key file exists).
  STORE_ASSIGN_OR_RETURN(NoteSigner signer, LoadOrCreateSigningKey(options.signing_key_path,
                                                                   options.checkpoint_origin));
  absl::StatusOr<Checkpoint> covered =
      OpenCheckpoint(*checkpoint_text, signer.verifier(), options.checkpoint_origin);
  if (!covered.ok()) {
    // Signed by another key altogether: the wrong key was put in place, and every backup
    // would look damaged. Said so, and the backup is not called bad.
    if (absl::StatusOr<Note> note = ParseNote(*checkpoint_text); note.ok()) {
      const NoteVerifier& ours = signer.verifier();
      const bool by_ours = std::any_of(
          note->signatures.begin(), note->signatures.end(), [&](const NoteSignature& s) {
            return s.name == ours.name() && s.key_hash == ours.key_hash();
          });
      if (!by_ours && !note->signatures.empty()) {
        return absl::FailedPreconditionError(
            absl::StrCat("the checkpoint of backup ", id, " in ", dir, " is signed by key ",
                         note->signatures.front().name, "+",
                         absl::Hex(note->signatures.front().key_hash, absl::kZeroPad8),
                         ", not by the key in ", options.signing_key_path, " (", ours.name(), "+",
                         absl::Hex(ours.key_hash(), absl::kZeroPad8),
                         "): put the signing key of the server the backups came from in place"));
      }
    }
    return absl::DataLossError(absl::StrCat(
        "the checkpoint of backup ", id, " in ", dir, " does not verify with the server key ",
        options.signing_key_path, ": ", covered.status().message()));
  }
  STORE_RETURN_IF_ERROR(RestoreFiles(engine, id, target, /*restoring=*/true));
  RocksEventLog::Options restored = options;
  restored.path = target;
  restored.create_if_missing = false;
  restored.checkpoint_path = target + ".checkpoint";
  absl::Status status = WriteFileDurably(restored.checkpoint_path, *checkpoint_text);
  if (status.ok()) {
    // Checked as opened for inspection: a log opened to serve would sign its head (events
    // past the checkpoint included) with the server key before the checks below refuse it.
    RocksEventLog::Options inspect = restored;
    inspect.inspect_only = true;
    absl::StatusOr<std::unique_ptr<RocksEventLog>> log = RocksEventLog::Open(inspect);
    if (!log.ok()) {
      status = log.status();
    } else if (const std::string problem = (*log)->AnchorProblem(); !problem.empty()) {
      // The checkpoint file was written just above: one that cannot be read again is a
      // failure of this machine (its code kept below), not a finding about the backup.
      const absl::StatusCode code = (*log)->AnchorProblemCode();
      status =
          code == absl::StatusCode::kDataLoss || code == absl::StatusCode::kFailedPrecondition
              ? absl::DataLossError(absl::StrCat(
                    "backup ", id, " in ", dir, " does not match its signed checkpoint: ", problem))
              : absl::Status(code, problem);
    } else if ((*log)->Size() != covered->size) {
      status = absl::DataLossError(
          absl::StrCat("backup ", id, " in ", dir, " holds ", (*log)->Size(),
                       " events but its signed checkpoint covers ", covered->size,
                       "; the events past the checkpoint are covered by no signature"));
    } else {
      absl::StatusOr<RocksEventLog::VerifyReport> report = (*log)->Verify(0, (*log)->Size());
      if (!report.ok()) {
        status = report.status();
      } else if (report->first_mismatch.has_value()) {
        status = absl::DataLossError(
            absl::StrCat("backup ", id, " in ", dir, " does not verify: ", report->detail));
      } else if (absl::Status indexes = (*log)->CheckIndexes(); !indexes.ok()) {
        // The events verify; the indexes that find them by stream and by request id are
        // covered by no signature, and a forged entry would serve another append's events
        // as a stream's or as a retry's answer.
        status = indexes.code() == absl::StatusCode::kDataLoss
                     ? absl::DataLossError(
                           absl::StrCat("backup ", id, " in ", dir,
                                        " does not match its own events: ", indexes.message()))
                     : indexes;
      }
    }
    if (log.ok()) log->reset();
    if (status.ok()) {
      // Verified: its projections (case rows, approver keys, ...) are rebuilt from its
      // events before it is served, whatever the backup held for them.
      absl::StatusOr<std::unique_ptr<RocksEventLog>> opened = RocksEventLog::Open(restored);
      status = opened.ok() ? (*opened)->MarkProjectionsStale() : opened.status();
    }
  }
  if (!status.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(target, ec);
    std::filesystem::remove(restored.checkpoint_path, ec);
    // DATA_LOSS says the backup is bad: damaged or missing files (NOT_FOUND from RocksDB's
    // checksums of the backup), a database that does not open as a log. A lack of space
    // or an I/O error of this machine is about this restore, not the backup, and keeps its
    // code, so that nobody discards a good backup over a full disk.
    if (status.code() == absl::StatusCode::kNotFound ||
        status.code() == absl::StatusCode::kFailedPrecondition ||
        status.code() == absl::StatusCode::kInvalidArgument) {
      // A copy that does not open as a log of this build may be another build's (other
      // column families or options): said, so that a good backup is not thrown away.
      const bool maybe_other_build = status.code() != absl::StatusCode::kNotFound;
      status = absl::DataLossError(absl::StrCat(
          "backup ", id, " in ", dir, " does not verify: ", status.message(),
          maybe_other_build ? "; if it was taken by another version of caseworkd, restore it "
                              "with that version before discarding it"
                            : ""));
    } else if (status.code() != absl::StatusCode::kDataLoss) {
      status = absl::Status(status.code(), absl::StrCat("restoring backup ", id, " of ", dir,
                                                        " (nothing was kept): ", status.message()));
    }
  }
  return status;
}

}  // namespace

// RocksEventLog: the public face forwards to Impl.

RocksEventLog::RocksEventLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RocksEventLog::~RocksEventLog() = default;

absl::StatusOr<std::unique_ptr<RocksEventLog>> RocksEventLog::Open(const Options& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("options.path is empty");
  if (options.queue_appends_max == 0 || options.batch_events_max == 0 ||
      options.batch_bytes_max == 0 || options.read_events_max == 0) {
    return absl::InvalidArgumentError("queue, batch and read bounds must be positive");
  }
  auto impl = std::make_unique<Impl>(options);
  STORE_RETURN_IF_ERROR(impl->OpenDb());
  impl->Start();
  return std::unique_ptr<RocksEventLog>(new RocksEventLog(std::move(impl)));
}

void RocksEventLog::AppendAsync(AppendRequest request, AppendCallback done) {
  impl_->AppendAsync(std::move(request), std::move(done));
}
absl::StatusOr<int64_t> RocksEventLog::StreamVersion(std::string_view stream) {
  if (!ValidName(stream, SIZE_MAX)) {
    return absl::InvalidArgumentError("stream name must be non-empty, without a NUL byte");
  }
  return impl_->StoredVersion(stream);
}
absl::StatusOr<int64_t> RocksEventLog::PositionOf(std::string_view stream, int64_t version) {
  return impl_->PositionOf(stream, version);
}

absl::StatusOr<std::vector<StoredEvent>> RocksEventLog::ReadStream(std::string_view stream,
                                                                   int64_t from_version,
                                                                   size_t limit) {
  return impl_->ReadStream(stream, from_version, limit);
}
absl::StatusOr<std::vector<StoredEvent>> RocksEventLog::ReadRange(int64_t from_position,
                                                                  size_t limit) {
  return impl_->ReadRange(from_position, limit);
}
int64_t RocksEventLog::Size() const { return impl_->Size(); }

ReadToken RocksEventLog::TakeReadToken() const {
  // The epoch first: a size read after it is at least the size when the epoch began, so a
  // stream appended since the token is in the cache with a larger appended_by.
  const uint64_t epoch = impl_->version_epoch_.load(std::memory_order_acquire);
  return ReadToken{.epoch = epoch, .size = impl_->Size()};
}
absl::StatusOr<std::optional<AppendResult>> RocksEventLog::FindRequest(
    std::string_view stream, std::string_view request_id) {
  if (!ValidName(stream, SIZE_MAX)) {
    return absl::InvalidArgumentError("stream name must be non-empty, without a NUL byte");
  }
  if (request_id.empty()) return std::nullopt;
  return impl_->StoredRequest(format::RequestKey(stream, request_id));
}
absl::StatusOr<std::optional<std::string>> RocksEventLog::GetProjection(std::string_view table,
                                                                        std::string_view key) {
  return impl_->GetProjection(table, key);
}
absl::Status RocksEventLog::ScanProjection(
    std::string_view table, std::string_view start_key, size_t limit,
    const std::function<bool(std::string_view, std::string_view)>& visit) {
  return impl_->ScanProjection(table, start_key, limit, visit);
}
void RocksEventLog::SetCommitListener(std::function<void(int64_t)> listener) {
  impl_->SetCommitListener(std::move(listener));
}
void RocksEventLog::PauseCommitsForTesting(bool paused) { impl_->Pause(paused); }
size_t RocksEventLog::QueuedAppendsForTesting() const { return impl_->Queued(); }
bool RocksEventLog::FlushesUnderWayForTesting() const { return impl_->FlushesUnderWay(); }
absl::Status RocksEventLog::DamageEventForTesting(int64_t position) {
  return impl_->DamageEvent(position);
}

RocksEventLog::WriteState RocksEventLog::GetWriteState() const { return impl_->GetWriteState(); }
RocksEventLog::MemoryUsage RocksEventLog::GetMemoryUsage() const { return impl_->GetMemoryUsage(); }

void RocksEventLog::SetCheckpointFileListener(std::function<void(const absl::Status&)> listener) {
  impl_->SetCheckpointFileListener(std::move(listener));
}

void RocksEventLog::SetWriteStateListener(std::function<void(const WriteState&)> listener) {
  impl_->SetWriteStateListener(std::move(listener));
}
RocksEventLog::TreeHead RocksEventLog::Head() const { return impl_->Head(); }
absl::StatusOr<Hash> RocksEventLog::RootAt(int64_t size) { return impl_->RootAt(size); }
absl::StatusOr<std::vector<Hash>> RocksEventLog::InclusionProof(int64_t index, int64_t size) {
  if (size > Size()) {
    return absl::OutOfRangeError(
        absl::StrCat("no tree of size ", size, "; the log holds ", Size(), " events"));
  }
  STORE_ASSIGN_OR_RETURN(std::vector<merkle::Range> ranges, merkle::InclusionRanges(index, size));
  return impl_->Proof(ranges);
}
absl::StatusOr<std::vector<Hash>> RocksEventLog::ConsistencyProof(int64_t size1, int64_t size2) {
  if (size2 > Size()) {
    return absl::OutOfRangeError(
        absl::StrCat("no tree of size ", size2, "; the log holds ", Size(), " events"));
  }
  STORE_ASSIGN_OR_RETURN(std::vector<merkle::Range> ranges,
                         merkle::ConsistencyRanges(size1, size2));
  return impl_->Proof(ranges);
}
absl::StatusOr<std::vector<Hash>> RocksEventLog::EdgeHashes(int64_t size) {
  if (size < 0 || size > Size()) {
    return absl::OutOfRangeError(
        absl::StrCat("no tree of size ", size, "; the log holds ", Size(), " events"));
  }
  std::vector<Hash> hashes;
  for (const merkle::NodeId& node : merkle::RangeNodes(0, size)) {
    STORE_ASSIGN_OR_RETURN(Hash hash, impl_->NodeHash(node));
    hashes.push_back(hash);
  }
  return hashes;
}
absl::StatusOr<std::string> RocksEventLog::SignedCheckpoint() { return impl_->SignedCheckpoint(); }
const NoteVerifier& RocksEventLog::CheckpointVerifier() const { return impl_->verifier(); }
bool RocksEventLog::HasCheckpointKey() const { return impl_->has_signer(); }
std::string RocksEventLog::AnchorProblem() const { return impl_->anchor_problem(); }
absl::StatusCode RocksEventLog::AnchorProblemCode() const { return impl_->anchor_problem_code(); }
absl::Status RocksEventLog::MarkProjectionsStale() { return impl_->MarkProjectionsStale(); }
absl::Status RocksEventLog::CheckIndexes() const { return impl_->CheckIndexes(); }
absl::Status RocksEventLog::WriteCheckpointFile() { return impl_->WriteCheckpointFile(); }
absl::StatusOr<RocksEventLog::VerifyReport> RocksEventLog::Verify(int64_t from, int64_t to) {
  return impl_->Verify(from, to);
}
uint32_t RocksEventLog::ProjectionLayout() const { return impl_->projection_layout_; }

absl::Status RocksEventLog::RebuildProjections(
    const std::function<absl::StatusOr<std::vector<ProjectionWrite>>(const StoredEvent&)>&
        project) {
  return impl_->RebuildProjections(project);
}
absl::Status RocksEventLog::ScanAllProjections(
    const std::function<void(std::string_view, std::string_view)>& visit) {
  return impl_->ScanAllProjections(visit);
}

namespace {

absl::Status BackupStopped() {
  return WithReason(absl::UnavailableError(
                        "the backup was stopped because the server is shutting down; nothing of "
                        "it was kept. Take it again once the server is back"),
                    kRefusalShuttingDown);
}

}  // namespace

void RocksEventLog::StopBackups() { impl_->StopBackups(); }
void RocksEventLog::SetBackupStepHookForTesting(std::function<void(std::string_view)> hook) {
  impl_->SetBackupStepHook(std::move(hook));
}

absl::StatusOr<uint32_t> RocksEventLog::Backup(const std::string& backup_dir, uint32_t keep) {
  if (impl_->backups_stopped()) return BackupStopped();
  // One backup of the directory at a time across processes too (another server given
  // the same directory): held until this one is done, and taken before the engine opens
  // (a writable engine tidies the directory as it opens).
  {
    std::error_code ec;
    std::filesystem::create_directories(backup_dir, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot make the backup directory ", backup_dir, ": ", ec.message()));
    }
  }
  STORE_ASSIGN_OR_RETURN(FileLock dir_lock, FileLock::Take(backup_dir));
  STORE_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::BackupEngine> engine,
                         OpenBackupEngine(backup_dir));
  if (!impl_->SetRunningBackup(engine.get())) {
    return absl::FailedPreconditionError(
        "a backup of this log is already being taken; take one at a time");
  }
  // What a backup cut short by a stop of the process left: its scratch copy (a whole
  // copy of the log) and, without its checkpoint, the backup itself, which no restore
  // takes. No other backup of the directory runs (the lock), so none is in use.
  {
    std::error_code ec;
    std::vector<std::filesystem::path> scratch_left;
    for (std::filesystem::directory_iterator it(backup_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->path().filename().string().rfind("verify-", 0) == 0) {
        scratch_left.push_back(it->path());
      }
    }
    for (const auto& path : scratch_left) std::filesystem::remove_all(path, ec);
    std::vector<rocksdb::BackupInfo> earlier;
    engine->GetBackupInfo(&earlier);
    for (const rocksdb::BackupInfo& b : earlier) {
      const absl::StatusOr<bool> checked =
          PathExists(absl::StrCat(backup_dir, "/checkpoint-", b.backup_id));
      if (checked.ok() && !*checked) (void)engine->DeleteBackup(b.backup_id);
    }
  }
  std::string scratch;
  absl::StatusOr<uint32_t> id = BackupWith(*engine, backup_dir, &scratch);
  impl_->SetRunningBackup(nullptr);
  if (id.ok() && keep > 0) {
    // Every backup here is verified (the others were deleted above). The oldest beyond
    // `keep` go: the checkpoint first, so that a stop in between leaves a backup no restore
    // takes, which the next backup deletes.
    std::vector<rocksdb::BackupInfo> all;
    engine->GetBackupInfo(&all);
    std::sort(all.begin(), all.end(),
              [](const rocksdb::BackupInfo& a, const rocksdb::BackupInfo& b) {
                return a.backup_id < b.backup_id;
              });
    for (size_t i = 0; i + keep < all.size(); ++i) {
      const std::string note = absl::StrCat(backup_dir, "/checkpoint-", all[i].backup_id);
      std::error_code ec;
      std::filesystem::remove(note, ec);
      if (ec || !SyncDirectoryOf(note).ok()) break;
      if (!engine->DeleteBackup(all[i].backup_id).ok()) break;
    }
  }
  const bool stopped = !id.ok() && impl_->backups_stopped();
  // What a stopped copy left behind (a backup it had not finished).
  if (stopped) (void)engine->GarbageCollect();
  // The engine's copying threads are joined only when it is destroyed: a restore into the
  // scratch directory that was stopped or failed may still have added files to it after
  // it was removed.
  engine.reset();
  if (!id.ok() && !scratch.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
  // A stop's own errors, and any other but a finding that the copy does not verify (which
  // says something about the log), are reported as the stop.
  if (stopped && id.status().code() != absl::StatusCode::kDataLoss) return BackupStopped();
  return id;
}

absl::StatusOr<uint32_t> RocksEventLog::BackupWith(rocksdb::BackupEngine& engine,
                                                   const std::string& backup_dir,
                                                   std::string* scratch_out) {
  STORE_RETURN_IF_ERROR(impl_->CheckBackupRoom(backup_dir));
  impl_->BackupStep("copying");
  // A batch whose write failed (a full disk) can be in the copy, and its positions taken
  // again once appends resume: such a copy is no prefix of the log, through no damage.
  const int64_t resumed_before = GetWriteState().resumed_count;
  STORE_RETURN_IF_ERROR(FromRocks(engine.CreateNewBackup(impl_->db(), /*flush=*/true),
                                  absl::StrCat("backing up into ", backup_dir)));
  std::vector<rocksdb::BackupInfo> backups;
  engine.GetBackupInfo(&backups);
  STORE_CHECK(!backups.empty());
  const uint32_t id = backups.back().backup_id;
  const std::string checkpoint_path = absl::StrCat(backup_dir, "/checkpoint-", id);
  // Written only once this backup verified: one found now is an earlier backup's of the
  // same id (its removal failed), and must not vouch for this one.
  {
    std::error_code stale;
    std::filesystem::remove(checkpoint_path, stale);
    if (stale) {
      (void)engine.DeleteBackup(id);
      return absl::UnavailableError(absl::StrCat("cannot remove the stale ", checkpoint_path, ": ",
                                                 stale.message(), "; the backup was not kept"));
    }
  }
  const std::string scratch = absl::StrCat(backup_dir, "/verify-", id);
  *scratch_out = scratch;
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
  // Appends go on while the backup is made, so it holds some prefix of the log whose
  // size is known only once it is restored. It is restored into a scratch directory,
  // verified in full (every event against the stored subtrees), and its head proved a
  // prefix of this log's tree (a consistency proof to this log's current head); only then
  // is that exact head signed and kept beside it as checkpoint-<id>.
  impl_->BackupStep("checking");
  absl::Status status = RestoreFiles(engine, id, scratch, /*restoring=*/false);
  if (status.ok()) {
    Options options;
    options.path = scratch;
    options.create_if_missing = false;
    options.checkpoint_path = scratch + ".checkpoint";  // none: nothing to check against yet
    options.start_without_anchor = true;                // it is verified in full below
    // Opened for inspection: it writes nothing, and so signs no head with the server key
    // (a log opened to serve signs its own periodically and on close); the one head
    // signed is the live log's signature below, once the copy verified.
    options.inspect_only = true;
    options.signing_key_path = impl_->key_path();
    options.checkpoint_origin = impl_->origin();
    options.request_id_of_event = impl_->request_id_of_event();
    status = [&]() -> absl::Status {
      STORE_ASSIGN_OR_RETURN(std::unique_ptr<RocksEventLog> copy, RocksEventLog::Open(options));
      const TreeHead head = copy->Head();
      impl_->BackupStep("verifying");
      STORE_ASSIGN_OR_RETURN(VerifyReport report,
                             copy->impl_->Verify(0, head.size, impl_->backups_stopped_flag()));
      if (report.first_mismatch.has_value()) {
        return absl::DataLossError(absl::StrCat("the backup does not verify: ", report.detail));
      }
      // As a restore will: a backup whose indexes do not match its events would be
      // refused by every restore, so it is not called good.
      if (absl::Status indexes = copy->impl_->CheckIndexes(impl_->backups_stopped_flag());
          !indexes.ok()) {
        if (indexes.code() != absl::StatusCode::kDataLoss) return indexes;
        return absl::DataLossError(
            absl::StrCat("the backup's indexes do not match its events: ", indexes.message()));
      }
      // The backup copies the live WAL as far as it is written, which can include a batch
      // whose sync has not returned yet: its head is published a moment later.
      impl_->BackupStep("signing");
      TreeHead live = Head();
      for (int i = 0; i < 1000 && head.size > live.size && !impl_->backups_stopped(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        live = Head();
      }
      // Stopped: not signed, not kept (the caller reports the stop).
      if (impl_->backups_stopped()) return absl::CancelledError("the backup was stopped");
      if (head.size > live.size) {
        // Not the backup's fault: a batch was being written when the WAL was copied and
        // did not become durable (its sync failed), or is slower than the wait above.
        return absl::AbortedError(
            absl::StrCat("the backup holds ", head.size,
                         " events, more than the log has made durable (", live.size,
                         "): it copied a batch that was still being written. It was not kept; "
                         "take the backup again"));
      }
      if (GetWriteState().resumed_count != resumed_before) {
        return absl::AbortedError(
            "the log resumed after a full disk while the backup was taken, so the copy may "
            "hold a batch that was never made durable; it was not kept: take the backup again");
      }
      if (head.size == live.size) {
        if (head.root != live.root) {
          return absl::DataLossError("the backup's tree head differs from the log's");
        }
      } else if (head.size > 0) {
        STORE_ASSIGN_OR_RETURN(std::vector<Hash> proof, ConsistencyProof(head.size, live.size));
        const std::vector<std::string> bytes = merkle::ToBytes(proof);
        if (absl::Status consistent =
                merkle::VerifyConsistency(head.size, live.size, bytes, rfc9162::AsBytes(head.root),
                                          rfc9162::AsBytes(live.root));
            !consistent.ok()) {
          return absl::DataLossError(absl::StrCat(
              "the backup's tree is not a prefix of the log's: ", consistent.message()));
        }
      }
      STORE_ASSIGN_OR_RETURN(std::string note, impl_->SignHead(head));
      return WriteFileDurably(checkpoint_path, note);
    }();
  }
  std::filesystem::remove_all(scratch, ec);
  std::filesystem::remove(scratch + ".checkpoint", ec);
  if (!status.ok()) {
    // A backup that is not good is not kept: it would be the latest, the one a restore
    // takes.
    std::filesystem::remove(checkpoint_path, ec);
    (void)engine.DeleteBackup(id);
    return status;
  }
  return id;
}

namespace {

// Renames `from` to `to` unless `to` exists (kFailedPrecondition then). RENAME_NOREPLACE
// where the file system has it; where it does not (NFS, CIFS, older ZFS), a check of `to`
// and a rename, which the restore lock keeps from racing another restore.
absl::Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return absl::OkStatus();
  }
  const int error = errno;
  if (error == EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat(to, " appeared meanwhile; nothing was put over it"));
  }
  if (error != EINVAL && error != ENOSYS) {
    return absl::UnavailableError(
        absl::StrCat("renaming ", from, " to ", to, ": ", std::strerror(error)));
  }
  STORE_ASSIGN_OR_RETURN(const bool exists, PathExists(to));
  if (exists) {
    return absl::FailedPreconditionError(
        absl::StrCat(to, " appeared meanwhile; nothing was put over it"));
  }
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("renaming ", from, " to ", to, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RocksEventLog::Restore(const std::string& backup_dir, const Options& options,
                                    uint32_t backup_id, uint32_t* restored_id) {
  uint32_t restored_here = 0;
  if (restored_id == nullptr) restored_id = &restored_here;
  // One restore into a place at a time, from before its checks to its install: another
  // would remove this one's staged log, or install over it.
  {
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  STORE_ASSIGN_OR_RETURN(FileLock restoring,
                         FileLock::TakeFile(options.path + ".restore.lock",
                                            absl::StrCat("another restore into ", options.path,
                                                         " is under way; let it finish")));
  STORE_ASSIGN_OR_RETURN(const bool target_exists, PathExists(options.path));
  if (target_exists) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore target ", options.path, " exists; restore into a new directory"));
  }
  const std::string checkpoint_path =
      options.checkpoint_path.empty() ? options.path + ".checkpoint" : options.checkpoint_path;
  const std::string staging = options.path + ".restoring";
  // Written, durably, once the staged log verified; gone once it is installed. Only with
  // it is a staged log one a restore vouched for.
  const std::string verified_marker = staging + ".verified";
  STORE_ASSIGN_OR_RETURN(const bool checkpoint_exists, PathExists(checkpoint_path));
  if (checkpoint_exists) {
    STORE_ASSIGN_OR_RETURN(const bool staged, PathExists(staging));
    STORE_ASSIGN_OR_RETURN(const bool vouched, PathExists(verified_marker));
    std::string staged_note;
    if (staged && vouched) {
      staged_note =
          absl::StrCat("; ", staging,
                       " holds the verified log of a restore that was cut short after "
                       "it installed that checkpoint: rename it to ",
                       options.path, " (and remove ", verified_marker, ") to finish that restore");
    } else if (staged) {
      staged_note = absl::StrCat("; ", staging,
                                 " holds a restore that was cut short before its log verified: "
                                 "it is not to be used; remove it, and restore again once the "
                                 "checkpoint file is moved away");
    }
    return absl::FailedPreconditionError(
        absl::StrCat("the checkpoint file ", checkpoint_path,
                     " exists (it is the evidence of what an earlier log held); move it away "
                     "before restoring",
                     staged_note));
  }
  // The key that signed the backup's checkpoint: the server's, beside options.path.
  Options with_key = options;
  if (with_key.signing_key_path.empty()) with_key.signing_key_path = options.path + ".key";
  STORE_ASSIGN_OR_RETURN(const bool key_exists, PathExists(with_key.signing_key_path));
  if (!key_exists) {
    return absl::FailedPreconditionError(
        absl::StrCat("the server key ", with_key.signing_key_path,
                     " is missing; put back the key that signed the backup's checkpoint"));
  }
  STORE_ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::BackupEngineReadOnly> engine,
                         OpenBackupEngineReadOnly(backup_dir));
  std::error_code ec;
  std::filesystem::remove(verified_marker, ec);
  std::filesystem::remove_all(staging, ec);
  STORE_RETURN_IF_ERROR(
      RestoreAndVerify(*engine, backup_dir, with_key, staging, backup_id, restored_id));
  STORE_RETURN_IF_ERROR(WriteFileDurably(
      verified_marker, absl::StrCat("the log staged beside this file verified: backup ",
                                    *restored_id, " of ", backup_dir, "\n")));
  // The checkpoint first, durably: should the machine stop before the log is in place, a
  // server started there finds a checkpoint and no log, and refuses to serve (fail
  // closed) instead of starting an empty log.
  // Never over a checkpoint file, or a log, that appeared since the checks above (the
  // evidence of another log).
  if (absl::Status installed = RenameNoReplace(staging + ".checkpoint", checkpoint_path);
      !installed.ok()) {
    // Not installed: the staged log is no restore's to finish.
    std::filesystem::remove(verified_marker, ec);
    std::filesystem::remove_all(staging, ec);
    std::filesystem::remove(staging + ".checkpoint", ec);
    return absl::Status(installed.code(), absl::StrCat("installing the restored checkpoint file: ",
                                                       installed.message()));
  }
  STORE_RETURN_IF_ERROR(SyncDirectoryOf(checkpoint_path));
  if (absl::Status installed = RenameNoReplace(staging, options.path); !installed.ok()) {
    return absl::Status(
        installed.code(),
        absl::StrCat("installing the restored log (its checkpoint file is in place at ",
                     checkpoint_path, ", the verified log at ", staging, "; move it to ",
                     options.path, "): ", installed.message()));
  }
  STORE_RETURN_IF_ERROR(SyncDirectoryOf(options.path));
  std::filesystem::remove(verified_marker, ec);
  return SyncDirectoryOf(verified_marker);
}

}  // namespace casework::store

// The embedded event log on RocksDB: one process, one sequencer, group commit.
//
// Layout: one column family per concern (log_format.cc has the byte grammar,
// docs/storage.md the prose). Writes: AppendAsync queues the request; one sequencer
// thread drains the queue into a batch (checks expected versions and request ids,
// assigns positions), and one writer thread writes each batch as one synced RocksDB
// WriteBatch, then runs the batch's callbacks. The sequencer builds batch N+1 while
// the writer syncs batch N. Reads go straight to RocksDB and never wait for either
// thread.
//
// Thread-safe. Destroying the log stops accepting appends (kUnavailable), commits what
// is queued, and joins its threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/checkpoint.h"
#include "store/event_log.h"

namespace rocksdb {
class BackupEngine;
class Env;
}  // namespace rocksdb

namespace casework::store {

class RocksEventLog final : public EventLog {
 public:
  struct Options {
    // The RocksDB directory. Created when absent and `create_if_missing`.
    std::string path;
    bool create_if_missing = true;

    // Bounds. A request beyond an input bound is refused with kInvalidArgument.
    size_t queue_appends_max = 65536;    // queued appends; beyond: kResourceExhausted
    size_t batch_events_max = 8192;      // events per synced write
    size_t batch_bytes_max = 32u << 20;  // event bytes per synced write
    // When the writer turns idle, the next batch waits up to this long for as many appends
    // as the last batch answered (callers resubmitting after their answer), unless it
    // already holds that many. 0 hands each batch over as soon as the writer is idle.
    int64_t batch_linger_us = 100;
    // Answer each synced batch on a thread of its own, so that the writer starts the next
    // sync while the callers' callbacks run. Worth it where callbacks are cheap (in
    // process: bench_store's 64 appenders ran 3-7% faster with it). Without it the
    // writer runs the callbacks before it takes the next batch, in order, and that batch
    // gathers the appends those answers released meanwhile; where a callback is costly
    // (caseworkd's send a gRPC response) the larger batches spare more thread wake-ups
    // than the hand-off gains, and caseworkd turns this off (docs/benchmarks.md).
    bool answer_thread = true;
    // A lone append is written by the caller's own thread: for a request with
    // `may_block`, when nothing is queued, being built or being written, and the last
    // batch held at most one append, AppendAsync checks, writes and syncs the append
    // itself before it returns, sparing the two thread hand-offs (to the sequencer, then
    // to the writer) that cost a lone caller more than the work. `done` then runs on the
    // calling thread too, unless answers of an earlier batch are still being run or
    // another append arrived meanwhile (then on the answer thread, to keep answers in
    // order; without an answer thread always on the calling thread, which holds the
    // writer's turn until its answers have run). The commit and write-state listeners
    // run on that thread as well. Under concurrency batches hold more than one append
    // and everything goes through the sequencer and the writer as before.
    bool direct_commit = true;

    // Memory and start-up. All memtables together stay below `memtable_bytes_max`; the
    // write-ahead log is kept below `wal_bytes_max` by flushing the column families that
    // hold its oldest file (so a restart after a crash replays at most that much); data
    // blocks are cached in one LRU cache of `block_cache_bytes` shared by all column
    // families. Index blocks, and the Bloom filters of request ids and projections, stay
    // in memory beside it (caching them in the block cache made reads at 10 million events
    // thrash).
    size_t memtable_bytes_max = 64u << 20;
    size_t wal_bytes_max = 64u << 20;
    size_t block_cache_bytes = 64u << 20;
    // Each WAL file is written into a file of this many zeros prepared ahead (on disk,
    // synced), so that a synced write overwrites blocks instead of growing the file, which
    // makes it cheaper (store/zero_filled_wal.h). Past this size a WAL file grows as
    // before. 0: WAL files are created empty. Not in inspection (read-only) mode.
    uint64_t wal_spare_bytes = 64u << 20;
    // RocksDB's informational LOG file in the directory (store/info_log.h): rotated to
    // LOG.old beyond this size.
    size_t info_log_bytes_max = 16u << 20;

    // A full disk. Before each synced write the log checks the free space of its file
    // system (through the Env): below `disk_reserve_bytes` (0: memtable_bytes_max, room
    // for RocksDB to flush every memtable) it writes nothing and turns read-only:
    // appends are refused at once with kResourceExhausted (reads keep working), and taken
    // again once a quarter more than the reserve is free, checked every
    // `disk_full_retry_ms`. So in the common case (a disk that fills gradually) RocksDB
    // never meets a full disk. When it does (the disk filled faster than one batch), the
    // write fails for lack of space with the same effect, and RocksDB recovers by itself
    // once the file system has room for one column family's memtable (memtable_bytes_max
    // / 2; it checks every 5 s): it flushes the memtables to new files and starts a new
    // write-ahead log, so the failed write is never replayed; the log asks RocksDB every
    // `disk_full_retry_ms` whether it has. Any other write error keeps the log read-only
    // until restart (after a failed sync the kernel may have dropped the unsynced pages).
    uint64_t disk_reserve_bytes = 0;
    int64_t disk_full_retry_ms = 250;
    size_t append_events_max = 4096;       // events per append
    size_t append_projections_max = 4096;  // projection writes per append
    size_t event_bytes_max = 1u << 20;     // bytes per event
    size_t stream_bytes_max = 512;         // bytes of a stream name
    size_t request_id_bytes_max = 512;     // bytes of a request id (and of a fingerprint)
    size_t projection_key_bytes_max = 4096;
    size_t read_events_max = 65536;  // events returned by one read
    // Streams whose durable version the sequencer keeps, so that a command on a case in
    // progress is checked without a read; emptied when full. About 100 bytes a stream
    // with the hash table's slack: at 1,048,576 (the former default) it held ~100 MiB of
    // a server's memory, and its growth to 2^21 slots added ~100 MiB more for a moment.
    size_t version_cache_entries_max = 1u << 18;

    // Checkpoints. The origin line (and the signing key's name) of every checkpoint.
    std::string checkpoint_origin = "casework/log";
    // The raw 32-byte Ed25519 seed. Default: path + ".key". Created 0600 for an empty
    // log; a log that holds events and has lost its key is refused (see below).
    std::string signing_key_path;
    // The last signed checkpoint, kept outside RocksDB and synced. Default:
    // path + ".checkpoint". Written when an empty log is opened (size 0), every
    // checkpoint_interval_ms when the log grew, and on close. On open, a log shorter than
    // it or with another root is refused, and so is a log that holds events but has no
    // checkpoint file: the file was removed, or the log beside it is not the one it
    // signed (a directory copied back from earlier, or another log's).
    std::string checkpoint_path;
    int64_t checkpoint_interval_ms = 1000;
    // Opens a log that holds events without its checkpoint file or its key (making a new
    // key): for an operator who has checked by other means (a verified backup's or an
    // auditor's checkpoint, an export) that the log is whole. The log then signs what it
    // holds. Never set by default.
    bool start_without_anchor = false;
    // Opens the log only to inspect it (caseworkd --verify-offline): what would refuse
    // the open for its checkpoint file or key is recorded (AnchorProblem) instead, and
    // nothing is written: no key made, no checkpoint file written, appends refused.
    // Verify then checks the events against the stored subtrees and, where the checkpoint
    // file could be read, against its signed root.
    bool inspect_only = false;
    // How to read the request id that an event's bytes carry, in the owner's event format
    // (the log itself knows nothing of it): nullopt when the bytes are malformed. When
    // set, CheckIndexes also requires the first event of the append that each request-id
    // entry names to carry that request id, so a request id moved onto another whole
    // append of its stream is found. A backup's copy is checked with the live log's.
    std::function<std::optional<std::string>(std::string_view event)> request_id_of_event;

    // The layout of the projections that the log's owner writes (its own numbering; 0:
    // not tracked). A log opened empty records it; RebuildProjections records it when
    // done. A log whose projections were written in another layout (by an older build)
    // says so through ProjectionLayout(), and its owner rebuilds them before serving.
    uint32_t projection_layout = 0;

    // Tests: a fault-injecting RocksDB Env (for example one made with
    // rocksdb::NewCompositeEnv over a FileSystem wrapper); it must outlive the log.
    // nullptr: the default Env. Only the RocksDB directory goes through it; the key and
    // checkpoint files are written with POSIX calls.
    rocksdb::Env* env = nullptr;
  };

  // Whether appends are taken, for health checks, metrics and logs.
  struct WriteState {
    enum class Mode {
      kWritable,  // appends are taken
      kDiskFull,  // refused until space returns (resumes by itself)
      kFailed,    // refused until restart (a write failed for another reason)
    };
    Mode mode = Mode::kWritable;
    std::string detail;              // the error that turned the log read-only
    int64_t disk_full_count = 0;     // times the disk was found full since open
    int64_t resumed_count = 0;       // times appends resumed after a full disk
    int64_t read_only_since_us = 0;  // Unix µs; 0 when writable
  };

  // Memory the log holds, in bytes, for metrics and capacity planning. The block cache
  // is bounded by Options::block_cache_bytes and the memtables by memtable_bytes_max (an
  // immutable memtable waiting for its flush comes on top until the flush ends); index
  // and filter blocks of table files live outside the cache and grow with the log.
  struct MemoryUsage {
    int64_t block_cache = 0;         // data blocks in the cache (RocksDB block-cache-usage)
    int64_t block_cache_pinned = 0;  // of those, pinned by open iterators and reads
    int64_t memtables = 0;           // all memtables, mutable and immutable, allocated
    int64_t table_readers = 0;       // index and filter blocks of open table files
  };

  // The committed tree: size and RFC 9162 root.
  struct TreeHead {
    int64_t size = 0;
    Hash root{};
  };

  // The outcome of Verify. `first_mismatch` is the first position of the first stored
  // subtree (16 events at the lowest stored level) whose recomputed hash differs, or that
  // holds a missing or malformed event (`detail` names the event); every event before it
  // verified. nullopt when everything matched.
  struct VerifyReport {
    int64_t from = 0;
    int64_t to = 0;
    std::optional<int64_t> first_mismatch;
    std::string detail;  // what did not match, for an operator
  };

  // Opens (or creates) the log. Errors:
  //   kDataLoss            the stored log is corrupt (message says what to do)
  //   kFailedPrecondition  the directory is missing (and !create_if_missing), or holds
  //                        something that is not this log
  //   kUnavailable         an I/O error or the database is locked by another process
  static absl::StatusOr<std::unique_ptr<RocksEventLog>> Open(const Options& options);

  ~RocksEventLog() override;
  RocksEventLog(const RocksEventLog&) = delete;
  RocksEventLog& operator=(const RocksEventLog&) = delete;

  // EventLog. A request refused before it is queued (malformed: kInvalidArgument;
  // queue full: kResourceExhausted; shutting down or read-only: kUnavailable) has its
  // `done` run inline, on the calling thread, before AppendAsync returns; a lone append
  // with `may_block` may be written by the calling thread (Options::direct_commit), which
  // then usually runs `done` too.
  void AppendAsync(AppendRequest request, AppendCallback done) override;
  absl::StatusOr<int64_t> StreamVersion(std::string_view stream) override;
  absl::StatusOr<int64_t> PositionOf(std::string_view stream, int64_t version) override;
  absl::StatusOr<std::vector<StoredEvent>> ReadStream(std::string_view stream, int64_t from_version,
                                                      size_t limit) override;
  absl::StatusOr<std::vector<StoredEvent>> ReadRange(int64_t from_position, size_t limit) override;
  int64_t Size() const override;
  absl::StatusOr<std::optional<AppendResult>> FindRequest(std::string_view stream,
                                                          std::string_view request_id) override;
  absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view table,
                                                           std::string_view key) override;
  absl::Status ScanProjection(
      std::string_view table, std::string_view start_key, size_t limit,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) override;
  void SetCommitListener(std::function<void(int64_t size)> listener) override;
  ReadToken TakeReadToken() const override;

  // The committed tree head (published after each durable batch).
  TreeHead Head() const;
  // The root of the tree of the first `size` events. kOutOfRange beyond Size().
  absl::StatusOr<Hash> RootAt(int64_t size);
  // RFC 9162 inclusion proof of `index` in the tree of `size` (<= Size()), bottom-up.
  absl::StatusOr<std::vector<Hash>> InclusionProof(int64_t index, int64_t size);
  // RFC 9162 consistency proof from `size1` to `size2` (0 < size1 <= size2 <= Size()).
  absl::StatusOr<std::vector<Hash>> ConsistencyProof(int64_t size1, int64_t size2);
  // The hashes of merkle::RangeNodes(0, size), in that order: the left edge from which
  // the tree grows past `size` (an export of [size, ...) carries it). kOutOfRange beyond
  // Size().
  absl::StatusOr<std::vector<Hash>> EdgeHashes(int64_t size);
  // A C2SP signed checkpoint (note text) of the committed head, signed with the server
  // key. Cached per size.
  absl::StatusOr<std::string> SignedCheckpoint();
  // The verifier of the server key ("name+hash+key" via VerifierKey()). Only when
  // HasCheckpointKey(): a log opened for inspection may lack its key (AnchorProblem says).
  const NoteVerifier& CheckpointVerifier() const;
  bool HasCheckpointKey() const;
  // Signs the committed head and replaces the checkpoint file durably (also done
  // periodically and on close).
  absl::Status WriteCheckpointFile();
  // Recomputes leaf hashes of the events in [from, to) and the stored subtrees they
  // complete, and, when from == 0, the root at the checkpoint found at open. Reads only;
  // runs beside appends. kInvalidArgument unless 0 <= from <= to <= Size().
  absl::StatusOr<VerifyReport> Verify(int64_t from, int64_t to);
  // Checks the indexes of streams and of request ids against the events (which Verify
  // checks against the tree): every stream entry names events of its stream at the
  // versions it says, a stream's entries run from version 1 without a gap or an overlap,
  // together they name every event exactly once, and every request-id entry is one of
  // its stream's entries (an append) whose first event carries that request id (when
  // Options::request_id_of_event is set). kDataLoss naming an entry that fails. Reads only:
  // one pass over both indexes side by side, stream by stream, with sorted batched reads
  // of the events the stream entries name. For a log with no appends
  // running (inspection, a backup's copy): one running beside it can be seen as a
  // mismatch. A backup (before it is called good), a restore and caseworkd
  // --verify-offline run it.
  absl::Status CheckIndexes() const;

  // Drops every projection and re-derives them from the log with `project` (which must
  // be the function that produced the incremental writes). Call with no appends in
  // flight (before serving, or with writes stopped). The result equals incremental
  // maintenance byte for byte. An error from `project` ends the rebuild with that error.
  // Records kProjectionLayoutRebuilding (synced) before it drops anything and, when done
  // (synced), Options::projection_layout: a rebuild cut short leaves a layout no build
  // writes, so it is done again.
  absl::Status RebuildProjections(
      const std::function<absl::StatusOr<std::vector<ProjectionWrite>>(const StoredEvent&)>&
          project);
  // The layout the stored projections were written in: Options::projection_layout of
  // the build that created the log empty or last rebuilt them; 0 for a log that has
  // events and no record (written before layouts were recorded);
  // kProjectionLayoutRebuilding while a rebuild runs or after one was cut short.
  uint32_t ProjectionLayout() const;
  static constexpr uint32_t kProjectionLayoutRebuilding = 0xFFFFFFFF;
  // Records kProjectionLayoutRebuilding (synced), so that the owner rebuilds the
  // projections from the events before serving. Restore does this: a backup's
  // projections are not covered by its signed checkpoint, its events are.
  absl::Status MarkProjectionsStale();
  // Visits every projection entry as stored (key = table 0x00 key), in key order.
  absl::Status ScanAllProjections(
      const std::function<void(std::string_view key, std::string_view value)>& visit);

  // Online backup into `backup_dir` (RocksDB BackupEngine, checksummed). The backup is
  // restored into a scratch directory and verified in full, its tree head is proved a
  // prefix of this log's (a consistency proof), and only then is that exact head signed
  // and kept beside it as `checkpoint-<id>`; a backup that fails is deleted. Returns the
  // backup id. Errors: kResourceExhausted when `backup_dir` has no room for it (a copy of
  // the log and a second one to verify it, and on the log's own disk the room its appends
  // need beyond), kDataLoss when the backup does not verify, kUnavailable on I/O
  // errors and once StopBackups was called, kFailedPrecondition while another backup of
  // this log is being taken (one at a time).
  // `keep` > 0: once this backup is kept, only the newest `keep` backups of the directory
  // stay; the older ones go, each checkpoint file before its backup (a failure to delete
  // leaves them to the next backup, and does not undo this one).
  absl::StatusOr<uint32_t> Backup(const std::string& backup_dir, uint32_t keep = 0);
  // Stops the backup being taken, if any, and refuses every later one: for a server that
  // is shutting down. The backup returns kUnavailable (reason kRefusalShuttingDown) and
  // keeps nothing; its copy stops at the next chunk of a file it copies, checks or
  // restores, its verification within 4,096 events. Returns at once; any thread.
  void StopBackups();
  // Restores the latest backup in `backup_dir` into `options.path` (which must not
  // exist, nor its checkpoint file), refusing (kDataLoss, nothing left at options.path)
  // a backup whose tree does not verify or has not exactly its checkpoint's size and
  // root, or whose indexes of streams and request ids do not match its events
  // (CheckIndexes). The server key (options.signing_key_path, else `<path>.key`) must exist.
  // Installs the checkpoint file, then the log, and syncs their directories. The checks
  // run on the log opened for inspection (nothing is signed or written before they pass);
  // the restored projections are then marked stale (MarkProjectionsStale), so that they
  // are rebuilt from the verified events before the log is served.
  // `backup_id` 0 takes the newest backup with its checkpoint beside it (one without was
  // cut short or failed); `restored_id` (if set) receives the backup restored. DATA_LOSS
  // when the backup does not verify; other codes when the restore itself failed.
  static absl::Status Restore(const std::string& backup_dir, const Options& options,
                              uint32_t backup_id = 0, uint32_t* restored_id = nullptr);

  // The current write state.
  WriteState GetWriteState() const;
  // What the log holds in memory now (RocksDB's own estimates; cheap, any thread).
  MemoryUsage GetMemoryUsage() const;
  // Called whenever the write state changes mode, on the thread that wrote (a thread of
  // the log's, or a caller's writing a direct append) or the log's maintenance thread;
  // it must not block, must not call the log, and must not take a lock that a caller of
  // AppendAsync may hold. Replaces the previous listener.
  void SetWriteStateListener(std::function<void(const WriteState&)> listener);
  // With Options::inspect_only: why the open would have been refused for the checkpoint
  // file or the key; empty when it would not. Its code: kDataLoss or kFailedPrecondition
  // for a finding (missing, not verifying, not matching), another (kUnavailable) for a
  // file that could not be read, which says nothing about the log.
  [[nodiscard]] std::string AnchorProblem() const;
  [[nodiscard]] absl::StatusCode AnchorProblemCode() const;
  // Called on the log's maintenance thread when writing the checkpoint file (every
  // checkpoint_interval_ms while the log grows) first fails (the error), and when it
  // succeeds again after failing (OK). While it fails the file lags the log, and a
  // rollback to a size between the two would not be refused at the next start. The
  // same rules as the write-state listener; replaces the previous one.
  void SetCheckpointFileListener(std::function<void(const absl::Status&)> listener);

  // Stops the sequencer from taking queued appends until resumed (tests use it to
  // build batches of a known composition). Appends queue up meanwhile.
  void PauseCommitsForTesting(bool paused);
  // Appends queued and not yet taken into a batch (with commits paused: all of them).
  size_t QueuedAppendsForTesting() const;
  // Whether a memtable flush is running or due in any column family.
  bool FlushesUnderWayForTesting() const;
  // Flips a bit of the stored event at `position` behind the log's back (synced), as
  // damaged storage would: tests of what the log does when it reads back other bytes.
  absl::Status DamageEventForTesting(int64_t position);
  // Called by Backup as each of its steps begins, on Backup's thread: "copying" (the
  // backup engine copies the log's files), "checking" (the copy's files are checked and
  // restored into a scratch directory), "verifying" (the restored copy is verified),
  // "signing" (its head is checked against the log's and signed).
  void SetBackupStepHookForTesting(std::function<void(std::string_view step)> hook);

 private:
  class Impl;
  explicit RocksEventLog(std::unique_ptr<Impl> impl);
  // Backup's steps with the engine it opened; `scratch` receives the directory the
  // backup is restored into for its verification (once it is known).
  absl::StatusOr<uint32_t> BackupWith(rocksdb::BackupEngine& engine, const std::string& backup_dir,
                                      std::string* scratch);
  std::unique_ptr<Impl> impl_;
};

}  // namespace casework::store

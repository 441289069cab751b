// Write-ahead log files written into space that already holds zeros on disk.
//
// Why: appending to a file makes every fdatasync write the file's new size (an inode
// update) as well as its data, and on ext4 allocate the new blocks; overwriting blocks
// that already hold zeros on disk needs neither. A synced 3,000-byte write costs about
// 75 µs at p50 into zeros against 125 µs appended on the 2-core machines this runs on
// (docs/benchmarks.md, "a WAL in zero-filled space"). PostgreSQL writes its WAL segments
// the same way. RocksDB's own answer, recycled WAL files, is off under the recovery mode
// that makes the log fail closed (kTolerateCorruptedTailRecords).
//
// How: ZeroFilledWalFs keeps one spare file of zeros (`kSpareName`, written and synced)
// in the log's directory, and prepares it on a thread of its own. When RocksDB creates a
// WAL file there, the spare is renamed to the WAL's name and opened for writing from its
// start, without truncation (FileSystem::ReuseWritableFile); then the next spare is
// prepared. Without a spare ready (a disk without room for one, or one WAL created right
// after another) the WAL file is created empty, as RocksDB does. The zeros past what was
// written are cut off as a WAL file is closed; the file being written when the process
// stops keeps them.
//
// Reading such a file back: RocksDB takes a header of zeros for preallocated space and
// skips it in silence (wal_tail.h), so zeros after the last record read as the end of the
// log. What it cannot read by itself is a write that a crash tore inside that space: the
// start of the record on disk and zeros where the rest was to be. Its checksum fails and
// RocksDB refuses to open (appended, the same torn write would have ended the file, and
// RocksDB drops such a tail). TrimTornWrite (wal_tail.h) finds that shape before RocksDB
// opens and cuts the file where the torn write began.
//
// A spare left from an earlier run is never used: it may hold records of a WAL whose
// rename a power cut undid (they were not acknowledged: the directory is synced before the
// first synced write to a new WAL file returns), and a reused file must hold only zeros.
// Start() removes it and prepares a new one before RocksDB opens. Whoever changes files of
// the directory before RocksDB opens must hold kDirLockName (RocksEventLog does, for as
// long as it is open, and so does the WAL repair), so that no second process cuts or
// replaces a file that a running log writes.
//
// A live WAL file in zeros is longer on disk than what was written to it. GetFileSize
// answers what was written (a backup copies a live WAL file up to the size it is told,
// and must not copy the zeros, or a batch half written meanwhile).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace casework::store {

class ZeroFilledWalFs final : public rocksdb::FileSystemWrapper {
 public:
  static constexpr const char* kSpareName = "casework-wal.spare";
  static constexpr const char* kSpareTempName = "casework-wal.spare.tmp";
  static constexpr const char* kDirLockName = "casework.lock";

  // Removes a spare (or a half-written one) from `dir` through `fs`: when spares are
  // turned off, one left from before is only space.
  static rocksdb::IOStatus RemoveSpares(rocksdb::FileSystem* fs, const std::string& dir);

  // `dir`: the directory of the WAL files (the database's). `spare_bytes`: the size of
  // each spare (more than a WAL file grows to is written into zeros, the rest appended).
  // `keep_free_bytes`: a spare is written only while the file system keeps this much free
  // beside it (the log refuses appends below its own reserve; a spare must not take the
  // room that a flush needs).
  ZeroFilledWalFs(const std::shared_ptr<rocksdb::FileSystem>& target, std::string dir,
                  uint64_t spare_bytes, uint64_t keep_free_bytes);
  ~ZeroFilledWalFs() override;
  ZeroFilledWalFs(const ZeroFilledWalFs&) = delete;
  ZeroFilledWalFs& operator=(const ZeroFilledWalFs&) = delete;

  static const char* kClassName() { return "CaseworkZeroFilledWalFs"; }
  const char* Name() const override { return kClassName(); }

  // Removes a spare (or a half-written one) left from an earlier run, prepares the first
  // spare, and starts the thread that prepares the next ones. Call once, before RocksDB
  // opens. A spare that cannot be written (a full disk) is no error: WAL files are then
  // created empty until one can be. Errors only when a file left from before cannot be
  // removed.
  absl::Status Start();

  // Stops the thread that prepares spares (waits for it) and takes no spare from then
  // on. Call before the directory is given up (its lock released): something of RocksDB
  // may hold this FileSystem longer than the database it opened.
  void Stop();
  // Gives a ready spare's space back to the file system: the disk is nearly full (the
  // log refuses appends below its reserve), and the spare's zeros are only a cheaper
  // next WAL file. That file is then created empty; the next spare is prepared after a
  // later WAL file, once there is room for it.
  void ReleaseSpare();

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  // What was written to a live WAL file made from a spare; otherwise the file's size.
  rocksdb::IOStatus GetFileSize(const std::string& fname, const rocksdb::IOOptions& options,
                                uint64_t* size, rocksdb::IODebugContext* dbg) override;

 private:
  class WalFile;
  struct Written {
    absl::Mutex mu;
    uint64_t bytes ABSL_GUARDED_BY(mu) = 0;
  };
  std::string Normal(const std::string& fname) const;
  bool IsWalFile(const std::string& fname) const;
  // Writes a spare of zeros under kSpareTempName, syncs it, renames it to kSpareName and
  // marks it ready (the last two under mu_); `paced`: spread over time (kChunkPause), as a
  // log under load does.
  rocksdb::IOStatus PrepareSpare(bool paced);
  // A live WAL file made from a spare was closed (or destroyed).
  void Forget(const std::string& path, const Written* written);
  void Run();
  bool RunHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return exit_ || (wanted_ && !spare_ready_);
  }

  const std::string dir_;
  const std::string spare_path_;
  const std::string temp_path_;
  const uint64_t spare_bytes_;
  const uint64_t keep_free_bytes_;
  std::unique_ptr<rocksdb::FSDirectory> dir_handle_;  // set by Start()

  mutable absl::Mutex mu_;
  bool spare_ready_ ABSL_GUARDED_BY(mu_) = false;
  // A WAL file was created since the last spare was prepared (or tried): the thread
  // prepares the next. A spare that fails is tried again at the next WAL file only.
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool exit_ ABSL_GUARDED_BY(mu_) = false;
  // Live WAL files made from spares, by path: what was written to each.
  std::map<std::string, std::shared_ptr<Written>> live_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// An Env whose file system is `fs` and whose everything else (threads, clock) is `base`'s.
class FileSystemEnv final : public rocksdb::EnvWrapper {
 public:
  FileSystemEnv(rocksdb::Env* base, std::shared_ptr<rocksdb::FileSystem> fs) : EnvWrapper(base) {
    file_system_ = std::move(fs);
  }
  static const char* kClassName() { return "CaseworkFileSystemEnv"; }
  const char* Name() const override { return kClassName(); }
};

}  // namespace casework::store

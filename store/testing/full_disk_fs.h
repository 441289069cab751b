// A RocksDB FileSystem whose disk can be made full, for tests (rocks_event_log_disk_full_test).
//
// While full, every append to a file (Append, PositionedAppend) and, with
// `syncs_fail`, every Sync and Fsync fails with IOStatus::NoSpace() before reaching the
// file, as write(2) and fsync(2) fail with ENOSPC; nothing of the refused call is
// written; and GetFreeSpace reports 0 bytes, unless `hidden` (a disk that fills between
// two looks at its free space). Everything else (reads, creating, renaming and deleting
// files) passes through. SetFull(false) gives the space back; until SetFreeBytes(nullopt),
// GetFreeSpace then reports the given number. With SetInPlaceWritesFit(true), a write into
// space a reused file already holds (a WAL file written over zeros prepared ahead) is not
// refused, nor a sync of such a file, as on a disk whose file system overwrites allocated
// blocks in place (ext4, XFS; not a copy-on-write one such as btrfs or ZFS, where an
// overwrite needs free blocks too). HoldTableFiles(true) makes the creation of a table
// file (`*.sst`: a flush's or a compaction's output) wait until HoldTableFiles(false), so
// that a test can let the disk fill while a flush is under way. Thread-safe.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"

namespace casework::store::testing {

class FullDiskFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit FullDiskFs(const std::shared_ptr<rocksdb::FileSystem>& target)
      : rocksdb::FileSystemWrapper(target) {}

  static const char* kClassName() { return "CaseworkFullDiskFs"; }
  const char* Name() const override { return kClassName(); }

  void SetFull(bool full, bool syncs_fail = false, bool hidden = false) {
    syncs_fail_.store(syncs_fail, std::memory_order_release);
    hidden_.store(hidden, std::memory_order_release);
    full_.store(full, std::memory_order_release);
  }
  bool full() const { return full_.load(std::memory_order_acquire); }
  void SetInPlaceWritesFit(bool fit) { in_place_fits_.store(fit, std::memory_order_release); }
  // What GetFreeSpace reports when not full: `bytes`, or (nullopt) the real free space.
  void SetFreeBytes(std::optional<uint64_t> bytes) {
    free_bytes_.store(bytes.has_value() ? static_cast<int64_t>(*bytes) : -1,
                      std::memory_order_release);
  }
  // Calls refused for lack of space so far.
  uint64_t refused() const { return refused_.load(std::memory_order_acquire); }
  // While held, the creation of a table file waits (see the top of this file).
  void HoldTableFiles(bool hold) {
    absl::MutexLock lock(&hold_mu_);
    hold_table_files_ = hold;
  }
  // Table files whose creation waits now.
  int table_files_waiting() const {
    absl::MutexLock lock(&hold_mu_);
    return table_files_waiting_;
  }

  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& options,
                                 uint64_t* free_space, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

 private:
  class File;
  // True when an append (or, `sync`, a sync) must fail now; counts it. `in_place`: the
  // write lands in space the file already holds.
  bool Refuse(bool sync, bool in_place);

  std::atomic<bool> full_{false};
  std::atomic<bool> syncs_fail_{false};
  std::atomic<bool> hidden_{false};
  std::atomic<bool> in_place_fits_{false};
  std::atomic<uint64_t> refused_{0};
  std::atomic<int64_t> free_bytes_{-1};
  mutable absl::Mutex hold_mu_;
  bool hold_table_files_ ABSL_GUARDED_BY(hold_mu_) = false;
  int table_files_waiting_ ABSL_GUARDED_BY(hold_mu_) = 0;
};

}  // namespace casework::store::testing

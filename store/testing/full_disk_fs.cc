#include "store/testing/full_disk_fs.h"

#include <algorithm>
#include <atomic>

namespace casework::store::testing {

using rocksdb::IOStatus;

class FullDiskFs::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  // `held_bytes`: the size of a reused file, which its writes from offset 0 overwrite.
  File(FullDiskFs* fs, std::unique_ptr<rocksdb::FSWritableFile> target, uint64_t held_bytes = 0)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), held_bytes_(held_bytes) {}

  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false, Held(end_.load(std::memory_order_acquire), data.size())))
      return NoSpace();
    IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) end_.fetch_add(data.size(), std::memory_order_acq_rel);
    return s;
  }
  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false, Held(end_.load(std::memory_order_acquire), data.size())))
      return NoSpace();
    IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) end_.fetch_add(data.size(), std::memory_order_acq_rel);
    return s;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false, Held(offset, data.size()))) return NoSpace();
    IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) Extend(offset + data.size());
    return s;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false, Held(offset, data.size()))) return NoSpace();
    IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) Extend(offset + data.size());
    return s;
  }
  IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(true, Held(0, end_.load(std::memory_order_acquire)))) return NoSpace();
    return target()->Sync(options, dbg);
  }
  IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                    rocksdb::IODebugContext* dbg) override {
    IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      held_bytes_.store(std::min(held_bytes_.load(std::memory_order_acquire), size),
                        std::memory_order_release);
      end_.store(size, std::memory_order_release);
    }
    return s;
  }
  IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(true, Held(0, end_.load(std::memory_order_acquire)))) return NoSpace();
    return target()->Fsync(options, dbg);
  }

 private:
  static IOStatus NoSpace() { return IOStatus::NoSpace("FullDiskFs: no space left on device"); }
  bool Held(uint64_t offset, uint64_t bytes) const {
    return offset + bytes <= held_bytes_.load(std::memory_order_acquire);
  }
  void Extend(uint64_t end) {
    uint64_t now = end_.load(std::memory_order_acquire);
    while (now < end && !end_.compare_exchange_weak(now, end, std::memory_order_acq_rel)) {
    }
  }

  FullDiskFs* const fs_;
  std::atomic<uint64_t> held_bytes_;
  // The end of what was written; a sync may run on another thread than the writes (a WAL
  // synced by FlushWAL).
  std::atomic<uint64_t> end_{0};
};

bool FullDiskFs::Refuse(bool sync, bool in_place) {
  if (!full_.load(std::memory_order_acquire)) return false;
  if (sync && !syncs_fail_.load(std::memory_order_acquire)) return false;
  if (in_place && in_place_fits_.load(std::memory_order_acquire)) return false;
  refused_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

IOStatus FullDiskFs::GetFreeSpace(const std::string& path, const rocksdb::IOOptions& options,
                                  uint64_t* free_space, rocksdb::IODebugContext* dbg) {
  if (full() && !hidden_.load(std::memory_order_acquire)) {
    *free_space = 0;
    return IOStatus::OK();
  }
  const int64_t reported = free_bytes_.load(std::memory_order_acquire);
  if (reported >= 0) {
    *free_space = static_cast<uint64_t>(reported);
    return IOStatus::OK();
  }
  return target()->GetFreeSpace(path, options, free_space, dbg);
}

IOStatus FullDiskFs::NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                     std::unique_ptr<rocksdb::FSWritableFile>* result,
                                     rocksdb::IODebugContext* dbg) {
  if (fname.ends_with(".sst")) {
    absl::MutexLock lock(&hold_mu_);
    ++table_files_waiting_;
    hold_mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &hold_table_files_));
    --table_files_waiting_;
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, options, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, std::move(file));
  return s;
}

IOStatus FullDiskFs::ReopenWritableFile(const std::string& fname,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSWritableFile>* result,
                                        rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, options, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, std::move(file));
  return s;
}

IOStatus FullDiskFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) {
  uint64_t held = 0;
  if (!target()->GetFileSize(old_fname, rocksdb::IOOptions(), &held, dbg).ok()) held = 0;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, options, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, std::move(file), held);
  return s;
}

}  // namespace casework::store::testing

#include "store/testing/full_disk_fs.h"

namespace casework::store::testing {

using rocksdb::IOStatus;

class FullDiskFs::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(FullDiskFs* fs, std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs) {}

  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->Append(data, options, dbg);
  }
  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->Append(data, options, info, dbg);
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(false)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(true)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->Sync(options, dbg);
  }
  IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (fs_->Refuse(true)) return IOStatus::NoSpace("FullDiskFs: no space left on device");
    return target()->Fsync(options, dbg);
  }

 private:
  FullDiskFs* const fs_;
};

bool FullDiskFs::Refuse(bool sync) {
  if (!full_.load(std::memory_order_acquire)) return false;
  if (sync && !syncs_fail_.load(std::memory_order_acquire)) return false;
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
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, options, &file, dbg);
  if (s.ok()) *result = std::make_unique<File>(this, std::move(file));
  return s;
}

}  // namespace casework::store::testing

#include "store/testing/power_loss_fs.h"

#include <rocksdb/system_clock.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

namespace casework::store::testing {
namespace {

namespace fs = std::filesystem;
using rocksdb::IOStatus;

std::string Normalize(const std::string& path) {
  std::string normal = fs::path(path).lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether the file at `path` holds nothing but zeros (false when it cannot be read).
bool HoldsOnlyZeros(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buffer[1 << 16];
  bool zeros = true;
  size_t n = 0;
  while (zeros && (n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) {
    for (size_t i = 0; i < n; ++i) {
      if (buffer[i] != 0) {
        zeros = false;
        break;
      }
    }
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  return zeros && !failed;
}

IOStatus Errno(const std::string& what, const std::string& path) {
  return IOStatus::IOError(what + " " + path + ": " + std::strerror(errno));
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "PowerLossFs: %s\n", message.c_str());
  std::abort();
}

}  // namespace

// A writable file whose writes and syncs are recorded in the model.
class PowerLossFs::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(PowerLossFs* fs, uint64_t inode, std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)), fs_(fs), inode_(inode) {}

  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeAppend(inode_);
    if (s.ok()) s = target()->Append(data, options, dbg);
    if (s.ok()) fs_->AfterAppend(inode_, data.size(), nullptr);
    return s;
  }
  IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                  const rocksdb::DataVerificationInfo& info,
                  rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeAppend(inode_);
    if (s.ok()) s = target()->Append(data, options, info, dbg);
    if (s.ok()) fs_->AfterAppend(inode_, data.size(), nullptr);
    return s;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeAppend(inode_);
    if (s.ok()) s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) fs_->AfterAppend(inode_, data.size(), &offset);
    return s;
  }
  IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                            const rocksdb::IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeAppend(inode_);
    if (s.ok()) s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) fs_->AfterAppend(inode_, data.size(), &offset);
    return s;
  }
  IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                    rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeTruncate();
    if (s.ok()) s = target()->Truncate(size, options, dbg);
    if (s.ok()) fs_->AfterTruncate(inode_, size);
    return s;
  }
  IOStatus Flush(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->CheckPower();
    return s.ok() ? target()->Flush(options, dbg) : s;
  }
  // Recorded, not performed (see the header).
  IOStatus Sync(const rocksdb::IOOptions& /*options*/, rocksdb::IODebugContext* /*dbg*/) override {
    return fs_->SyncFile(inode_);
  }
  IOStatus Fsync(const rocksdb::IOOptions& /*options*/, rocksdb::IODebugContext* /*dbg*/) override {
    return fs_->SyncFile(inode_);
  }
  // Starts write-back only: makes nothing durable.
  IOStatus RangeSync(uint64_t /*offset*/, uint64_t /*nbytes*/,
                     const rocksdb::IOOptions& /*options*/,
                     rocksdb::IODebugContext* /*dbg*/) override {
    return fs_->CheckPower();
  }
  IOStatus Allocate(uint64_t offset, uint64_t len, const rocksdb::IOOptions& options,
                    rocksdb::IODebugContext* dbg) override {
    IOStatus s = fs_->CheckPower();
    return s.ok() ? target()->Allocate(offset, len, options, dbg) : s;
  }
  // Always forwarded, so that the descriptor is released; makes nothing durable.
  IOStatus Close(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return target()->Close(options, dbg);
  }

 private:
  PowerLossFs* const fs_;
  const uint64_t inode_;
};

// A directory whose fsync makes its current entries durable in the model.
class PowerLossFs::Directory final : public rocksdb::FSDirectoryWrapper {
 public:
  Directory(PowerLossFs* fs, std::string path, std::unique_ptr<rocksdb::FSDirectory> target)
      : FSDirectoryWrapper(std::move(target)), fs_(fs), path_(std::move(path)) {}

  IOStatus Fsync(const rocksdb::IOOptions& /*options*/, rocksdb::IODebugContext* /*dbg*/) override {
    return fs_->SyncDir(path_);
  }
  IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& /*options*/,
                               rocksdb::IODebugContext* /*dbg*/,
                               const rocksdb::DirFsyncOptions& /*dir_options*/) override {
    return fs_->SyncDir(path_);
  }

 private:
  PowerLossFs* const fs_;
  const std::string path_;
};

const char* PowerLossFs::KindName(uint32_t kind) {
  switch (kind) {
    case kWalAppend:
      return "wal-append";
    case kWalSync:
      return "wal-sync";
    case kTableAppend:
      return "sst-append";
    case kTableSync:
      return "sst-sync";
    case kManifestAppend:
      return "manifest-append";
    case kManifestSync:
      return "manifest-sync";
    case kOtherAppend:
      return "other-append";
    case kOtherSync:
      return "other-sync";
    case kCreate:
      return "create";
    case kRename:
      return "rename";
    case kDelete:
      return "delete";
    case kDirSync:
      return "dir-sync";
    case kTruncate:
      return "truncate";
    default:
      return "idle";
  }
}

PowerLossFs::PowerLossFs(std::string root)
    : FileSystemWrapper(rocksdb::FileSystem::Default()),
      root_(Normalize(root)),
      shadow_(root_ + ".power-loss") {
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) Die(root_ + " is not a directory");
  fs::remove_all(shadow_, ec);
  if (!fs::create_directory(shadow_, ec)) Die("cannot create " + shadow_ + ": " + ec.message());
  // Everything already here counts as durable.
  dirs_[root_];
  for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string path = Normalize(it->path().string());
    if (it->is_directory(ec)) {
      dirs_[path];
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const uint64_t id = next_inode_++;
    if (::link(path.c_str(), ShadowOf(id).c_str()) != 0) {
      Die("cannot link " + path + ": " + std::strerror(errno));
    }
    auto [dir, name] = Split(path);
    Inode inode;
    if (EndsWith(name, ".log")) {
      inode.append_kind = kWalAppend;
      inode.sync_kind = kWalSync;
      inode.wal = true;
    } else if (EndsWith(name, ".sst")) {
      inode.append_kind = kTableAppend;
      inode.sync_kind = kTableSync;
    } else if (StartsWith(name, "MANIFEST-")) {
      inode.append_kind = kManifestAppend;
      inode.sync_kind = kManifestSync;
    }
    inode.written = inode.synced = fs::file_size(path, ec);
    if (ec) Die("cannot stat " + path + ": " + ec.message());
    inodes_[id] = inode;
    dirs_[dir].current[name] = id;
    dirs_[dir].durable[name] = id;
  }
  if (ec) Die("cannot list " + root_ + ": " + ec.message());
}

PowerLossFs::~PowerLossFs() {
  std::error_code ec;
  fs::remove_all(shadow_, ec);
}

void PowerLossFs::Cut() {
  std::lock_guard<std::mutex> lock(mu_);
  cut_ = true;
}

void PowerLossFs::CutAtOp(uint32_t kinds, uint64_t nth) {
  std::lock_guard<std::mutex> lock(mu_);
  trigger_kinds_ = kinds;
  trigger_left_ = nth;
}

bool PowerLossFs::IsCut() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cut_;
}

uint64_t PowerLossFs::OpCount(uint32_t kinds) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (int i = 0; i < kOpKinds; ++i) {
    if ((kinds & (1u << i)) != 0) total += counts_[static_cast<size_t>(i)];
  }
  return total;
}

uint64_t PowerLossFs::BytesAppended(uint32_t kinds) const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  for (int i = 0; i < kOpKinds; ++i) {
    if ((kinds & (1u << i)) != 0) total += bytes_[static_cast<size_t>(i)];
  }
  return total;
}

bool PowerLossFs::FileState(const std::string& path, uint64_t* written, uint64_t* synced) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto [dir, name] = Split(path);
  auto d = dirs_.find(dir);
  if (d == dirs_.end()) return false;
  auto it = d->second.current.find(name);
  if (it == d->second.current.end()) return false;
  const Inode& inode = inodes_.at(it->second);
  *written = inode.written;
  *synced = inode.synced;
  return true;
}

uint64_t PowerLossFs::ReusesRefused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reuses_refused_;
}

uint32_t PowerLossFs::FirstRefused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_refused_;
}

bool PowerLossFs::PowerOffLocked(uint32_t kind) {
  if (!cut_ && (trigger_kinds_ & kind) != 0 && trigger_left_ > 0 && --trigger_left_ == 0) {
    cut_ = true;
  }
  if (cut_) {
    if (first_refused_ == 0) first_refused_ = kind;
    return true;
  }
  ++counts_[static_cast<size_t>(std::countr_zero(kind))];
  return false;
}

IOStatus PowerLossFs::PowerOffError() {
  return IOStatus::IOError("simulated power cut: the disk takes no more writes");
}

bool PowerLossFs::Tracked(const std::string& path) const {
  const std::string dir = Split(path).first;
  return dir == root_ || StartsWith(dir, root_ + "/");
}

std::pair<std::string, std::string> PowerLossFs::Split(const std::string& path) {
  const fs::path normal(Normalize(path));
  return {normal.parent_path().string(), normal.filename().string()};
}

std::string PowerLossFs::ShadowOf(uint64_t inode) const {
  return shadow_ + "/" + std::to_string(inode);
}

IOStatus PowerLossFs::CreateLocked(const std::string& path, bool unseen_writes, uint64_t* out) {
  auto [dir, name] = Split(path);
  Dir& d = dirs_[dir];
  if (auto it = d.current.find(name); it != d.current.end()) {
    // Opened with O_TRUNC: the same file, emptied.
    Inode& inode = inodes_[it->second];
    inode.written = 0;
    inode.synced = 0;
    inode.unseen_writes = unseen_writes;
    *out = it->second;
    return IOStatus::OK();
  }
  const uint64_t id = next_inode_++;
  if (::link(Normalize(path).c_str(), ShadowOf(id).c_str()) != 0) {
    return Errno("cannot link into the power-loss shadow:", path);
  }
  Inode inode;
  inode.unseen_writes = unseen_writes;
  if (EndsWith(name, ".log")) {
    inode.append_kind = kWalAppend;
    inode.sync_kind = kWalSync;
    inode.wal = true;
  } else if (EndsWith(name, ".sst")) {
    inode.append_kind = kTableAppend;
    inode.sync_kind = kTableSync;
  } else if (StartsWith(name, "MANIFEST-")) {
    inode.append_kind = kManifestAppend;
    inode.sync_kind = kManifestSync;
  }
  inodes_[id] = inode;
  d.current[name] = id;
  d.pending.push_back(DirOp{.type = DirOp::Type::kLink, .name = name, .from = {}, .inode = id});
  *out = id;
  return IOStatus::OK();
}

IOStatus PowerLossFs::InodeOfLocked(const std::string& path, uint64_t* out) {
  auto [dir, name] = Split(path);
  const Dir& d = dirs_[dir];
  if (auto it = d.current.find(name); it != d.current.end()) {
    *out = it->second;
    return IOStatus::OK();
  }
  // Created outside this FileSystem: adopt it as just created, with nothing synced.
  return CreateLocked(path, /*unseen_writes=*/true, out);
}

IOStatus PowerLossFs::BeforeAppend(uint64_t inode) {
  std::lock_guard<std::mutex> lock(mu_);
  return PowerOffLocked(inodes_.at(inode).append_kind) ? PowerOffError() : IOStatus::OK();
}

void PowerLossFs::AfterAppend(uint64_t inode, uint64_t bytes, const uint64_t* offset) {
  std::lock_guard<std::mutex> lock(mu_);
  Inode& file = inodes_.at(inode);
  bytes_[static_cast<size_t>(std::countr_zero(file.append_kind))] += bytes;
  if (offset == nullptr) {
    file.written += bytes;
  } else {
    file.synced = std::min(file.synced, *offset);  // rewritten bytes are not durable yet
    file.written = std::max(file.written, *offset + bytes);
  }
}

IOStatus PowerLossFs::SyncFile(uint64_t inode) {
  std::lock_guard<std::mutex> lock(mu_);
  Inode& file = inodes_.at(inode);
  if (PowerOffLocked(file.sync_kind)) return PowerOffError();
  file.synced = file.written;
  return IOStatus::OK();
}

IOStatus PowerLossFs::BeforeTruncate() {
  std::lock_guard<std::mutex> lock(mu_);
  return PowerOffLocked(kTruncate) ? PowerOffError() : IOStatus::OK();
}

void PowerLossFs::AfterTruncate(uint64_t inode, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  Inode& file = inodes_.at(inode);
  file.written = size;
  file.synced = std::min(file.synced, size);
}

IOStatus PowerLossFs::CheckPower() {
  std::lock_guard<std::mutex> lock(mu_);
  return cut_ ? PowerOffError() : IOStatus::OK();
}

IOStatus PowerLossFs::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kDirSync)) return PowerOffError();
  Dir& d = dirs_[dir];
  d.durable = d.current;
  d.pending.clear();
  return IOStatus::OK();
}

IOStatus PowerLossFs::NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->NewWritableFile(fname, options, result, dbg);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  uint64_t inode = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (PowerOffLocked(kCreate)) return PowerOffError();
    IOStatus s = target()->NewWritableFile(fname, options, &file, dbg);
    if (s.ok()) s = CreateLocked(fname, /*unseen_writes=*/false, &inode);
    if (!s.ok()) return s;
  }
  *result = std::make_unique<File>(this, inode, std::move(file));
  return IOStatus::OK();
}

IOStatus PowerLossFs::ReopenWritableFile(const std::string& fname,
                                         const rocksdb::FileOptions& options,
                                         std::unique_ptr<rocksdb::FSWritableFile>* result,
                                         rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->ReopenWritableFile(fname, options, result, dbg);
  std::unique_ptr<rocksdb::FSWritableFile> file;
  uint64_t inode = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (PowerOffLocked(kCreate)) return PowerOffError();
    IOStatus s = target()->ReopenWritableFile(fname, options, &file, dbg);
    if (s.ok()) s = InodeOfLocked(fname, &inode);
    if (!s.ok()) return s;
    std::error_code ec;
    const uint64_t size = fs::file_size(Normalize(fname), ec);
    if (ec) return IOStatus::IOError("cannot stat " + fname + ": " + ec.message());
    Inode& reopened = inodes_.at(inode);
    reopened.written = std::max(reopened.written, size);
  }
  *result = std::make_unique<File>(this, inode, std::move(file));
  return IOStatus::OK();
}

IOStatus PowerLossFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSWritableFile>* result,
                                        rocksdb::IODebugContext* dbg) {
  const bool tracked = Tracked(fname);
  if (!tracked && !Tracked(old_fname)) {
    return target()->ReuseWritableFile(fname, old_fname, options, result, dbg);
  }
  if (tracked != Tracked(old_fname)) {
    return IOStatus::NotSupported("PowerLossFs: a reuse into or out of the modeled directory");
  }
  if (!HoldsOnlyZeros(Normalize(old_fname))) {
    std::lock_guard<std::mutex> lock(mu_);
    ++reuses_refused_;
    return IOStatus::NotSupported("PowerLossFs models reused files of zeros only: " + old_fname);
  }
  std::unique_ptr<rocksdb::FSWritableFile> file;
  uint64_t inode = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (PowerOffLocked(kRename)) return PowerOffError();
    IOStatus s = InodeOfLocked(old_fname, &inode);
    if (s.ok()) s = target()->ReuseWritableFile(fname, old_fname, options, &file, dbg);
    if (!s.ok()) return s;
    RenamedLocked(old_fname, fname, inode);
    Inode& reused = inodes_.at(inode);
    reused.zeros = std::max(reused.zeros, reused.synced);
    reused.written = 0;
    reused.synced = 0;
    if (EndsWith(fname, ".log")) {
      reused.append_kind = kWalAppend;
      reused.sync_kind = kWalSync;
      reused.wal = true;
    }
  }
  *result = std::make_unique<File>(this, inode, std::move(file));
  return IOStatus::OK();
}

IOStatus PowerLossFs::NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                      rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->NewRandomRWFile(fname, options, result, dbg);
  return IOStatus::NotSupported("PowerLossFs does not model random-access writes");
}

IOStatus PowerLossFs::NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                   std::unique_ptr<rocksdb::FSDirectory>* result,
                                   rocksdb::IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  IOStatus s = target()->NewDirectory(name, options, &dir, dbg);
  if (!s.ok()) return s;
  const std::string normal = Normalize(name);
  if (normal == root_ || StartsWith(normal, root_ + "/")) {
    *result = std::make_unique<Directory>(this, normal, std::move(dir));
  } else {
    *result = std::move(dir);
  }
  return IOStatus::OK();
}

IOStatus PowerLossFs::DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                                 rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->DeleteFile(fname, options, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kDelete)) return PowerOffError();
  IOStatus s = target()->DeleteFile(fname, options, dbg);
  if (!s.ok()) return s;
  auto [dir, name] = Split(fname);
  Dir& d = dirs_[dir];
  if (auto it = d.current.find(name); it != d.current.end()) {
    d.pending.push_back(
        DirOp{.type = DirOp::Type::kUnlink, .name = name, .from = {}, .inode = it->second});
    d.current.erase(it);
  }
  return IOStatus::OK();
}

IOStatus PowerLossFs::Truncate(const std::string& fname, size_t size,
                               const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->Truncate(fname, size, options, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kTruncate)) return PowerOffError();
  uint64_t inode = 0;
  IOStatus s = InodeOfLocked(fname, &inode);
  if (s.ok()) s = target()->Truncate(fname, size, options, dbg);
  if (!s.ok()) return s;
  Inode& file = inodes_.at(inode);
  file.written = size;
  file.synced = std::min<uint64_t>(file.synced, size);
  return IOStatus::OK();
}

IOStatus PowerLossFs::CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* dbg) {
  IOStatus s = CheckPower();
  return s.ok() ? target()->CreateDir(dirname, options, dbg) : s;
}

IOStatus PowerLossFs::CreateDirIfMissing(const std::string& dirname,
                                         const rocksdb::IOOptions& options,
                                         rocksdb::IODebugContext* dbg) {
  IOStatus s = CheckPower();
  return s.ok() ? target()->CreateDirIfMissing(dirname, options, dbg) : s;
}

IOStatus PowerLossFs::DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* dbg) {
  IOStatus s = CheckPower();
  return s.ok() ? target()->DeleteDir(dirname, options, dbg) : s;
}

IOStatus PowerLossFs::RenameFile(const std::string& src, const std::string& target_name,
                                 const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) {
  const bool src_tracked = Tracked(src);
  const bool target_tracked = Tracked(target_name);
  if (!src_tracked && !target_tracked) return target()->RenameFile(src, target_name, options, dbg);
  if (src_tracked != target_tracked) {
    return IOStatus::NotSupported("PowerLossFs: a rename into or out of the modeled directory");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kRename)) return PowerOffError();
  uint64_t inode = 0;
  IOStatus s = InodeOfLocked(src, &inode);
  if (s.ok()) s = target()->RenameFile(src, target_name, options, dbg);
  if (!s.ok()) return s;
  RenamedLocked(src, target_name, inode);
  return IOStatus::OK();
}

void PowerLossFs::RenamedLocked(const std::string& src, const std::string& target_name,
                                uint64_t inode) {
  auto [src_dir, src_name] = Split(src);
  auto [dst_dir, dst_name] = Split(target_name);
  Dir& from = dirs_[src_dir];
  Dir& to = dirs_[dst_dir];
  from.current.erase(src_name);
  to.current[dst_name] = inode;
  if (src_dir == dst_dir) {
    from.pending.push_back(
        DirOp{.type = DirOp::Type::kRename, .name = dst_name, .from = src_name, .inode = inode});
  } else {
    from.pending.push_back(
        DirOp{.type = DirOp::Type::kUnlink, .name = src_name, .from = {}, .inode = inode});
    to.pending.push_back(
        DirOp{.type = DirOp::Type::kLink, .name = dst_name, .from = {}, .inode = inode});
  }
}

IOStatus PowerLossFs::LinkFile(const std::string& src, const std::string& target_name,
                               const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) {
  const bool src_tracked = Tracked(src);
  const bool target_tracked = Tracked(target_name);
  if (!src_tracked && !target_tracked) return target()->LinkFile(src, target_name, options, dbg);
  if (src_tracked != target_tracked) {
    return IOStatus::NotSupported("PowerLossFs: a link into or out of the modeled directory");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kCreate)) return PowerOffError();
  uint64_t inode = 0;
  IOStatus s = InodeOfLocked(src, &inode);
  if (s.ok()) s = target()->LinkFile(src, target_name, options, dbg);
  if (!s.ok()) return s;
  auto [dir, name] = Split(target_name);
  Dir& d = dirs_[dir];
  d.current[name] = inode;
  d.pending.push_back(DirOp{.type = DirOp::Type::kLink, .name = name, .from = {}, .inode = inode});
  return IOStatus::OK();
}

IOStatus PowerLossFs::NewLogger(const std::string& fname, const rocksdb::IOOptions& options,
                                std::shared_ptr<rocksdb::Logger>* result,
                                rocksdb::IODebugContext* dbg) {
  if (!Tracked(fname)) return target()->NewLogger(fname, options, result, dbg);
  std::lock_guard<std::mutex> lock(mu_);
  if (PowerOffLocked(kCreate)) return PowerOffError();
  IOStatus s = target()->NewLogger(fname, options, result, dbg);
  if (!s.ok()) return s;
  uint64_t inode = 0;
  return CreateLocked(fname, /*unseen_writes=*/true, &inode);
}

IOStatus PowerLossFs::ApplyPowerLoss(std::mt19937_64& rng, const LossOptions& options,
                                     LossReport* report) {
  std::lock_guard<std::mutex> lock(mu_);
  if (applied_) return IOStatus::IOError("PowerLossFs: the power loss was already applied");
  cut_ = true;
  applied_ = true;
  *report = LossReport{};
  std::set<uint64_t> survivors;
  std::error_code ec;
  for (auto& [path, dir] : dirs_) {
    // The directory as the disk holds it: its last synced map, and perhaps a prefix of
    // what was done to it since.
    std::map<std::string, uint64_t> entries = dir.durable;
    size_t kept = 0;
    if (options.directory_prefix && !dir.pending.empty()) {
      kept = std::uniform_int_distribution<size_t>(0, dir.pending.size())(rng);
    }
    for (size_t i = 0; i < kept; ++i) {
      const DirOp& op = dir.pending[i];
      switch (op.type) {
        case DirOp::Type::kLink:
          entries[op.name] = op.inode;
          break;
        case DirOp::Type::kUnlink:
          entries.erase(op.name);
          break;
        case DirOp::Type::kRename:
          entries.erase(op.from);
          entries[op.name] = op.inode;
          break;
      }
    }
    report->dir_ops_kept += static_cast<int>(kept);
    report->dir_ops_reverted += static_cast<int>(dir.pending.size() - kept);
    if (!fs::is_directory(path, ec)) continue;  // never created, or removed
    std::vector<fs::path> files;
    for (auto it = fs::directory_iterator(path, ec); !ec && it != fs::end(it); it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    if (ec) return IOStatus::IOError("cannot list " + path + ": " + ec.message());
    for (const fs::path& file : files) {
      if (!fs::remove(file, ec) && ec) {
        return IOStatus::IOError("cannot remove " + file.string() + ": " + ec.message());
      }
    }
    for (const auto& [name, inode] : entries) {
      const std::string to = path + "/" + name;
      if (::link(ShadowOf(inode).c_str(), to.c_str()) != 0) return Errno("cannot restore", to);
      survivors.insert(inode);
      ++report->files_kept;
    }
  }
  for (uint64_t id : survivors) {
    const Inode& inode = inodes_.at(id);
    const std::string shadow = ShadowOf(id);
    const uint64_t real = fs::file_size(shadow, ec);
    if (ec) return IOStatus::IOError("cannot stat " + shadow + ": " + ec.message());
    const uint64_t written = inode.unseen_writes ? real : std::min(inode.written, real);
    const uint64_t synced = std::min(inode.synced, written);
    uint64_t keep = synced;
    if (options.tear && written > synced) {
      // A quarter of the tails is lost whole, a quarter kept whole, half torn anywhere.
      const uint64_t choice = options.always_tear && written - synced > 1024 ? 2 : rng() % 4;
      switch (choice) {
        case 0:
          break;
        case 1:
          keep = written;
          break;
        default:
          keep = synced +
                 (options.always_tear && written - synced > 1024
                      ? std::uniform_int_distribution<uint64_t>(1024, written - synced - 1)(rng)
                      : std::uniform_int_distribution<uint64_t>(0, written - synced)(rng));
          // Over zeros a torn write keeps whole sectors (the model above).
          if (inode.zeros > 0) keep = std::max(synced, keep / 512 * 512);
          break;
      }
      // Over zeros, some torn writes lose pieces anywhere instead: the unsynced bytes are
      // cut into units of a sector, a page or a WAL block (the unit that holds the end of
      // the synced bytes included, for its unsynced part), each lost with odds of one in
      // two, zeros standing in its place.
      int sectors_lost = 0;
      if (choice >= 2 && inode.zeros > 0 && written - synced > 1 &&
          (options.always_tear ? options.scatter : rng() % 4 == 0)) {
        keep = written;
        static constexpr uint64_t kUnits[] = {512, 4096, 32768};
        const uint64_t unit = kUnits[rng() % 3];
        std::FILE* f = std::fopen(shadow.c_str(), "r+b");
        if (f == nullptr) return Errno("cannot open", shadow);
        const std::string zeros(unit, '\0');
        for (uint64_t start = synced / unit * unit; start < written; start += unit) {
          if (rng() % 2 != 0) continue;
          const uint64_t from = std::max(start, synced);
          const uint64_t to = std::min(start + unit, written);
          if (std::fseek(f, static_cast<long>(from), SEEK_SET) != 0 ||
              std::fwrite(zeros.data(), 1, to - from, f) != to - from) {
            std::fclose(f);
            return Errno("cannot write zeros into", shadow);
          }
          ++sectors_lost;
        }
        if (std::fclose(f) != 0) return Errno("cannot write zeros into", shadow);
      }
      if (keep == written && sectors_lost == 0) {
        ++report->unsynced_tails_kept;
      } else if (keep > synced) {
        ++report->torn_files;
        if (inode.wal) ++report->torn_wal_files;
        if (inode.wal && (inode.zeros > keep || sectors_lost > 0)) ++report->torn_in_zeros;
        if (inode.wal && sectors_lost > 0) ++report->scattered_in_zeros;
      }
    }
    if (keep < real) {
      fs::resize_file(shadow, keep, ec);
      if (ec) return IOStatus::IOError("cannot truncate " + shadow + ": " + ec.message());
      ++report->files_truncated;
      report->bytes_dropped += static_cast<int64_t>(real - keep);
    }
    if (inode.zeros > keep) {
      // The zeros the file was reused from, past what it kept (resize_file fills with zeros).
      fs::resize_file(shadow, inode.zeros, ec);
      if (ec) return IOStatus::IOError("cannot extend " + shadow + ": " + ec.message());
    }
  }
  fs::remove_all(shadow_, ec);
  if (ec) return IOStatus::IOError("cannot remove " + shadow_ + ": " + ec.message());
  return IOStatus::OK();
}

namespace {

class PowerLossClock final : public rocksdb::SystemClockWrapper {
 public:
  PowerLossClock(const std::shared_ptr<rocksdb::SystemClock>& target,
                 std::shared_ptr<PowerLossFs> fs)
      : SystemClockWrapper(target), fs_(std::move(fs)) {}
  static const char* kClassName() { return "CaseworkPowerLossClock"; }
  const char* Name() const override { return kClassName(); }
  void SleepForMicroseconds(int micros) override {
    if (!fs_->IsCut()) target_->SleepForMicroseconds(micros);
  }

 private:
  const std::shared_ptr<PowerLossFs> fs_;
};

class PowerLossEnv final : public rocksdb::EnvWrapper {
 public:
  explicit PowerLossEnv(const std::shared_ptr<PowerLossFs>& fs)
      : EnvWrapper(rocksdb::NewCompositeEnv(fs)) {
    system_clock_ = std::make_shared<PowerLossClock>(system_clock_, fs);
  }
  static const char* kClassName() { return "CaseworkPowerLossEnv"; }
  const char* Name() const override { return kClassName(); }
  void SleepForMicroseconds(int micros) override { system_clock_->SleepForMicroseconds(micros); }
};

}  // namespace

std::unique_ptr<rocksdb::Env> NewPowerLossEnv(const std::shared_ptr<PowerLossFs>& fs) {
  return std::make_unique<PowerLossEnv>(fs);
}

}  // namespace casework::store::testing

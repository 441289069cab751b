#include "store/zero_filled_wal.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace casework::store {
namespace {

constexpr uint64_t kChunkBytes = 1u << 20;

bool IsDigits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

std::string WithoutTrailingSlash(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// While a spare is prepared under load: the write-back of each MiB is started at once,
// and the next waits this long (at most 512 MiB/s), so that the spare does not queue 64
// MiB in front of a WAL sync.
constexpr absl::Duration kChunkPause = absl::Milliseconds(2);

}  // namespace

// A WAL file made from a spare: counts what is written to it (GetFileSize).
class ZeroFilledWalFs::WalFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  WalFile(ZeroFilledWalFs* fs, std::string path, std::shared_ptr<Written> written,
          std::unique_ptr<rocksdb::FSWritableFile> target)
      : FSWritableFileOwnerWrapper(std::move(target)),
        fs_(fs),
        path_(std::move(path)),
        written_(std::move(written)) {}
  ~WalFile() override { fs_->Forget(path_, written_.get()); }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, dbg);
    if (s.ok()) Grow(data.size(), nullptr);
    return s;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Append(data, options, info, dbg);
    if (s.ok()) Grow(data.size(), nullptr);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
    if (s.ok()) Grow(data.size(), &offset);
    return s;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
    if (s.ok()) Grow(data.size(), &offset);
    return s;
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->Truncate(size, options, dbg);
    if (s.ok()) {
      absl::MutexLock lock(&written_->mu);
      written_->bytes = size;
    }
    return s;
  }
  // The zeros past what was written are cut off as the file is closed (a closed WAL file
  // is read again only at recovery and by backups; RocksDB's POSIX writer trims only what
  // it preallocated itself). Not made durable: zeros that come back after a crash read as
  // the end of the file.
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    uint64_t bytes = 0;
    {
      absl::MutexLock lock(&written_->mu);
      bytes = written_->bytes;
    }
    rocksdb::IOStatus s = target()->Truncate(bytes, options, dbg);
    rocksdb::IOStatus closed = target()->Close(options, dbg);
    if (s.ok()) s = closed;
    fs_->Forget(path_, written_.get());
    return s;
  }

 private:
  void Grow(uint64_t bytes, const uint64_t* offset) {
    absl::MutexLock lock(&written_->mu);
    written_->bytes =
        offset == nullptr ? written_->bytes + bytes : std::max(written_->bytes, *offset + bytes);
  }

  ZeroFilledWalFs* const fs_;
  const std::string path_;
  const std::shared_ptr<Written> written_;
};

ZeroFilledWalFs::ZeroFilledWalFs(const std::shared_ptr<rocksdb::FileSystem>& target,
                                 std::string dir, uint64_t spare_bytes, uint64_t keep_free_bytes)
    : FileSystemWrapper(target),
      dir_(WithoutTrailingSlash(std::move(dir))),
      spare_path_(absl::StrCat(dir_, "/", kSpareName)),
      temp_path_(absl::StrCat(dir_, "/", kSpareTempName)),
      spare_bytes_(std::max<uint64_t>(spare_bytes, kChunkBytes)),
      keep_free_bytes_(keep_free_bytes) {}

ZeroFilledWalFs::~ZeroFilledWalFs() { Stop(); }

void ZeroFilledWalFs::Stop() {
  {
    absl::MutexLock lock(&mu_);
    exit_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ZeroFilledWalFs::ReleaseSpare() {
  absl::MutexLock lock(&mu_);
  if (!spare_ready_) return;
  // Under the lock: the file is this object's until a WAL file takes it (NewWritableFile
  // decides that under the lock), and no spare is written while one is ready.
  spare_ready_ = false;
  wanted_ = false;
  (void)target()->DeleteFile(spare_path_, rocksdb::IOOptions(), nullptr);
}

rocksdb::IOStatus ZeroFilledWalFs::RemoveSpares(rocksdb::FileSystem* fs, const std::string& dir) {
  rocksdb::IOOptions io;
  for (const char* name : {kSpareName, kSpareTempName}) {
    const std::string path = absl::StrCat(WithoutTrailingSlash(dir), "/", name);
    rocksdb::IOStatus s = fs->FileExists(path, io, nullptr);
    if (s.IsNotFound()) continue;
    if (s.ok()) s = fs->DeleteFile(path, io, nullptr);
    if (!s.ok()) return s;
  }
  return rocksdb::IOStatus::OK();
}

absl::Status ZeroFilledWalFs::Start() {
  rocksdb::IOOptions io;
  if (rocksdb::IOStatus s = RemoveSpares(target(), dir_); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("removing a spare WAL file left from before in ", dir_, ": ", s.ToString()));
  }
  if (rocksdb::IOStatus s = target()->NewDirectory(dir_, io, &dir_handle_, nullptr); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("opening ", dir_, ": ", s.ToString()));
  }
  (void)PrepareSpare(/*paced=*/false);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

bool ZeroFilledWalFs::IsWalFile(const std::string& fname) const {
  constexpr std::string_view kSuffix = ".log";
  const size_t slash = fname.rfind('/');
  if (slash == std::string::npos) return false;
  if (WithoutTrailingSlash(fname.substr(0, slash)) != dir_) return false;
  std::string_view name = std::string_view(fname).substr(slash + 1);
  if (!name.ends_with(kSuffix)) return false;
  name.remove_suffix(kSuffix.size());
  return IsDigits(name);
}

rocksdb::IOStatus ZeroFilledWalFs::NewWritableFile(const std::string& fname,
                                                   const rocksdb::FileOptions& options,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                   rocksdb::IODebugContext* dbg) {
  if (!IsWalFile(fname)) return target()->NewWritableFile(fname, options, result, dbg);
  bool take = false;
  {
    absl::MutexLock lock(&mu_);
    take = spare_ready_ && !exit_;
    spare_ready_ = false;
    // The next spare is asked for once this one has its new name (below). And the spare
    // is renamed before it is opened: POSIX ReuseWritableFile opens the old name and then
    // renames it, and a spare renamed over that name in between would leave the WAL
    // written into a file no name points to.
    wanted_ = !take;
  }
  rocksdb::IOStatus s;
  if (take) {
    // Renames the spare to `fname` and opens it for writing from its start, without
    // truncating it: RocksDB's writes overwrite zeros.
    std::unique_ptr<rocksdb::FSWritableFile> file;
    s = target()->RenameFile(spare_path_, fname, rocksdb::IOOptions(), dbg);
    // A spare whose rename failed is in an unknown state; left under its own name it would
    // not be ready, and so never given back on a full disk. Removed before the next spare
    // is asked for (below), which takes that name.
    if (!s.ok()) (void)target()->DeleteFile(spare_path_, rocksdb::IOOptions(), dbg);
    if (s.ok()) s = target()->ReuseWritableFile(fname, fname, options, &file, dbg);
    // The rename made durable now, whatever RocksDB's own directory sync assumes of a new
    // file (on some file systems it skips it for one).
    if (s.ok()) s = dir_handle_->Fsync(rocksdb::IOOptions(), dbg);
    {
      absl::MutexLock lock(&mu_);
      wanted_ = true;
    }
    if (s.ok()) {
      auto written = std::make_shared<Written>();
      const std::string path = Normal(fname);
      {
        absl::MutexLock lock(&mu_);
        live_[path] = written;
      }
      *result = std::make_unique<WalFile>(this, path, std::move(written), std::move(file));
      return s;
    }
    if (file != nullptr) (void)file->Close(rocksdb::IOOptions(), dbg);
    // The file under the WAL's name is created afresh below; the next spare replaces this.
  }
  return target()->NewWritableFile(fname, options, result, dbg);
}

rocksdb::IOStatus ZeroFilledWalFs::GetFileSize(const std::string& fname,
                                               const rocksdb::IOOptions& options, uint64_t* size,
                                               rocksdb::IODebugContext* dbg) {
  std::shared_ptr<Written> written;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = live_.find(Normal(fname)); it != live_.end()) written = it->second;
  }
  if (written == nullptr) return target()->GetFileSize(fname, options, size, dbg);
  absl::MutexLock lock(&written->mu);
  *size = written->bytes;
  return rocksdb::IOStatus::OK();
}

std::string ZeroFilledWalFs::Normal(const std::string& fname) const {
  const size_t slash = fname.rfind('/');
  if (slash == std::string::npos) return fname;
  return absl::StrCat(WithoutTrailingSlash(fname.substr(0, slash)), "/", fname.substr(slash + 1));
}

void ZeroFilledWalFs::Forget(const std::string& path, const Written* written) {
  absl::MutexLock lock(&mu_);
  if (auto it = live_.find(path); it != live_.end() && it->second.get() == written) {
    live_.erase(it);
  }
}

rocksdb::IOStatus ZeroFilledWalFs::PrepareSpare(bool paced) {
  rocksdb::IOOptions io;
  uint64_t free_bytes = 0;
  rocksdb::IOStatus s = target()->GetFreeSpace(dir_, io, &free_bytes, nullptr);
  if (s.ok() && free_bytes < spare_bytes_ + keep_free_bytes_) {
    return rocksdb::IOStatus::NoSpace("no room for a spare WAL file");
  }
  rocksdb::FileOptions options;
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->NewWritableFile(temp_path_, options, &file, nullptr);
  if (!s.ok()) return s;
  const std::string zeros(kChunkBytes, '\0');
  for (uint64_t written = 0; s.ok() && written < spare_bytes_; written += kChunkBytes) {
    if (paced && written > 0) {
      (void)file->RangeSync(written - kChunkBytes, kChunkBytes, io, nullptr);
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&exit_), kChunkPause);
    }
    {
      absl::MutexLock lock(&mu_);
      if (exit_) s = rocksdb::IOStatus::Aborted("the log is closing");
    }
    if (s.ok()) s = file->Append(zeros, io, nullptr);
  }
  if (s.ok()) s = file->Fsync(io, nullptr);
  rocksdb::IOStatus closed = file->Close(io, nullptr);
  if (s.ok()) s = closed;
  // The spare's own name needs no directory sync: it is synced when the spare becomes a
  // WAL file (NewWritableFile). Named and ready at once, under the lock, so that
  // ReleaseSpare finds a spare as soon as it has its name.
  if (s.ok()) {
    absl::MutexLock lock(&mu_);
    s = target()->RenameFile(temp_path_, spare_path_, io, nullptr);
    if (s.ok()) spare_ready_ = true;
  }
  if (!s.ok()) (void)target()->DeleteFile(temp_path_, io, nullptr);
  return s;
}

void ZeroFilledWalFs::Run() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &ZeroFilledWalFs::RunHasWork));
    if (exit_) return;
    wanted_ = false;
    mu_.Unlock();
    // A spare that failed is tried again at the next WAL file (wanted_).
    (void)PrepareSpare(/*paced=*/true);
    mu_.Lock();
  }
}

}  // namespace casework::store

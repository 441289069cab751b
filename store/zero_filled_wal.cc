#include "store/zero_filled_wal.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

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

}  // namespace

ZeroFilledWalFs::ZeroFilledWalFs(const std::shared_ptr<rocksdb::FileSystem>& target,
                                 std::string dir, uint64_t spare_bytes, uint64_t keep_free_bytes)
    : FileSystemWrapper(target),
      dir_(WithoutTrailingSlash(std::move(dir))),
      spare_path_(absl::StrCat(dir_, "/", kSpareName)),
      temp_path_(absl::StrCat(dir_, "/", kSpareTempName)),
      spare_bytes_(std::max<uint64_t>(spare_bytes, kChunkBytes)),
      keep_free_bytes_(keep_free_bytes) {}

ZeroFilledWalFs::~ZeroFilledWalFs() {
  {
    absl::MutexLock lock(&mu_);
    exit_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status ZeroFilledWalFs::Start() {
  rocksdb::IOOptions io;
  for (const std::string& path : {spare_path_, temp_path_}) {
    rocksdb::IOStatus s = target()->FileExists(path, io, nullptr);
    if (s.IsNotFound()) continue;
    if (s.ok()) s = target()->DeleteFile(path, io, nullptr);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("removing ", path, " (a spare WAL file left from before): ", s.ToString()));
    }
  }
  rocksdb::IOStatus s = PrepareSpare();
  {
    absl::MutexLock lock(&mu_);
    if (s.ok()) {
      spare_ready_ = true;
    } else {
      ++stats_.spares_failed;
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

ZeroFilledWalFs::Stats ZeroFilledWalFs::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
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
    wanted_ = true;
  }
  rocksdb::IOStatus s;
  if (take) {
    // Renames the spare to `fname` and opens it for writing from its start, without
    // truncating it: RocksDB's writes overwrite zeros.
    s = target()->ReuseWritableFile(fname, spare_path_, options, result, dbg);
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      ++stats_.wal_files_in_zeros;
      return s;
    }
    // The spare is in an unknown state; the next one replaces it.
  }
  s = target()->NewWritableFile(fname, options, result, dbg);
  absl::MutexLock lock(&mu_);
  if (s.ok()) ++stats_.wal_files_empty;
  return s;
}

rocksdb::IOStatus ZeroFilledWalFs::PrepareSpare() {
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
    {
      absl::MutexLock lock(&mu_);
      if (exit_) s = rocksdb::IOStatus::Aborted("the log is closing");
    }
    if (s.ok()) s = file->Append(zeros, io, nullptr);
  }
  if (s.ok()) s = file->Fsync(io, nullptr);
  rocksdb::IOStatus closed = file->Close(io, nullptr);
  if (s.ok()) s = closed;
  // The rename needs no directory sync of its own: RocksDB syncs the directory before it
  // acknowledges the first synced write to the WAL file the spare becomes.
  if (s.ok()) s = target()->RenameFile(temp_path_, spare_path_, io, nullptr);
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
    rocksdb::IOStatus s = PrepareSpare();
    mu_.Lock();
    if (s.ok()) {
      spare_ready_ = true;
    } else if (!exit_) {
      ++stats_.spares_failed;
    }
  }
}

}  // namespace casework::store

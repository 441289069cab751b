#include "store/info_log.h"

#include <fcntl.h>
#include <rocksdb/env.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace casework::store {
namespace {

// Longest line kept; longer ones are cut (RocksDB's option dumps stay well below).
constexpr size_t kLineBytesMax = 4096;

class InfoLog final : public rocksdb::Logger {
 public:
  InfoLog(std::string path, size_t bytes_max)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL),
        path_(std::move(path)),
        bytes_max_(bytes_max) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!path_.empty()) OpenLocked();
  }
  ~InfoLog() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0) ::close(fd_);
  }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (path_.empty()) return;  // a log that keeps nothing (an inspection writes no file)
    char line[kLineBytesMax];
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm utc{};
    ::gmtime_r(&now.tv_sec, &utc);
    int used = std::snprintf(line, sizeof line, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld ",
                             utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                             utc.tm_min, utc.tm_sec, now.tv_nsec / 1000);
    if (used < 0) return;
    size_t length = static_cast<size_t>(used);
    va_list copy;
    va_copy(copy, ap);
    const int body = std::vsnprintf(line + length, sizeof line - length, format, copy);
    va_end(copy);
    if (body < 0) return;
    length = std::min(length + static_cast<size_t>(body), sizeof line - 2);
    if (line[length - 1] != '\n') line[length++] = '\n';
    Write(line, length);
  }

 private:
  void OpenLocked() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    written_ = 0;
    struct stat st {};
    if (fd_ >= 0 && ::fstat(fd_, &st) == 0) written_ = static_cast<size_t>(st.st_size);
  }

  void Write(const char* data, size_t length) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ < 0 || written_ + length > bytes_max_) {
      // Rotate (or retry an open that failed). Errors leave fd_ < 0: the line is dropped.
      if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
        const std::string old = path_ + ".old";
        (void)::rename(path_.c_str(), old.c_str());
      }
      OpenLocked();
      if (fd_ < 0) return;
    }
    // One write per line (O_APPEND); a short or failed write is dropped, never retried.
    const ssize_t n = ::write(fd_, data, length);
    if (n > 0) written_ += static_cast<size_t>(n);
  }

  const std::string path_;
  const size_t bytes_max_;
  std::mutex mu_;
  int fd_ = -1;
  size_t written_ = 0;
};

}  // namespace

std::shared_ptr<rocksdb::Logger> NewInfoLog(std::string path, size_t bytes_max) {
  return std::make_shared<InfoLog>(std::move(path), bytes_max);
}

}  // namespace casework::store

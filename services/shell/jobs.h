// Long jobs (audit folds, verifications and exports; oversight reports, draws and imports)
// on threads of their own, at most a fixed number at once.
#pragma once

#include <malloc.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace casework::shell {

// glibc's malloc_trim(0): a fold over the whole log frees a few hundred MiB in its
// thread's malloc arena, which the next job, on another thread and arena, would not reuse.
// Not under AddressSanitizer: its allocator replaces glibc's, whose arenas are then first
// set up by malloc_trim itself, and glibc marks them set up before it fills them in, so a
// second thread trimming at that moment walks empty bins (a crash in mtrim, seen in the
// test build with two jobs ending at once). Without the sanitizer the first malloc at
// start-up sets them up.
inline void ReturnFreedMemory() {
#if !defined(__SANITIZE_ADDRESS__)  // as the project's other sanitizer checks
  malloc_trim(0);
#endif
}

// Runs each job on a new thread, at most `max` at once. A job's captures are released
// before its place is, and the destructor waits until every job has ended, so a service
// that declares its runner as its last member (destroyed first) outlives its jobs.
//
// std::mutex and std::condition_variable, not absl::Mutex: the destructor may return,
// and the mutex be destroyed, as soon as the last job unlocks it, which POSIX allows for
// a mutex; absl::Mutex may evaluate a waiter's condition from within the unlocking thread.
class JobRunner {
 public:
  explicit JobRunner(int max) : max_(max) {}
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  ~JobRunner() {
    std::unique_lock<std::mutex> lock(mu_);
    ended_.wait(lock, [this] { return running_ == 0; });
  }

  // Starts `job`, or returns false when `max` jobs are running (or no thread can be made:
  // the caller answers as it does for a full runner, and nothing is left counted).
  bool Start(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (running_ >= max_) return false;
      ++running_;
    }
    try {
      std::thread([this, job = std::move(job)]() mutable {
        job();
        job = nullptr;  // its captures go while the runner (and its owner) still wait
        ReturnFreedMemory();
        std::lock_guard<std::mutex> lock(mu_);
        --running_;
        ended_.notify_all();  // under the lock: the waiter cannot return before this
      }).detach();
    } catch (const std::system_error&) {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      ended_.notify_all();
      return false;
    }
    return true;
  }

  // Jobs started and not yet ended.
  int Running() {
    std::lock_guard<std::mutex> lock(mu_);
    return running_;
  }

 private:
  const int max_;
  std::mutex mu_;
  std::condition_variable ended_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace casework::shell

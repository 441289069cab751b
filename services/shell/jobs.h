// Long jobs (audit folds, verifications and exports; oversight reports, draws and imports)
// on threads of their own, at most a fixed number at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace casework::shell {

// Hands the memory a finished job freed back to the system (jobs.cc).
void ReturnFreedMemory();

// Runs each job on a new thread, at most `max` at once. A job's captures are released
// before its place is, and the destructor waits until every job has ended, so a service
// that declares its runner as its last member (destroyed first) outlives its jobs. A
// place is freed just after the job's function returns: a caller that the job answered
// may, for that moment, still find the runner full (and is told to retry).
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
        {
          std::lock_guard<std::mutex> lock(mu_);
          --running_;
          ended_.notify_all();  // under the lock: the waiter cannot return before this
        }
        // After the place is freed (a trim can take milliseconds), touching nothing of
        // the runner, which may be gone by now.
        ReturnFreedMemory();
      }).detach();
    } catch (...) {  // std::system_error, or std::bad_alloc: nothing left counted
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
      ended_.notify_all();
      return false;
    }
    return true;
  }

  // Jobs started and not yet ended.
  [[nodiscard]] int Running() const {
    std::lock_guard<std::mutex> lock(mu_);
    return running_;
  }

 private:
  const int max_;
  mutable std::mutex mu_;
  std::condition_variable ended_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace casework::shell

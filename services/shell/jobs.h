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
// before its thread lets go of the runner, and the destructor waits until every job's
// thread has, so a service that declares its runner as its last member (destroyed first)
// outlives its jobs.
//
// A job's place is freed when the job calls ReleaseCurrentPlace() on its thread, which
// a job does just before it answers (JobRunner::FinishJob, the job writers' Done): a
// caller that the job answered, and that starts another job at once, then finds the place
// free. Otherwise the place is freed when the job's function returns. A job that frees its
// place before it ends runs beside up to `max` others for that moment (its locals, a
// fold's states say, are freed after its answer).
//
// std::mutex and std::condition_variable, not absl::Mutex: the destructor may return,
// and the mutex be destroyed, as soon as the last job unlocks it, which POSIX allows for
// a mutex; absl::Mutex may evaluate a waiter's condition from within the unlocking thread.
class JobRunner {
  // The job running on a thread, while it runs.
  struct Current {
    JobRunner* runner;
    bool released = false;
    int in_grpc_calls = 0;
  };
  static inline thread_local Current* current_ = nullptr;

 public:
  explicit JobRunner(int max) : max_(max) {}
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  ~JobRunner() {
    std::unique_lock<std::mutex> lock(mu_);
    ended_.wait(lock, [this] { return threads_ == 0; });
  }

  // Starts `job`, or returns false when `max` places are held (or no thread can be made:
  // the caller answers as it does for a full runner, and nothing is left counted).
  bool Start(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (places_ >= max_) return false;
      ++places_;
      ++threads_;
    }
    try {
      std::thread([this, job = std::move(job)]() mutable {
        Current current{.runner = this};
        current_ = &current;
        job();
        job = nullptr;  // its captures go while the runner (and its owner) still wait
        current_ = nullptr;
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!current.released) --places_;
          --threads_;
          ended_.notify_all();  // under the lock: the waiter cannot return before this
        }
        // After the thread let go of the runner (a trim can take milliseconds), touching
        // nothing of it, which may be gone by now.
        ReturnFreedMemory();
      }).detach();
    } catch (...) {  // std::system_error, or std::bad_alloc: nothing left counted
      std::lock_guard<std::mutex> lock(mu_);
      --places_;
      --threads_;
      ended_.notify_all();
      return false;
    }
    return true;
  }

  // Frees the place of the job running on this thread, once; nothing on another thread,
  // nor inside a gRPC call the job makes (InGrpcCall): gRPC may run another call's
  // handler inline there, whose answer is not this job's.
  static void ReleaseCurrentPlace() {
    Current* current = current_;
    if (current == nullptr || current->released || current->in_grpc_calls > 0) return;
    current->released = true;
    std::lock_guard<std::mutex> lock(current->runner->mu_);
    --current->runner->places_;
  }

  // Held by a job around a call into gRPC other than its answer (StartWrite, TryCancel).
  class InGrpcCall {
   public:
    InGrpcCall() : job_(JobRunner::current_) {
      if (job_ != nullptr) ++job_->in_grpc_calls;
    }
    ~InGrpcCall() {
      if (job_ != nullptr) --job_->in_grpc_calls;
    }
    InGrpcCall(const InGrpcCall&) = delete;
    InGrpcCall& operator=(const InGrpcCall&) = delete;

   private:
    Current* job_;
  };

  // A unary call's answer from a job: its place first, then the answer.
  template <typename Reactor, typename Status>
  static void FinishJob(Reactor* reactor, Status status) {
    ReleaseCurrentPlace();
    reactor->Finish(std::move(status));
  }

  // Places held: jobs started whose place is not yet freed.
  [[nodiscard]] int Running() const {
    std::lock_guard<std::mutex> lock(mu_);
    return places_;
  }

 private:
  const int max_;
  mutable std::mutex mu_;
  std::condition_variable ended_;
  int places_ = 0;   // guarded by mu_
  int threads_ = 0;  // jobs' threads that may still touch the runner; guarded by mu_
};

}  // namespace casework::shell

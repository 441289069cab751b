#include "services/shell/serial_worker.h"

#include <utility>

namespace casework::shell {

void SerialWorker::Stop() {
  absl::MutexLock stop(&stop_mu_);
  bool started = false;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    started = started_;
  }
  if (started && thread_.joinable()) thread_.join();
}

void SerialWorker::Post(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < queue_max_) {
      bool running = started_;
      if (!running) {
        try {
          thread_ = std::thread([this] { Loop(); });
          started_ = running = true;
        } catch (...) {
          // No thread (resources exhausted): this task runs on its caller, and the next
          // Post tries again.
        }
      }
      if (running) {
        queue_.push_back(std::move(task));
        return;
      }
    }
  }
  std::move(task)();
}

void SerialWorker::Loop() {
  for (;;) {
    std::deque<Task> tasks;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SerialWorker* self)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      tasks.swap(queue_);
    }
    for (Task& task : tasks) std::move(task)();
  }
}

}  // namespace casework::shell

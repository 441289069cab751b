// Work handed off the log's commit thread (reads and signatures that must not hold up the
// next batch's answers): run in order on one thread of its own.
#pragma once

#include <cstddef>
#include <deque>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace casework::shell {

class SerialWorker {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // The thread starts with the first task. Beyond `queue_max` waiting tasks, Post runs
  // the task on the calling thread (slower for that caller, never lost or unbounded).
  explicit SerialWorker(size_t queue_max = 4096) : queue_max_(queue_max) {}
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  // Runs what is queued, then stops; a task posted meanwhile runs on its caller.
  ~SerialWorker();

  void Post(Task task);

 private:
  void Loop();

  const size_t queue_max_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // started under mu_, joined by the destructor
};

}  // namespace casework::shell

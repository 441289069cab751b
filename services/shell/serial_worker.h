// Work handed off the log's commit thread (reads and signatures that must not hold up the
// next batch's answers): run on one thread of its own, in the order posted.
//
// Except: beyond `queue_max` waiting tasks (the worker may hold as many again, taken and
// not yet run), after Stop, or when no thread can be made, Post runs the task on the
// caller's thread at once, beside the worker's and ahead of what is queued. So a task
// must not wait for a later task of the same worker, and the tasks' order must not
// matter to their callers (answers to separate calls, here).
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

  // The thread starts with the first task.
  explicit SerialWorker(size_t queue_max = 4096) : queue_max_(queue_max) {}
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;
  ~SerialWorker() { Stop(); }

  void Post(Task task);

  // Runs what is queued and stops the thread; later tasks run on their callers.
  // Idempotent.
  void Stop();

 private:
  void Loop();

  const size_t queue_max_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;   // started under mu_; joined by the first Stop
  absl::Mutex stop_mu_;  // one Stop joins
};

}  // namespace casework::shell

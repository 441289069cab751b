// A one-shot gate for tests: opened once, from any thread; waiters block until then.
#pragma once

#include <future>
#include <utility>

#include "absl/synchronization/mutex.h"

namespace casework::shell::testing {

class Gate {
 public:
  void Open() { opened_.set_value(); }
  void Wait() { future_.wait(); }

 private:
  std::promise<void> opened_;
  std::shared_future<void> future_ = opened_.get_future().share();
};

// Holds `mu` exclusively from construction until Release() or destruction (whichever
// comes first), on the constructing thread.
class HeldExclusively {
 public:
  explicit HeldExclusively(absl::Mutex* mu) : mu_(mu) { mu_->WriterLock(); }
  ~HeldExclusively() { Release(); }
  HeldExclusively(const HeldExclusively&) = delete;
  HeldExclusively& operator=(const HeldExclusively&) = delete;
  void Release() {
    if (std::exchange(held_, false)) mu_->WriterUnlock();
  }

 private:
  absl::Mutex* mu_;
  bool held_ = true;
};

}  // namespace casework::shell::testing

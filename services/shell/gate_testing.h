// A one-shot gate for tests: opened once, from any thread; waiters block until then.
#pragma once

#include <future>

namespace casework::shell::testing {

class Gate {
 public:
  void Open() { opened_.set_value(); }
  void Wait() { future_.wait(); }

 private:
  std::promise<void> opened_;
  std::shared_future<void> future_ = opened_.get_future().share();
};

}  // namespace casework::shell::testing

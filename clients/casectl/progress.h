// A progress bar for long work (verify, export, verify-export): done/total, rate and time
// left, redrawn at most 10 times a second on stderr. Silent unless stdout and stderr are
// terminals and JSON output was not asked for, so scripts and pipes see nothing of it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace casework::client {

class Progress {
 public:
  // `enabled`: the caller's wish (false with --json); the terminal test is added here.
  Progress(bool enabled, std::string label);
  ~Progress();
  // `total` 0: unknown (no bar, no time left).
  void Update(int64_t done, int64_t total, const std::string& phase = "");
  // Clears the line.
  void Finish();

  [[nodiscard]] bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  std::string label_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::string phase_;
  int64_t phase_start_done_ = 0;
  std::chrono::steady_clock::time_point phase_start_;
  bool drawn_ = false;
};

// "1.2M", "350k", "999".
[[nodiscard]] std::string HumanCount(double n);

// One line of the bar: `label`, `phase`, then with a `total` (> 0) a 30-wide bar, the
// percentage and done/total, the rate, and the time left while `done` < `total` and the
// rate is positive. The figures come from a server and are not trusted to stay in range:
// the bar and the percentage are clamped to 0-100%.
[[nodiscard]] std::string ProgressLine(const std::string& label, const std::string& phase,
                                       int64_t done, int64_t total, double rate);

}  // namespace casework::client

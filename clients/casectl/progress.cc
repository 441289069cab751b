#include "clients/casectl/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace casework::client {

std::string HumanCount(double n) {
  char buf[32];
  if (n >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buf, sizeof buf, "%.0fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  }
  return buf;
}

std::string ProgressLine(const std::string& label, const std::string& phase, int64_t done,
                         int64_t total, double rate) {
  std::string line = label;
  if (!phase.empty()) line += " " + phase;
  if (total > 0) {
    constexpr int kWidth = 30;
    // Clamped: a server's figures are not trusted to stay in range.
    const double fraction =
        std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    const int filled = static_cast<int>(fraction * kWidth);
    line += " [" + std::string(filled, '#') + std::string(kWidth - filled, '-') + "] ";
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3.0f%% ", fraction * 100);
    line += pct;
    line += HumanCount(static_cast<double>(done)) + "/" + HumanCount(static_cast<double>(total));
  } else {
    line += " " + HumanCount(static_cast<double>(done));
  }
  line += "  " + HumanCount(rate) + "/s";
  if (total > 0 && rate > 0 && done < total) {
    const int64_t left = static_cast<int64_t>(static_cast<double>(total - done) / rate);
    char eta[32];
    std::snprintf(eta, sizeof eta, "  %lld:%02lld left", static_cast<long long>(left / 60),
                  static_cast<long long>(left % 60));
    line += eta;
  }
  return line;
}

Progress::Progress(bool enabled, std::string label)
    : enabled_(enabled && isatty(STDOUT_FILENO) == 1 && isatty(STDERR_FILENO) == 1),
      label_(std::move(label)),
      start_(std::chrono::steady_clock::now()),
      phase_start_(start_) {}

Progress::~Progress() { Finish(); }

void Progress::Update(int64_t done, int64_t total, const std::string& phase) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (phase != phase_) {
    phase_ = phase;
    phase_start_ = now;
    phase_start_done_ = done;
  }
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total) return;
  last_draw_ = now;
  drawn_ = true;
  const double seconds = std::chrono::duration<double>(now - phase_start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done - phase_start_done_) / seconds : 0;
  const std::string line = ProgressLine(label_, phase_, done, total, rate);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void Progress::Finish() {
  if (!enabled_ || !drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace casework::client

// The event stream's counters (EventServiceImpl::counters()), read by tests and rendered
// in the metrics.
#pragma once

#include <atomic>
#include <cstdint>

namespace casework::shell {

// Counters for tests and metrics.
struct WatchCounters {
  std::atomic<int64_t> watches{0};         // open now
  std::atomic<int64_t> messages_sent{0};   // written to clients
  std::atomic<int64_t> bytes_sent{0};      // of those messages
  std::atomic<int64_t> messages_ready{0};  // prepared and waiting for the write slot, now
  std::atomic<int64_t> bytes_buffered{0};  // bytes of messages in flight or prepared, now
  std::atomic<int64_t> bytes_buffered_peak{0};
  std::atomic<int64_t> read_aheads_withheld{0};    // writes a watch did not read ahead behind
  std::atomic<int64_t> messages_cut_to_budget{0};  // messages built under a smaller cap
  std::atomic<int64_t> catch_up_bytes{0};          // charged to watches catching up, in all
  std::atomic<int64_t> catch_up_throttled{0};      // times a watch waited for the catch-up rate
};

}  // namespace casework::shell

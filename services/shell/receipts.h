// Append receipts: the signed checkpoint that includes a command's events and the
// inclusion proof of its last event, so an integrator holds proof of what was recorded.
//
// Issued after the append is durable, on the issuer's own thread (proof reads and a
// signature must not hold up the log's commit thread); when its queue is full the work
// runs on the calling thread instead. A command that did not ask pays nothing.
#pragma once

#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "casework/v1/case_service.pb.h"
#include "casework/v1/command.pb.h"
#include "grpcpp/support/status.h"
#include "services/shell/serial_worker.h"
#include "store/rocks_event_log.h"

namespace casework::shell {

// True when the command's request sets want_receipt.
[[nodiscard]] bool WantsReceipt(const casework::v1::Command& command);

class ReceiptIssuer {
 public:
  using Done = absl::AnyInvocable<void(grpc::Status) &&>;

  explicit ReceiptIssuer(store::RocksEventLog* log, size_t queue_max = 4096)
      : log_(log), worker_(queue_max) {}
  // Issues what is queued, then stops.
  ~ReceiptIssuer() = default;

  // Fills `receipt` for the committed event at `position` under the latest signed
  // checkpoint, then runs `done` (OK, or the store's error). `receipt` must stay alive
  // until then.
  void Issue(int64_t position, casework::v1::Receipt* receipt, Done done);

  // Issues what is queued, then issues any later receipt on its caller's thread. Call
  // before the log closes; the destructor does it too.
  void Stop() { worker_.Stop(); }

 private:
  void Run(int64_t position, casework::v1::Receipt* receipt, Done done);

  store::RocksEventLog* log_;
  SerialWorker worker_;  // last: destroyed first; the log must still be open (Stop)
};

}  // namespace casework::shell

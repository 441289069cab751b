// The server's grpc.health.v1 status follows the log's write mode: NOT_SERVING while the
// log is read-only until a restart (a write failed: only a restart, after the operator's
// look, makes it take appends again), SERVING otherwise (a full disk resumes by itself,
// and reads are served meanwhile). At shutdown it turns NOT_SERVING for good before the
// server drains, so that health watchers and load balancers see the server going.
#pragma once

#include "absl/synchronization/mutex.h"
#include "grpcpp/health_check_service_interface.h"
#include "store/rocks_event_log.h"

namespace casework::shell {

class HealthFollower {
 public:
  // The server's health service, once it is built; takes the mode seen so far.
  void Attach(grpc::HealthCheckServiceInterface* health);
  // From the log's write-state listener (any thread).
  void OnWriteState(const store::RocksEventLog::WriteState& state);
  // NOT_SERVING for good; the health service is not touched afterwards.
  void Shutdown();

 private:
  void ApplyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace casework::shell

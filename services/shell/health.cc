#include "services/shell/health.h"

namespace casework::shell {

void HealthFollower::Attach(grpc::HealthCheckServiceInterface* health) {
  absl::MutexLock lock(&mu_);
  health_ = health;
  ApplyLocked();
}

void HealthFollower::OnWriteState(const store::RocksEventLog::WriteState& state) {
  absl::MutexLock lock(&mu_);
  failed_ = state.mode == store::RocksEventLog::WriteState::Mode::kFailed;
  ApplyLocked();
}

void HealthFollower::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (health_ != nullptr) health_->Shutdown();
  health_ = nullptr;
}

void HealthFollower::ApplyLocked() {
  if (health_ != nullptr) health_->SetServingStatus(!failed_);
}

}  // namespace casework::shell

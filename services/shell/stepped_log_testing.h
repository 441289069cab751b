// A store::EventLog that reads through to another and can run a step between two reads
// of one call, for tests of the reads' order.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/event_log.h"

namespace casework::shell::testing {

// The log, read through: after a FindRequest, a GetProjection, a ReadStream or a
// StreamVersion, the step set for it (when set) runs once. Lets a test put another call's commit
// exactly between two reads of one call, or hold a read up. Set a step before the calls that may
// run it (steps are not guarded). PositionOf is the EventLog's default, which reads through
// ReadStream and so runs its step.
class SteppedLog final : public store::EventLog {
 public:
  explicit SteppedLog(store::EventLog* log) : log_(log) {}

  std::function<void()> after_find_request;
  std::function<void()> after_get_projection;
  std::function<void()> after_read_stream;
  std::function<void()> after_stream_version;

  void AppendAsync(store::AppendRequest request, AppendCallback done) override {
    log_->AppendAsync(std::move(request), std::move(done));
  }
  store::ReadToken TakeReadToken() const override { return log_->TakeReadToken(); }
  absl::StatusOr<int64_t> StreamVersion(std::string_view stream) override {
    auto version = log_->StreamVersion(stream);
    if (auto step = std::exchange(after_stream_version, nullptr)) step();
    return version;
  }
  absl::StatusOr<std::vector<store::StoredEvent>> ReadStream(std::string_view stream,
                                                             int64_t from_version,
                                                             size_t limit) override {
    auto events = log_->ReadStream(stream, from_version, limit);
    if (auto step = std::exchange(after_read_stream, nullptr)) step();
    return events;
  }
  absl::StatusOr<std::vector<store::StoredEvent>> ReadRange(int64_t from_position,
                                                            size_t limit) override {
    return log_->ReadRange(from_position, limit);
  }
  int64_t Size() const override { return log_->Size(); }
  absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view table,
                                                           std::string_view key) override {
    auto value = log_->GetProjection(table, key);
    if (auto step = std::exchange(after_get_projection, nullptr)) step();
    return value;
  }
  absl::Status ScanProjection(
      std::string_view table, std::string_view start_key, size_t limit,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) override {
    return log_->ScanProjection(table, start_key, limit, visit);
  }
  absl::StatusOr<std::optional<store::AppendResult>> FindRequest(
      std::string_view stream, std::string_view request_id) override {
    auto found = log_->FindRequest(stream, request_id);
    if (auto step = std::exchange(after_find_request, nullptr)) step();
    return found;
  }
  void SetCommitListener(std::function<void(int64_t size)> listener) override {
    log_->SetCommitListener(std::move(listener));
  }

 private:
  store::EventLog* log_;
};

}  // namespace casework::shell::testing

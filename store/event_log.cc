#include "store/event_log.h"

#include <optional>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/synchronization/notification.h"

namespace casework::store {

absl::StatusOr<int64_t> EventLog::PositionOf(std::string_view stream, int64_t version) {
  auto events = ReadStream(stream, version, 1);
  if (!events.ok()) return events.status();
  if (events->empty() || events->front().version != version) {
    return absl::NotFoundError("the stream has no such version");
  }
  return events->front().position;
}

absl::StatusOr<AppendResult> EventLog::Append(AppendRequest request) {
  // The callback runs on another thread (or inline for an immediate refusal); the
  // notification orders the write of `result` before its read.
  absl::Notification done;
  std::optional<absl::StatusOr<AppendResult>> result;
  request.may_block = true;  // this thread waits for the answer anyway
  AppendAsync(std::move(request), [&](absl::StatusOr<AppendResult> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return *std::move(result);
}

std::string RefusalReason(const absl::Status& status) {
  auto reason =
      status.GetPayload(absl::string_view(kRefusalPayloadUrl.data(), kRefusalPayloadUrl.size()));
  return reason.has_value() ? std::string(*reason) : std::string();
}

}  // namespace casework::store

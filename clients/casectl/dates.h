// Dates as people type them on casectl's command line. A bare date is a day in the local
// time zone of the machine casectl runs on (TZ, e.g. Asia/Shanghai), as every time casectl
// prints is; an RFC 3339 time names its own offset.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace casework::client {

namespace internal {
// `text` as an RFC 3339 time, or as a day: its first second, or its last with `last_second`.
inline absl::StatusOr<google::protobuf::Timestamp> ParseDay(const std::string& text,
                                                            bool last_second) {
  absl::Time t;
  std::string err;
  absl::CivilDay day;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    if (text.size() != 10 || !absl::ParseCivilTime(text, &day)) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not a date (YYYY-MM-DD) or an RFC 3339 time ",
                       "(2026-03-01T12:00:00+08:00) 日期格式应为 YYYY-MM-DD"));
    }
    t = last_second ? absl::FromCivil(absl::CivilSecond(day + 1) - 1, absl::LocalTimeZone())
                    : absl::FromCivil(day, absl::LocalTimeZone());
  }
  google::protobuf::Timestamp ts;
  const absl::Duration since_epoch = t - absl::UnixEpoch();
  ts.set_seconds(absl::ToInt64Seconds(absl::Floor(since_epoch, absl::Seconds(1))));
  ts.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(since_epoch - absl::Seconds(ts.seconds()))));
  return ts;
}
}  // namespace internal

// "YYYY-MM-DD" (the start of that day, local time) or an RFC 3339 time.
inline absl::StatusOr<google::protobuf::Timestamp> ParseDate(const std::string& text) {
  return internal::ParseDay(text, false);
}

// A deadline: "YYYY-MM-DD" means by the end of that day (23:59:59 local time), so a case
// is not overdue on its deadline's day; or an RFC 3339 time.
inline absl::StatusOr<google::protobuf::Timestamp> ParseDeadline(const std::string& text) {
  return internal::ParseDay(text, true);
}

}  // namespace casework::client

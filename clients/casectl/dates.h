// Dates as people type them on casectl's command line.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace casework::client {

// "YYYY-MM-DD" (midnight UTC) or an RFC 3339 time; kInvalidArgument otherwise.
inline absl::StatusOr<google::protobuf::Timestamp> ParseDate(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
      absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    google::protobuf::Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(t));
    return ts;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a date (YYYY-MM-DD) or an RFC 3339 time"));
}

}  // namespace casework::client

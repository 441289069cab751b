// The reason code of a refusal, as tests read it back from the status details.
#pragma once

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace casework::shell::testing {

// The reason in a status's google.rpc.ErrorInfo, or "" when it has none.
inline std::string ReasonOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

// The field a refusal names (the "field" of its google.rpc.ErrorInfo's metadata), or "".
inline std::string FieldOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (!any.UnpackTo(&info)) continue;
    auto field = info.metadata().find("field");
    return field == info.metadata().end() ? "" : field->second;
  }
  return "";
}

}  // namespace casework::shell::testing

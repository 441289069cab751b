// Request fingerprints: a retry that reuses a request id must be the same request.
#pragma once

#include <string>

#include "google/protobuf/message.h"

namespace casework::shell {

// SHA-256 (32 bytes) of the request's deterministic serialization (map entries in key
// order), so that equal requests have equal fingerprints. Stored with the request id in
// the log and compared on every retry, also after a restart: the bytes hashed must never
// change for a given request.
[[nodiscard]] std::string RequestFingerprint(const google::protobuf::Message& request);

}  // namespace casework::shell

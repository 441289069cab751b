// The request id each casectl command sends, kept so that a failure can name it.
#pragma once

#include <string>

#include "clients/client.h"

namespace casework::client {

namespace internal {
inline std::string& SentRequestId() {
  static std::string id;  // casectl runs one command per process
  return id;
}
}  // namespace internal

// The request id to send: `given` (--request-id) when set, else a new random one. Either
// way it is remembered, so that when the outcome is unknown (no answer in time, the
// connection lost) the error can say which id retries the command safely.
inline std::string CommandRequestId(const std::string& given) {
  internal::SentRequestId() = given.empty() ? NewRequestId() : given;
  return internal::SentRequestId();
}

// The id of the command sent last; empty when none was sent.
inline const std::string& SentRequestId() { return internal::SentRequestId(); }

}  // namespace casework::client

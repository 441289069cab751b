// The limits caseworkd puts on every connection and call, so that no client can take
// more than its share: message and metadata sizes, streams per connection, handshake
// time, keepalive abuse (ping strikes), idle and aged connections, and a memory and
// thread quota for the whole server. docs/security.md explains each value and what
// they do not cover (Debian's gRPC 1.51 and HTTP/2 rapid reset).
#pragma once

#include <cstdint>

#include "grpcpp/server_builder.h"

namespace casework::shell {

struct ServerLimits {
  // The largest request accepted. Our largest legal request is far smaller (a few text
  // fields of at most 16 KiB each and lists of at most 32 people: under 128 KiB); bigger
  // messages are refused with RESOURCE_EXHAUSTED before they are parsed.
  int receive_message_bytes_max = 256 * 1024;
  // The largest response sent (a page of events or cases).
  int send_message_bytes_max = 16 * 1024 * 1024;
  // Request metadata (headers) per call.
  int metadata_bytes_max = 8 * 1024;
  // Concurrent calls (HTTP/2 streams) per connection.
  int concurrent_streams_max = 100;
  // A connection must finish its TLS handshake within this time.
  int handshake_timeout_ms = 10'000;
  // Clients may ping without data at most this often; more often is a strike.
  int min_ping_interval_without_data_ms = 30'000;
  // Strikes before the connection is closed (GOAWAY ENHANCE_YOUR_CALM).
  int ping_strikes_max = 2;
  // The server pings an idle transport after this long, and drops it when no answer
  // comes within the timeout.
  int keepalive_time_ms = 60'000;
  int keepalive_timeout_ms = 20'000;
  // A connection without calls for this long is closed.
  int connection_idle_ms_max = 5 * 60'000;
  // Any connection is asked to go away after this long (clients reconnect; long watches
  // resume from their position), with this grace for calls in flight.
  int connection_age_ms_max = 30 * 60'000;
  int connection_age_grace_ms = 30'000;
  // Memory for the transport's buffers, and threads for callbacks, across all clients.
  int64_t memory_quota_bytes = int64_t{512} * 1024 * 1024;
  int threads_max = 64;
};

// Sets every limit on `builder` (before BuildAndStart).
void ApplyServerLimits(const ServerLimits& limits, grpc::ServerBuilder* builder);

}  // namespace casework::shell

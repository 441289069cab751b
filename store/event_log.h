// The event log: an append-only, tamper-evident sequence of opaque event bytes.
//
// The log knows bytes, streams, positions, versions and hashes; it knows nothing of the
// rules. Implementations: the embedded RocksDB log (rocks_event_log.h) and, later, a
// replicated backend. Nothing of RocksDB appears in this interface.
//
// Guarantees of every implementation:
//  - One global, gapless position per event (0, 1, 2, ...); one version per stream
//    (1, 2, 3, ...). Nothing is ever updated or deleted.
//  - An append is atomic: all of its events and projection writes, or none.
//  - An append whose `done` callback saw OK is durable (survives kill -9 and power loss).
//  - A repeated (stream, request_id) returns the first append's result with
//    `replayed = true` and appends nothing, also after a restart.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace casework::store {

using Hash = std::array<uint8_t, 32>;

// A write to a projection (read model), applied in the same atomic batch as the events.
// Projections are named tables of sorted keys; they may be dropped and rebuilt.
struct ProjectionWrite {
  enum class Op : uint8_t {
    kPut,       // table[key] = value
    kDelete,    // erase table[key]
    kAddInt64,  // table[key] += delta (a counter; absent counts as 0)
  };
  Op op = Op::kPut;
  std::string table;
  std::string key;
  std::string value;
  int64_t delta = 0;
};

// What the log had committed when a caller began to read from it
// (EventLog::TakeReadToken). An append that carries it lets the log trust what the caller
// read after taking it (the stream's version; that its request id was not there) instead
// of reading it again on its one sequencer thread, as long as the log can tell that
// nothing was appended to the stream since.
struct ReadToken {
  uint64_t epoch = 0;  // 0: no token
  int64_t size = 0;    // the number of committed events when it was taken
};

// One command's worth of events for one stream.
struct AppendRequest {
  // The stream, e.g. "cases/c-0001".
  std::string stream;
  // The version the stream must be at: 0 when it must not exist yet.
  int64_t expected_version = 0;
  // Serialized events, to become versions expected_version+1, +2, ...; at least one.
  std::vector<std::string> events;
  // Idempotency key, unique per stream.
  std::string request_id;
  // A digest of the request's content, stored with the request id and returned on
  // replay so that the caller can tell a retry from a reuse of the id.
  std::string request_fingerprint;
  // Projection writes applied atomically with the events.
  std::vector<ProjectionWrite> projections;
  // EventLog::TakeReadToken(), taken before the caller read expected_version from this log
  // (StreamVersion, or a projection written with the stream's events). Lets the log trust
  // expected_version instead of reading the stream's version itself, when it knows that
  // nothing was appended to the stream since the token was taken.
  ReadToken read_token;
  // The caller looked request_id up with FindRequest after taking read_token, and it was
  // not there. The log then trusts that too, on the same condition, and spares its own
  // lookup of the stored request ids (it still checks the appends not yet durable).
  bool request_id_checked = false;
  // The caller has this one append in flight on its thread (a server handler, or the
  // blocking Append): AppendAsync may write it on the calling thread when the log is idle,
  // and so block for one sync before it returns (RocksEventLog::Options::direct_commit).
  // Leave false on a thread that queues many appends without waiting for their answers:
  // each would be written alone.
  bool may_block = false;
};

// The result of an append (or of the first append with the same request id).
struct AppendResult {
  // Position of the first event.
  int64_t first_position = 0;
  // Number of events appended.
  int64_t event_count = 0;
  // The stream's version after the append.
  int64_t version = 0;
  // True when the request id had been seen: nothing was appended now.
  bool replayed = false;
  // The fingerprint stored with the first append.
  std::string request_fingerprint;
  // The leaf hashes of the appended events, in order; empty when `replayed`.
  std::vector<Hash> leaf_hashes;
};

// An event as stored.
struct StoredEvent {
  int64_t position = 0;
  std::string stream;
  int64_t version = 0;
  std::string bytes;
  Hash leaf_hash{};
};

// Errors (absl::Status codes):
//   kAborted            expected_version is stale (the stream moved on)
//   kInvalidArgument    malformed request (no events, empty stream name, too large)
//   kResourceExhausted  the queue is full or the disk is full
//   kUnavailable        the log is shutting down or turned read-only after an I/O error
//   kDataLoss           the stored log failed an integrity check
// A refused append may carry a payload under kRefusalPayloadUrl naming the reason, where
// the code alone does not say what to do: see the kRefusal* values.
inline constexpr std::string_view kRefusalPayloadUrl = "type.casework.dev/casework.store.Refusal";
// kResourceExhausted: the disk is full; appends resume by themselves once space returns.
inline constexpr std::string_view kRefusalDiskFull = "DISK_FULL";
// kResourceExhausted: too many appends are queued; retry after a short backoff.
inline constexpr std::string_view kRefusalQueueFull = "QUEUE_FULL";
// kUnavailable: a write failed; the log stays read-only until restart.
inline constexpr std::string_view kRefusalReadOnly = "READ_ONLY";
// kUnavailable: the log is closing.
inline constexpr std::string_view kRefusalShuttingDown = "SHUTTING_DOWN";

// The reason payload of `status` (one of the kRefusal* values), or "" when it has none.
std::string RefusalReason(const absl::Status& status);

class EventLog {
 public:
  virtual ~EventLog() = default;

  using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&>;

  // Queues an append. `done` runs exactly once, after the batch holding the append is
  // durable (or refused): on the log's commit thread, or on the calling thread before
  // AppendAsync returns (an immediate refusal, or, with `may_block`, an append the
  // implementation wrote on the calling thread). So the caller must not hold a lock that
  // `done` takes. `done` must not block.
  virtual void AppendAsync(AppendRequest request, AppendCallback done) = 0;

  // Blocking convenience over AppendAsync.
  absl::StatusOr<AppendResult> Append(AppendRequest request);

  // A token for AppendRequest::read_token; epoch 0 when the log does not use them.
  virtual ReadToken TakeReadToken() const { return {}; }

  // The stream's committed version (0 when it does not exist).
  virtual absl::StatusOr<int64_t> StreamVersion(std::string_view stream) = 0;

  // Events of one stream with from_version <= version, at most `limit`, in order.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadStream(std::string_view stream,
                                                              int64_t from_version,
                                                              size_t limit) = 0;

  // The position of event `version` of the stream; kNotFound when the stream has no such
  // version. The default reads the event; an implementation may answer from its index.
  virtual absl::StatusOr<int64_t> PositionOf(std::string_view stream, int64_t version);

  // Events with from_position <= position, at most `limit`, in order.
  virtual absl::StatusOr<std::vector<StoredEvent>> ReadRange(int64_t from_position,
                                                             size_t limit) = 0;

  // Number of committed events (the next position).
  virtual int64_t Size() const = 0;

  // A projection value; nullopt when absent. Counters read as 8-byte big-endian.
  virtual absl::StatusOr<std::optional<std::string>> GetProjection(std::string_view table,
                                                                   std::string_view key) = 0;

  // Visits table entries with key >= start_key in key order until `visit` returns false
  // or `limit` entries were visited.
  virtual absl::Status ScanProjection(
      std::string_view table, std::string_view start_key, size_t limit,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) = 0;

  // The committed result of the first append with (stream, request_id), or nullopt when
  // that request id was never committed. Lets a caller answer a retry before deciding
  // anew (a retry after success must not be refused as stale).
  virtual absl::StatusOr<std::optional<AppendResult>> FindRequest(std::string_view stream,
                                                                  std::string_view request_id) = 0;

  // Called after each durable batch with the new log size, on the thread that wrote it
  // (the log's commit thread, or the caller of a `may_block` append the log wrote on the
  // caller's thread). Must not block, nor take a lock that a caller of AppendAsync may
  // hold.
  virtual void SetCommitListener(std::function<void(int64_t size)> listener) = 0;
};

}  // namespace casework::store

// The case states of a fold over the whole log (deep verification, the ledger as of a
// position), with bounded memory.
//
// The states a fold touched last stay parsed (at most `parsed_max`, least recently used
// out first): a fold over a log written by many clients at once keeps coming back to the
// few hundred cases in progress, and those cost no parsing. Older states are kept
// serialized (casework.v1.Case bytes), a fraction of the memory of parsed messages. When
// the bytes kept exceed `bytes_max`, every serialized state is dropped; a state needed
// again is refolded through the core's Evolve from its stream's events, read back from the
// log by the loader (the events of a stream before the current position were folded once
// already, so the refold yields the state the fold had). With a budget above what the
// states take, nothing is ever refolded. A version per stream is always kept (a few dozen
// bytes per case), so the fold can tell a stream it never saw from one whose state it
// dropped.
//
// Not thread-safe; one per fold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "store/event_log.h"

namespace casework::shell {

class CaseStates {
 public:
  // Events 1..through_version of `stream`, in order (store::EventLog::ReadStream).
  using Loader = std::function<absl::StatusOr<std::vector<store::StoredEvent>>(
      std::string_view stream, int64_t through_version)>;

  // Without a loader serialized states are never dropped (the budget is ignored).
  CaseStates(size_t bytes_max, Loader loader, size_t parsed_max = 4096);

  // The version the fold has for `stream`: 0 when it never saw it.
  [[nodiscard]] int64_t Version(const std::string& stream) const;

  // The state of `stream` at Version(stream) (an empty Case at version 0), to read and to
  // update in place; valid until the next call. After updating it, call Updated(stream).
  // kDataLoss when a dropped state cannot be refolded to that version (the log no longer
  // holds the events the fold saw).
  [[nodiscard]] absl::StatusOr<casework::v1::Case*> Open(const std::string& stream);
  // Records the version of the state Open returned for `stream`, after an update.
  void Updated(const std::string& stream);

  // Visits every stream with its state, in no particular order; stops at the first error.
  [[nodiscard]] absl::Status ForEach(
      const std::function<void(const std::string& stream, const casework::v1::Case& state)>& visit);

  [[nodiscard]] size_t size() const { return versions_.size(); }
  // The streams held, in no particular order; nothing is loaded.
  [[nodiscard]] std::vector<std::string> Streams() const {
    std::vector<std::string> streams;
    streams.reserve(versions_.size());
    for (const auto& [stream, version] : versions_) streams.push_back(stream);
    return streams;
  }
  [[nodiscard]] size_t bytes_kept() const { return bytes_kept_; }
  [[nodiscard]] int64_t drops() const { return drops_; }
  [[nodiscard]] int64_t refolds() const { return refolds_; }
  [[nodiscard]] int64_t parses() const { return parses_; }

 private:
  struct Parsed {
    casework::v1::Case state;
    std::list<std::string>::iterator lru;
  };
  // Serializes the least recently used parsed state into kept_.
  void EvictOne();
  void Keep(const std::string& stream, const casework::v1::Case& state);
  absl::Status Load(const std::string& stream, casework::v1::Case* state);
  absl::Status Refold(const std::string& stream, int64_t version, casework::v1::Case* state);

  const size_t bytes_max_;
  const Loader loader_;
  const size_t parsed_max_;
  absl::flat_hash_map<std::string, int64_t> versions_;
  absl::flat_hash_map<std::string, Parsed> parsed_;
  std::list<std::string> lru_;                          // most recent first
  absl::flat_hash_map<std::string, std::string> kept_;  // serialized states
  size_t bytes_kept_ = 0;
  int64_t drops_ = 0;
  int64_t refolds_ = 0;
  int64_t parses_ = 0;
  casework::v1::Event event_;  // reused by Refold
};

}  // namespace casework::shell

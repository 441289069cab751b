// Cheap views of stored events for the stream and the audit service: an event's kind
// without parsing it, the jurisdiction of the stream it belongs to, subtree tests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "store/event_log.h"

namespace casework::shell {

// The field number of the `body` oneof member set in serialized Event bytes (20 and up),
// found by walking the top-level tags only; 0 when none is set or the bytes are malformed.
[[nodiscard]] int EventBodyField(std::string_view event_bytes);

// The request id (field 5) that serialized Event bytes carry, found by walking the
// top-level tags only ("" when the event has none); nullopt when the bytes are malformed.
// What the log checks its request-id index against (RocksEventLog::Options).
[[nodiscard]] std::optional<std::string> EventRequestId(std::string_view event_bytes);

// The field number of Event's body member named `kind` ("inspection_passed"); nullopt
// for a name that is not one.
[[nodiscard]] std::optional<int> EventKindField(std::string_view kind);
// The name of Event's body member with that number; empty when none.
[[nodiscard]] std::string EventKindName(int field);

// True when `path` lies inside the subtree `root`, segment-wise: "a/b" holds "a/b" and
// "a/b/c", never "a/bc". An empty root holds nothing.
[[nodiscard]] bool SubtreeHolds(std::string_view root, std::string_view path);

// Who may receive an event besides its jurisdiction: a county's oversight record
// (counties/...) goes to approvers, auditors and admins, as the accountability report
// does; an inspection sample (samples/...) to auditors and admins; any other to whoever
// covers it.
enum class EventAudience { kAnyone, kOversight, kAuditors };
[[nodiscard]] EventAudience AudienceOf(std::string_view stream);

// The jurisdiction of a stream: a case's organisation jurisdiction (read once from the
// case projection, then remembered: it never changes), the county path of a registry
// stream (registry/{county}) or of a county's oversight record (counties/{county}), the
// scope an inspection sample was drawn from (samples/..., read from the event itself), the
// scope of a registry import's record (registry-imports/..., from the event);
// nullopt for streams that belong to no jurisdiction (approvers' keys, the principals),
// which only an overseer of the whole city may see.
class JurisdictionResolver {
 public:
  // The remembered jurisdictions, shareable by resolvers on several threads (the event
  // stream's watches share one, so that a case's jurisdiction is read and kept once, not
  // once per watch). Bounded: cleared when it holds `entries_max`.
  class Cache {
   public:
    explicit Cache(size_t entries_max) : entries_max_(entries_max) {}
    [[nodiscard]] std::optional<std::string> Find(const std::string& stream) const;
    [[nodiscard]] bool Contains(const std::string& stream) const;
    void Put(const std::string& stream, std::string jurisdiction);

   private:
    const size_t entries_max_;
    mutable absl::Mutex mu_;
    absl::flat_hash_map<std::string, std::string> map_ ABSL_GUARDED_BY(mu_);
  };

  // A resolver with a cache of its own.
  JurisdictionResolver(store::EventLog* log, size_t cache_entries_max)
      : log_(log), own_(std::make_unique<Cache>(cache_entries_max)), cache_(own_.get()) {}
  // A resolver using `shared` (which must outlive it).
  JurisdictionResolver(store::EventLog* log, Cache* shared) : log_(log), cache_(shared) {}

  // Takes the jurisdiction of a case from its first event (OrganisationListed) when
  // `event_bytes` is one, sparing a projection read later.
  void Learn(std::string_view stream, std::string_view event_bytes);
  // `event_bytes`: an event of the stream (a sample's scope is in its event). kDataLoss
  // when a case projection or a sample's event does not parse.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Of(std::string_view stream,
                                                              std::string_view event_bytes);

 private:
  store::EventLog* log_;
  std::unique_ptr<Cache> own_;
  Cache* cache_;
};

}  // namespace casework::shell

// Cheap views of stored events for the stream and the audit service: an event's kind
// without parsing it, the jurisdiction of the stream it belongs to, subtree tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "store/event_log.h"

namespace casework::shell {

// The field number of the `body` oneof member set in serialized Event bytes (20 and up),
// found by walking the top-level tags only; 0 when none is set or the bytes are malformed.
[[nodiscard]] int EventBodyField(std::string_view event_bytes);

// The field number of Event's body member named `kind` ("inspection_passed"); nullopt
// for a name that is not one.
[[nodiscard]] std::optional<int> EventKindField(std::string_view kind);
// The name of Event's body member with that number; empty when none.
[[nodiscard]] std::string EventKindName(int field);

// True when `path` lies inside the subtree `root`, segment-wise: "a/b" holds "a/b" and
// "a/b/c", never "a/bc". An empty root holds nothing.
[[nodiscard]] bool SubtreeHolds(std::string_view root, std::string_view path);

// The jurisdiction of a stream: a case's organisation jurisdiction (read once from the
// case projection, then remembered: it never changes), the county path of a registry
// stream; nullopt for streams that belong to no jurisdiction.
class JurisdictionResolver {
 public:
  JurisdictionResolver(store::EventLog* log, size_t cache_entries_max)
      : log_(log), cache_entries_max_(cache_entries_max) {}
  // Takes the jurisdiction of a case from its first event (OrganisationListed) when
  // `event_bytes` is one, sparing a projection read later.
  void Learn(std::string_view stream, std::string_view event_bytes);
  // kDataLoss when a case projection does not parse.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Of(std::string_view stream);

 private:
  store::EventLog* log_;
  size_t cache_entries_max_;
  absl::flat_hash_map<std::string, std::string> cache_;
};

}  // namespace casework::shell

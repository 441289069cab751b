#include "services/shell/event_view.h"

#include "absl/strings/str_cat.h"
#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "services/oversight/oversight.h"
#include "services/shell/projections.h"

namespace casework::shell {
namespace {

using google::protobuf::internal::WireFormatLite;

constexpr int kBodyFieldMin = 20;
// Remembers a stream that belongs to no jurisdiction (a jurisdiction is never empty).
constexpr char kNone[] = "";

}  // namespace

int EventBodyField(std::string_view event_bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(event_bytes.data()),
                                            static_cast<int>(event_bytes.size()));
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return 0;
    const int field = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    if (field >= kBodyFieldMin &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      return field;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return 0;
  }
}

std::optional<std::string> EventRequestId(std::string_view event_bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(event_bytes.data()),
                                            static_cast<int>(event_bytes.size()));
  std::string request_id;  // the last one, as a parser keeps it
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (!in.ConsumedEntireMessage()) return std::nullopt;
      return request_id;
    }
    if (WireFormatLite::GetTagFieldNumber(tag) == casework::v1::Event::kRequestIdFieldNumber &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::ReadString(&in, &request_id)) return std::nullopt;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return std::nullopt;
    }
  }
}

std::optional<int> EventKindField(std::string_view kind) {
  const auto* oneof = casework::v1::Event::descriptor()->FindOneofByName("body");
  for (int i = 0; i < oneof->field_count(); ++i) {
    if (oneof->field(i)->name() == kind) return oneof->field(i)->number();
  }
  return std::nullopt;
}

std::string EventKindName(int field) {
  const auto* f = casework::v1::Event::descriptor()->FindFieldByNumber(field);
  if (f == nullptr || f->containing_oneof() == nullptr) return "";
  return f->name();
}

EventAudience AudienceOf(std::string_view stream) {
  const auto starts = [stream](std::string_view prefix) {
    return stream.substr(0, prefix.size()) == prefix;
  };
  if (starts(oversight::kCountyStreamPrefix)) return EventAudience::kOversight;
  if (starts(oversight::kSampleStreamPrefix)) return EventAudience::kAuditors;
  return EventAudience::kAnyone;
}

bool SubtreeHolds(std::string_view root, std::string_view path) {
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  if (root.empty() || path.size() < root.size() || path.substr(0, root.size()) != root) {
    return false;
  }
  return path.size() == root.size() || path[root.size()] == '/';
}

std::optional<std::string> JurisdictionResolver::Cache::Find(const std::string& stream) const {
  absl::MutexLock lock(&mu_);
  auto it = map_.find(stream);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

bool JurisdictionResolver::Cache::Contains(const std::string& stream) const {
  absl::MutexLock lock(&mu_);
  return map_.contains(stream);
}

void JurisdictionResolver::Cache::Put(const std::string& stream, std::string jurisdiction) {
  absl::MutexLock lock(&mu_);
  if (map_.size() >= entries_max_) map_.clear();
  map_[stream] = std::move(jurisdiction);
}

void JurisdictionResolver::Learn(std::string_view stream, std::string_view event_bytes) {
  if (stream.substr(0, 6) != "cases/") return;
  if (EventBodyField(event_bytes) != casework::v1::Event::kOrganisationListed) return;
  const std::string key(stream);
  if (cache_->Contains(key)) return;
  casework::v1::Event event;
  if (!event.ParseFromArray(event_bytes.data(), static_cast<int>(event_bytes.size()))) return;
  cache_->Put(key, event.organisation_listed().organisation().jurisdiction());
}

absl::StatusOr<std::optional<std::string>> JurisdictionResolver::Of(std::string_view stream,
                                                                    std::string_view event_bytes) {
  constexpr std::string_view kCases = "cases/";
  for (const std::string_view prefix : {std::string_view(oversight::kRegistryStreamPrefix),
                                        std::string_view(oversight::kCountyStreamPrefix)}) {
    if (stream.substr(0, prefix.size()) == prefix) return std::string(stream.substr(prefix.size()));
  }
  if (const std::string_view samples = oversight::kSampleStreamPrefix;
      stream.substr(0, samples.size()) == samples) {
    // One event per sample stream, which names its scope: the sample lists that scope's
    // cases, so it goes where they go.
    casework::v1::Event event;
    if (!event.ParseFromArray(event_bytes.data(), static_cast<int>(event_bytes.size())) ||
        !event.has_inspection_sample_drawn() || event.inspection_sample_drawn().scope().empty()) {
      return absl::DataLossError(absl::StrCat("the event of ", std::string(stream),
                                              " is not an inspection sample with a scope"));
    }
    return event.inspection_sample_drawn().scope();
  }
  if (const std::string_view imports = oversight::kImportStreamPrefix;
      stream.substr(0, imports.size()) == imports) {
    // A registry import's record goes where all its counties' registry events go.
    casework::v1::Event event;
    if (!event.ParseFromArray(event_bytes.data(), static_cast<int>(event_bytes.size())) ||
        !event.has_registry_imported()) {
      return absl::DataLossError(
          absl::StrCat("the event of ", std::string(stream), " is not a registry import"));
    }
    if (event.registry_imported().scope().empty()) return std::nullopt;
    return event.registry_imported().scope();
  }
  if (stream.substr(0, kCases.size()) != kCases) return std::nullopt;
  const std::string key(stream);
  if (std::optional<std::string> known = cache_->Find(key); known.has_value()) {
    if (*known == kNone) return std::nullopt;
    return *std::move(known);
  }
  const std::string case_id(stream.substr(kCases.size()));
  auto bytes = log_->GetProjection(kCaseTable, case_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    // No projection: a stream of events with no case (never for a committed case).
    cache_->Put(key, std::string(kNone));
    return std::nullopt;
  }
  casework::v1::Case c;
  if (!c.ParseFromString(**bytes)) {
    return absl::DataLossError(
        absl::StrCat("the projection of case ", case_id, " does not parse; rebuild projections"));
  }
  cache_->Put(key, c.organisation().jurisdiction());
  return c.organisation().jurisdiction();
}

}  // namespace casework::shell

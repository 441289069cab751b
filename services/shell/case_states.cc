#include "services/shell/case_states.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/workflow/decider.h"

namespace casework::shell {
namespace {

// What a kept entry costs beside its bytes: the key and value strings and the slot.
constexpr size_t kEntryOverheadBytes = 96;

}  // namespace

CaseStates::CaseStates(size_t bytes_max, Loader loader, size_t parsed_max)
    : bytes_max_(bytes_max),
      loader_(std::move(loader)),
      parsed_max_(std::max<size_t>(parsed_max, 1)) {}

int64_t CaseStates::Version(const std::string& stream) const {
  auto it = versions_.find(stream);
  return it == versions_.end() ? 0 : it->second;
}

absl::StatusOr<casework::v1::Case*> CaseStates::Open(const std::string& stream) {
  if (auto it = parsed_.find(stream); it != parsed_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return &it->second.state;
  }
  while (parsed_.size() >= parsed_max_) EvictOne();
  lru_.push_front(stream);
  Parsed& entry = parsed_[stream];
  entry.lru = lru_.begin();
  if (absl::Status s = Load(stream, &entry.state); !s.ok()) {
    lru_.pop_front();
    parsed_.erase(stream);
    return s;
  }
  return &entry.state;
}

void CaseStates::Updated(const std::string& stream) {
  auto it = parsed_.find(stream);
  if (it != parsed_.end()) versions_[stream] = it->second.state.version();
}

void CaseStates::EvictOne() {
  const std::string stream = std::move(lru_.back());
  lru_.pop_back();
  auto it = parsed_.find(stream);
  if (it->second.state.version() > 0) Keep(stream, it->second.state);
  parsed_.erase(it);
}

void CaseStates::Keep(const std::string& stream, const casework::v1::Case& state) {
  std::string& bytes = kept_[stream];
  bytes_kept_ -= bytes.empty() ? 0 : bytes.size() + kEntryOverheadBytes;
  bytes.clear();
  state.SerializeToString(&bytes);
  bytes_kept_ += bytes.size() + kEntryOverheadBytes;
  if (loader_ && bytes_kept_ > bytes_max_) {
    // Dropping everything keeps this O(1) per state; the states come back one by one.
    kept_.clear();
    kept_.rehash(0);
    bytes_kept_ = 0;
    ++drops_;
  }
}

absl::Status CaseStates::Load(const std::string& stream, casework::v1::Case* state) {
  state->Clear();
  const int64_t version = Version(stream);
  if (version == 0) return absl::OkStatus();
  if (auto it = kept_.find(stream); it != kept_.end()) {
    ++parses_;
    if (!state->ParseFromString(it->second)) {
      return absl::InternalError(absl::StrCat("the kept state of ", stream, " does not parse"));
    }
    return absl::OkStatus();
  }
  return Refold(stream, version, state);
}

absl::Status CaseStates::Refold(const std::string& stream, int64_t version,
                                casework::v1::Case* state) {
  if (!loader_) {
    return absl::InternalError(absl::StrCat("the state of ", stream, " is gone and no loader"));
  }
  ++refolds_;
  absl::StatusOr<std::vector<store::StoredEvent>> events = loader_(stream, version);
  if (!events.ok()) return events.status();
  for (const store::StoredEvent& e : *events) {
    if (!event_.ParseFromString(e.bytes)) {
      return absl::DataLossError(
          absl::StrCat("the event at position ", e.position, " does not parse"));
    }
    workflow::Evolve(*state, event_);
    state->set_last_position(e.position);
    state->set_last_leaf_hash(e.leaf_hash.data(), e.leaf_hash.size());
  }
  if (state->version() != version) {
    return absl::DataLossError(absl::StrCat("refolding ", stream, " from the log gave version ",
                                            state->version(), ", not ", version,
                                            " as folded before"));
  }
  return absl::OkStatus();
}

absl::Status CaseStates::ForEach(
    const std::function<void(const std::string&, const casework::v1::Case&)>& visit) {
  casework::v1::Case state;
  for (const auto& [stream, version] : versions_) {
    if (auto it = parsed_.find(stream); it != parsed_.end()) {
      visit(stream, it->second.state);
      continue;
    }
    absl::Status s = Load(stream, &state);
    if (!s.ok()) return s;
    visit(stream, state);
  }
  return absl::OkStatus();
}

}  // namespace casework::shell

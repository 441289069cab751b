#include "services/shell/case_states.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/workflow/decider.h"

namespace casework::shell {
namespace {

// What a kept entry costs beside its bytes: the key and value strings and the slot.
constexpr size_t kEntryOverheadBytes = 96;

}  // namespace

CaseStates::CaseStates(size_t bytes_max, Loader loader)
    : bytes_max_(bytes_max), loader_(std::move(loader)) {}

int64_t CaseStates::Version(const std::string& stream) const {
  auto it = versions_.find(stream);
  return it == versions_.end() ? 0 : it->second;
}

absl::Status CaseStates::Get(const std::string& stream, casework::v1::Case* state) {
  state->Clear();
  const int64_t version = Version(stream);
  if (version == 0) return absl::OkStatus();
  auto it = kept_.find(stream);
  if (it != kept_.end()) {
    if (!state->ParseFromString(it->second)) {
      return absl::InternalError(absl::StrCat("the kept state of ", stream, " does not parse"));
    }
    return absl::OkStatus();
  }
  return Refold(stream, version, state);
}

absl::Status CaseStates::Refold(const std::string& stream, int64_t version,
                                casework::v1::Case* state) {
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
  }
  if (state->version() != version) {
    return absl::DataLossError(absl::StrCat("refolding ", stream, " from the log gave version ",
                                            state->version(), ", not ", version,
                                            " as folded before"));
  }
  return absl::OkStatus();
}

void CaseStates::Put(const std::string& stream, const casework::v1::Case& state) {
  versions_[stream] = state.version();
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

absl::Status CaseStates::ForEach(
    const std::function<void(const std::string&, const casework::v1::Case&)>& visit) {
  casework::v1::Case state;
  for (const auto& [stream, version] : versions_) {
    absl::Status s = Get(stream, &state);
    if (!s.ok()) return s;
    visit(stream, state);
  }
  return absl::OkStatus();
}

}  // namespace casework::shell

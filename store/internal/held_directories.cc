#include "store/internal/held_directories.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace casework::store::internal {

absl::StatusOr<HeldDirectories::Id> HeldDirectories::IdOf(const std::string& path) {
  struct stat st = {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot look at the event log's folder ", path, ": ", std::strerror(errno)));
  }
  return Id(st.st_dev, st.st_ino);
}

bool HeldDirectories::TryAdd(const Id& id, Role role) {
  State& state = Get();
  absl::MutexLock lock(&state.mu);
  Counts& counts = state.held[id];
  if (counts.writers > 0 || (role == Role::kWriter && counts.inspectors > 0)) return false;
  ++(role == Role::kWriter ? counts.writers : counts.inspectors);
  return true;
}

void HeldDirectories::Remove(const Id& id, Role role) {
  State& state = Get();
  absl::MutexLock lock(&state.mu);
  auto it = state.held.find(id);
  if (it == state.held.end()) return;
  --(role == Role::kWriter ? it->second.writers : it->second.inspectors);
  if (it->second.writers == 0 && it->second.inspectors == 0) state.held.erase(it);
}

// Never destroyed: a log may close after static destructors ran.
HeldDirectories::State& HeldDirectories::Get() {
  static State* const state = new State;
  return *state;
}

}  // namespace casework::store::internal

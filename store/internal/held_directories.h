// The log directories (by device and inode) that this process has open, to write, to
// inspect or to repair, from before their lock files are opened until after they were given
// up. Internal to store/: never include from a public header.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace casework::store::internal {

// The log directories (by device and inode) that logs of this process have open, to write
// or to inspect, and that a WAL repair (RepairWalFiles) works in, from before they take
// their locks until after they gave them up. Within one process a log that writes (or a
// repair) shares its directory with nothing else, and an inspection shares it with no
// log that writes, which is refused here before it opens a lock file:
// closing any descriptor of a file gives up every record lock this process holds on that
// file (POSIX), and RocksDB's LockFile takes record locks. (RocksDB's own check within a
// process compares path strings, which `dir` and `dir/` or a symbolic link pass.)
class HeldDirectories {
 public:
  using Id = std::pair<dev_t, ino_t>;
  enum class Role { kWriter, kInspector };
  static absl::StatusOr<Id> IdOf(const std::string& path);
  // False when `role` cannot share the directory with what this process has open there;
  // otherwise listed until Remove.
  static bool TryAdd(const Id& id, Role role);
  static void Remove(const Id& id, Role role);

 private:
  struct Counts {
    int writers = 0;
    int inspectors = 0;
  };
  struct State {
    absl::Mutex mu;
    std::map<Id, Counts> held ABSL_GUARDED_BY(mu);
  };
  static State& Get();
};

// Keeps `id` listed in `role` for its lifetime, once TryAdd succeeded.
class HeldDirectory {
 public:
  HeldDirectory(HeldDirectories::Id id, HeldDirectories::Role role) : id_(id), role_(role) {}
  HeldDirectory(const HeldDirectory&) = delete;
  HeldDirectory& operator=(const HeldDirectory&) = delete;
  ~HeldDirectory() { HeldDirectories::Remove(id_, role_); }

 private:
  HeldDirectories::Id id_;
  HeldDirectories::Role role_;
};

}  // namespace casework::store::internal

// A checkpoint a client keeps in a file (the signed note, as `casectl proof checkpoint
// --out` writes it), advanced only along a consistency proof: whoever keeps one learns
// when the log shows them a history that is not an extension of the one they saw before
// (a rewrite, a cut, another log under the same key).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "clients/client.h"
#include "store/checkpoint.h"

namespace casework::client {

// An exclusive lock on the file `path.lock` beside a kept checkpoint (created when
// missing), held while the object lives: an open-file-description lock (F_OFD_SETLKW),
// so that processes and threads exclude each other alike, also on NFS.
class KeptCheckpointLock {
 public:
  static absl::StatusOr<KeptCheckpointLock> Take(const std::string& path);
  KeptCheckpointLock(KeptCheckpointLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  KeptCheckpointLock& operator=(KeptCheckpointLock&&) = delete;
  ~KeptCheckpointLock();

 private:
  explicit KeptCheckpointLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

struct KeptCheckpointStep {
  bool first_use = false;  // no file was there: the new checkpoint is kept as it is
  int64_t kept_size = 0;   // the size kept before (0 on first use)
  std::string kept_root_hex;
  // The kept checkpoint is the larger one (another run kept a newer one meanwhile), and
  // the checkpoint given is proved to be a prefix of it: the file stays as it was.
  bool kept_is_newer = false;
  int64_t size = 0;  // the size kept now
};

// Checks that the log whose checkpoints `verifier` signs only grew from the checkpoint kept
// in `path` to `latest_note` (a note signed by `verifier`, opened as `latest`), asking
// `client` for the consistency proof between the two, and then keeps `latest_note` in
// `path` (written beside it, synced, renamed over it). Steps on one file are made one at
// a time (KeptCheckpointLock), so two runs at once neither mix their writes nor move the
// kept checkpoint back; a run whose checkpoint is older than one another run kept
// meanwhile proves its own to be a prefix of the kept one and leaves the file alone.
//
// Errors, the file left as it was unless said otherwise:
// - kFailedPrecondition: the log did not only grow (it holds fewer events than the kept
//   checkpoint, one of equal size has another root, or a proof does not verify); the
//   message says which. This one alone says the log is not what was seen before.
// - kNotFound: no file, and `create` not set (with `create`, a missing file is a first
//   use: the note is kept as it is).
// - kInvalidArgument: the file cannot be read, or holds no checkpoint `verifier` signed.
// - kUnavailable: the consistency proof was refused or not answered.
// - kInternal: the new checkpoint could not be written (when only the directory's sync
//   failed, the file may hold the new checkpoint, not yet durable).
absl::StatusOr<KeptCheckpointStep> AdvanceKeptCheckpoint(
    Client& client, const store::NoteVerifier& verifier, const std::string& path,
    const std::string& latest_note, const store::Checkpoint& latest, bool create);

}  // namespace casework::client

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

struct KeptCheckpointStep {
  bool first_use = false;  // no file was there: the new checkpoint is kept as it is
  int64_t kept_size = 0;   // the size kept before (0 on first use)
  std::string kept_root_hex;
  int64_t size = 0;  // the size kept now
};

// Checks that the log whose checkpoints `verifier` signs only grew from the checkpoint kept
// in `path` to `latest_note` (a note signed by `verifier`, opened as `latest`), asking
// `client` for the consistency proof between the two, and then keeps `latest_note` in
// `path` (written beside it, synced, renamed over it). Steps on files of one directory
// are made one at a time (an exclusive flock on the directory), so two runs at once
// neither mix their writes nor move the kept checkpoint back.
//
// Errors, the file left as it was unless said otherwise:
// - kFailedPrecondition: the log did not only grow (the kept checkpoint is larger, one of
//   equal size has another root, or the proof does not verify); the message says which.
//   This one alone says the log is not what was seen before.
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

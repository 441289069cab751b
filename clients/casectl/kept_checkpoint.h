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

// Writes `content` to `path` whole: into `path.partial`, synced, renamed over `path`, and
// the directory synced; a crash leaves the old file or the new one. False when any step
// failed (the partial file is removed).
bool WriteFileWhole(const std::string& path, const std::string& content);

struct KeptCheckpointStep {
  bool first_use = false;  // no file was there: the new checkpoint is kept as it is
  int64_t kept_size = 0;   // the size kept before (0 on first use)
  std::string kept_root_hex;
  int64_t size = 0;  // the size kept now
};

// Checks that the log whose checkpoints `verifier` signs only grew from the checkpoint kept
// in `path` to `latest_note` (a note signed by `verifier`, of size `latest.size`), asking
// `client` for the consistency proof between the two, and then keeps `latest_note` in
// `path`. A missing file is a first use when `create` is set (the note is kept as it is),
// else kNotFound. The log did not only grow (the kept checkpoint is larger, one of equal size
// has another root, the proof does not verify): kFailedPrecondition, the message saying
// which. The file holds no checkpoint that `verifier` signed: kInvalidArgument. The proof
// was refused: the call's status, as kUnavailable with its message. The file could not be
// written: kInternal. The file is left as it was unless the step succeeded.
absl::StatusOr<KeptCheckpointStep> AdvanceKeptCheckpoint(
    Client& client, const store::NoteVerifier& verifier, const std::string& path,
    const std::string& latest_note, const store::Checkpoint& latest, bool create);

}  // namespace casework::client

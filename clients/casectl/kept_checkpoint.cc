#include "clients/casectl/kept_checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "store/hasher.h"
#include "store/merkle.h"

namespace casework::client {
namespace {

constexpr size_t kNoteBytesMax = 64 * 1024;  // a checkpoint note is a few hundred bytes

std::string Hex(const store::Hash& h) {
  const std::string_view bytes = store::rfc9162::AsBytes(h);
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

absl::StatusOr<KeptCheckpointStep> AdvanceLocked(Client& client,
                                                 const store::NoteVerifier& verifier,
                                                 const std::string& path,
                                                 const std::string& latest_note,
                                                 const store::Checkpoint& latest, bool create) {
  KeptCheckpointStep step;
  step.size = latest.size;
  absl::StatusOr<std::optional<std::string>> note = store::ReadSmallFile(path, kNoteBytesMax);
  if (!note.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the kept checkpoint cannot be read: ", note.status().message()));
  }
  if (!note->has_value()) {
    if (!create) {
      return absl::NotFoundError(
          absl::StrCat("no checkpoint is kept in ", path,
                       "; keep one first with casectl proof checkpoint --key KEY --out ", path));
    }
    step.first_use = true;
  } else {
    absl::StatusOr<store::Checkpoint> kept =
        store::OpenCheckpoint(**note, verifier, verifier.name());
    if (!kept.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the checkpoint kept in ", path, " is not one signed by the verifier key ",
                       verifier.name(), ": ", kept.status().message()));
    }
    step.kept_size = kept->size;
    step.kept_root_hex = Hex(kept->root);
    if (kept->size > latest.size) {
      return absl::FailedPreconditionError(
          absl::StrCat("the log's signed checkpoint of size ", latest.size,
                       " is smaller than the one kept in ", path, " (size ", kept->size,
                       "): the log lost events since, or this is another log under the same key"));
    }
    if (kept->size == latest.size) {
      if (kept->root != latest.root) {
        return absl::FailedPreconditionError(
            absl::StrCat("the log's signed checkpoint of size ", latest.size, " has the root ",
                         Hex(latest.root), ", the one kept in ", path, " the root ",
                         step.kept_root_hex, ": two histories of one size, both signed"));
      }
      return step;  // nothing new to keep
    }
    if (kept->size > 0) {  // every tree extends the empty one
      casework::v1::GetConsistencyProofRequest req;
      req.set_first_tree_size(kept->size);
      req.set_second_tree_size(latest.size);
      casework::v1::GetConsistencyProofResponse resp;
      auto ctx = client.NewContext();
      const grpc::Status status = casework::v1::AuditService::NewStub(client.channel())
                                      ->GetConsistencyProof(ctx.get(), req, &resp);
      if (!status.ok()) {
        return absl::UnavailableError(absl::StrCat("the consistency proof from size ", kept->size,
                                                   " to ", latest.size,
                                                   " was refused: ", status.error_message()));
      }
      const std::vector<std::string> nodes(resp.proof().begin(), resp.proof().end());
      const absl::Status proved =
          resp.first_tree_size() != kept->size || resp.second_tree_size() != latest.size
              ? absl::InvalidArgumentError("the proof is between other sizes")
              : store::merkle::VerifyConsistency(kept->size, latest.size, nodes,
                                                 store::rfc9162::AsBytes(kept->root),
                                                 store::rfc9162::AsBytes(latest.root));
      if (!proved.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the log's signed checkpoint of size ", latest.size,
            " is not an extension of the one kept in ", path, " (size ", kept->size, ", root ",
            step.kept_root_hex, "): ", proved.message(),
            "; the history seen then was rewritten, or this is another log under the same key"));
      }
    }
  }
  if (absl::Status written = store::WriteFileDurably(path, latest_note); !written.ok()) {
    return absl::InternalError(absl::StrCat("cannot keep the new checkpoint: ", written.message()));
  }
  return step;
}

}  // namespace

absl::StatusOr<KeptCheckpointStep> AdvanceKeptCheckpoint(
    Client& client, const store::NoteVerifier& verifier, const std::string& path,
    const std::string& latest_note, const store::Checkpoint& latest, bool create) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open the directory of ", path, ": ", std::strerror(errno)));
  }
  int locked;
  do {
    locked = ::flock(dir_fd, LOCK_EX);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int error = errno;
    ::close(dir_fd);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot lock the directory of ", path, ": ", std::strerror(error)));
  }
  absl::StatusOr<KeptCheckpointStep> step =
      AdvanceLocked(client, verifier, path, latest_note, latest, create);
  ::close(dir_fd);  // and the lock with it
  return step;
}

}  // namespace casework::client

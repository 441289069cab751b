#include "clients/casectl/kept_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

// The consistency proof from (size1, root1) to (size2, root2), asked of the log: OK when it
// verifies; kFailedPrecondition when it does not, or when the log holds fewer than size2
// events (OUT_OF_RANGE); kUnavailable when the call failed otherwise.
absl::Status ProveConsistent(Client& client, int64_t size1, const store::Hash& root1, int64_t size2,
                             const store::Hash& root2) {
  casework::v1::GetConsistencyProofRequest req;
  req.set_first_tree_size(size1);
  req.set_second_tree_size(size2);
  casework::v1::GetConsistencyProofResponse resp;
  auto ctx = client.NewContext();
  const grpc::Status status = casework::v1::AuditService::NewStub(client.channel())
                                  ->GetConsistencyProof(ctx.get(), req, &resp);
  if (status.error_code() == grpc::StatusCode::OUT_OF_RANGE) {
    return absl::FailedPreconditionError(
        absl::StrCat("the log holds fewer than ", size2, " events (", status.error_message(), ")"));
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("the consistency proof from size ", size1, " to ",
                                               size2, " was refused: ", status.error_message()));
  }
  const std::vector<std::string> nodes(resp.proof().begin(), resp.proof().end());
  const absl::Status proved =
      resp.first_tree_size() != size1 || resp.second_tree_size() != size2
          ? absl::InvalidArgumentError("the proof is between other sizes")
          : store::merkle::VerifyConsistency(size1, size2, nodes, store::rfc9162::AsBytes(root1),
                                             store::rfc9162::AsBytes(root2));
  if (!proved.ok()) return absl::FailedPreconditionError(proved.message());
  return absl::OkStatus();
}

// `why`, with the words for a proof that failed when it is one.
absl::Status Explained(const absl::Status& why, const std::string& what,
                       const std::string& failed) {
  return absl::Status(why.code(), absl::StrCat(what, ": ", why.message(),
                                               why.code() == absl::StatusCode::kFailedPrecondition
                                                   ? absl::StrCat("; ", failed)
                                                   : std::string()));
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
      // Another run kept a newer checkpoint since this one was fetched, or the log lost
      // events: the log must prove the one given a prefix of the one kept.
      if (latest.size > 0) {
        const absl::Status prefix =
            ProveConsistent(client, latest.size, latest.root, kept->size, kept->root);
        if (!prefix.ok()) {
          return Explained(prefix,
                           absl::StrCat("the log's signed checkpoint of size ", latest.size,
                                        " is smaller than the one kept in ", path, " (size ",
                                        kept->size, ") and not shown to be part of it"),
                           "the log lost events since, or this is another log under the same key");
        }
      }
      step.kept_is_newer = true;
      step.size = kept->size;
      return step;  // the file stays as it is
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
      const absl::Status grew =
          ProveConsistent(client, kept->size, kept->root, latest.size, latest.root);
      if (!grew.ok()) {
        return Explained(grew,
                         absl::StrCat("the log's signed checkpoint of size ", latest.size,
                                      " is not shown to extend the one kept in ", path, " (size ",
                                      kept->size, ", root ", step.kept_root_hex, ")"),
                         "it is not an extension of it: the history seen then was rewritten, "
                         "or this is another log under the same key");
      }
    }
  }
  if (absl::Status written = store::WriteFileDurably(path, latest_note); !written.ok()) {
    return absl::InternalError(absl::StrCat("cannot keep the new checkpoint: ", written.message()));
  }
  return step;
}

}  // namespace

absl::StatusOr<KeptCheckpointLock> KeptCheckpointLock::Take(const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open the lock file ", lock_path, ": ", std::strerror(errno)));
  }
  struct flock whole = {};
  whole.l_type = F_WRLCK;
  whole.l_whence = SEEK_SET;
  int locked = 0;
  do {
    locked = ::fcntl(fd, F_OFD_SETLKW, &whole);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int error = errno;
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(error)));
  }
  return KeptCheckpointLock(fd);
}

KeptCheckpointLock::~KeptCheckpointLock() {
  if (fd_ >= 0) ::close(fd_);  // and the lock with it
}

absl::StatusOr<KeptCheckpointStep> AdvanceKeptCheckpoint(
    Client& client, const store::NoteVerifier& verifier, const std::string& path,
    const std::string& latest_note, const store::Checkpoint& latest, bool create) {
  absl::StatusOr<KeptCheckpointLock> lock = KeptCheckpointLock::Take(path);
  if (!lock.ok()) return lock.status();
  return AdvanceLocked(client, verifier, path, latest_note, latest, create);
}

}  // namespace casework::client

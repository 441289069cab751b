#include "clients/casectl/kept_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
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

}  // namespace

bool WriteFileWhole(const std::string& path, const std::string& content) {
  const std::string partial = path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool synced = done == content.size() && ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed || std::rename(partial.c_str(), path.c_str()) != 0) {
    std::remove(partial.c_str());
    return false;
  }
  return store::SyncDirectoryOf(path).ok();
}

absl::StatusOr<KeptCheckpointStep> AdvanceKeptCheckpoint(
    Client& client, const store::NoteVerifier& verifier, const std::string& path,
    const std::string& latest_note, const store::Checkpoint& latest, bool create) {
  KeptCheckpointStep step;
  step.size = latest.size;
  std::string note;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the kept checkpoint ", path, ": ", std::strerror(errno)));
    }
    if (!create) {
      return absl::NotFoundError(
          absl::StrCat("no checkpoint is kept in ", path,
                       "; keep one first with casectl proof checkpoint --key KEY --out ", path));
    }
    step.first_use = true;
  } else {
    note.resize(kNoteBytesMax + 1);
    size_t got = 0;
    int error = 0;
    while (got < note.size()) {
      const ssize_t n = ::read(fd, note.data() + got, note.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) error = errno;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    note.resize(got);
    if (error != 0 || note.size() > kNoteBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("the kept checkpoint ", path, " cannot be read whole: ",
                       error != 0 ? std::strerror(error) : "it is larger than a checkpoint note"));
    }
    absl::StatusOr<store::Checkpoint> kept = store::OpenCheckpoint(note, verifier, verifier.name());
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
    } else if (kept->size > 0) {  // every tree extends the empty one
      casework::v1::GetConsistencyProofRequest req;
      req.set_first_tree_size(kept->size);
      req.set_second_tree_size(latest.size);
      casework::v1::GetConsistencyProofResponse resp;
      auto ctx = client.NewContext();
      const grpc::Status status = casework::v1::AuditService::NewStub(client.channel())
                                      ->GetConsistencyProof(ctx.get(), req, &resp);
      if (!status.ok()) {
        return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                            absl::StrCat("the consistency proof from size ", kept->size, " to ",
                                         latest.size, " was refused: ", status.error_message()));
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
    if (kept->size == latest.size) return step;  // nothing new to keep
  }
  if (!WriteFileWhole(path, latest_note)) {
    return absl::InternalError(absl::StrCat("cannot write the kept checkpoint ", path));
  }
  return step;
}

}  // namespace casework::client

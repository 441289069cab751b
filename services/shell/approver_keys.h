// Approvers' keys: the read model of the "approvers/{person_id}" streams, and the check
// of a sign-off's signature that the shell makes before the core decides.
//
// Tables (written in the same atomic batch as the event they come from; each event
// writes its own key, so a rebuild folds the log event by event without reading):
//   approver_key          key_id -> ApproverKey (registration fields; deterministic bytes)
//   approver_key_revoked  key_id -> ApproverKey (key_id, approver and revoke_* fields)
//
// A key is registered once and for one approver; it may be revoked once, and stays in
// the tables after revocation so that every past sign-off can be checked against it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "casework/v1/admin_service.pb.h"
#include "casework/v1/case_service.pb.h"
#include "casework/v1/events.pb.h"
#include "grpcpp/support/status.h"
#include "services/workflow/policy.h"
#include "store/event_log.h"

namespace casework::shell {

inline constexpr char kApproverKeyTable[] = "approver_key";
inline constexpr char kApproverKeyRevokedTable[] = "approver_key_revoked";
inline constexpr char kApproverStreamPrefix[] = "approvers/";

// "approvers/{person_id}".
[[nodiscard]] std::string ApproverStream(std::string_view person_id);

// The projection writes of one event; empty for events of other streams. `event` must
// carry its envelope (stream, version, actor, time) as stored.
[[nodiscard]] std::vector<store::ProjectionWrite> ProjectApproverKeyEvent(
    const casework::v1::Event& event);

// Reads the key tables.
class ApproverKeys {
 public:
  explicit ApproverKeys(store::EventLog* log) : log_(log) {}

  // The key with this id, with its revocation if it was revoked; nullopt when it was
  // never registered. Store errors (kDataLoss when a stored entry does not parse).
  [[nodiscard]] absl::StatusOr<std::optional<casework::v1::ApproverKey>> Find(
      std::string_view key_id) const;

 private:
  store::EventLog* log_;
};

// What the shell concluded about a sign-off's signature.
struct SignOffVerdict {
  // The key the signature verified with (set only when it verified).
  std::optional<casework::v1::ApproverKey> verified;
  // Why it did not (set only when a key id and signature were sent and failed). The
  // shell answers this instead of the core's SIGN_OFF_SIGNATURE_NOT_VERIFIED, so the
  // core's order of checks (role, version, state, ...) still comes first.
  std::optional<grpc::Status> refusal;
};

// Checks a sign-off's signature for `actor`, in this order:
//   no key_id or no signature         -> neither set (the core refuses it)
//   the key was never registered      -> PERMISSION_DENIED KEY_UNKNOWN (field key_id)
//   the key is another approver's     -> PERMISSION_DENIED KEY_NOT_OWNED_BY_CALLER
//   the key was revoked               -> PERMISSION_DENIED KEY_REVOKED
//   the key's level is not the one the
//   principals file gives the approver -> PERMISSION_DENIED APPROVER_LEVEL_MISMATCH
//   the signature is not 64 bytes     -> INVALID_ARGUMENT SIGNATURE_MALFORMED
//   the request names no valid case   -> neither set (the core refuses it)
//   the signature does not verify over the canonical statement built from the request
//   (workflow::SignOffStatementFor)   -> PERMISSION_DENIED SIGNATURE_INVALID
// A signature made for another case, version or inspection fails the last check.
// Returns store errors as such.
[[nodiscard]] absl::StatusOr<SignOffVerdict> VerifySignOff(
    const ApproverKeys& keys, const workflow::Principal& actor,
    const casework::v1::SignOffClosureRequest& request);

}  // namespace casework::shell

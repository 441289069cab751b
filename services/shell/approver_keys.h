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

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
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

// Reads the key tables, and keeps a sign-off and a revocation of the same key apart.
class ApproverKeys {
 public:
  explicit ApproverKeys(store::EventLog* log) : log_(log) {}
  ApproverKeys(const ApproverKeys&) = delete;
  ApproverKeys& operator=(const ApproverKeys&) = delete;

  // The key with this id, with its revocation if it was revoked; nullopt when it was
  // never registered. Store errors (kDataLoss when a stored entry does not parse).
  [[nodiscard]] absl::StatusOr<std::optional<casework::v1::ApproverKey>> Find(
      std::string_view key_id) const;

  // A sign-off's hold on its key, from before its key is looked up until its append is
  // answered (durable or refused): a revocation of the key waits for it, so a sign-off
  // checked before a revocation is never written after it. Blocked when the key was
  // being revoked as the sign-off began: the sign-off must then be refused, to be retried
  // (the revocation may be durable before the sign-off's append would be, or may fail).
  // Released on destruction; empty (holding nothing) when default-made or made for no
  // key id.
  class SignOffHold {
   public:
    SignOffHold() = default;
    SignOffHold(SignOffHold&& other) noexcept { *this = std::move(other); }
    SignOffHold& operator=(SignOffHold&& other) noexcept;
    ~SignOffHold() { Release(); }
    [[nodiscard]] bool blocked() const { return blocked_; }
    void Release();

   private:
    friend class ApproverKeys;
    const ApproverKeys* keys_ = nullptr;  // set while it holds the key
    std::string key_id_;
    bool blocked_ = false;
  };
  [[nodiscard]] SignOffHold HoldForSignOff(const std::string& key_id) const;

  // A revocation's mark on its key, from after the key's checks (it exists, it is the
  // approver's, it is not revoked yet; looked up again once marked) until the
  // revocation's append is answered: sign-offs that begin meanwhile are blocked.
  // Released on destruction.
  class RevocationMark {
   public:
    RevocationMark() = default;
    RevocationMark(RevocationMark&& other) noexcept { *this = std::move(other); }
    RevocationMark& operator=(RevocationMark&& other) noexcept;
    ~RevocationMark() { Release(); }
    void Release();

   private:
    friend class ApproverKeys;
    const ApproverKeys* keys_ = nullptr;
    std::string key_id_;
  };
  // Marks `key_id` as being revoked, then waits up to `wait` for the sign-offs that hold
  // it to be answered. nullopt (and no mark) when another revocation of the key holds the
  // mark, or when the sign-offs were not answered in time.
  [[nodiscard]] std::optional<RevocationMark> MarkForRevocation(const std::string& key_id,
                                                                absl::Duration wait) const;

 private:
  struct InFlight {
    int sign_offs = 0;
    bool revoking = false;
  };
  void Unhold(const std::string& key_id) const;
  void Unmark(const std::string& key_id) const;

  store::EventLog* log_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
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
//   and `latest_leaf_hash`, the leaf hash of the case's latest event
//   (workflow::SignOffStatementFor)   -> PERMISSION_DENIED SIGNATURE_STATEMENT_OUTDATED
//                                        when it verifies over the statement of the
//                                        earlier rules (SignOffStatementV1For), else
//                                        PERMISSION_DENIED SIGNATURE_INVALID
// A signature made for another case, version, inspection or history fails the last check.
// Returns store errors as such.
[[nodiscard]] absl::StatusOr<SignOffVerdict> VerifySignOff(
    const ApproverKeys& keys, const workflow::Principal& actor,
    const casework::v1::SignOffClosureRequest& request, std::string_view latest_leaf_hash);

}  // namespace casework::shell

// Deep verification: re-runs the rules over the log.
//
// Fed every event in position order from 0, it replays each case through the core's
// Evolve and, for every command's worth of events (consecutive positions of one stream
// with one request id), re-decides the command reconstructed from them (workflow::Readmit)
// as of their time. It re-checks every sign-off's Ed25519 signature over the canonical
// statement (services/workflow/statement.h) against the key the approver had registered
// on "approvers/{person_id}" before it (ApproverKeyRegistered, not revoked since).
//
// What the log cannot tell: roles and jurisdictions come from the principals file, which
// is configuration, not history. The re-decision therefore gives the actor every role
// and the case's county as jurisdiction; everything else (states, separation of duties
// by person, fields, deadlines against the time of the event, the closure policy,
// signatures) is checked exactly. The closure policy is the server's current one.
//
// Memory: one Case per case in the log, and one entry per registered key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "services/workflow/policy.h"
#include "store/event_log.h"

namespace casework::shell {

struct DeepVerifyOptions {
  workflow::Policy policy;
};

// True when `signature` is the Ed25519 signature of `message` by the 32-byte
// `public_key` (OpenSSL 3).
[[nodiscard]] bool VerifyEd25519(std::string_view public_key, std::string_view message,
                                 std::string_view signature);

class DeepVerifier {
 public:
  struct Problem {
    int64_t position = 0;
    std::string detail;
  };

  explicit DeepVerifier(DeepVerifyOptions options) : options_(std::move(options)) {}

  // The event at the next position. Returns the first problem found so far (a command is
  // checked once its last event is known, so a problem may name an earlier position).
  [[nodiscard]] std::optional<Problem> Add(const store::StoredEvent& event);
  // Checks the last pending command.
  [[nodiscard]] std::optional<Problem> Finish();

  [[nodiscard]] int64_t commands_checked() const { return commands_checked_; }
  [[nodiscard]] int64_t signatures_checked() const { return signatures_checked_; }

 private:
  struct Key {
    std::string person;
    std::string public_key;
    casework::v1::ApprovalLevel level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
    bool revoked = false;
  };

  std::optional<Problem> CheckPending();
  void AddKeyEvent(const casework::v1::Event& event);

  const DeepVerifyOptions options_;
  absl::flat_hash_map<std::string, casework::v1::Case> cases_;  // by stream
  absl::flat_hash_map<std::string, Key> keys_;                  // by key id
  std::vector<casework::v1::Event> pending_;
  int64_t pending_position_ = 0;
  int64_t next_position_ = 0;
  int64_t commands_checked_ = 0;
  int64_t signatures_checked_ = 0;
};

}  // namespace casework::shell

// Deep verification: re-runs the rules over the log.
//
// Fed every event in position order from 0, it replays each case through the core's
// Evolve and, for every command's worth of events (consecutive positions of one stream
// with one request id), re-decides the command reconstructed from them (workflow::Readmit)
// as of their time. It re-checks every sign-off's Ed25519 signature over the canonical
// statement (services/workflow/statement.h) against the key the approver had registered
// on "approvers/{person_id}" before it (ApproverKeyRegistered, not revoked since), with
// the same strict verifier that admitted it (ed25519.h).
//
// Roles and jurisdictions: a server that records its principals (PrincipalsRecorded on
// "config/principals") stamps every event with the version of the set its actor was
// authorised under. For such an event the set must have been recorded earlier in the
// log (and its recorded version must be the hash of its content), the actor must be in
// it, and the re-decision runs with exactly the actor's roles and jurisdiction from it;
// the events of other streams are checked for the role their service requires (approver
// keys: admin; registry: admin; county talks and notices: approver, auditor or admin;
// draws: auditor) and the jurisdiction they touch. An event without a version (a server
// that did not record its principals) is re-decided as before: the actor gets every role
// and the case's county as jurisdiction. Everything else (states, separation of duties
// by person, fields, deadlines against the time of the event, the closure policy,
// signatures) is checked exactly. The closure policy is the server's current one.
//
// Memory: the case states in a CaseStates (serialized, at most `state_bytes_max` of them
// kept when a loader is given; dropped states are refolded from the log), one version per
// case, one entry per registered key, and every recorded principals set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "services/shell/case_states.h"
#include "services/workflow/policy.h"
#include "store/event_log.h"

namespace casework::shell {

struct DeepVerifyOptions {
  workflow::Policy policy;
  // Bytes of case states kept (case_states.h); beyond, they are dropped and refolded from
  // the log through `loader`. Without a loader every state is kept.
  size_t state_bytes_max = 128u << 20;
  CaseStates::Loader loader;
  // States kept parsed (the cases touched last).
  size_t parsed_max = 4096;
};

class DeepVerifier {
 public:
  struct Problem {
    int64_t position = 0;
    std::string detail;
  };

  explicit DeepVerifier(DeepVerifyOptions options)
      : options_(std::move(options)),
        cases_(options_.state_bytes_max, options_.loader, options_.parsed_max) {}

  // The event at the next position. Returns the first problem found so far (a command is
  // checked once its last event is known, so a problem may name an earlier position).
  [[nodiscard]] std::optional<Problem> Add(const store::StoredEvent& event);
  // Checks the last pending command.
  [[nodiscard]] std::optional<Problem> Finish();

  [[nodiscard]] int64_t commands_checked() const { return commands_checked_; }
  [[nodiscard]] int64_t signatures_checked() const { return signatures_checked_; }
  [[nodiscard]] const CaseStates& cases() const { return cases_; }

 private:
  struct Key {
    std::string person;
    std::string public_key;
    casework::v1::ApprovalLevel level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
    bool revoked = false;
  };

  std::optional<Problem> CheckPending();
  void AddKeyEvent(const casework::v1::Event& event);
  // Records a principals set; a problem when its version is not the hash of its content.
  std::optional<Problem> AddPrincipals(int64_t position, const casework::v1::Event& event);
  // The actor of `event` under the principals version it names: nullptr when it names
  // none; a problem when the set is unknown or the actor is not in it.
  std::optional<Problem> Authority(int64_t position, const casework::v1::Event& event,
                                   std::optional<workflow::Principal>* actor) const;
  // The role and jurisdiction an event of a non-case stream needs.
  std::optional<Problem> CheckServiceEvent(int64_t position, const casework::v1::Event& event,
                                           const workflow::Principal& actor) const;

  const DeepVerifyOptions options_;
  CaseStates cases_;                            // by stream
  casework::v1::Case state_;                    // the state of the command being checked
  absl::flat_hash_map<std::string, Key> keys_;  // by key id
  // Recorded principals sets: version -> id -> principal.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, workflow::Principal>>
      principal_sets_;
  // The authority of the pending command's actor (nullopt: none named).
  std::optional<workflow::Principal> pending_actor_;
  std::vector<casework::v1::Event> pending_;
  int64_t pending_position_ = 0;
  int64_t next_position_ = 0;
  int64_t commands_checked_ = 0;
  int64_t signatures_checked_ = 0;
};

}  // namespace casework::shell

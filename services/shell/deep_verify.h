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
// once the log's records claim to stand alone (PrincipalsRecorded.exclusive), the actor
// must also stand, with the same roles and jurisdiction, in the latest set recorded (or
// reinstated) before the event;
// the events of other streams are checked for the role their service requires (approver
// keys: admin; registry: admin; county talks and notices: approver, auditor or admin;
// draws: auditor) and the jurisdiction they touch. An event without a version (a server
// that did not record its principals) is re-decided as before: the actor gets every role
// and the case's county as jurisdiction. Everything else (states, separation of duties
// by person, fields, deadlines against the time of the event, the closure policy,
// signatures) is checked exactly. The closure policy is the one a sign-off records
// (rules/2026.4 on), else the server's current one.
//
// Memory: the case states in a CaseStates (serialized, at most `state_bytes_max` of them
// kept when a loader is given; dropped states are refolded from the log), one version per
// case, one entry per registered key, and every recorded principals set.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
  // Sign-off signatures are checked on a thread of their own beside the fold (true), or
  // inline (false). Either way the verdict is the same: the first problem in position
  // order, a signature's or a rule's.
  bool signatures_in_background = true;
};

// Ed25519 checks of sign-offs, in the order given, on one thread beside the caller's
// (deep_verify.cc). At most kQueued wait; Submit blocks beyond that.
class SignatureChecks {
 public:
  struct Check {
    int64_t position = 0;
    std::string public_key;
    std::string statement;
    std::string signature;
    std::string problem;  // the detail when it does not verify
  };
  struct Failure {
    int64_t position = 0;
    std::string detail;
  };
  static constexpr size_t kQueued = 1024;

  explicit SignatureChecks(bool background) : background_(background) {}
  SignatureChecks(const SignatureChecks&) = delete;
  SignatureChecks& operator=(const SignatureChecks&) = delete;
  ~SignatureChecks();

  void Submit(Check check);
  // The first submitted check that failed, if one did among those done so far.
  [[nodiscard]] std::optional<Failure> FailedSoFar();
  // Waits for every submitted check; the first that failed, if any.
  [[nodiscard]] std::optional<Failure> Drain();

 private:
  void Run();

  const bool background_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Check> queue_;         // guarded by mu_
  bool busy_ = false;               // the worker holds a check (mu_)
  bool stopping_ = false;           // (mu_)
  bool started_ = false;            // (mu_)
  std::optional<Failure> failure_;  // the first failure (mu_)
  std::atomic<bool> failed_{false};
  std::thread worker_;
};

class DeepVerifier {
 public:
  struct Problem {
    int64_t position = 0;
    std::string detail;
  };

  explicit DeepVerifier(DeepVerifyOptions options)
      : options_(std::move(options)),
        cases_(options_.state_bytes_max, options_.loader, options_.parsed_max),
        signatures_(options_.signatures_in_background) {}

  // The event at the next position. Returns the first problem found so far (a command is
  // checked once its last event is known, and a signature a little later when checked in
  // the background, so a problem may name an earlier position).
  [[nodiscard]] std::optional<Problem> Add(const store::StoredEvent& event);
  // Checks the last pending command and waits for every signature check.
  [[nodiscard]] std::optional<Problem> Finish();
  // Waits for the signature checks submitted so far; the first that failed. A caller that
  // stops feeding events for a problem of its own (a read that failed) asks this first:
  // checked inline, that signature would have been reported before.
  [[nodiscard]] std::optional<Problem> SignatureFailure();

  [[nodiscard]] int64_t commands_checked() const { return commands_checked_; }
  [[nodiscard]] int64_t signatures_checked() const { return signatures_checked_; }
  // Closures admitted under a closure policy they record that asks for fewer approvers, or
  // fewer at a level, than options.policy (rules/2026.4 on): not a problem (the policy was
  // the server's then), but for an auditor to see; and the position of the first one.
  [[nodiscard]] int64_t closures_under_weaker_policy() const {
    return closures_under_weaker_policy_;
  }
  [[nodiscard]] int64_t first_closure_under_weaker_policy() const {
    return first_closure_under_weaker_policy_;
  }
  [[nodiscard]] const CaseStates& cases() const { return cases_; }

 private:
  struct Key {
    std::string person;
    std::string public_key;
    casework::v1::ApprovalLevel level = casework::v1::APPROVAL_LEVEL_UNSPECIFIED;
    bool revoked = false;
  };

  std::optional<Problem> AddEvent(const store::StoredEvent& event);
  // The problem to report given the fold's (if any): a failed signature check submitted
  // before it comes first in position order.
  std::optional<Problem> Settle(std::optional<Problem> fold_problem);
  std::optional<Problem> CheckPending();
  void AddKeyEvent(const casework::v1::Event& event);
  // Records a principals set; a problem when its version is not the hash of its content.
  std::optional<Problem> AddPrincipals(int64_t position, const casework::v1::Event& event);
  // The actor of `event` under the principals version it names: nullptr when it names
  // none; a problem when the set is unknown or the actor is not in it, or, once records
  // claim to stand alone, when the set in force does not hold the actor with the same
  // roles and jurisdiction.
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
  // A principals record in parts, as far as its parts came (parts_ 0: none open).
  casework::v1::PrincipalsRecorded principal_parts_;
  // Its actor and request id (every part has the first part's).
  std::string principal_parts_actor_;
  std::string principal_parts_request_id_;
  // From the first record that claims it (PrincipalsRecorded.exclusive): the set in force,
  // the latest recorded or reinstated, and its record's position. Empty before.
  std::string in_force_;
  int64_t in_force_position_ = -1;
  // The authority of the pending command's actor (nullopt: none named).
  std::optional<workflow::Principal> pending_actor_;
  std::vector<casework::v1::Event> pending_;
  int64_t pending_position_ = 0;
  store::Hash pending_last_leaf_{};  // the leaf hash of pending_'s last event
  // The position of the first event admitted under rules whose sign-offs name the latest
  // leaf hash (workflow::SignOffNamesLatestLeaf); -1 before one.
  int64_t first_naming_leaf_ = -1;
  int64_t next_position_ = 0;
  int64_t commands_checked_ = 0;
  int64_t signatures_checked_ = 0;
  int64_t closures_under_weaker_policy_ = 0;
  int64_t first_closure_under_weaker_policy_ = -1;
  SignatureChecks signatures_;  // last: its worker stops before the rest goes
};

}  // namespace casework::shell

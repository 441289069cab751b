// The write path of the shell: answer a retry, load the state, run the core, append.
//
// Execute never blocks on the disk: it reads the case's projection (a RocksDB point
// read), runs the pure core, and hands the events to the log's commit thread; `done`
// runs there once the batch holding them is durable, or at once on a refusal. Two
// answers run on a worker thread instead (they read or sign, which must not hold up the
// commit thread): a retry that the log found racing its first attempt, and a receipt.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "casework/v1/case_service.pb.h"
#include "casework/v1/command.pb.h"
#include "grpcpp/support/status.h"
#include "services/shell/approver_keys.h"
#include "services/shell/serial_worker.h"
#include "services/workflow/decider.h"
#include "store/event_log.h"

namespace casework::shell {

class PrincipalsHolder;

// Reads the server's clock, in microseconds since the epoch. Injected so tests can pin it.
using Clock = std::function<int64_t()>;
[[nodiscard]] int64_t SystemClockMicros();

class CommandProcessor {
 public:
  using Done = absl::AnyInvocable<void(grpc::Status) &&>;

  CommandProcessor(store::EventLog* log, workflow::Policy policy, Clock clock)
      : log_(log), policy_(std::move(policy)), clock_(std::move(clock)) {}

  // Executes one command for `case_id` as `actor`; fills `response` and calls `done`
  // exactly once. `response` must stay alive until then.
  // `command` is read before Execute returns. The case is decided and evolved in
  // response->case_ (on the response's arena, when it has one).
  void Execute(const workflow::Principal& actor, const std::string& case_id,
               const casework::v1::Command& command, casework::v1::CaseCommandResponse* response,
               Done done);

  // The committed state of a case: version 0 when it does not exist.
  [[nodiscard]] absl::StatusOr<casework::v1::Case> LoadCase(const std::string& case_id);
  // The same, parsed into `state` (cleared first).
  [[nodiscard]] absl::Status LoadCaseInto(const std::string& case_id, casework::v1::Case* state);
  // A check of a command the rules accepted for `actor`, run before it is appended (never
  // for a retry of a recorded request, nor before the rules' own checks of role and
  // jurisdiction): a status to answer instead of appending. Set before serving.
  using AcceptedCheck = std::function<std::optional<grpc::Status>(const workflow::Principal& actor,
                                                                  const casework::v1::Command&)>;
  // The append gate of `gate` (PrincipalsHolder::append_gate; none when null) is held
  // shared from the check until the append is queued, so that a reload's record cannot
  // come between them.
  void SetAcceptedCheck(AcceptedCheck check, const PrincipalsHolder* gate = nullptr) {
    accepted_check_ = std::move(check);
    append_gate_ = gate;
  }
  // Sets the position and the leaf hash of the latest event of a loaded case (neither is in
  // the stored row: a row is written before the log places its events). Nothing for
  // version 0.
  [[nodiscard]] absl::Status SetLastEvent(casework::v1::Case* state);
  // The event of a case at `version`; kDataLoss when the log has none (the projection
  // said the case has it).
  [[nodiscard]] absl::StatusOr<store::StoredEvent> ReadEventAt(const std::string& case_id,
                                                               int64_t version);

  // The events of a case from `from_version`, at most `limit`, with their positions.
  [[nodiscard]] absl::StatusOr<std::vector<casework::v1::EventRecord>> ReadCaseEvents(
      const std::string& case_id, int64_t from_version, size_t limit);

  // Issues a receipt (checkpoint and inclusion proof of the event at `position`) into
  // `receipt`, then runs `done`; set for commands that ask (want_receipt).
  using ReceiptFn =
      std::function<void(int64_t position, casework::v1::Receipt* receipt, Done done)>;
  void set_receipts(ReceiptFn receipts) { receipts_ = std::move(receipts); }

  // The registered approver keys that sign-offs are verified against. Without them
  // (tests of other commands) no signature verifies and every sign-off is refused.
  void set_approver_keys(const ApproverKeys* keys) { keys_ = keys; }

  // Answers the racing retries still queued (above), then runs any later one on its
  // caller. Call before the log closes; the destructor does it too.
  void Stop() { racing_retries_.Stop(); }

  // The largest case row a command may leave (bytes of the serialized Case): the log's
  // bound on a projection value (RocksEventLog::Options::event_bytes_max, 1 MiB). A
  // command whose case would outgrow it is refused, FAILED_PRECONDITION
  // CASE_RECORD_FULL, instead of by the log as a storage error.
  void set_case_row_bytes_max(size_t bytes) { case_row_bytes_max_ = bytes; }

  [[nodiscard]] const workflow::Policy& policy() const { return policy_; }
  [[nodiscard]] store::EventLog* log() const { return log_; }

 private:
  AcceptedCheck accepted_check_;
  const PrincipalsHolder* append_gate_ = nullptr;
  // For a sign-off that left `state` VERIFIED: what the closure still needs, in the answer.
  void SetClosureOutstanding(const casework::v1::Case& state,
                             casework::v1::CaseCommandResponse* response) const;
  // The first answer to a request id, for `actor_id` who sent it again: REQUEST_ID_REUSED
  // when the request differs or the first was someone else's.
  void AnswerRetry(const std::string& actor_id, const std::string& case_id,
                   const store::AppendResult& first, const std::string& fingerprint,
                   casework::v1::CaseCommandResponse* response, Done done);

  // One case per organisation (by its jurisdiction path, city/county/township/org, which
  // the caller covers): reserves `organisation` for the creation of `case_id` while it is
  // appended, then checks that no other case lists it. nullopt when the creation may go
  // on (ReleaseOrganisation afterwards), else the refusal.
  std::optional<grpc::Status> ReserveOrganisation(const std::string& organisation,
                                                  const std::string& case_id);
  void ReleaseOrganisation(const std::string& organisation);

  store::EventLog* log_;
  workflow::Policy policy_;
  Clock clock_;
  const ApproverKeys* keys_ = nullptr;
  ReceiptFn receipts_;
  size_t case_row_bytes_max_ = size_t{1} << 20;
  // Organisations (paths) whose creation is being appended: the case and how many calls hold it
  // (a retry racing its first attempt shares it; the log answers it as a retry).
  absl::Mutex organisations_mu_;
  absl::flat_hash_map<std::string, std::pair<std::string, int>> organisations_in_flight_
      ABSL_GUARDED_BY(organisations_mu_);
  // The answers of retries that raced their first attempt, which read the case's history:
  // off the log's commit thread, where the log finds such a retry. One after another, so
  // a long history delays the racing retries behind it. Last: destroyed first, it
  // answers what is queued while the members above are alive; the log must still be
  // open then (Stop, before the log closes).
  SerialWorker racing_retries_;
};

// "cases/{case_id}" -> case_id; empty when the name is malformed.
[[nodiscard]] std::string CaseIdFromName(const std::string& name);
[[nodiscard]] std::string CaseStream(const std::string& case_id);

}  // namespace casework::shell

// casework.v1.AdminService: approvers' keys are registered and revoked by an
// administrator, as events on the approver's stream "approvers/{person_id}"
// (ApproverKeyRegistered, ApproverKeyRevoked) with the key tables (approver_keys.h)
// written in the same atomic append. CreateBackup takes a verified backup (one at a
// time: BACKUP_RUNNING while one is taken) with the function the server configures.
//
// RegisterApproverKey checks, in order (first failure answered):
//   authenticated                        UNAUTHENTICATED (auth.h)
//   the caller holds the role admin      PERMISSION_DENIED ACTOR_LACKS_ROLE
//   request_id                           INVALID_ARGUMENT REQUEST_ID_INVALID
//   approver is a valid person id        INVALID_ARGUMENT PERSON_ID_INVALID
//   a retry of an earlier request        the first answer (REQUEST_ID_REUSED when the
//                                        request differs)
//   approver is in the principals file
//   with the role approver               FAILED_PRECONDITION APPROVER_NOT_IN_PRINCIPALS
//   the caller's jurisdiction covers the
//   approver's                           PERMISSION_DENIED JURISDICTION_NOT_COVERED
//   level is COUNTY or CITY              INVALID_ARGUMENT APPROVER_LEVEL_INVALID
//   the approver has an approval_level
//   in the principals file               FAILED_PRECONDITION APPROVER_LEVEL_NOT_IN_PRINCIPALS
//   ... and it is the level given        FAILED_PRECONDITION APPROVER_LEVEL_MISMATCH
//   public_key is 32 bytes               INVALID_ARGUMENT PUBLIC_KEY_MALFORMED
//   ... a canonical encoding             INVALID_ARGUMENT PUBLIC_KEY_NOT_CANONICAL
//   ... of a prime-order point           INVALID_ARGUMENT PUBLIC_KEY_WEAK
//   the key was never registered (for
//   anyone, revoked or not)              ALREADY_EXISTS KEY_ALREADY_REGISTERED
// RevokeApproverKey checks the caller, request_id, approver and retry as above, then:
//   reason is given, at most 16 KiB      INVALID_ARGUMENT REVOKE_REASON_REQUIRED,
//                                        TEXT_TOO_LONG
//   the key is registered                NOT_FOUND KEY_UNKNOWN
//   the caller covers the approver (an
//   approver no longer a principal needs
//   an admin of the whole city)          PERMISSION_DENIED JURISDICTION_NOT_COVERED
//   the key is the approver's            INVALID_ARGUMENT KEY_NOT_OWNED_BY_APPROVER
//   already revoked                      OK, nothing appended
// Two requests for the same approver at once: one gets ABORTED STALE_EXPECTED_VERSION.
#pragma once

#include <deque>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "services/shell/approver_keys.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/principals.h"
#include "services/shell/serial_worker.h"
#include "store/event_log.h"

namespace casework::shell {

class AdminServiceImpl final : public casework::v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(store::EventLog* log, const Authenticator* auth,
                   const PrincipalsHolder* principals, Clock clock)
      : log_(log), keys_(log), auth_(auth), principals_(principals), clock_(std::move(clock)) {}

  grpc::ServerUnaryReactor* RegisterApproverKey(
      grpc::CallbackServerContext* ctx, const casework::v1::RegisterApproverKeyRequest* req,
      casework::v1::RegisterApproverKeyResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeApproverKey(
      grpc::CallbackServerContext* ctx, const casework::v1::RevokeApproverKeyRequest* req,
      casework::v1::RevokeApproverKeyResponse* resp) override;

  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* ctx,
                                         const casework::v1::CreateBackupRequest* req,
                                         casework::v1::CreateBackupResponse* resp) override;

  // How CreateBackup takes a backup: fills the response or returns the store's error.
  // Unset: CreateBackup answers FAILED_PRECONDITION (backups not configured).
  using BackupFn = std::function<absl::Status(casework::v1::CreateBackupResponse*)>;
  void set_backup(BackupFn backup) { backup_ = std::move(backup); }
  // How CreateBackup starts the backup's thread: `run` on a new, detached thread. A test
  // sets one that throws, as std::thread does when no thread can be made (answered
  // UNAVAILABLE BACKUP_NOT_STARTED).
  using ThreadStarter = std::function<void(std::function<void()> run)>;
  static void StartDetachedThread(std::function<void()> run);
  void set_thread_starter_for_testing(ThreadStarter starter) { start_thread_ = std::move(starter); }

  // ReloadPrincipals: admin of the whole city (PERMISSION_DENIED ACTOR_LACKS_ROLE,
  // JURISDICTION_NOT_COVERED otherwise), then the reloader (principals.h), naming the
  // caller, on a worker thread: one at a time (ABORTED PRINCIPALS_RELOAD_RUNNING while one
  // runs). A file that does not load is FAILED_PRECONDITION PRINCIPALS_FILE_INVALID (the set
  // in use stays); a caller whom a reload changed meanwhile, PERMISSION_DENIED
  // PRINCIPAL_CHANGED; a record that cannot be appended answers the store's error and
  // fails closed. Unset: FAILED_PRECONDITION PRINCIPALS_RELOAD_NOT_CONFIGURED.
  grpc::ServerUnaryReactor* ReloadPrincipals(grpc::CallbackServerContext* ctx,
                                             const casework::v1::ReloadPrincipalsRequest* req,
                                             casework::v1::ReloadPrincipalsResponse* resp) override;
  void set_principals_reloader(PrincipalsReloader* reloader) { reloader_ = reloader; }

  // Waits for a running backup (call after the server stopped).
  ~AdminServiceImpl() override;

  [[nodiscard]] const ApproverKeys& keys() const { return keys_; }

 private:
  // Reserves `key_id` for a registration of `request_id` on `stream` with `fingerprint`;
  // false when another registration holds it. The same request (a retry racing its first
  // attempt) shares the reservation, and the log answers it as a retry.
  bool Reserve(const std::string& key_id, const std::string& stream, const std::string& request_id,
               const std::string& fingerprint);
  // Frees one reservation of a key id made by Reserve.
  void Release(const std::string& key_id);
  // The answer to a request whose id the log already holds on `stream` (`first`): OK
  // with the stored event in `event` when it is the same request from the same actor,
  // else REQUEST_ID_REUSED.
  grpc::Status RecordedAnswer(const std::string& actor_id, const std::string& stream,
                              const store::AppendResult& first, const std::string& fingerprint,
                              const std::string& request_id, casework::v1::Event* event);
  // The first answer of a registration whose request id the log already holds.
  grpc::Status AnswerRegistrationRetry(const std::string& actor_id, const std::string& stream,
                                       const store::AppendResult& first,
                                       const std::string& fingerprint,
                                       const std::string& request_id,
                                       casework::v1::RegisterApproverKeyResponse* resp);

  store::EventLog* log_;
  ApproverKeys keys_;
  const Authenticator* auth_;
  const PrincipalsHolder* principals_;
  Clock clock_;
  // Key ids being registered (between the uniqueness check and the durable append), so
  // that one key cannot be registered twice at once for two approvers (two streams).
  absl::Mutex mu_;
  struct PendingKey {
    std::string stream;
    std::string request_id;
    std::string fingerprint;
    int holders = 0;
  };
  absl::flat_hash_map<std::string, PendingKey> pending_key_ids_ ABSL_GUARDED_BY(mu_);
  BackupFn backup_;
  ThreadStarter start_thread_ = StartDetachedThread;
  bool backup_running_ ABSL_GUARDED_BY(mu_) = false;
  // The latest backups taken with a request id, oldest first (at most kBackupAnswersKept):
  // a retry with the id gets the first answer.
  struct BackupTaken {
    std::string request_id;
    std::string actor;
    casework::v1::CreateBackupResponse response;
  };
  static constexpr size_t kBackupAnswersKept = 64;
  std::deque<BackupTaken> backups_taken_ ABSL_GUARDED_BY(mu_);
  PrincipalsReloader* reloader_ = nullptr;
  bool reload_running_ ABSL_GUARDED_BY(mu_) = false;
  // Runs reloads off the callback threads; last, so that it stops (and finishes a
  // reload under way) before the rest goes.
  SerialWorker reloads_{1};
};

}  // namespace casework::shell

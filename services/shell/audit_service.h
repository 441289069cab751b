// casework.v1.AuditService: checkpoints, proofs, replay as of, verify, export.
//
// Only principals with the role `auditor` or `admin` may call it (PERMISSION_DENIED,
// reason AUDITOR_ROLE_REQUIRED, otherwise). Jurisdiction (PERMISSION_DENIED
// JURISDICTION_NOT_COVERED): GetCaseAsOf, GetLedgerAsOf and GetInclusionProof (which returns
// the event) serve only what lies in the caller's subtree (an event of no jurisdiction
// only to the whole city); ExportLog, which holds every
// jurisdiction's events, needs an auditor or admin of the whole city (a one-segment
// jurisdiction); checkpoints, consistency proofs and VerifyLog carry hashes and
// positions and serve any auditor (a deep VerifyLog's problem from the rules names cases
// and people of any jurisdiction: it is told in full to the whole city's auditors only,
// by position to the others). Everything is computed from the log: states
// through the core's Evolve, hashes from the stored bytes.
//
// Short calls (checkpoint, proofs, one case as of) answer on the gRPC thread. Calls that
// read the whole log (ledger as of, verify, export) run as jobs on their own threads, at
// most `jobs_max` at once (RESOURCE_EXHAUSTED beyond); a streaming job writes one message
// at a time and waits for the client to take it, so a slow client slows only its job, and
// one that takes nothing for `write_stall_ms` has its call cancelled (its place freed).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "casework/v1/audit_service.grpc.pb.h"
#include "services/shell/auth.h"
#include "services/shell/deep_verify.h"
#include "services/shell/jobs.h"
#include "store/rocks_event_log.h"

namespace casework::shell {

struct AuditOptions {
  int jobs_max = 4;
  // Events read from the log at once.
  size_t read_chunk_events = 4096;
  // Bytes per ExportLogResponse.
  size_t export_chunk_bytes = 1u << 20;
  // VerifyLog sends progress at least every this many positions.
  int64_t verify_progress_positions = 65536;
  // Cases a ledger replay may hold (kResourceExhausted beyond).
  size_t ledger_cases_max = 4u << 20;
  // Bytes of case states one fold (a ledger replay, a deep verification) keeps; beyond,
  // they are dropped and refolded from the log (case_states.h).
  size_t fold_state_bytes_max = 128u << 20;
  // A streaming job (a verification, an export) whose message waits this long to be
  // taken by its client has its call cancelled, which frees its place.
  int64_t write_stall_ms = 60'000;
  // Tests only: run on a ledger replay's thread as it starts (a test holds it there).
  std::function<void()> job_started_for_testing;
};

class AuditServiceImpl final : public casework::v1::AuditService::CallbackService {
 public:
  // `log` and `auth` must outlive the service. `deep` configures deep verification (the
  // closure policy, and the signature check of sign-offs).
  AuditServiceImpl(store::RocksEventLog* log, const Authenticator* auth, DeepVerifyOptions deep,
                   AuditOptions options = {});
  // Waits for running jobs (call after the server stopped; jobs see their calls cancelled).
  ~AuditServiceImpl() override = default;

  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* ctx,
                                          const casework::v1::GetCheckpointRequest* req,
                                          casework::v1::GetCheckpointResponse* resp) override;
  grpc::ServerUnaryReactor* GetInclusionProof(
      grpc::CallbackServerContext* ctx, const casework::v1::GetInclusionProofRequest* req,
      casework::v1::GetInclusionProofResponse* resp) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(
      grpc::CallbackServerContext* ctx, const casework::v1::GetConsistencyProofRequest* req,
      casework::v1::GetConsistencyProofResponse* resp) override;
  grpc::ServerUnaryReactor* GetCaseAsOf(grpc::CallbackServerContext* ctx,
                                        const casework::v1::GetCaseAsOfRequest* req,
                                        casework::v1::Case* resp) override;
  grpc::ServerUnaryReactor* GetLedgerAsOf(grpc::CallbackServerContext* ctx,
                                          const casework::v1::GetLedgerAsOfRequest* req,
                                          casework::v1::GetLedgerAsOfResponse* resp) override;
  grpc::ServerUnaryReactor* ListCasesAsOf(grpc::CallbackServerContext* ctx,
                                          const casework::v1::ListCasesAsOfRequest* req,
                                          casework::v1::ListCasesAsOfResponse* resp) override;
  grpc::ServerWriteReactor<casework::v1::VerifyLogResponse>* VerifyLog(
      grpc::CallbackServerContext* ctx, const casework::v1::VerifyLogRequest* req) override;
  grpc::ServerWriteReactor<casework::v1::ExportLogResponse>* ExportLog(
      grpc::CallbackServerContext* ctx, const casework::v1::ExportLogRequest* req) override;

 private:
  // Reads events 1..through of a stream from the log, for the folds' CaseStates.
  [[nodiscard]] CaseStates::Loader StreamLoader() const;

  store::RocksEventLog* log_;
  const Authenticator* auth_;
  const DeepVerifyOptions deep_;
  const AuditOptions options_;

  // Last: destroyed first, it waits for the jobs, which use the members above.
  JobRunner jobs_;
};

}  // namespace casework::shell

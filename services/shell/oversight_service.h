// casework.v1.OversightService: the organisation registry, flags, county and
// accountability reports, county talks and notices, and the inspection draw.
//
// Who may call (PERMISSION_DENIED otherwise, reasons in docs/oversight.md):
//   ImportRegistry                      admin, covering every row's organisation
//   GetCountyReport, ListFlags,
//   GetAccountabilityReport             auditor, admin or approver, covering the scope
//   RecordCountyTalk, IssueCountyNotice approver, auditor or admin, covering the county
//   DrawInspectionSample                auditor, covering the scope
//
// Reports and flags are computed from the log (services/oversight) by a job that folds
// every event up to the as-of time; at most `jobs_max` such jobs run at once
// (RESOURCE_EXHAUSTED beyond). An as-of time after now is a forecast: the ledger as it
// stands, judged at that time.
//
// A job (a report, a draw, an import) answers and writes only for a caller who still
// stands: one a principals reload removed or changed while it ran ends with
// UNAUTHENTICATED IDENTITY_UNKNOWN or PERMISSION_DENIED PRINCIPAL_CHANGED (CallerStanding),
// checked as the log is folded and again right before the answer or the first append.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "services/oversight/oversight.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/jobs.h"
#include "store/rocks_event_log.h"

namespace casework::oversight {
struct RegistryRow;
}  // namespace casework::oversight

namespace casework::shell {

struct OversightOptions {
  int jobs_max = 4;
  // Events read from the log at once.
  size_t read_chunk_events = 4096;
  // How long an import waits for the one before it (imports run one at a time), then
  // ABORTED IMPORT_IN_PROGRESS. The wait holds one of the jobs_max places.
  absl::Duration import_wait_max = absl::Seconds(5);
  // ListFlags: the bytes of flags a page holds at most, and an unpaged answer (beyond it,
  // RESOURCE_EXHAUSTED FLAGS_TOO_MANY), under the server's 16 MiB send limit with room
  // for the framing.
  size_t flags_page_bytes_max = size_t{4} << 20;
  size_t flags_answer_bytes_max = size_t{15} << 20;
  // Tests only: run on a job's thread as it starts its work: before a report or a draw
  // folds the log (a draw answered from its record does not fold), before an import reads
  // its rows. A test learns there that the job runs, or holds it.
  std::function<void()> job_started_for_testing;
};

class OversightServiceImpl final : public casework::v1::OversightService::CallbackService {
 public:
  // `log` and `auth` must outlive the service. `policy` gives the flags' periods.
  OversightServiceImpl(store::RocksEventLog* log, const Authenticator* auth,
                       workflow::Policy policy, Clock clock, OversightOptions options = {});
  // Waits for running jobs (call after the server stopped).
  ~OversightServiceImpl() override = default;

  grpc::ServerUnaryReactor* ImportRegistry(grpc::CallbackServerContext* ctx,
                                           const casework::v1::ImportRegistryRequest* req,
                                           casework::v1::ImportRegistryResponse* resp) override;
  grpc::ServerUnaryReactor* GetCountyReport(grpc::CallbackServerContext* ctx,
                                            const casework::v1::GetCountyReportRequest* req,
                                            casework::v1::GetCountyReportResponse* resp) override;
  grpc::ServerUnaryReactor* ListFlags(grpc::CallbackServerContext* ctx,
                                      const casework::v1::ListFlagsRequest* req,
                                      casework::v1::ListFlagsResponse* resp) override;
  grpc::ServerUnaryReactor* DrawInspectionSample(
      grpc::CallbackServerContext* ctx, const casework::v1::DrawInspectionSampleRequest* req,
      casework::v1::DrawInspectionSampleResponse* resp) override;
  grpc::ServerUnaryReactor* RecordCountyTalk(
      grpc::CallbackServerContext* ctx, const casework::v1::RecordCountyTalkRequest* req,
      casework::v1::CountyAccountabilityResponse* resp) override;
  grpc::ServerUnaryReactor* IssueCountyNotice(
      grpc::CallbackServerContext* ctx, const casework::v1::IssueCountyNoticeRequest* req,
      casework::v1::CountyAccountabilityResponse* resp) override;
  grpc::ServerUnaryReactor* GetAccountabilityReport(
      grpc::CallbackServerContext* ctx, const casework::v1::GetAccountabilityReportRequest* req,
      casework::v1::GetAccountabilityReportResponse* resp) override;

 private:
  // Folds the log into `ledger`: every event with time <= cut_micros (and, when
  // `size_max` >= 0, position < size_max). Stops early when the call is cancelled.
  // Stops early, with the status that ends the job, when the call is cancelled or
  // `caller` no longer stands.
  grpc::Status Fold(grpc::CallbackServerContext* ctx, JobCaller* caller, int64_t cut_micros,
                    int64_t size_max, oversight::Ledger* ledger);
  // Records a county's talk or notice. A retry (the request id recorded on the county's
  // stream) is answered first; otherwise `check`, when set, may refuse the request (its
  // rules that depend on the time, which a retry made later must not meet again).
  grpc::ServerUnaryReactor* RecordCounty(grpc::CallbackServerContext* ctx,
                                         const workflow::Principal& actor,
                                         const std::string& county, const std::string& request_id,
                                         const std::string& fingerprint, casework::v1::Event event,
                                         casework::v1::CountyAccountabilityResponse* resp,
                                         std::function<std::optional<grpc::Status>()> check = {});
  void Draw(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* ctx, JobCaller caller,
            casework::v1::DrawInspectionSampleRequest req,
            casework::v1::DrawInspectionSampleResponse* resp);
  void Import(grpc::ServerUnaryReactor* reactor, JobCaller caller,
              casework::v1::ImportRegistryRequest req, casework::v1::ImportRegistryResponse* resp);
  // Rows by county, each county's rows in organisation order.
  using RowsByCounty = std::map<std::string, std::vector<const oversight::RegistryRow*>>;
  // The import once it holds the claim (importing_): checks, reads, appends and records.
  grpc::Status RecordImport(JobCaller& caller, const casework::v1::ImportRegistryRequest& req,
                            const RowsByCounty& by_county,
                            casework::v1::ImportRegistryResponse* resp);

  store::RocksEventLog* log_;
  const Authenticator* auth_;
  const workflow::Policy policy_;
  Clock clock_;
  const OversightOptions options_;
  // Set by an import from its first read of the registry to its last append: where an
  // organisation is registered now, which decides who may import it, cannot change
  // between the check and the append (only imports write the registry).
  absl::Mutex import_mu_;
  bool importing_ = false;  // guarded by import_mu_
  // Last: destroyed first, it waits for the jobs, which use the members above.
  JobRunner jobs_;
};

}  // namespace casework::shell

// The bounds on long jobs, over loopback against an in-process server on a real log:
// one backup at a time (BACKUP_RUNNING), at most `jobs_max` oversight jobs at once
// (OVERSIGHT_JOBS_BUSY, shared by every kind of report and the inspection draw), and the
// cases one ledger replay may hold (LEDGER_TOO_LARGE, counted within the jurisdiction
// asked for). Each refusal says what to do, and a job that ends frees its place. Also the
// verification of a range that ends in the log's unfinished last block, on a live log;
// registry imports one at a time (IMPORT_IN_PROGRESS after a bounded wait); and jobs whose
// caller a principals reload removes or changes while they run, which then neither answer
// nor write.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/oversight/oversight.h"
#include "services/oversight/sample.h"
#include "services/shell/admin_service.h"
#include "services/shell/audit_service.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/gate_testing.h"
#include "services/shell/oversight_service.h"
#include "services/shell/principals.h"
#include "services/shell/status_testing.h"
#include "store/rocks_event_log.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using testing::ReasonOf;

constexpr char kPrincipals[] = R"({"principals": [
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "auditor.dongshan", "roles": ["auditor"], "jurisdiction": "jiangcheng/dongshan"},
  {"id": "admin.leaving", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "auditor.changing", "roles": ["auditor"], "jurisdiction": "jiangcheng"}
]})";

// After a reload: "admin.leaving" removed, "auditor.changing" narrowed to one county.
constexpr char kPrincipalsReloaded[] = R"({"principals": [
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "auditor.dongshan", "roles": ["auditor"], "jurisdiction": "jiangcheng/dongshan"},
  {"id": "auditor.changing", "roles": ["auditor"], "jurisdiction": "jiangcheng/xihe"}
]})";

// A registry of `n` organisations of `county`.
std::string Registry(const std::string& county, int n) {
  std::string csv = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  for (int i = 0; i < n; ++i) {
    const std::string id = "org-" + county + "-" + std::to_string(i);
    csv += id + ",村党支部,jiangcheng/" + county + "/t01/" + id + ",village,3,1\n";
  }
  return csv;
}

constexpr int kJobsMax = 2;
constexpr size_t kLedgerCasesMax = 2;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using testing::Gate;

class JobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cw-jobs-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store::RocksEventLog::Options log_options;
    log_options.path = (dir_ / "log").string();
    auto log = store::RocksEventLog::Open(log_options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
    auto principals = Principals::Parse(kPrincipals);
    ASSERT_TRUE(principals.ok()) << principals.status();
    holder_ = std::make_unique<PrincipalsHolder>(*principals);
    auth_ = std::make_unique<Authenticator>(holder_.get());
    processor_ =
        std::make_unique<CommandProcessor>(log_.get(), workflow::Policy{}, SystemClockMicros);
    lister_ = *(*principals)->Find("lister");
    oversight_ = std::make_unique<OversightServiceImpl>(
        log_.get(), auth_.get(), workflow::Policy{}, SystemClockMicros,
        OversightOptions{.jobs_max = kJobsMax,
                         .import_wait_max = import_wait_max_,
                         .flags_page_bytes_max = flags_bytes_max_,
                         .flags_answer_bytes_max = flags_bytes_max_,
                         .job_started_for_testing = [this] {
                           ++jobs_started_;
                           if (hold_jobs_) hold_jobs_->Wait();
                         }});
    admin_ = std::make_unique<AdminServiceImpl>(log_.get(), auth_.get(), holder_.get(),
                                                SystemClockMicros);
    audit_ = std::make_unique<AuditServiceImpl>(log_.get(), auth_.get(), DeepVerifyOptions{},
                                                AuditOptions{.jobs_max = 1,
                                                             .export_chunk_bytes = 16u << 10,
                                                             .ledger_cases_max = kLedgerCasesMax,
                                                             .write_stall_ms = 2000,
                                                             .job_started_for_testing = [this] {
                                                               ++jobs_started_;
                                                               if (hold_jobs_) hold_jobs_->Wait();
                                                             }});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(oversight_.get());
    builder.RegisterService(admin_.get());
    builder.RegisterService(audit_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    channel_target_ = "127.0.0.1:" + std::to_string(port);
    channel_ = grpc::CreateChannel(channel_target_, grpc::InsecureChannelCredentials());
    for (int i = 0; i < 3; ++i) CreateCase("c" + std::to_string(i));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_.reset();
    audit_.reset();
    admin_.reset();
    oversight_.reset();
    processor_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
  }

  void CreateCase(const std::string& case_id, const std::string& county = "dongshan",
                  size_t findings_bytes = 8) {
    v1::Command command;
    v1::CreateCaseRequest* req = command.mutable_create_case();
    req->set_case_id(case_id);
    req->set_request_id("r-" + case_id);
    auto* org = req->mutable_organisation();
    org->set_organisation_id("org-" + case_id);
    org->set_display_name("村党支部");
    org->set_jurisdiction("jiangcheng/" + county + "/t01/org-" + case_id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req->set_case_type(v1::CASE_TYPE_POOR);
    req->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    req->set_findings(std::string(findings_bytes, 'f'));
    req->mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
    v1::CaseCommandResponse response;
    std::promise<grpc::Status> done;
    processor_->Execute(lister_, case_id, std::move(command), &response,
                        [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status status = done.get_future().get();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& identity) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-casework-identity", identity);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }

  grpc::Status Draw(const std::string& request_id, v1::DrawInspectionSampleResponse* resp,
                    const std::string& who = "auditor") {
    auto ctx = Context(who);
    v1::DrawInspectionSampleRequest req;
    req.set_request_id(request_id);
    req.set_sample_size(2);
    return v1::OversightService::NewStub(channel_)->DrawInspectionSample(ctx.get(), req, resp);
  }

  grpc::Status Import(const std::string& who, const std::string& request_id, const std::string& csv,
                      v1::ImportRegistryResponse* resp) {
    auto ctx = Context(who);
    v1::ImportRegistryRequest req;
    req.set_request_id(request_id);
    req.set_csv(csv);
    return v1::OversightService::NewStub(channel_)->ImportRegistry(ctx.get(), req, resp);
  }

  // Applies kPrincipalsReloaded, as caseworkd does on SIGHUP.
  void Reload() {
    auto principals = Principals::Parse(kPrincipalsReloaded);
    ASSERT_TRUE(principals.ok()) << principals.status();
    holder_->Set(*std::move(principals));
  }

  // Waits (bounded) until `n` jobs have started, or `n` appends wait in the paused log.
  void WaitJobsStarted(int n) {
    for (int tries = 0; tries < 600 && jobs_started_.load() < n; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(jobs_started_.load(), n);
  }
  void WaitQueuedAppends(size_t n) {
    for (int tries = 0; tries < 600 && log_->QueuedAppendsForTesting() < n; ++tries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(log_->QueuedAppendsForTesting(), n);
  }

  grpc::Status CountyReport(const std::string& who = "auditor") {
    auto ctx = Context(who);
    v1::GetCountyReportResponse resp;
    return v1::OversightService::NewStub(channel_)->GetCountyReport(
        ctx.get(), v1::GetCountyReportRequest(), &resp);
  }

  // VerifyLog's last message (the verdict), the call expected to end OK. The audit jobs'
  // one place is freed before the previous job answered (JobRunner::ReleaseCurrentPlace),
  // so calls one after the other are never refused as busy.
  v1::VerifyLogResponse Verify(const std::string& who, int64_t from, int64_t to, bool deep) {
    v1::VerifyLogResponse last;
    auto ctx = Context(who);
    v1::VerifyLogRequest req;
    req.set_from_position(from);
    req.set_to_position(to);
    req.set_deep(deep);
    auto stream = v1::AuditService::NewStub(channel_)->VerifyLog(ctx.get(), req);
    v1::VerifyLogResponse message;
    while (stream->Read(&message)) last = message;
    const grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(last.done());
    return last;
  }

  grpc::Status Backup(v1::CreateBackupResponse* resp) {
    auto ctx = Context("admin");
    return v1::AdminService::NewStub(channel_)->CreateBackup(ctx.get(), v1::CreateBackupRequest(),
                                                             resp);
  }

  // Set before SetUp (a fixture's constructor) to change the service's options.
  absl::Duration import_wait_max_ = absl::Seconds(5);
  size_t flags_bytes_max_ = size_t{4} << 20;
  std::atomic<int> jobs_started_{0};
  std::unique_ptr<Gate> hold_jobs_;  // when set before a job starts, it waits there

  std::filesystem::path dir_;
  std::unique_ptr<store::RocksEventLog> log_;
  std::unique_ptr<PrincipalsHolder> holder_;
  std::unique_ptr<PrincipalsReloader> reloader_;  // outlives the server
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CommandProcessor> processor_;
  workflow::Principal lister_;
  std::unique_ptr<OversightServiceImpl> oversight_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<AuditServiceImpl> audit_;
  std::unique_ptr<grpc::Server> server_;
  std::string channel_target_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Draws hold their places while the log holds their appends back; every kind of
// oversight job beyond jobs_max is refused, and once the draws are written a report runs.
TEST_F(JobsTest, OversightJobsBeyondTheBoundAreRefusedUntilOneEnds) {
  log_->PauseCommitsForTesting(true);
  std::vector<std::future<grpc::Status>> draws;
  std::vector<v1::DrawInspectionSampleResponse> drawn(kJobsMax);
  for (int i = 0; i < kJobsMax; ++i) {
    draws.push_back(std::async(std::launch::async, [this, i, &drawn] {
      return Draw("draw-" + std::to_string(i), &drawn[i]);
    }));
  }
  // Both draws have folded the log and wait on their appends.
  for (int tries = 0;
       tries < 600 && log_->QueuedAppendsForTesting() < static_cast<size_t>(kJobsMax); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(log_->QueuedAppendsForTesting(), static_cast<size_t>(kJobsMax));

  v1::DrawInspectionSampleResponse third;
  const grpc::Status refused = Draw("draw-x", &third);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "OVERSIGHT_JOBS_BUSY");
  EXPECT_NE(refused.error_message().find("retry when one has finished"), std::string::npos)
      << refused.error_message();
  const grpc::Status report = CountyReport();
  EXPECT_EQ(report.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << report.error_message();
  EXPECT_EQ(ReasonOf(report), "OVERSIGHT_JOBS_BUSY");

  log_->PauseCommitsForTesting(false);
  for (int i = 0; i < kJobsMax; ++i) {
    const grpc::Status status = draws[i].get();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(drawn[i].case_ids_size(), 2);
  }
  // The places are freed as the jobs answer: a report asked for now is taken.
  const grpc::Status after = CountyReport();
  EXPECT_TRUE(after.ok()) << after.error_message();
  // The refused draw wrote nothing: drawn now, it is a new draw.
  const grpc::Status redrawn = Draw("draw-x", &third);
  EXPECT_TRUE(redrawn.ok()) << redrawn.error_message();
  EXPECT_EQ(third.position(), log_->Size() - 1);
}

// A server with no backup directory says so.
TEST_F(JobsTest, ABackupWithoutABackupDirectoryIsRefused) {
  v1::CreateBackupResponse resp;
  const grpc::Status refused = Backup(&resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "BACKUP_NOT_CONFIGURED");
  EXPECT_NE(refused.error_message().find("no backup directory"), std::string::npos)
      << refused.error_message();
}

// A second backup while one is being taken is refused; the first completes, verified,
// and a backup may be taken again afterwards.
TEST_F(JobsTest, ABackupWhileOneRunsIsRefused) {
  const std::string backups = (dir_ / "backups").string();
  Gate started;
  Gate release;
  std::atomic<int> calls{0};
  admin_->set_backup([&](v1::CreateBackupResponse* resp) -> absl::Status {
    if (calls.fetch_add(1) == 0) {
      started.Open();
      release.Wait();
    }
    auto id = log_->Backup(backups);
    if (!id.ok()) return id.status();
    resp->set_backup_id(*id);
    resp->set_directory(backups);
    return absl::OkStatus();
  });
  v1::CreateBackupResponse first;
  auto running = std::async(std::launch::async, [&] { return Backup(&first); });
  started.Wait();

  v1::CreateBackupResponse second;
  const grpc::Status refused = Backup(&second);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "BACKUP_RUNNING");
  EXPECT_NE(refused.error_message().find("retry when it is done"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(calls.load(), 1);

  release.Open();
  const grpc::Status done = running.get();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_EQ(first.backup_id(), 1u);
  // The place is freed before the answer: the next backup may start at once.
  v1::CreateBackupResponse third;
  const grpc::Status again = Backup(&third);
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(third.backup_id(), 2u);
}

// One reload of the principals at a time: a second, asked for while the first waits for
// its record to be written, is refused (ABORTED PRINCIPALS_RELOAD_RUNNING) and changes
// nothing; the first completes, and a reload asked for afterwards is made.
// A server without a reloader says it does not reload on request.
TEST_F(JobsTest, AReloadWhileOneRunsIsRefused) {
  const auto reload = [this](v1::ReloadPrincipalsResponse* resp) {
    auto ctx = Context("admin");
    return v1::AdminService::NewStub(channel_)->ReloadPrincipals(
        ctx.get(), v1::ReloadPrincipalsRequest(), resp);
  };
  {
    v1::ReloadPrincipalsResponse resp;
    const grpc::Status refused = reload(&resp);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << refused.error_message();
    EXPECT_EQ(ReasonOf(refused), "PRINCIPALS_RELOAD_NOT_CONFIGURED");
  }
  const std::string path = (dir_ / "principals.json").string();
  std::ofstream(path) << kPrincipals;
  reloader_ = std::make_unique<PrincipalsReloader>(
      PrincipalsReloader::Options{.path = path, .log = log_.get(), .clock = SystemClockMicros},
      holder_.get());
  admin_->set_principals_reloader(reloader_.get());
  const int64_t size_before = log_->Size();
  log_->PauseCommitsForTesting(true);
  v1::ReloadPrincipalsResponse first;
  auto running = std::async(std::launch::async, [&] { return reload(&first); });
  WaitQueuedAppends(1);  // the first reload waits on its record

  v1::ReloadPrincipalsResponse second;
  const grpc::Status refused = reload(&second);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "PRINCIPALS_RELOAD_RUNNING");
  EXPECT_NE(refused.error_message().find("retry when it is done"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(log_->QueuedAppendsForTesting(), 1u);  // the refused one wrote nothing

  log_->PauseCommitsForTesting(false);
  const grpc::Status done = running.get();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_TRUE(first.recorded_now());
  EXPECT_EQ(log_->Size(), size_before + 1);
  // The place is freed before the answer: the next reload is made at once, and finds the
  // same file recorded.
  v1::ReloadPrincipalsResponse third;
  const grpc::Status again = reload(&third);
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_FALSE(third.recorded_now());
  EXPECT_EQ(third.recorded_position(), first.recorded_position());
}

// A backup whose thread cannot be started (the server out of resources) is refused
// (UNAVAILABLE BACKUP_NOT_STARTED, retry later) and does not hold the one place: once
// threads can be made again, the next backup is taken.
TEST_F(JobsTest, ABackupWhoseThreadCannotStartIsRefusedAndFreesItsPlace) {
  const std::string backups = (dir_ / "backups").string();
  admin_->set_backup([&](v1::CreateBackupResponse* resp) -> absl::Status {
    auto id = log_->Backup(backups);
    if (!id.ok()) return id.status();
    resp->set_backup_id(*id);
    resp->set_directory(backups);
    return absl::OkStatus();
  });
  admin_->set_thread_starter_for_testing([](std::function<void()>) {
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
  });
  v1::CreateBackupResponse first;
  const grpc::Status refused = Backup(&first);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "BACKUP_NOT_STARTED");
  EXPECT_NE(refused.error_message().find("retry later"), std::string::npos)
      << refused.error_message();
  EXPECT_FALSE(std::filesystem::exists(backups));

  admin_->set_thread_starter_for_testing(AdminServiceImpl::StartDetachedThread);
  v1::CreateBackupResponse second;
  const grpc::Status taken = Backup(&second);
  ASSERT_TRUE(taken.ok()) << taken.error_message();
  EXPECT_EQ(second.backup_id(), 1u);
}

// A ledger replay holds at most ledger_cases_max cases of the jurisdiction asked for:
// beyond, it is refused and told to ask for a narrower one, which then is answered (cases
// elsewhere are not counted against it).
TEST_F(JobsTest, ALedgerTooLargeIsRefusedAndANarrowerJurisdictionAnswered) {
  CreateCase("x0", "xihe");  // three cases in dongshan (SetUp), one in xihe
  // The one audit job's place is freed as the last one answers: calls one after the
  // other are never refused as busy.
  auto ledger = [&](const std::string& jurisdiction, v1::GetLedgerAsOfResponse* resp) {
    v1::GetLedgerAsOfRequest req;
    req.set_jurisdiction(jurisdiction);
    auto ctx = Context("auditor");
    return v1::AuditService::NewStub(channel_)->GetLedgerAsOf(ctx.get(), req, resp);
  };
  v1::GetLedgerAsOfResponse resp;
  const grpc::Status refused = ledger("jiangcheng", &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "LEDGER_TOO_LARGE");
  EXPECT_NE(refused.error_message().find("ask for a narrower jurisdiction"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(ledger("jiangcheng/dongshan", &resp).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another county, with one case, and one organisation's place are answered.
  const grpc::Status xihe = ledger("jiangcheng/xihe", &resp);
  ASSERT_TRUE(xihe.ok()) << xihe.error_message();
  ASSERT_GE(resp.counts_size(), 1);
  EXPECT_EQ(resp.counts(0).jurisdiction(), "jiangcheng/xihe");
  EXPECT_EQ(resp.counts(0).listed(), 1);
  const grpc::Status one = ledger("jiangcheng/dongshan/t01/org-c1", &resp);
  ASSERT_TRUE(one.ok()) << one.error_message();
  EXPECT_EQ(resp.counts(0).listed(), 1);
}

// An export whose client stopped reading, its flow-control window full, has its call
// cancelled once a message waited write_stall_ms (2 s here) to be taken: it does not hold the audit
// job's place (here the only one) for as long as its connection lives.
TEST_F(JobsTest, AStreamWhoseClientStopsReadingFreesItsJob) {
  for (int i = 0; i < 300; ++i) CreateCase("big" + std::to_string(i), "dongshan", 16000);
  // A client with a fixed 64 KiB window (no growth from bandwidth probes), far below the
  // export's 4.8 MB.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  auto slow = grpc::CreateCustomChannel(channel_target_, grpc::InsecureChannelCredentials(), args);
  auto export_ctx = Context("auditor");
  auto reader =
      v1::AuditService::NewStub(slow)->ExportLog(export_ctx.get(), v1::ExportLogRequest());
  v1::ExportLogResponse message;
  ASSERT_TRUE(reader->Read(&message));
  size_t received = message.data().size();

  // The export holds the one place until a write has waited 2 s.
  auto verify = [&] {
    auto ctx = Context("auditor");
    auto stream = v1::AuditService::NewStub(channel_)->VerifyLog(ctx.get(), v1::VerifyLogRequest());
    v1::VerifyLogResponse progress;
    bool ok = false;
    while (stream->Read(&progress)) ok = progress.done() && progress.ok();
    const grpc::Status status = stream->Finish();
    return std::make_pair(status, ok);
  };
  std::pair<grpc::Status, bool> verified = verify();
  for (int tries = 0; tries < 300 && ReasonOf(verified.first) == "AUDIT_JOBS_BUSY"; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    verified = verify();
  }
  ASSERT_TRUE(verified.first.ok()) << verified.first.error_message();
  EXPECT_TRUE(verified.second);

  // The stalled export was cancelled by the server, short of its end.
  while (reader->Read(&message)) received += message.data().size();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(received, 4'000'000u);
}

// The three cases are the log's unfinished first block of 16 events, which no stored
// subtree covers: a verification of [0, 2) checks them against the signed checkpoint's
// root, and so finds event 1 damaged behind the running log's back.
TEST_F(JobsTest, ARangeInTheUnfinishedLastBlockIsCheckedAgainstTheSignedRoot) {
  const auto verify = [this](int64_t from, int64_t to) {
    return Verify("auditor", from, to, /*deep=*/false);
  };
  EXPECT_TRUE(verify(0, 2).ok());
  ASSERT_TRUE(log_->DamageEventForTesting(1).ok());
  EXPECT_TRUE(verify(2, 2).ok()) << "an empty range holds nothing to find damaged";
  for (const auto& [from, to] : {std::pair<int64_t, int64_t>{0, 2}, {1, 2}, {0, 3}}) {
    const v1::VerifyLogResponse verdict = verify(from, to);
    EXPECT_FALSE(verdict.ok()) << "[" << from << ", " << to << ")";
    EXPECT_EQ(verdict.first_bad_position(), 0) << verdict.problem();
    EXPECT_NE(verdict.problem().find("signed checkpoint"), std::string::npos) << verdict.problem();
  }
}

// A deep verification of a range re-runs the rules from position 0, so it also finds
// events before its range that no longer hash to the signed tree: it then names the
// first stored subtree there that they do not match (searched a chunk at a time, as pass
// 1 checks its range). The range itself is intact.
TEST_F(JobsTest, ADeepVerificationOfARangeNamesDamageBeforeTheRange) {
  for (int i = 3; i < 40; ++i) CreateCase("c" + std::to_string(i));
  ASSERT_EQ(log_->Size(), 40);
  ASSERT_TRUE(log_->DamageEventForTesting(5).ok());
  EXPECT_TRUE(Verify("auditor", 20, 40, /*deep=*/false).ok()) << "the range itself is intact";
  const v1::VerifyLogResponse shallow = Verify("auditor", 0, 40, /*deep=*/false);
  EXPECT_FALSE(shallow.ok());
  EXPECT_EQ(shallow.first_bad_position(), 0) << shallow.problem();
  const v1::VerifyLogResponse deep = Verify("auditor", 20, 40, /*deep=*/true);
  EXPECT_FALSE(deep.ok());
  EXPECT_EQ(deep.first_bad_position(), 0) << deep.problem();
  EXPECT_EQ(deep.problem(), shallow.problem());
}

// A deep verification's problem from the rules names cases and people of any
// jurisdiction: the whole city's auditor reads it in full, a county's auditor is told the
// position and who may read it. Here a listing appended behind the rules' back, which
// names a case other than the stream it is stored on.
TEST_F(JobsTest, ARulesProblemIsToldInFullToTheWholeCityOnly) {
  auto first = log_->ReadRange(0, 1);
  ASSERT_TRUE(first.ok() && first->size() == 1);
  v1::Event forged;
  ASSERT_TRUE(forged.ParseFromString(first->front().bytes));
  forged.set_stream("cases/elsewhere");
  forged.set_version(1);
  ASSERT_TRUE(log_->Append({.stream = "cases/forged",
                            .expected_version = 0,
                            .events = {forged.SerializeAsString()}})
                  .ok());
  const auto deep = [this](const std::string& who) { return Verify(who, 0, 0, /*deep=*/true); };
  const v1::VerifyLogResponse city = deep("auditor");
  ASSERT_TRUE(city.done());
  EXPECT_FALSE(city.ok());
  EXPECT_EQ(city.first_bad_position(), 3);
  EXPECT_NE(city.problem().find("cases/elsewhere"), std::string::npos) << city.problem();
  const v1::VerifyLogResponse county = deep("auditor.dongshan");
  ASSERT_TRUE(county.done());
  EXPECT_FALSE(county.ok());
  EXPECT_EQ(county.first_bad_position(), 3);
  EXPECT_EQ(county.problem().find("cases/"), std::string::npos) << county.problem();
  EXPECT_NE(county.problem().find("auditor of the whole city"), std::string::npos)
      << county.problem();
}

// Opens `gate` when it goes out of scope, unless opened before: a job held there never
// outlives a test that failed early.
struct OpenAtEnd {
  Gate* gate;
  bool opened = false;
  void Open() {
    if (!opened) gate->Open();
    opened = true;
  }
  ~OpenAtEnd() { Open(); }
};

// Lets the log commit again when it goes out of scope (a test that failed early).
struct ResumeAtEnd {
  store::RocksEventLog* log;
  ~ResumeAtEnd() { log->PauseCommitsForTesting(false); }
};

class ImportWaitTest : public JobsTest {
 protected:
  ImportWaitTest() { import_wait_max_ = absl::Milliseconds(300); }
};

// An import waits for the one before it at most import_wait_max, then is told to retry;
// its retry once the first is done is imported.
TEST_F(ImportWaitTest, AnImportWaitsBoundedForTheOneBeforeIt) {
  log_->PauseCommitsForTesting(true);
  v1::ImportRegistryResponse first;
  auto running = std::async(std::launch::async, [&] {
    return Import("admin", "reg-1", Registry("dongshan", 3), &first);
  });
  // The first import holds the registry while the log holds its append back.
  ResumeAtEnd resume{log_.get()};  // after the future: resumed before it is awaited
  ASSERT_NO_FATAL_FAILURE(WaitQueuedAppends(1));
  v1::ImportRegistryResponse second;
  const grpc::Status waited = Import("admin", "reg-2", Registry("xihe", 2), &second);
  log_->PauseCommitsForTesting(false);
  EXPECT_EQ(waited.error_code(), grpc::StatusCode::ABORTED) << waited.error_message();
  EXPECT_EQ(ReasonOf(waited), "IMPORT_IN_PROGRESS");
  EXPECT_NE(waited.error_message().find("retry with the same request_id"), std::string::npos)
      << waited.error_message();
  const grpc::Status done = running.get();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_EQ(first.imported(), 3);
  const grpc::Status retried = Import("admin", "reg-2", Registry("xihe", 2), &second);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(second.imported(), 2);
  EXPECT_FALSE(second.replayed());
}

// An import that waited for the one before it while a reload removed its caller writes
// nothing in the removed administrator's name.
TEST_F(JobsTest, AnImportWaitingThroughAReloadThatRemovesItsCallerWritesNothing) {
  log_->PauseCommitsForTesting(true);
  v1::ImportRegistryResponse first, second;
  auto running = std::async(std::launch::async, [&] {
    return Import("admin", "reg-1", Registry("dongshan", 3), &first);
  });
  ResumeAtEnd resume{log_.get()};  // after the future: resumed before it is awaited
  ASSERT_NO_FATAL_FAILURE(WaitQueuedAppends(1));
  auto waiting = std::async(std::launch::async, [&] {
    return Import("admin.leaving", "leaving-1", Registry("xihe", 2), &second);
  });
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(2));  // the second runs: its caller authenticated
  ASSERT_NO_FATAL_FAILURE(Reload());
  log_->PauseCommitsForTesting(false);
  const grpc::Status done = running.get();
  ASSERT_TRUE(done.ok()) << done.error_message();
  const grpc::Status ended = waiting.get();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ended.error_message();
  EXPECT_EQ(ReasonOf(ended), "IDENTITY_UNKNOWN");
  EXPECT_NE(ended.error_message().find("the registry import was stopped and recorded nothing"),
            std::string::npos)
      << ended.error_message();
  auto version =
      log_->StreamVersion(std::string(oversight::kRegistryStreamPrefix) + "jiangcheng/xihe");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 0) << "the removed administrator's rows were recorded";
  auto record = log_->FindRequest(oversight::ImportStream("leaving-1"), "leaving-1");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_FALSE(record->has_value());
}

// While a reload records its set it holds the principals append gate: appends in a
// person's name (a county talk, an inspection draw, a registry import) wait for it, then
// check their caller against the set it serves, so that nothing checked against the old set
// lands after the new record. Here the test holds the gate as a reload does and switches the
// set while they wait: the caller it removes or narrows records nothing.
TEST_F(JobsTest, AppendsInAPersonsNameWaitForAReloadAndCheckTheSetItServes) {
  v1::CountyAccountabilityResponse talked;
  v1::DrawInspectionSampleResponse drawn;
  v1::ImportRegistryResponse imported;
  std::future<grpc::Status> talk, draw, import;
  // After the futures: let go before they are awaited, also when an assertion fails.
  testing::HeldExclusively held(holder_->append_gate());
  const int64_t arrived = holder_->append_gate_arrivals();
  talk = std::async(std::launch::async, [&] {
    auto ctx = Context("auditor.changing");
    v1::RecordCountyTalkRequest req;
    req.set_request_id("talk-1");
    req.set_county("jiangcheng/dongshan");
    v1::Person* who = req.add_talked_with();
    who->set_person_id("head.dongshan");
    who->set_display_name("东山县委组织部部长");
    req.set_subject("三年没有明显变化的村");
    return v1::OversightService::NewStub(channel_)->RecordCountyTalk(ctx.get(), req, &talked);
  });
  draw = std::async(std::launch::async, [&] { return Draw("draw-g", &drawn, "auditor.changing"); });
  import = std::async(std::launch::async, [&] {
    return Import("admin.leaving", "import-g", Registry("dongshan", 2), &imported);
});
// Each comes to the gate (bounded: 30 s) and waits there.
for (int i = 0; i < 3000 && holder_->append_gate_arrivals() < arrived + 3; ++i) {
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
}
ASSERT_EQ(holder_->append_gate_arrivals(), arrived + 3);
EXPECT_EQ(talk.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
EXPECT_EQ(draw.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
EXPECT_EQ(import.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
const int64_t size = log_->Size();
ASSERT_NO_FATAL_FAILURE(Reload());
held.Release();

const grpc::Status talk_status = talk.get();
EXPECT_EQ(talk_status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
    << talk_status.error_message();
EXPECT_EQ(ReasonOf(talk_status), "PRINCIPAL_CHANGED");
const grpc::Status draw_status = draw.get();
EXPECT_EQ(draw_status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
    << draw_status.error_message();
const grpc::Status import_status = import.get();
EXPECT_EQ(import_status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
    << import_status.error_message();
EXPECT_EQ(log_->Size(), size) << "recorded in the name of a caller the reload changed";
}  // namespace

// A report whose caller a reload narrows while it runs ends without its answer, and says
// why; asked again, it answers within the new jurisdiction.
TEST_F(JobsTest, AReportWhoseCallerAReloadChangesEndsWithoutItsAnswer) {
  hold_jobs_ = std::make_unique<Gate>();
  auto report = std::async(std::launch::async, [&] { return CountyReport("auditor.changing"); });
  OpenAtEnd release{hold_jobs_.get()};  // after the future: opened before it is awaited
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(1));
  ASSERT_NO_FATAL_FAILURE(Reload());
  release.Open();
  const grpc::Status ended = report.get();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ended.error_message();
  EXPECT_EQ(ReasonOf(ended), "PRINCIPAL_CHANGED");
  EXPECT_NE(ended.error_message().find("the county report was stopped, start a new one"),
            std::string::npos)
      << ended.error_message();
  hold_jobs_.reset();
  const grpc::Status again = CountyReport("auditor.changing");
  EXPECT_TRUE(again.ok()) << again.error_message();
}

// A draw whose caller a reload changes while it runs is not recorded in the caller's name.
TEST_F(JobsTest, ADrawWhoseCallerAReloadChangesRecordsNothing) {
  hold_jobs_ = std::make_unique<Gate>();
  v1::DrawInspectionSampleResponse drawn;
  auto draw =
      std::async(std::launch::async, [&] { return Draw("draw-c", &drawn, "auditor.changing"); });
  OpenAtEnd release{hold_jobs_.get()};  // after the future: opened before it is awaited
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(1));
  ASSERT_NO_FATAL_FAILURE(Reload());
  release.Open();
  const grpc::Status ended = draw.get();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ended.error_message();
  EXPECT_EQ(ReasonOf(ended), "PRINCIPAL_CHANGED");
  EXPECT_NE(ended.error_message().find("the inspection draw was stopped and recorded nothing"),
            std::string::npos)
      << ended.error_message();
  auto recorded = log_->FindRequest(oversight::SampleStream("draw-c"), "draw-c");
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_FALSE(recorded->has_value()) << "the draw was recorded in the changed caller's name";
}

// The ledger as of a time, asked by an auditor a reload narrows while it runs, is not
// answered; asked again, it is.
TEST_F(JobsTest, ALedgerReplayWhoseCallerAReloadChangesEndsWithoutItsAnswer) {
  auto ledger = [&](v1::GetLedgerAsOfResponse* resp) {
    v1::GetLedgerAsOfRequest req;
    req.set_jurisdiction("jiangcheng/xihe");
    auto ctx = Context("auditor.changing");
    return v1::AuditService::NewStub(channel_)->GetLedgerAsOf(ctx.get(), req, resp);
  };
  hold_jobs_ = std::make_unique<Gate>();
  v1::GetLedgerAsOfResponse resp;
  auto replay = std::async(std::launch::async, [&] { return ledger(&resp); });
  OpenAtEnd release{hold_jobs_.get()};  // after the future: opened before it is awaited
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(1));
  ASSERT_NO_FATAL_FAILURE(Reload());
  release.Open();
  const grpc::Status ended = replay.get();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ended.error_message();
  EXPECT_EQ(ReasonOf(ended), "PRINCIPAL_CHANGED");
  EXPECT_NE(ended.error_message().find("the ledger replay was stopped"), std::string::npos)
      << ended.error_message();
  hold_jobs_.reset();
  const grpc::Status again = ledger(&resp);
  EXPECT_TRUE(again.ok()) << again.error_message();
}

// The server about to stop (its drain nearly over, Authenticator::BeginStopping): a
// report or a draw under way ends UNAVAILABLE SHUTTING_DOWN at its next check, the draw
// recording nothing, and a verification sends nothing more and ends the same way, rather
// than being cut off by the stop with no reason.
TEST_F(JobsTest, JobsUnderWayWhenTheServerBeginsToStopEndShuttingDown) {
  const int64_t size = log_->Size();
  hold_jobs_ = std::make_unique<Gate>();
  auto report = std::async(std::launch::async, [&] { return CountyReport("auditor"); });
  v1::DrawInspectionSampleResponse drawn;
  auto draw = std::async(std::launch::async, [&] { return Draw("draw-s", &drawn); });
  OpenAtEnd release{hold_jobs_.get()};  // after the futures: opened before they are awaited
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(2));
  auth_->BeginStopping();
  release.Open();
  const grpc::Status report_ended = report.get();
  EXPECT_EQ(report_ended.error_code(), grpc::StatusCode::UNAVAILABLE)
      << report_ended.error_message();
  EXPECT_EQ(ReasonOf(report_ended), "SHUTTING_DOWN");
  EXPECT_NE(report_ended.error_message().find(
                "the county report was stopped; run it again once the server is back"),
            std::string::npos)
      << report_ended.error_message();
  const grpc::Status draw_ended = draw.get();
  EXPECT_EQ(draw_ended.error_code(), grpc::StatusCode::UNAVAILABLE) << draw_ended.error_message();
  EXPECT_NE(draw_ended.error_message().find("was stopped and recorded nothing"), std::string::npos)
      << draw_ended.error_message();
  EXPECT_EQ(log_->Size(), size) << "the draw recorded nothing";

  // An import held at its start, then let go: it records nothing.
  hold_jobs_ = std::make_unique<Gate>();
  v1::ImportRegistryResponse imported;
  auto import = std::async(std::launch::async, [&] {
    return Import("admin", "import-s", Registry("dongshan", 3), &imported);
  });
  OpenAtEnd release_import{hold_jobs_.get()};
  ASSERT_NO_FATAL_FAILURE(WaitJobsStarted(3));
  release_import.Open();
  const grpc::Status import_ended = import.get();
  EXPECT_EQ(import_ended.error_code(), grpc::StatusCode::UNAVAILABLE)
      << import_ended.error_message();
  EXPECT_NE(import_ended.error_message().find("was stopped and recorded nothing"),
            std::string::npos)
      << import_ended.error_message();
  EXPECT_EQ(log_->Size(), size) << "the import recorded nothing";
  hold_jobs_.reset();

  auto ctx = Context("auditor");
  auto stream = v1::AuditService::NewStub(channel_)->VerifyLog(ctx.get(), v1::VerifyLogRequest());
  v1::VerifyLogResponse message;
  int messages = 0;
  while (stream->Read(&message)) ++messages;
  const grpc::Status verify_ended = stream->Finish();
  EXPECT_EQ(messages, 0);
  EXPECT_EQ(verify_ended.error_code(), grpc::StatusCode::UNAVAILABLE)
      << verify_ended.error_message();
  EXPECT_EQ(ReasonOf(verify_ended), "SHUTTING_DOWN");
}

class FlagsBoundTest : public JobsTest {
 protected:
  FlagsBoundTest() { flags_bytes_max_ = 700; }
};

// Flags past what one answer holds are refused unpaged, saying to ask in pages; in pages
// each page stays within its bytes (at least one flag) and together they hold them all.
TEST_F(FlagsBoundTest, FlagsPastOneAnswerAreRefusedUnpagedAndComeInPages) {
  // One as-of time for every page: a page token is bound to its query, as-of time included
  // (read per call, a second ticking over between two pages made the token another query's).
  const int64_t as_of = NowSeconds() + 4 * 366 * 86400;
  const auto flags = [&](int32_t page_size, const std::string& token, v1::ListFlagsResponse* resp) {
    auto ctx = Context("auditor");
    v1::ListFlagsRequest req;
    req.mutable_as_of_time()->set_seconds(as_of);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return v1::OversightService::NewStub(channel_)->ListFlags(ctx.get(), req, resp);
  };
  v1::ListFlagsResponse whole;
  const grpc::Status refused = flags(0, "", &whole);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "FLAGS_TOO_MANY");
  EXPECT_NE(refused.error_message().find("ask for them in pages"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(whole.flags_size(), 0);
  std::set<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListFlagsResponse page;
    const grpc::Status status = flags(5000, token, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_GE(page.flags_size(), 1);
    size_t bytes = 0;
    for (const v1::Flag& f : page.flags()) {
      bytes += f.ByteSizeLong();
      EXPECT_TRUE(seen.insert(f.SerializeAsString()).second) << "a flag on two pages";
    }
    EXPECT_TRUE(page.flags_size() == 1 || bytes <= 700) << bytes;
    token = page.next_page_token();
  } while (!token.empty() && ++pages < 100);
  // Three open cases in dongshan: each overdue and three years without change.
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_GT(pages, 1);
}

}  // namespace casework::shell
}  // namespace casework::shell

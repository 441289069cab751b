// The server records its principals in the log and stamps every event with the version
// its actor was authorised under, so that an audit re-checks roles and jurisdictions
// from the log alone: at start, on a SIGHUP that changes the file (and not on one that
// does not), across a restart, and through the deep audit.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string_view>
#include <thread>

#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

// lister.b's entry in the test principals file (WriteTestPrincipals).
constexpr char kListerB[] =
    R"({"id": "lister.b", "roles": ["lister"], "jurisdiction": "jiangcheng"},)";

class PrincipalsLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
    Start();
  }

  // The log these tests leave verifies offline, with the stream and request-id indexes
  // checked against the request ids its events carry.
  void TearDown() override {
    if (HasFatalFailure() || server_ == nullptr) return;
    EXPECT_EQ(casework::testing::StopAndVerifyOffline(*server_, dir_.path() / "data"), "");
  }

  void Start() {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    server_->set_record_principals(true);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  // Every event of the log, read with WatchEvents until it caught up.
  std::vector<v1::EventRecord> Log() {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    auto reader = v1::EventService::NewStub(auditor->channel())
                      ->WatchEvents(ctx.get(), v1::WatchEventsRequest());
    std::vector<v1::EventRecord> out;
    v1::WatchEventsResponse m;
    while (reader->Read(&m)) {
      for (const auto& e : m.events()) out.push_back(e);
      if (m.caught_up()) break;
    }
    ctx->TryCancel();
    (void)reader->Finish();
    return out;
  }

  std::vector<v1::PrincipalsRecorded> Records() {
    std::vector<v1::PrincipalsRecorded> out;
    for (const auto& r : Log()) {
      if (r.event().has_principals_recorded()) out.push_back(r.event().principals_recorded());
    }
    return out;
  }

  // Waits (bounded: `tries` of 50 ms) until the log holds `n` principals records.
  bool WaitForRecords(size_t n, int tries = 100) {
    for (int i = 0; i < tries; ++i) {
      if (Records().size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Waits (bounded: 10 s) until the server knows `who`: a set is served a moment after
  // it is recorded. Whether it does is for the caller's next call to show.
  void WaitUntilServed(const std::string& who) {
    for (int i = 0; i < 200; ++i) {
      auto c = As(who);
      auto ctx = c->NewContext();
      v1::GetCaseRequest get;
      get.set_name("cases/none");
      v1::Case got;
      if (c->cases().GetCase(ctx.get(), get, &got).error_code() !=
          grpc::StatusCode::UNAUTHENTICATED) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  v1::CaseCommandResponse Create(const std::string& who, const std::string& id) {
    auto c = As(who);
    v1::CreateCaseRequest req;
    req.set_case_id(id);
    req.set_request_id("create-" + id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant");
    req.mutable_deadline()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count() +
                                        100 * 86400);
    v1::CaseCommandResponse resp;
    auto ctx = c->NewContext();
    auto status = c->cases().CreateCase(ctx.get(), req, &resp);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return resp;
  }

  // The principals file as the server was started with it.
  std::string PrincipalsText() const {
    std::stringstream text;
    text << std::ifstream(principals_).rdbuf();
    return text.str();
  }

  bool DeepVerifies(std::string* problem) {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    v1::VerifyLogRequest req;
    req.set_deep(true);
    auto reader = v1::AuditService::NewStub(auditor->channel())->VerifyLog(ctx.get(), req);
    v1::VerifyLogResponse m;
    bool ok = false;
    while (reader->Read(&m)) {
      if (m.done()) {
        ok = m.ok();
        *problem = m.problem();
      }
    }
    return reader->Finish().ok() && ok;
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(PrincipalsLogTest, RecordedAtStartStampedOnEventsAndRecordedAgainWhenChanged) {
  std::vector<v1::EventRecord> log = Log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].position(), 0);
  EXPECT_EQ(log[0].event().stream(), "config/principals");
  EXPECT_EQ(log[0].event().actor(), "caseworkd");
  const v1::PrincipalsRecorded first = log[0].event().principals_recorded();
  ASSERT_GT(first.principals_size(), 10);
  EXPECT_EQ(first.principals(0).id(), "admin");  // by id
  EXPECT_EQ(first.principals_version().size(), 16u);

  const v1::CaseCommandResponse a = Create("lister", "a-1");
  ASSERT_EQ(a.events_size(), 1);
  EXPECT_EQ(a.events(0).event().principals_version(), first.principals_version());

  // A SIGHUP with the same file records nothing.
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Records().size(), 1u);

  // A changed file: lister.b goes, a new lister comes; recorded before it is used.
  std::string json = PrincipalsText();
  const size_t at = json.find(kListerB);
  ASSERT_NE(at, std::string::npos);
  json.replace(
      at, std::string_view(kListerB).size(),
      R"({"id": "lister.c", "roles": ["lister"], "jurisdiction": "jiangcheng/dongshan"},)");
  std::ofstream(principals_, std::ios::trunc) << json;
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForRecords(2));
  const v1::PrincipalsRecorded second = Records()[1];
  EXPECT_NE(second.principals_version(), first.principals_version());
  // The set is served right after it is recorded.
  WaitUntilServed("lister.c");
  const v1::CaseCommandResponse c = Create("lister.c", "c-1");
  ASSERT_EQ(c.events_size(), 1);
  EXPECT_EQ(c.events(0).event().principals_version(), second.principals_version());

  // A restart with the same file records nothing new; the deep audit re-checks every
  // actor against the set recorded before its event.
  ASSERT_EQ(server_->Stop(), 0);
  Start();
  EXPECT_EQ(Records().size(), 2u);
  std::string problem;
  EXPECT_TRUE(DeepVerifies(&problem)) << problem;
}

// A return to a file recorded before (SIGHUP) is recorded as that set in force again, so
// that the audit holds what follows to it: lister.b, whom the file in between removed,
// acts again under the first set's version, and the log verifies deep. Each record claims
// to stand alone.
TEST_F(PrincipalsLogTest, AReturnToAnEarlierFileIsRecordedAsInForceAgain) {
  const std::string started = PrincipalsText();
  const std::string first = Records().at(0).principals_version();
  EXPECT_TRUE(Records().at(0).exclusive());
  std::string json = started;
  const size_t at = json.find(kListerB);
  ASSERT_NE(at, std::string::npos);
  json.erase(at, std::string_view(kListerB).size());
  std::ofstream(principals_, std::ios::trunc) << json;
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForRecords(2));
  EXPECT_TRUE(Records()[1].exclusive());
  EXPECT_FALSE(Records()[1].reinstated());

  std::ofstream(principals_, std::ios::trunc) << started;
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(WaitForRecords(3));
  const v1::PrincipalsRecorded back = Records()[2];
  EXPECT_TRUE(back.reinstated());
  EXPECT_TRUE(back.exclusive());
  EXPECT_EQ(back.principals_version(), first);
  EXPECT_EQ(back.principals_size(), 0);
  WaitUntilServed("lister.b");
  const v1::CaseCommandResponse b = Create("lister.b", "b-1");
  ASSERT_EQ(b.events_size(), 1);
  EXPECT_EQ(b.events(0).event().principals_version(), first);

  // A restart with the same file records nothing more.
  ASSERT_EQ(server_->Stop(), 0);
  Start();
  EXPECT_EQ(Records().size(), 3u);
  std::string problem;
  EXPECT_TRUE(DeepVerifies(&problem)) << problem;
}

// An administrator of the whole city reloads the file on request
// (AdminService.ReloadPrincipals): the record names them and the set they acted under, the
// new set is served at once, and the audit accepts it. The same file is not recorded
// twice; anyone else is refused; a file that does not load leaves the set in use.
TEST_F(PrincipalsLogTest, AReloadOnRequestIsRecordedInTheAdministratorsName) {
  auto reload = [&](const std::string& who, v1::ReloadPrincipalsResponse* resp) {
    auto c = As(who);
    auto ctx = c->NewContext();
    return v1::AdminService::NewStub(c->channel())
        ->ReloadPrincipals(ctx.get(), v1::ReloadPrincipalsRequest(), resp);
  };
  const std::string first = Records().at(0).principals_version();
  v1::ReloadPrincipalsResponse resp;
  // The file as started: recorded before, by the server.
  grpc::Status status = reload("admin", &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(resp.recorded_now());
  EXPECT_EQ(resp.recorded_by(), "caseworkd");
  EXPECT_EQ(resp.recorded_position(), 0);
  EXPECT_EQ(resp.principals_version(), first);
  EXPECT_GT(resp.identities(), 10);
  // Not an administrator; an administrator of one county.
  status = reload("lister", &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(client::DecodeError(status).reason, "ACTOR_LACKS_ROLE");
  status = reload("admin.xihe", &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(client::DecodeError(status).reason, "JURISDICTION_NOT_COVERED");
  EXPECT_EQ(Records().size(), 1u);

  // A changed file: recorded in the administrator's name, under the set they acted in.
  const std::string started = PrincipalsText();
  std::string json = started;
  const size_t at = json.find(kListerB);
  ASSERT_NE(at, std::string::npos);
  json.replace(
      at, std::string_view(kListerB).size(),
      R"({"id": "lister.c", "roles": ["lister"], "jurisdiction": "jiangcheng/dongshan"},)");
  std::ofstream(principals_, std::ios::trunc) << json;
  status = reload("admin", &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(resp.recorded_now());
  EXPECT_EQ(resp.recorded_by(), "admin");
  EXPECT_NE(resp.principals_version(), first);
  const std::string second = resp.principals_version();
  const int64_t recorded_at = resp.recorded_position();
  bool found = false;
  for (const v1::EventRecord& r : Log()) {
    if (r.position() != recorded_at) continue;
    found = true;
    EXPECT_EQ(r.event().actor(), "admin");
    EXPECT_EQ(r.event().principals_version(), first);
    EXPECT_EQ(r.event().principals_recorded().principals_version(), second);
  }
  EXPECT_TRUE(found);
  // Served at once.
  const v1::CaseCommandResponse c = Create("lister.c", "c-1");
  ASSERT_EQ(c.events_size(), 1);
  EXPECT_EQ(c.events(0).event().principals_version(), second);
  // Again: nothing new; the answer says who recorded it.
  ASSERT_TRUE(reload("admin", &resp).ok());
  EXPECT_FALSE(resp.recorded_now());
  EXPECT_EQ(resp.recorded_by(), "admin");
  EXPECT_EQ(resp.recorded_position(), recorded_at);
  EXPECT_EQ(Records().size(), 2u);

  // A file that does not load: refused, and the set in use stays.
  std::ofstream(principals_, std::ios::trunc) << "{\"principals\": [";
  status = reload("admin", &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(client::DecodeError(status).reason, "PRINCIPALS_FILE_INVALID");
  EXPECT_NE(status.error_message().find("the set in use stays"), std::string::npos)
      << status.error_message();
  Create("lister.c", "c-2");
  EXPECT_EQ(Records().size(), 2u);
  std::ofstream(principals_, std::ios::trunc) << json;

  // The audit accepts a record by an administrator of the whole city.
  std::string problem;
  EXPECT_TRUE(DeepVerifies(&problem)) << problem;
}

// A file of many principals (20,000: a record of about 1.4 MiB, over the log's 1 MiB per
// event) is recorded in parts of one append, served once recorded, and audited whole.
TEST_F(PrincipalsLogTest, ManyPrincipalsAreRecordedInPartsAndAudited) {
  std::string json = PrincipalsText();
  const size_t at = json.find(kListerB);
  ASSERT_NE(at, std::string::npos);
  json.erase(at, std::string_view(kListerB).size());
  std::string many;
  for (int i = 0; i < 20000; ++i) {
    many += R"({"id": "lister-with-a-longer-identity-name-)" + std::to_string(i) +
            R"(", "roles": ["lister"], "jurisdiction": "jiangcheng/dongshan/t01"},)";
  }
  json.insert(json.find('{', json.find('[')), many);
  std::ofstream(principals_, std::ios::trunc) << json;
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  // 20,000 principals to parse and record: generous under a sanitizer on a busy machine.
  ASSERT_TRUE(WaitForRecords(3, 600)) << "the first record and at least two parts";
  const std::vector<v1::PrincipalsRecorded> records = Records();
  const std::string version = records.back().principals_version();
  int principals = 0;
  for (size_t i = 1; i < records.size(); ++i) {
    EXPECT_EQ(records[i].part(), static_cast<int>(i - 1));
    EXPECT_EQ(records[i].parts(), static_cast<int>(records.size() - 1));
    EXPECT_EQ(records[i].principals_version(), version);
    principals += records[i].principals_size();
  }
  EXPECT_GT(principals, 20000);
  // Served once recorded: a new identity acts under the new version, lister.b is gone.
  const std::string newcomer = "lister-with-a-longer-identity-name-19999";
  WaitUntilServed(newcomer);
  const v1::CaseCommandResponse c = Create(newcomer, "c-1");
  ASSERT_EQ(c.events_size(), 1);
  EXPECT_EQ(c.events(0).event().principals_version(), version);
  {
    auto gone = As("lister.b");
    auto ctx = gone->NewContext();
    v1::GetCaseRequest get;
    get.set_name("cases/c-1");
    v1::Case got;
    EXPECT_EQ(gone->cases().GetCase(ctx.get(), get, &got).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  std::string problem;
  EXPECT_TRUE(DeepVerifies(&problem)) << problem;
  // A restart with the same file records nothing new.
  const size_t recorded = Records().size();
  ASSERT_EQ(server_->Stop(), 0);
  Start();
  EXPECT_EQ(Records().size(), recorded);
}

}  // namespace
}  // namespace casework

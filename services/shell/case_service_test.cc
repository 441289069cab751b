// CaseService's reads over loopback against an in-process server, where the order of a
// call's reads matters: a ListCaseEvents page is the case as of the version it loaded,
// whatever is appended between that load and the read of the events.
#include "services/shell/case_service.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/principals.h"
#include "services/shell/stepped_log_testing.h"
#include "services/workflow/workflow_testing.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using workflow::testing::kCaseId;
using workflow::testing::kHourMicros;
using workflow::testing::kStartMicros;

constexpr char kPrincipals[] = R"({"principals": [
  {"id": "qian.hui", "roles": ["auditor"], "jurisdiction": "city"}
]})";

class CaseReads : public ::testing::Test {
 protected:
  void SetUp() override {
    store::RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    stepped_ = std::make_unique<testing::SteppedLog>(log_.get());
    const Clock clock = [this] { return now_ += kHourMicros; };
    writer_ = std::make_unique<CommandProcessor>(log_.get(), workflow::Policy{}, clock);
    served_ = std::make_unique<CommandProcessor>(stepped_.get(), workflow::Policy{}, clock);
    auto principals = Principals::Parse(kPrincipals);
    ASSERT_TRUE(principals.ok()) << principals.status();
    holder_ = std::make_unique<PrincipalsHolder>(*principals);
    auth_ = std::make_unique<Authenticator>(holder_.get());
    service_ = std::make_unique<CaseServiceImpl>(served_.get(), auth_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::CaseService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                         grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // Runs `command` on the log directly (not through the served reads) and waits for it.
  void Run(const workflow::Principal& who, const v1::Command& command) {
    v1::CaseCommandResponse response;
    std::promise<grpc::Status> done;
    writer_->Execute(who, kCaseId, command, &response,
                     [&done](grpc::Status s) { done.set_value(std::move(s)); });
    const grpc::Status status = done.get_future().get();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status ListEvents(int page_size, const std::string& token,
                          v1::ListCaseEventsResponse* page) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-casework-identity", "qian.hui");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListCaseEventsRequest req;
    req.set_name(std::string("cases/") + kCaseId);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return stub_->ListCaseEvents(&ctx, req, page);
  }

  store::testing::TempDir dir_;
  workflow::testing::Cast cast_;
  int64_t now_ = kStartMicros;
  std::unique_ptr<store::RocksEventLog> log_;
  std::unique_ptr<testing::SteppedLog> stepped_;
  std::unique_ptr<CommandProcessor> writer_;
  std::unique_ptr<CommandProcessor> served_;
  std::unique_ptr<PrincipalsHolder> holder_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CaseServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::CaseService::Stub> stub_;
};

// The case is at version 3 when the listing loads it; versions 4 and 5 land before its
// events are read. The page holds versions 1-3 and no token: the listing ends where the
// case stood, rather than holding version 4 and no token, which would lose version 5.
TEST_F(CaseReads, AnEventsPageEndsAtTheVersionItLoaded) {
  Run(cast_.lister, workflow::testing::CreateCase(kStartMicros));
  Run(cast_.reviewer, workflow::testing::ReviewListing(1));
  Run(cast_.lister, workflow::testing::AssignAssistance(2));
  stepped_->after_get_projection = [this] {
    Run(cast_.secretary, workflow::testing::RecordFieldVisit(3, now_));
    Run(cast_.secretary, workflow::testing::RecordMeasure(4));
  };
  v1::ListCaseEventsResponse page;
  const grpc::Status status = ListEvents(4, "", &page);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stepped_->after_get_projection, nullptr) << "the step did not run";
  ASSERT_EQ(page.events_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(page.events(i).event().version(), i + 1);
  EXPECT_TRUE(page.next_page_token().empty());

  // A listing made now has all five, over two pages joined by the token.
  v1::ListCaseEventsResponse first;
  ASSERT_TRUE(ListEvents(4, "", &first).ok());
  ASSERT_EQ(first.events_size(), 4);
  ASSERT_FALSE(first.next_page_token().empty());
  v1::ListCaseEventsResponse second;
  ASSERT_TRUE(ListEvents(4, first.next_page_token(), &second).ok());
  ASSERT_EQ(second.events_size(), 1);
  EXPECT_EQ(second.events(0).event().version(), 5);
  EXPECT_TRUE(second.next_page_token().empty());
}

// The principals of the processor tests below: the workflow cast's lister and reviewer.
constexpr char kCastPrincipals[] = R"({"principals": [
  {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"},
  {"id": "wang.fang", "roles": ["reviewer"], "jurisdiction": "city/east"}%s
]})";

// A command processor with the checks CaseServiceImpl installs on it, on a real log; the
// commands run as the entries of the principals set in force, as an authenticated call's.
class AcceptedChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    store::RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    processor_ = std::make_unique<CommandProcessor>(log_.get(), workflow::Policy{},
                                                    [this] { return now_ += kHourMicros; });
    holder_ = std::make_unique<PrincipalsHolder>(Set(""));
    auth_ = std::make_unique<Authenticator>(holder_.get());
    service_ = std::make_unique<CaseServiceImpl>(processor_.get(), auth_.get());
  }

  // kCastPrincipals with `extra` entries (each starting with a comma).
  static std::shared_ptr<const Principals> Set(const std::string& extra) {
    auto set = Principals::Parse(absl::StrFormat(kCastPrincipals, extra));
    EXPECT_TRUE(set.ok()) << set.status();
    return set.ok() ? *set : nullptr;
  }

  // Runs `command` as `who` (a principal as authenticated: its entry when it was looked up).
  grpc::Status Run(const workflow::Principal& who, const v1::Command& command,
                   v1::CaseCommandResponse* response) {
    std::promise<grpc::Status> done;
    processor_->Execute(who, kCaseId, command, response,
                        [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  }
  const workflow::Principal& Entry(const std::string& id) {
    principals_in_use_.push_back(holder_->Get());
    return *principals_in_use_.back()->Find(id);
  }

  store::testing::TempDir dir_;
  int64_t now_ = kStartMicros;
  std::unique_ptr<store::RocksEventLog> log_;
  std::unique_ptr<CommandProcessor> processor_;
  std::unique_ptr<PrincipalsHolder> holder_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CaseServiceImpl> service_;
  std::vector<std::shared_ptr<const Principals>> principals_in_use_;  // keeps entries alive
};

// The check of assigned people against the identities runs on a new decision only: a
// retry of an assignment recorded before a reload added an identity its first secretary's
// id resembles is answered as recorded, while a new assignment naming that id is refused.
TEST_F(AcceptedChecks, ARetryIsAnsweredAsRecordedAfterAReloadAddedAResemblingIdentity) {
  const workflow::Principal& lister = Entry("li.na");
  v1::CaseCommandResponse response;
  ASSERT_TRUE(Run(lister, workflow::testing::CreateCase(kStartMicros), &response).ok());
  ASSERT_TRUE(Run(Entry("wang.fang"), workflow::testing::ReviewListing(1), &response).ok());
  const v1::Command assign = workflow::testing::AssignAssistance(2);
  ASSERT_EQ(assign.assign_assistance().assignment().first_secretary().person_id(), "zhang.wei");
  v1::CaseCommandResponse first;
  grpc::Status status = Run(lister, assign, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(first.replayed());

  // The reload: an identity of which "zhang.wei" is a variant.
  holder_->Set(
      Set(R"(, {"id": "Zhang_Wei", "roles": ["inspector"], "jurisdiction": "city/east"})"));

  v1::CaseCommandResponse again;
  status = Run(lister, assign, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(again.replayed());
  ASSERT_EQ(again.events_size(), first.events_size());
  EXPECT_EQ(again.events(0).position(), first.events(0).position());

  // A new decision naming the same id is checked against the set now served.
  v1::CaseCommandResponse replaced;
  status = Run(Entry("li.na"), workflow::testing::ReplaceAssignment(3), &replaced);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("Zhang_Wei"), std::string::npos) << status.error_message();
  EXPECT_EQ(log_->Size(), 3);
}

// A command decided for a caller authenticated before a reload that removed or changed
// them is not applied: the caller's standing is looked at again just before the append.
// One the reload left as they were goes on.
TEST_F(AcceptedChecks, ACommandOfACallerAReloadRemovedOrChangedIsNotApplied) {
  const workflow::Principal& lister = Entry("li.na");
  const workflow::Principal& reviewer = Entry("wang.fang");
  v1::CaseCommandResponse response;
  ASSERT_TRUE(Run(lister, workflow::testing::CreateCase(kStartMicros), &response).ok());
  // The same people under a new set: the lister, unchanged, goes on.
  holder_->Set(Set(R"(, {"id": "qian.hui", "roles": ["auditor"], "jurisdiction": "city"})"));
  ASSERT_TRUE(Run(lister, workflow::testing::AmendListing(1, now_), &response).ok());
  // The reviewer narrowed to another county: refused, nothing appended.
  auto narrowed = Principals::Parse(R"({"principals": [
    {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"},
    {"id": "wang.fang", "roles": ["reviewer"], "jurisdiction": "city/west"}
  ]})");
  ASSERT_TRUE(narrowed.ok()) << narrowed.status();
  holder_->Set(*narrowed);
  const int64_t size = log_->Size();
  grpc::Status status = Run(reviewer, workflow::testing::ReviewListing(2), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_NE(status.error_message().find("was not applied"), std::string::npos)
      << status.error_message();
  // Removed: refused as unknown.
  auto removed = Principals::Parse(R"({"principals": [
    {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"}
  ]})");
  ASSERT_TRUE(removed.ok()) << removed.status();
  holder_->Set(*removed);
  status = Run(reviewer, workflow::testing::ReviewListing(2), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(log_->Size(), size);
}

}  // namespace
}  // namespace casework::shell

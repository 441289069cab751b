// CaseService's reads over loopback against an in-process server, where the order of a
// call's reads matters: a ListCaseEvents page is the case as of the version it loaded,
// whatever is appended between that load and the read of the events.
#include "services/shell/case_service.h"

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>

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

// The check of assigned people against the identities runs on a new decision only: a
// retry of an assignment recorded before a reload added an identity its first secretary's
// id resembles is answered as recorded, while a new assignment naming that id is refused.
TEST(AssignedPeople, ARetryIsAnsweredAsRecordedAfterAReloadAddedAResemblingIdentity) {
  store::testing::TempDir dir;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  int64_t now = kStartMicros;
  CommandProcessor processor(log->get(), workflow::Policy{}, [&now] { return now += kHourMicros; });
  auto principals = Principals::Parse(kPrincipals);
  ASSERT_TRUE(principals.ok()) << principals.status();
  PrincipalsHolder holder(*principals);
  Authenticator auth(&holder);
  CaseServiceImpl service(&processor, &auth);  // installs the check on the processor
  workflow::testing::Cast cast;
  auto run = [&](const workflow::Principal& who, const v1::Command& command,
                 v1::CaseCommandResponse* response) {
    std::promise<grpc::Status> done;
    processor.Execute(who, kCaseId, command, response,
                      [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  };
  v1::CaseCommandResponse response;
  ASSERT_TRUE(run(cast.lister, workflow::testing::CreateCase(kStartMicros), &response).ok());
  ASSERT_TRUE(run(cast.reviewer, workflow::testing::ReviewListing(1), &response).ok());
  const v1::Command assign = workflow::testing::AssignAssistance(2);
  ASSERT_EQ(assign.assign_assistance().assignment().first_secretary().person_id(), "zhang.wei");
  v1::CaseCommandResponse first;
  grpc::Status status = run(cast.lister, assign, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(first.replayed());

  // The reload: an identity of which "zhang.wei" is a variant.
  auto reloaded = Principals::Parse(R"({"principals": [
    {"id": "qian.hui", "roles": ["auditor"], "jurisdiction": "city"},
    {"id": "Zhang_Wei", "roles": ["inspector"], "jurisdiction": "city/east"}
  ]})");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  holder.Set(*reloaded);

  v1::CaseCommandResponse again;
  status = run(cast.lister, assign, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(again.replayed());
  ASSERT_EQ(again.events_size(), first.events_size());
  EXPECT_EQ(again.events(0).position(), first.events(0).position());

  // A new decision naming the same id is checked against the set now served.
  v1::CaseCommandResponse replaced;
  status = run(cast.lister, workflow::testing::ReplaceAssignment(3), &replaced);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("Zhang_Wei"), std::string::npos) << status.error_message();
  EXPECT_EQ((*log)->Size(), 3);
}

}  // namespace
}  // namespace casework::shell

// The thin vertical slice, end to end over loopback with the real caseworkd binary: a
// client lists an organisation and reads it back; the event is in the log with its
// position and version; after kill -9 and a restart the case is still there; retries,
// refusals and unimplemented methods answer with the right status and reason.
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "casework/v1/event_service.grpc.pb.h"
#include "clients/client.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::CreateCaseRequest ListingOf(const std::string& case_id, const std::string& request_id) {
  v1::CreateCaseRequest req;
  req.set_case_id(case_id);
  req.set_request_id(request_id);
  auto* org = req.mutable_organisation();
  org->set_organisation_id("org-" + case_id);
  org->set_display_name("东山村党支部");
  org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
  org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  req.set_case_type(v1::CASE_TYPE_POOR);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
  req.set_findings("no collective income; secretary post vacant");
  req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
  return req;
}

// Calls `method` with `bytes` as its request, without generated stubs (as stock tools
// do, or a client with a broken encoder); the answer's bytes in `*answer`. Bounded: 15 s.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes, std::string* answer = nullptr) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = std::move(s);
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(15), [&] { return done; })) {
    // Past its deadline and not yet done: cancelled, and its callback awaited (it uses
    // this frame).
    lock.unlock();  // the callback may run inline, and takes the lock
    ctx.TryCancel();
    lock.lock();
    cv.wait(lock, [&] { return done; });
  }
  if (answer != nullptr) {
    answer->clear();
    std::vector<grpc::Slice> slices;
    if (response.Dump(&slices).ok()) {
      for (const auto& piece : slices) {
        answer->append(reinterpret_cast<const char*>(piece.begin()), piece.size());
      }
    }
  }
  return status;
}

class SkeletonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    std::filesystem::create_directories(dir_.path() / "data");
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(SkeletonTest, ListedCaseSurvivesKillNine) {
  auto lister = As("lister");
  const v1::CreateCaseRequest listing = ListingOf("c-1", "r-1");
  v1::CaseCommandResponse created;
  {
    auto ctx = lister->NewContext();
    auto status = lister->cases().CreateCase(ctx.get(), listing, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // The plaintext mode says so in every response.
    auto security = ctx->GetServerInitialMetadata().find("x-casework-security");
    ASSERT_NE(security, ctx->GetServerInitialMetadata().end());
    EXPECT_NE(std::string(security->second.data(), security->second.size()).find("plaintext"),
              std::string::npos);
  }
  EXPECT_EQ(created.case_().state(), v1::CASE_STATE_LISTED);
  EXPECT_EQ(created.case_().version(), 1);
  ASSERT_EQ(created.events_size(), 1);
  EXPECT_EQ(created.events(0).position(), 0);
  EXPECT_EQ(created.events(0).event().version(), 1);
  EXPECT_EQ(created.events(0).event().actor(), "lister");
  EXPECT_EQ(created.events(0).event().request_id(), "r-1");
  EXPECT_TRUE(created.events(0).event().has_organisation_listed());

  v1::GetCaseRequest get;
  get.set_name("cases/c-1");
  v1::Case before;
  {
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases().GetCase(ctx.get(), get, &before).ok());
  }
  EXPECT_EQ(before.state(), v1::CASE_STATE_LISTED);
  EXPECT_EQ(before.listed_by(), "lister");

  server_->Kill();
  ASSERT_TRUE(server_->Start()) << server_->error();
  lister = As("lister");

  v1::Case after;
  {
    auto ctx = lister->NewContext();
    auto status = lister->cases().GetCase(ctx.get(), get, &after);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());

  v1::ListCaseEventsRequest list_events;
  list_events.set_name("cases/c-1");
  v1::ListCaseEventsResponse history;
  {
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases().ListCaseEvents(ctx.get(), list_events, &history).ok());
  }
  ASSERT_EQ(history.events_size(), 1);
  EXPECT_EQ(history.events(0).position(), 0);
  EXPECT_EQ(history.events(0).event().version(), 1);

  // A retry after the restart returns the first answer and appends nothing.
  v1::CaseCommandResponse retried;
  {
    auto ctx = lister->NewContext();
    auto status = lister->cases().CreateCase(ctx.get(), listing, &retried);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_TRUE(retried.replayed());
  ASSERT_EQ(retried.events_size(), 1);
  EXPECT_EQ(retried.events(0).position(), 0);

  // The next case takes the next position: nothing was appended by the retry.
  v1::CaseCommandResponse second;
  {
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases().CreateCase(ctx.get(), ListingOf("c-2", "r-2"), &second).ok());
  }
  ASSERT_EQ(second.events_size(), 1);
  EXPECT_EQ(second.events(0).position(), 1);
}

TEST_F(SkeletonTest, RefusalsCarryStatusAndReason) {
  auto lister = As("lister");
  const v1::CreateCaseRequest listing = ListingOf("c-1", "r-1");
  v1::CaseCommandResponse resp;
  {
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases().CreateCase(ctx.get(), listing, &resp).ok());
  }
  {  // Same case id, another request: ALREADY_EXISTS.
    auto ctx = lister->NewContext();
    auto status = lister->cases().CreateCase(ctx.get(), ListingOf("c-1", "r-other"), &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
    EXPECT_FALSE(client::DecodeError(status).reason.empty());
  }
  {  // The same request id for different content: INVALID_ARGUMENT, REQUEST_ID_REUSED.
    auto ctx = lister->NewContext();
    auto changed = listing;
    changed.set_findings("something else");
    auto status = lister->cases().CreateCase(ctx.get(), changed, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "REQUEST_ID_REUSED");
    EXPECT_EQ(client::DecodeError(status).field, "request_id");
  }
  {  // Unknown case: NOT_FOUND.
    v1::GetCaseRequest get;
    get.set_name("cases/nope");
    v1::Case c;
    auto ctx = lister->NewContext();
    auto status = lister->cases().GetCase(ctx.get(), get, &c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(client::DecodeError(status).reason, "CASE_NOT_FOUND");
  }
  // Malformed names, also a case id no case can have: INVALID_ARGUMENT naming the field.
  for (const std::string& name : {std::string("c-1"), std::string("cases/Bad_ID"),
                                  std::string("cases/") + std::string(600, 'a')}) {
    v1::GetCaseRequest get;
    get.set_name(name);
    v1::Case c;
    auto ctx = lister->NewContext();
    auto status = lister->cases().GetCase(ctx.get(), get, &c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name.substr(0, 20);
    EXPECT_EQ(client::DecodeError(status).reason, "CASE_NAME_INVALID") << name.substr(0, 20);
    EXPECT_EQ(client::DecodeError(status).field, "name");
    EXPECT_LT(status.error_message().size(), 300u) << "the name is shown cut short";
  }
  {  // No identity: UNAUTHENTICATED; unknown identity: UNAUTHENTICATED.
    v1::GetCaseRequest get;
    get.set_name("cases/c-1");
    v1::Case c;
    auto anonymous = As("");
    auto ctx = anonymous->NewContext();
    auto status = anonymous->cases().GetCase(ctx.get(), get, &c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(client::DecodeError(status).reason, "IDENTITY_MISSING");
    auto stranger = As("mallory");
    auto ctx2 = stranger->NewContext();
    status = stranger->cases().GetCase(ctx2.get(), get, &c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(client::DecodeError(status).reason, "IDENTITY_UNKNOWN");
    EXPECT_EQ(client::DecodeError(status).field, "x-casework-identity");
  }
  {  // Outside the caller's jurisdiction: PERMISSION_DENIED.
    v1::GetCaseRequest get;
    get.set_name("cases/c-1");
    v1::Case c;
    auto outsider = As("outsider");
    auto ctx = outsider->NewContext();
    auto status = outsider->cases().GetCase(ctx.get(), get, &c);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(SkeletonTest, UnimplementedMethodsSayUnimplementedAndHealthServes) {
  auto auditor = As("auditor");
  // A method the server does not know.
  EXPECT_EQ(CallRaw(auditor->channel(), "/casework.v1.AdminService/NoSuchMethod", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);

  // grpc.health.v1.Health/Check for the whole server, called as stock tools do, without
  // generated stubs: HealthCheckRequest{service: ""} is empty on the wire, and
  // HealthCheckResponse{status: SERVING} is the two bytes 08 01.
  std::string bytes;
  const grpc::Status health_status =
      CallRaw(auditor->channel(), "/grpc.health.v1.Health/Check", "", &bytes);
  ASSERT_TRUE(health_status.ok()) << health_status.error_message();
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

// A request whose bytes do not decode as its method's request message never reaches a
// handler; gRPC alone would answer it UNIMPLEMENTED with no message, as if the method did
// not exist. It is INVALID_ARGUMENT REQUEST_MALFORMED, saying what was wrong, and nothing
// is done.
TEST_F(SkeletonTest, UndecodableRequestsAreRefusedAsMalformed) {
  auto lister = As("lister");
  struct Case {
    const char* method;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      // CreateCaseRequest.case_id (field 1, a string) holding bytes that are not UTF-8.
      {"/casework.v1.CaseService/CreateCase", std::string("\x0a\x02\xff\xfe", 4)},
      // A field's length running past the end of the message.
      {"/casework.v1.CaseService/GetCase", std::string("\x0a\x7f"
                                                       "cases/x",
                                                       9)},
      // A tag of field number 0.
      {"/casework.v1.AuditService/GetCheckpoint", std::string("\x00\x01", 2)},
  };
  for (const Case& c : cases) {
    const grpc::Status status = CallRaw(lister->channel(), c.method, c.bytes);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.method << ": " << status.error_message();
    EXPECT_EQ(client::DecodeError(status).reason, "REQUEST_MALFORMED") << c.method;
    EXPECT_NE(status.error_message().find("could not be decoded"), std::string::npos)
        << status.error_message();
  }
  // Nothing was listed; a well-formed call is served as before.
  auto ctx = lister->NewContext();
  v1::CaseCommandResponse created;
  const grpc::Status listed =
      lister->cases().CreateCase(ctx.get(), ListingOf("c-1", "create-1"), &created);
  ASSERT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_EQ(created.case_().version(), 1);
}

TEST_F(SkeletonTest, GracefulStopOnSigterm) { EXPECT_EQ(server_->Stop(), 0) << server_->log(); }

// A watch never ends by itself: on SIGTERM the server ends it (UNAVAILABLE SHUTTING_DOWN,
// to resume later) instead of waiting out a drain of two minutes for it; the stop then
// completes well within ServerProcess's 30 s bound, which it would otherwise miss.
TEST_F(SkeletonTest, GracefulStopEndsAnOpenWatch) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "data");
  ServerProcess server(dir.path() / "data", principals_, {"--drain-seconds", "120"});
  ASSERT_TRUE(server.Start()) << server.error();
  Client auditor(ClientOptions{.server = server.address(), .identity = "auditor"});
  auto ctx = auditor.NewContext();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(90));
  auto stub = v1::EventService::NewStub(auditor.channel());
  auto reader = stub->WatchEvents(ctx.get(), v1::WatchEventsRequest());
  v1::WatchEventsResponse message;
  ASSERT_TRUE(reader->Read(&message));  // admitted: caught up with the empty log
  EXPECT_TRUE(message.caught_up());
  // The event stream in the metrics: the open watch, the message sent, the buffer. The
  // client may read the message before the server's write completes and is counted, so
  // the scrape is repeated (at most 10 s) until the count is there.
  // The value of a metric without labels in `text`, or -1 when it is not there.
  const auto value_of = [](const std::string& text, const std::string& name) -> int64_t {
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + name.size() + 2);
  };
  std::string metrics = server.MetricsText();
  for (int i = 0; i < 100 && value_of(metrics, "casework_watch_messages_sent_total") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    metrics = server.MetricsText();
  }
  EXPECT_EQ(value_of(metrics, "casework_watches_open"), 1) << metrics;
  EXPECT_GE(value_of(metrics, "casework_watch_buffered_bytes"), 0) << metrics;
  EXPECT_GE(value_of(metrics, "casework_watch_messages_sent_total"), 1) << metrics;
  grpc::Status ended;
  std::thread drain_reader([&] {
    v1::WatchEventsResponse more;
    while (reader->Read(&more)) {
    }
    ended = reader->Finish();
  });
  EXPECT_EQ(server.Stop(), 0) << server.error() << server.log();
  drain_reader.join();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();
  EXPECT_EQ(client::DecodeError(ended).reason, "SHUTTING_DOWN") << ended.error_message();
}

}  // namespace
}  // namespace casework

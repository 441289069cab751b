// SIGHUP reloads the principals file of the real caseworkd (127.0.0.1) without dropping
// connections: a new identity is accepted, a removed one refused and a changed role
// applied on the very connection that was open before, while an event stream opened
// before the reload keeps receiving events and the channel never leaves READY. A file
// that does not parse, or names an unknown role, is logged and the old principals stay.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "clients/client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::testing::ServerProcess;
using casework::testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr auto kReloadBound = std::chrono::seconds(10);

constexpr char kBefore[] = R"({"principals": [
  {"id": "watcher", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "leaving", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "changing", "roles": ["lister"], "jurisdiction": "jiangcheng"}
]})";

// "leaving" removed, "changing" now a reviewer, "newcomer" added.
constexpr char kAfter[] = R"({"principals": [
  {"id": "watcher", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "changing", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
  {"id": "newcomer", "roles": ["lister"], "jurisdiction": "jiangcheng"}
]})";

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::CreateCaseRequest Listing(const std::string& case_id) {
  v1::CreateCaseRequest req;
  req.set_case_id(case_id);
  req.set_request_id("r-" + case_id);
  auto* org = req.mutable_organisation();
  org->set_organisation_id("org-" + case_id);
  org->set_display_name("village " + case_id);
  org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
  org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  req.set_case_type(v1::CASE_TYPE_POOR);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  req.set_findings("no collective income");
  req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
  return req;
}

// Writes the file next to its final name and renames it, so the server never reads half
// a file.
void WriteAtomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  std::filesystem::rename(tmp, path);
}

// Records whether the channel ever leaves READY while it runs (a dropped or replaced
// connection would take it through IDLE, CONNECTING or TRANSIENT_FAILURE).
class StateMonitor {
 public:
  explicit StateMonitor(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {
    thread_ = std::thread([this] {
      while (!stop_) {
        if (channel_->WaitForStateChange(GRPC_CHANNEL_READY, std::chrono::system_clock::now() +
                                                                 std::chrono::milliseconds(100))) {
          left_ready_ = true;
          last_state_ = channel_->GetState(false);
          return;
        }
      }
    });
  }
  ~StateMonitor() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] bool left_ready() const { return left_ready_; }
  [[nodiscard]] int last_state() const { return last_state_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> left_ready_{false};
  std::atomic<int> last_state_{GRPC_CHANNEL_READY};
  std::thread thread_;
};

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "data");
    principals_ = dir_.path() / "principals.json";
    WriteAtomically(principals_, kBefore);
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    ASSERT_TRUE(server_->Start()) << server_->error();
    // One channel, one connection, for every identity (plaintext: the identity is a header).
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    cases_ = v1::CaseService::NewStub(channel_);
    ASSERT_TRUE(
        channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30)));
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& identity) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-casework-identity", identity);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return ctx;
  }

  grpc::Status Create(const std::string& identity, const std::string& case_id) {
    auto ctx = As(identity);
    v1::CaseCommandResponse resp;
    return cases_->CreateCase(ctx.get(), Listing(case_id), &resp);
  }

  grpc::Status Get(const std::string& identity, const std::string& case_id) {
    auto ctx = As(identity);
    v1::GetCaseRequest req;
    req.set_name("cases/" + case_id);
    v1::Case c;
    return cases_->GetCase(ctx.get(), req, &c);
  }

  // Opens a watch of the whole log as `identity` on the shared channel.
  void OpenWatch(const std::string& identity = "watcher") {
    watch_ctx_ = As(identity);
    watch_ctx_->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    watch_stub_ = v1::EventService::NewStub(channel_);
    v1::WatchEventsRequest req;
    watch_ = watch_stub_->WatchEvents(watch_ctx_.get(), req);
  }

  // Reads the watch until an event of `stream` arrives; false when the stream ended
  // first (bounded by the watch's deadline).
  bool WatchSees(const std::string& stream) {
    v1::WatchEventsResponse m;
    while (watch_->Read(&m)) {
      for (const auto& r : m.events()) {
        if (r.event().stream() == stream) return true;
      }
    }
    return false;
  }

  void CloseWatch() {
    if (!watch_) return;
    watch_ctx_->TryCancel();
    v1::WatchEventsResponse m;
    while (watch_->Read(&m)) {
    }
    (void)watch_->Finish();
    watch_.reset();
  }

  void TearDown() override { CloseWatch(); }

  // Polls `done` (bounded); true once it holds.
  static bool Eventually(const std::function<bool()>& done) {
    const auto deadline = Clock::now() + kReloadBound;
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return done();
  }

  int Count(const std::string& text) const {
    const std::string log = server_->log();
    int n = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CaseService::Stub> cases_;
  std::unique_ptr<grpc::ClientContext> watch_ctx_;
  std::unique_ptr<v1::EventService::Stub> watch_stub_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> watch_;
};

TEST_F(ReloadTest, SighupAppliesNewPrincipalsOnTheOpenConnection) {
  ASSERT_TRUE(Create("lister", "before-1").ok());
  OpenWatch();
  ASSERT_TRUE(WatchSees("cases/before-1"));
  StateMonitor monitor(channel_);

  // Before: the newcomer is unknown; the others act with their old roles.
  const auto unknown = Create("newcomer", "new-0");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(casework::client::DecodeError(unknown).reason, "IDENTITY_UNKNOWN");
  EXPECT_TRUE(Get("leaving", "before-1").ok());
  EXPECT_TRUE(Create("changing", "changing-1").ok());

  WriteAtomically(principals_, kAfter);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);

  // After (within a bound): the newcomer is known, "leaving" is not, "changing" lost the
  // role lister.
  ASSERT_TRUE(Eventually([&] { return Get("newcomer", "before-1").ok(); }))
      << "the new identity was not accepted within " << kReloadBound.count()
      << " s of SIGHUP; server log:\n"
      << server_->log();
  const auto gone = Get("leaving", "before-1");
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::UNAUTHENTICATED) << gone.error_message();
  EXPECT_EQ(casework::client::DecodeError(gone).reason, "IDENTITY_UNKNOWN");
  const auto changed = Create("changing", "changing-2");
  EXPECT_EQ(changed.error_code(), grpc::StatusCode::PERMISSION_DENIED) << changed.error_message();
  EXPECT_EQ(casework::client::DecodeError(changed).reason, "ACTOR_LACKS_ROLE");
  EXPECT_TRUE(Create("newcomer", "new-1").ok());
  // The line is written once the set is in use, so it may follow the first call it serves.
  EXPECT_TRUE(Eventually([&] { return Count("reloaded principals") == 1; })) << server_->log();
  EXPECT_EQ(Count("reloaded principals"), 1) << server_->log();

  // The stream opened before the reload is still live: it receives the newcomer's event.
  EXPECT_TRUE(WatchSees("cases/new-1"));
  // And the connection was never dropped or replaced.
  monitor.Stop();
  EXPECT_FALSE(monitor.left_ready())
      << "the channel left READY (state " << monitor.last_state() << ") during the reload";
  EXPECT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
}

// A watch opened by someone the reload removes ends before it sends anything more.
TEST_F(ReloadTest, AWatchOfARemovedIdentityEndsAtTheNextEvent) {
  ASSERT_TRUE(Create("lister", "before-1").ok());
  OpenWatch("leaving");
  ASSERT_TRUE(WatchSees("cases/before-1"));
  WriteAtomically(principals_, kAfter);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] { return Get("newcomer", "before-1").ok(); })) << server_->log();
  ASSERT_TRUE(Create("lister", "after-1").ok());
  EXPECT_FALSE(WatchSees("cases/after-1")) << "the removed identity still received events";
  const grpc::Status ended = watch_->Finish();
  watch_.reset();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ended.error_message();
  EXPECT_EQ(casework::client::DecodeError(ended).reason, "IDENTITY_UNKNOWN");
}

// A watch opened by someone whose roles the reload changes ends too: what it may see was
// decided under the old roles. It says to open a new one.
TEST_F(ReloadTest, AWatchOfAChangedIdentityEndsAtTheNextEvent) {
  ASSERT_TRUE(Create("lister", "before-1").ok());
  OpenWatch("changing");
  ASSERT_TRUE(WatchSees("cases/before-1"));
  WriteAtomically(principals_, kAfter);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] { return Get("newcomer", "before-1").ok(); })) << server_->log();
  ASSERT_TRUE(Create("lister", "after-1").ok());
  EXPECT_FALSE(WatchSees("cases/after-1")) << "the changed identity still received events";
  const grpc::Status ended = watch_->Finish();
  watch_.reset();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ended.error_message();
  EXPECT_EQ(casework::client::DecodeError(ended).reason, "PRINCIPAL_CHANGED");
  EXPECT_NE(ended.error_message().find("the watch ended, start a new one"), std::string::npos)
      << ended.error_message();
  // The same identity, under its new roles, opens a new watch.
  OpenWatch("changing");
  EXPECT_TRUE(WatchSees("cases/after-1"));
}

// An export (an audit job, streamed over many messages) taken by someone the reload
// removes ends before it sends anything more, with the reason; it does not run to its end
// under the identity that started it.
TEST_F(ReloadTest, AnExportOfARemovedIdentityEndsAtItsNextMessage) {
  // About 19 MiB of events: an export of about 19 messages of 1 MiB, more than the
  // transport holds ahead of a reader that stopped reading.
  for (int i = 0; i < 1200; ++i) {
    auto ctx = As("lister");
    v1::CreateCaseRequest req = Listing(absl::StrCat("big-", i));
    req.set_findings(std::string(16 * 1024 - 64, 'f'));
    v1::CaseCommandResponse resp;
    ASSERT_TRUE(cases_->CreateCase(ctx.get(), req, &resp).ok()) << i;
  }
  auto ctx = As("watcher");
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto audit = v1::AuditService::NewStub(channel_);
  auto reader = audit->ExportLog(ctx.get(), v1::ExportLogRequest());
  v1::ExportLogResponse m;
  ASSERT_TRUE(reader->Read(&m));
  size_t received = m.data().size();
  std::string without_watcher = kBefore;
  const std::string line =
      R"({"id": "watcher", "roles": ["auditor"], "jurisdiction": "jiangcheng"},)";
  ASSERT_NE(without_watcher.find(line), std::string::npos);
  without_watcher.erase(without_watcher.find(line), line.size());
  WriteAtomically(principals_, without_watcher);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] {
    return Get("watcher", "big-0").error_code() == grpc::StatusCode::UNAUTHENTICATED;
  })) << server_->log();
  int messages = 1;
  while (reader->Read(&m)) {
    received += m.data().size();
    ++messages;
  }
  const grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ended.error_message();
  EXPECT_EQ(casework::client::DecodeError(ended).reason, "IDENTITY_UNKNOWN");
  EXPECT_NE(ended.error_message().find("the export ended"), std::string::npos)
      << ended.error_message();
  EXPECT_LT(received, 16u << 20) << "the export ran on after its caller was removed (" << messages
                                 << " messages)";
}

TEST_F(ReloadTest, ABadFileKeepsTheOldPrincipals) {
  ASSERT_TRUE(Create("lister", "before-1").ok());
  OpenWatch();
  ASSERT_TRUE(WatchSees("cases/before-1"));
  StateMonitor monitor(channel_);
  const std::string kept = "principals not reloaded, keeping the old set";

  // Not JSON (a file cut short while being written by hand).
  WriteAtomically(principals_, R"({"principals": [ {"id": "newcomer", "roles": ["lis)");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] { return Count(kept) == 1; }))
      << "no log line \"" << kept << "\" within " << kReloadBound.count() << " s; server log:\n"
      << server_->log();

  // Valid JSON with an unknown role.
  WriteAtomically(principals_, R"({"principals": [
    {"id": "newcomer", "roles": ["superuser"], "jurisdiction": "jiangcheng"}]})");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] { return Count(kept) == 2; })) << server_->log();

  // The old principals stand: everyone as before, the newcomer still unknown.
  EXPECT_TRUE(Get("leaving", "before-1").ok());
  EXPECT_TRUE(Create("changing", "changing-1").ok());
  EXPECT_EQ(Get("newcomer", "before-1").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Count("reloaded principals"), 0) << server_->log();

  // A good file afterwards is applied: a bad one does not stop later reloads.
  WriteAtomically(principals_, kAfter);
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(Eventually([&] { return Get("newcomer", "before-1").ok(); })) << server_->log();
  EXPECT_EQ(Get("leaving", "before-1").error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Through all three reloads the stream and the connection stayed up.
  EXPECT_TRUE(Create("newcomer", "new-1").ok());
  EXPECT_TRUE(WatchSees("cases/new-1"));
  monitor.Stop();
  EXPECT_FALSE(monitor.left_ready())
      << "the channel left READY (state " << monitor.last_state() << ")";
}

}  // namespace
}  // namespace casework

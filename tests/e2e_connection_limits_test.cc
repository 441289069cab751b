// The connection limits of the real caseworkd over loopback (127.0.0.1), each with the
// flag that sets it (services/caseworkd.cc, services/shell/server_limits.cc):
//  - --max-concurrent-streams: a connection holding that many open calls gets no more
//    until one ends (the client waits); another connection is served meanwhile;
//  - --max-connection-idle-seconds: a connection without calls is closed by the server
//    (the channel leaves READY, then reconnects for the next call); one with an open
//    stream is not;
//  - --max-connection-age-seconds: an old connection is asked to go away; a long stream
//    on it goes on through the grace period (30 s) and is then ended by the server, and
//    the client reconnects and resumes;
//  - ping strikes: a client sending HTTP/2 PINGs without calls, faster than allowed, gets
//    GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (a raw HTTP/2 client, since gRPC's own
//    client throttles its pings), while other clients are served.
// Every wait is bounded; nothing asserts how fast the server is, only that what must
// happen happens within a generous bound, and what must not happen does not.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "casework/v1/case_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/raw_http2.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::testing::FrameBytes;
using casework::testing::kAck;
using casework::testing::kEnhanceYourCalm;
using casework::testing::kGoaway;
using casework::testing::kPing;
using casework::testing::kSettings;
using casework::testing::RawConnection;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

int64_t NowSeconds() {
  return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::system_clock::time_point In(std::chrono::milliseconds d) {
  return std::chrono::system_clock::now() + d;
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

// A channel with a connection of its own (gRPC otherwise shares one connection between
// channels to the same address).
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

std::unique_ptr<grpc::ClientContext> As(const std::string& identity,
                                        std::chrono::milliseconds deadline = seconds(20)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("x-casework-identity", identity);
  ctx->set_deadline(In(deadline));
  return ctx;
}

grpc::Status Create(const std::shared_ptr<grpc::Channel>& channel, const std::string& case_id) {
  auto ctx = As("lister");
  v1::CaseCommandResponse resp;
  return v1::CaseService::NewStub(channel)->CreateCase(ctx.get(), Listing(case_id), &resp);
}

// A WatchEvents stream of the whole log as "auditor".
struct Watch {
  Watch(const std::shared_ptr<grpc::Channel>& channel, std::chrono::milliseconds deadline,
        int64_t from_position = 0)
      : ctx(As("auditor", deadline)), stub(v1::EventService::NewStub(channel)) {
    v1::WatchEventsRequest req;
    req.set_from_position(from_position);
    reader = stub->WatchEvents(ctx.get(), req);
  }
  ~Watch() { Close(); }
  // Reads until an event of `stream` arrives; false when the stream ended first.
  bool Sees(const std::string& stream) {
    v1::WatchEventsResponse m;
    while (reader->Read(&m)) {
      scanned_through = m.scanned_through();
      for (const auto& r : m.events()) {
        if (r.event().stream() == stream) return true;
      }
    }
    return false;
  }
  bool ReadOne() {
    v1::WatchEventsResponse m;
    if (!reader->Read(&m)) return false;
    scanned_through = m.scanned_through();
    return true;
  }
  void Close() {
    if (!reader) return;
    ctx->TryCancel();
    v1::WatchEventsResponse m;
    while (reader->Read(&m)) {
    }
    (void)reader->Finish();
    reader.reset();
  }
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<v1::EventService::Stub> stub;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader;
  int64_t scanned_through = 0;
};

class ConnectionLimits : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> flags) {
    std::filesystem::create_directories(dir_.path() / "data");
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data", casework::testing::WriteTestPrincipals(dir_.path()), flags);
    ASSERT_TRUE(server_->Start()) << server_->error();
    // Something in the log, so that every watch has a first message to send.
    other_ = OwnChannel(server_->address());
    ASSERT_TRUE(Create(other_, "seed-1").ok());
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> other_;  // a second connection, for writes
};

TEST_F(ConnectionLimits, AConnectionGetsNoMoreThanMaxConcurrentStreams) {
  Start({"--max-concurrent-streams=2"});
  auto channel = OwnChannel(server_->address());
  Watch first(channel, seconds(120));
  Watch second(channel, seconds(120));
  ASSERT_TRUE(first.ReadOne());
  ASSERT_TRUE(second.ReadOne());

  // A third call on the same connection waits for a free stream (the synchronous API
  // blocks in the call's start, so it is made on a thread of its own).
  std::unique_ptr<Watch> third;
  auto third_started = std::async(std::launch::async, [&] {
    third = std::make_unique<Watch>(channel, seconds(120));
    return third->ReadOne();
  });
  EXPECT_EQ(third_started.wait_for(seconds(2)), std::future_status::timeout)
      << "a third stream started on a connection limited to 2";

  // Another connection is served meanwhile: the limit is per connection.
  {
    Watch elsewhere(other_, seconds(30));
    EXPECT_TRUE(elsewhere.ReadOne());
  }

  // When one of the two ends, the waiting call starts.
  first.Close();
  ASSERT_EQ(third_started.wait_for(seconds(30)), std::future_status::ready)
      << "the third stream did not start after one of two ended";
  EXPECT_TRUE(third_started.get());
  // And it is a live watch like the others.
  ASSERT_TRUE(Create(other_, "after-1").ok());
  EXPECT_TRUE(third->Sees("cases/after-1"));
  EXPECT_TRUE(second.Sees("cases/after-1"));
}

TEST_F(ConnectionLimits, AnIdleConnectionIsClosedByTheServer) {
  Start({"--max-connection-idle-seconds=1"});
  auto channel = OwnChannel(server_->address());
  ASSERT_TRUE(channel->WaitForConnected(In(seconds(30))));

  // With a call open the connection is not idle: three idle periods later it is still
  // READY and the stream still delivers.
  {
    Watch watch(channel, seconds(60));
    ASSERT_TRUE(watch.ReadOne());
    EXPECT_FALSE(channel->WaitForStateChange(GRPC_CHANNEL_READY, In(seconds(3))))
        << "a connection with an open stream was closed as idle";
    ASSERT_TRUE(Create(other_, "busy-1").ok());
    EXPECT_TRUE(watch.Sees("cases/busy-1"));
  }

  // Without calls the server closes it (gRPC's own client idle timer is 30 minutes, so
  // the change comes from the server).
  ASSERT_TRUE(channel->WaitForStateChange(GRPC_CHANNEL_READY, In(seconds(20))))
      << "an idle connection was still READY 20 s after its last call (limit 1 s)";
  EXPECT_NE(channel->GetState(false), GRPC_CHANNEL_READY);
  // The next call reconnects.
  EXPECT_TRUE(Create(channel, "again-1").ok());
}

// Many connections that complete the HTTP/2 handshake and then make no call are all closed
// by the idle limit, while a client with calls is served.
TEST_F(ConnectionLimits, ManyIdleConnectionsAreAllClosed) {
  constexpr int kIdle = 500;
  Start({"--max-connection-idle-seconds=2"});
  const int port = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < kIdle; ++i) {
    auto raw = std::make_unique<RawConnection>(port);
    ASSERT_TRUE(raw->connected()) << i;
    ASSERT_TRUE(raw->Send(casework::testing::ClientPreface()));
    // The server's SETTINGS, acknowledged: a proper connection, just without calls.
    for (;;) {
      auto f = raw->Read(Clock::now() + seconds(30));
      ASSERT_TRUE(f.has_value()) << "no SETTINGS from the server on connection " << i;
      if (f->type == kSettings && (f->flags & kAck) == 0) break;
    }
    ASSERT_TRUE(raw->Send(FrameBytes(kSettings, kAck, "")));
    idle.push_back(std::move(raw));
  }
  // Served meanwhile.
  EXPECT_TRUE(Create(OwnChannel(server_->address()), "among-idle").ok());
  const auto start = Clock::now();
  const auto deadline = start + seconds(60);
  int closed = 0;
  for (auto& raw : idle) closed += raw->ClosedBy(deadline) ? 1 : 0;
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(closed, kIdle) << "after " << took << " s";
  std::printf("%d idle connections closed by the server within %.1f s (limit 2 s)\n", closed, took);
}

TEST_F(ConnectionLimits, AnOldConnectionIsEndedAfterItsAgeAndTheGrace) {
  constexpr int kAgeSeconds = 10;    // the smallest --max-connection-age-seconds
  constexpr int kGraceSeconds = 30;  // ServerLimits::connection_age_grace_ms
  Start({"--max-connection-age-seconds=" + std::to_string(kAgeSeconds)});
  auto channel = OwnChannel(server_->address());
  ASSERT_TRUE(channel->WaitForConnected(In(seconds(30))));
  const auto opened = Clock::now();
  auto watch = std::make_unique<Watch>(channel, seconds(150));
  ASSERT_TRUE(watch->ReadOne());

  // The stream is read on its own thread until the server ends it.
  std::atomic<bool> saw_late_event{false};
  auto ended = std::async(std::launch::async, [&] {
    v1::WatchEventsResponse m;
    while (watch->reader->Read(&m)) {
      watch->scanned_through = m.scanned_through();
      for (const auto& r : m.events()) {
        if (r.event().stream() == "cases/late-1") saw_late_event = true;
      }
    }
    return watch->reader->Finish();
  });

  // Past the age (gRPC adds up to 10% jitter), the stream still delivers: the grace
  // period lets calls in flight go on.
  std::this_thread::sleep_for(seconds(kAgeSeconds + 2));
  ASSERT_EQ(ended.wait_for(seconds(0)), std::future_status::timeout)
      << "the stream ended before the age plus the grace";
  ASSERT_TRUE(Create(other_, "late-1").ok());

  // Then the server ends it.
  ASSERT_EQ(ended.wait_for(seconds(kGraceSeconds + 60)), std::future_status::ready)
      << "the stream was not ended within the age, the grace and a minute";
  const grpc::Status status = ended.get();
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(saw_late_event) << "the stream delivered nothing during the grace period";
  // Not before the age (less its jitter) and the grace.
  EXPECT_GE(Clock::now() - opened, seconds(kAgeSeconds * 9 / 10 + kGraceSeconds - 1));
  watch->reader.reset();

  // The client reconnects and resumes from where it was.
  EXPECT_TRUE(Create(channel, "after-1").ok());
  Watch resumed(channel, seconds(30), watch->scanned_through);
  EXPECT_TRUE(resumed.Sees("cases/after-1"));
}

TEST_F(ConnectionLimits, APingFloodGetsGoawayTooManyPings) {
  Start({});
  const int port = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  RawConnection raw(port);
  ASSERT_TRUE(raw.connected());
  const auto deadline = Clock::now() + seconds(30);
  ASSERT_TRUE(raw.Send(casework::testing::ClientPreface()));
  // The server's SETTINGS, acknowledged.
  for (;;) {
    auto f = raw.Read(deadline);
    ASSERT_TRUE(f.has_value()) << "no SETTINGS from the server";
    if (f->type == kSettings && (f->flags & kAck) == 0) break;
  }
  ASSERT_TRUE(raw.Send(FrameBytes(kSettings, kAck, "")));

  // The first ping is answered.
  ASSERT_TRUE(raw.Send(FrameBytes(kPing, 0, "ping-001")));
  for (;;) {
    auto f = raw.Read(deadline);
    ASSERT_TRUE(f.has_value()) << "the first PING was not answered";
    if (f->type == kPing && (f->flags & kAck) != 0) {
      EXPECT_EQ(f->payload, "ping-001");
      break;
    }
  }

  // More, without any call: each is a strike; after two strikes, GOAWAY.
  std::optional<casework::testing::Frame> goaway;
  int sent = 1;
  for (int i = 2; i <= 20 && !goaway; ++i) {
    char payload[16];
    std::snprintf(payload, sizeof payload, "ping-%03d", i);
    if (!raw.Send(FrameBytes(kPing, 0, std::string(payload, 8)))) break;
    ++sent;
    // Take what the server sends until it goes quiet for a moment.
    for (;;) {
      auto f = raw.Read(Clock::now() + std::chrono::milliseconds(200));
      if (!f) break;
      if (f->type == kGoaway) {
        goaway = std::move(f);
        break;
      }
    }
  }
  ASSERT_TRUE(goaway.has_value()) << "no GOAWAY after " << sent << " pings without calls";
  ASSERT_GE(goaway->payload.size(), 8u);
  const auto b = [&](int i) {
    return static_cast<uint32_t>(static_cast<uint8_t>(goaway->payload[i]));
  };
  const uint32_t error = (b(4) << 24) | (b(5) << 16) | (b(6) << 8) | b(7);
  EXPECT_EQ(error, kEnhanceYourCalm);
  EXPECT_EQ(goaway->payload.substr(8), "too_many_pings");
  EXPECT_LE(sent, 20);
  // The server then closes the connection.
  EXPECT_TRUE(raw.ClosedBy(Clock::now() + seconds(30)));

  // Other clients are served as before.
  EXPECT_TRUE(Create(OwnChannel(server_->address()), "after-flood").ok());
}

}  // namespace
}  // namespace casework

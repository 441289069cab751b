// Abusive clients against the real server while a legitimate client works. Phases, each
// CW_ABUSE_SECONDS long (default 4):
//   1. baseline: the legitimate client alone, one call in flight (CreateCase of a new case,
//      then GetCase of it, in turn);
//   2. slow readers: CW_SLOW_READERS (default 200) WatchEvents streams from position 0,
//      50 to a raw HTTP/2 connection that never reads its socket and never grants flow
//      control window beyond the initial 64 KiB, so the server's sends stall for good;
//      held open through the phase; watches are spread over 20 identities (the server
//      lets one identity hold 32);
//   2b. subscribers: as many WatchEvents streams from position 0, 50 to a raw HTTP/2
//      connection that reads everything as it arrives and grants the server all the
//      window it can use (4 MiB a stream), so every event is sent to each of them as fast
//      as the server can; a raw reader costs the test little CPU (gRPC's own client,
//      taking the same bytes, used more than a core of this 2-core machine itself);
//   3. rapid reset (CVE-2023-44487): CW_RESET_CONNECTIONS raw HTTP/2
//      connections, each opening GetCase streams and resetting them at once (HEADERS,
//      then RST_STREAM CANCEL) as fast as the socket takes them (default 1 connection).
// CW_CATCH_UP_MIB sets the server's catch-up rate (default: the server's own).
// Prints, per phase, the legitimate client's calls, failures, p50 and p99 and their ratio
// to the baseline, the server's RSS, and the flood's rate. Asserts only what must hold
// whatever the speed: the legitimate client never fails through slow readers, and the
// server stays up and serves after each phase. Through rapid reset the legitimate
// client's failures are reported, not asserted: gRPC 1.51 (Debian 12) predates the
// upstream mitigations, and its server's memory grows with the flood (docs/security.md).
// (The 2x-of-baseline target is a measured figure, in docs/reliability.md; machines are
// too noisy to assert it.)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "casework/v1/case_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e_support.h"
#include "tests/raw_http2.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::testing::RawConnection;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : fallback;
}

using casework::testing::NowSeconds;
using casework::testing::OwnChannel;

std::unique_ptr<grpc::ClientContext> As(const std::string& identity,
                                        std::chrono::milliseconds deadline) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("x-casework-identity", identity);
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  return ctx;
}

v1::CreateCaseRequest Listing(const std::string& case_id) {
  v1::CreateCaseRequest req;
  req.set_case_id(case_id);
  req.set_request_id("r-" + case_id);
  auto* org = req.mutable_organisation();
  org->set_organisation_id("org-" + case_id);
  org->set_display_name("东山村党支部 " + case_id);
  org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
  org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  req.set_case_type(v1::CASE_TYPE_POOR);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  req.set_findings("no collective income; 无集体收入, the branch has not met for a year");
  req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
  return req;
}

// The identities of WriteTestPrincipals (tests/server_process.h): watches are spread over
// them, since the server lets one identity hold only a few dozen.
const std::vector<std::string>& Identities() {
  static const std::vector<std::string> ids = {
      "lister",          "reviewer",          "assister",
      "inspector",       "approver",          "auditor",
      "admin",           "outsider",          "lister.b",
      "lister.reviewer", "reviewer.township", "assister.inspector",
      "lister.xihe",     "reviewer.xihe",     "assister.xihe",
      "inspector.xihe",  "approver.xihe",     "auditor.xihe",
      "admin.xihe",      "approver.dongshan"};
  return ids;
}

int64_t RssMiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6) / 1024;
  }
  return -1;
}

struct PhaseResult {
  std::string name;
  int64_t calls = 0;
  int64_t failures = 0;
  std::string first_failure;
  double p50_us = 0;
  double p99_us = 0;
  int64_t rss_mib = 0;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

class AbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "data");
    // CW_CATCH_UP_MIB: the server's --watch-catch-up-mib-per-second (0: no limit).
    std::vector<std::string> args;
    if (const char* rate = std::getenv("CW_CATCH_UP_MIB"); rate != nullptr) {
      args.push_back(std::string("--watch-catch-up-mib-per-second=") + rate);
    }
    server_ = std::make_unique<ServerProcess>(
        dir_.path() / "data", casework::testing::WriteTestPrincipals(dir_.path()), args);
    ASSERT_TRUE(server_->Start()) << server_->error();
    port_ = std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  }

  // The legitimate client for `seconds`, one call in flight.
  PhaseResult Legitimate(const std::string& name, int seconds) {
    PhaseResult r{.name = name};
    auto channel = OwnChannel(server_->address());
    auto stub = v1::CaseService::NewStub(channel);
    std::vector<double> micros;
    const auto end = Clock::now() + std::chrono::seconds(seconds);
    // Bounded by the phase's end; each call by its deadline.
    for (int n = 0; Clock::now() < end; ++n) {
      const std::string id = name + "-" + std::to_string(n);
      const auto t = Clock::now();
      grpc::Status s;
      if (n % 2 == 0) {
        v1::CaseCommandResponse resp;
        auto ctx = As("lister", std::chrono::seconds(10));
        s = stub->CreateCase(ctx.get(), Listing(id), &resp);
      } else {
        v1::GetCaseRequest get;
        get.set_name("cases/" + name + "-" + std::to_string(n - 1));
        v1::Case c;
        auto ctx = As("auditor", std::chrono::seconds(10));
        s = stub->GetCase(ctx.get(), get, &c);
      }
      micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
      ++r.calls;
      if (!s.ok()) {
        if (r.failures++ == 0) {
          r.first_failure = std::to_string(s.error_code()) + " " + s.error_message();
        }
      }
    }
    r.p50_us = Percentile(micros, 0.50);
    r.p99_us = Percentile(micros, 0.99);
    r.rss_mib = RssMiB(server_->pid());
    return r;
  }

  // The server serves again (bounded: 60 s). After a rapid-reset flood gRPC 1.51 is still
  // tearing down the streams for a while (docs/reliability.md), and a new connection's
  // handshake may time out meanwhile: the call waits for a connection that is ready.
  void ExpectServing(const std::string& after) {
    ASSERT_EQ(::kill(server_->pid(), 0), 0) << "the server is gone after " << after;
    auto stub = v1::CaseService::NewStub(OwnChannel(server_->address()));
    v1::CaseCommandResponse resp;
    auto ctx = As("lister", std::chrono::seconds(60));
    ctx->set_wait_for_ready(true);
    grpc::Status s = stub->CreateCase(ctx.get(), Listing("after-" + after), &resp);
    EXPECT_TRUE(s.ok()) << "after " << after << ": " << s.error_message();
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  int port_ = 0;
};

TEST_F(AbuseTest, ALegitimateClientIsServedThroughSlowReadersAndRapidReset) {
  const int seconds = EnvInt("CW_ABUSE_SECONDS", 4);
  const int slow_readers = EnvInt("CW_SLOW_READERS", 200);
  const int reset_connections = EnvInt("CW_RESET_CONNECTIONS", 1);

  // Something for the watches to catch up on: 2,000 events.
  {
    std::vector<std::thread> fill;
    for (int t = 0; t < 4; ++t) {
      fill.emplace_back([&, t] {
        auto stub = v1::CaseService::NewStub(OwnChannel(server_->address()));
        for (int i = 0; i < 500; ++i) {
          v1::CaseCommandResponse resp;
          auto ctx = As("lister", std::chrono::seconds(30));
          (void)stub->CreateCase(
              ctx.get(), Listing("fill-" + std::to_string(t) + "-" + std::to_string(i)), &resp);
        }
      });
    }
    for (auto& t : fill) t.join();
  }
  std::vector<PhaseResult> results;
  results.push_back(Legitimate("baseline", seconds));

  // Slow readers: raw connections that never read their socket.
  {
    auto headers = [&](int i) {
      return casework::testing::GrpcRequestHeaders(
          "127.0.0.1:" + std::to_string(port_), "/casework.v1.EventService/WatchEvents",
          {{"x-casework-identity", Identities()[static_cast<size_t>(i) % Identities().size()]}});
    };
    // A gRPC message: not compressed, length 0 (WatchEventsRequest{from_position: 0}).
    const std::string request(5, '\0');
    std::vector<std::unique_ptr<RawConnection>> stalled;
    for (int i = 0; i < slow_readers; ++i) {
      if (i % 50 == 0) {
        stalled.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(stalled.back()->connected());
        ASSERT_TRUE(stalled.back()->Send(casework::testing::ClientPreface()));
      }
      const auto stream = static_cast<uint32_t>(1 + 2 * (i % 50));
      ASSERT_TRUE(stalled.back()->Send(
          casework::testing::FrameBytes(casework::testing::kHeaders, casework::testing::kEndHeaders,
                                        headers(i), stream) +
          casework::testing::FrameBytes(casework::testing::kData, casework::testing::kEndStream,
                                        request, stream)));
    }
    results.push_back(Legitimate("slow-readers", seconds));
  }  // the connections close here
  ExpectServing("slow-readers");
  if (HasFatalFailure()) return;

  // Subscribers: raw connections that read everything as it comes and grant the server
  // all the flow-control window it can use.
  int64_t subscriber_bytes = 0;
  int64_t subscriber_streams = 0;
  {
    constexpr int kPerConnection = 50;
    constexpr uint32_t kStreamWindow = 4u << 20;
    std::atomic<bool> stop_reading{false};
    std::atomic<int64_t> bytes{0};
    std::vector<std::thread> readers;
    std::vector<std::atomic<int64_t>> streams_with_data((slow_readers + kPerConnection - 1) /
                                                        kPerConnection);
    for (int c = 0; c * kPerConnection < slow_readers; ++c) {
      const int first = c * kPerConnection;
      const int count = std::min(kPerConnection, slow_readers - first);
      auto raw = std::make_shared<RawConnection>(port_);
      ASSERT_TRUE(raw->connected());
      std::string open = casework::testing::ClientPreface() +
                         casework::testing::InitialWindowSettings(kStreamWindow) +
                         casework::testing::WindowUpdate(0, 1u << 30);
      for (int i = 0; i < count; ++i) {
        const auto stream = static_cast<uint32_t>(1 + 2 * i);
        const std::string id = Identities()[static_cast<size_t>(first + i) % Identities().size()];
        open += casework::testing::FrameBytes(
            casework::testing::kHeaders, casework::testing::kEndHeaders,
            casework::testing::GrpcRequestHeaders("127.0.0.1:" + std::to_string(port_),
                                                  "/casework.v1.EventService/WatchEvents",
                                                  {{"x-casework-identity", id}}),
            stream);
        open += casework::testing::FrameBytes(
            casework::testing::kData, casework::testing::kEndStream, std::string(5, '\0'), stream);
      }
      ASSERT_TRUE(raw->Send(open));
      readers.emplace_back([&, raw, c] {
        // Per stream, the bytes taken since its window was last topped up.
        std::vector<int64_t> taken(kPerConnection, 0);
        std::vector<bool> seen(kPerConnection, false);
        int64_t connection_taken = 0;
        // Bounded: until told to stop, or the server closes the connection.
        while (!stop_reading.load()) {
          auto frame = raw->Read(Clock::now() + std::chrono::milliseconds(100));
          if (!frame.has_value()) {
            if (raw->closed()) return;
            continue;
          }
          std::string reply;
          if (frame->type == casework::testing::kSettings &&
              (frame->flags & casework::testing::kAck) == 0) {
            reply = casework::testing::FrameBytes(casework::testing::kSettings,
                                                  casework::testing::kAck, "");
          } else if (frame->type == casework::testing::kPing &&
                     (frame->flags & casework::testing::kAck) == 0) {
            reply = casework::testing::FrameBytes(casework::testing::kPing, casework::testing::kAck,
                                                  frame->payload);
          } else if (frame->type == casework::testing::kData && frame->stream % 2 == 1) {
            const auto n = static_cast<int64_t>(frame->payload.size());
            const size_t slot = (frame->stream - 1) / 2;
            bytes += n;
            connection_taken += n;
            if (slot < taken.size()) {
              if (!seen[slot]) {
                seen[slot] = true;
                ++streams_with_data[static_cast<size_t>(c)];
              }
              taken[slot] += n;
              if (taken[slot] >= kStreamWindow / 2) {
                reply += casework::testing::WindowUpdate(frame->stream,
                                                         static_cast<uint32_t>(taken[slot]));
                taken[slot] = 0;
              }
            }
            if (connection_taken >= (1 << 29)) {
              reply += casework::testing::WindowUpdate(0, static_cast<uint32_t>(connection_taken));
              connection_taken = 0;
            }
          }
          if (!reply.empty() && !raw->Send(reply)) return;
        }
      });
    }
    const int64_t before = bytes.load();
    results.push_back(Legitimate("subscribers", seconds));
    subscriber_bytes = bytes.load() - before;
    // Every subscriber is served in its turn: wait for the last ones (bounded, 120 s; a
    // loaded sanitizer build catches up slowly at nice 19).
    auto served = [&] {
      int64_t n = 0;
      for (const auto& s : streams_with_data) n += s.load();
      return n;
    };
    for (int i = 0; i < 1200 && served() < slow_readers; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    stop_reading = true;
    for (auto& t : readers) t.join();
    subscriber_streams = served();
  }
  ExpectServing("subscribers");
  if (HasFatalFailure()) return;

  // Rapid reset.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> resets{0};
  std::atomic<int64_t> reconnects{0};
  std::vector<std::thread> flooders;
  for (int c = 0; c < reset_connections; ++c) {
    flooders.emplace_back([&] {
      const std::string headers = casework::testing::GrpcRequestHeaders(
          "127.0.0.1:" + std::to_string(port_), "/casework.v1.CaseService/GetCase",
          {{"x-casework-identity", "auditor"}});
      std::string cancel(4, '\0');
      cancel[3] = static_cast<char>(casework::testing::kCancel);
      // Bounded: until told to stop; a connection the server closed is replaced.
      while (!stop.load()) {
        RawConnection raw(port_);
        if (!raw.connected() || !raw.Send(casework::testing::ClientPreface())) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        ++reconnects;
        uint32_t stream = 1;
        std::string burst;
        while (!stop.load() && stream < (1u << 30)) {
          burst.clear();
          for (int i = 0; i < 64; ++i, stream += 2) {
            burst += casework::testing::FrameBytes(casework::testing::kHeaders,
                                                   casework::testing::kEndHeaders, headers, stream);
            burst +=
                casework::testing::FrameBytes(casework::testing::kRstStream, 0, cancel, stream);
          }
          if (!raw.Send(burst) || !raw.Drain()) break;
          resets += 64;
        }
      }
    });
  }
  results.push_back(Legitimate("rapid-reset", seconds));
  stop = true;
  for (auto& t : flooders) t.join();
  ExpectServing("rapid-reset");

  const PhaseResult& base = results.front();
  std::printf("abuse: %d s per phase, %d slow readers, %d rapid-reset connections\n", seconds,
              slow_readers, reset_connections);
  std::printf("| phase | calls | failures | p50 us | p99 us | p99 / baseline | server RSS MiB |\n");
  for (const PhaseResult& r : results) {
    std::printf("| %s | %lld | %lld | %.0f | %.0f | %.2f | %lld |\n", r.name.c_str(),
                static_cast<long long>(r.calls), static_cast<long long>(r.failures), r.p50_us,
                r.p99_us, base.p99_us > 0 ? r.p99_us / base.p99_us : 0.0,
                static_cast<long long>(r.rss_mib));
  }
  std::printf(
      "subscribers: %lld of %d streams received data (by the end of the wait); %.1f MiB/s sent to "
      "them in the phase\n",
      static_cast<long long>(subscriber_streams), slow_readers,
      static_cast<double>(subscriber_bytes) / (1 << 20) / seconds);
  std::printf("rapid reset: %lld streams opened and reset (%.0f/s) over %lld connections\n",
              static_cast<long long>(resets.load()), static_cast<double>(resets.load()) / seconds,
              static_cast<long long>(reconnects.load()));
  for (const PhaseResult& r : results) {
    if (r.name != "rapid-reset") {
      EXPECT_EQ(r.failures, 0) << r.name << ": " << r.first_failure;
    }
    EXPECT_GT(r.calls, 0) << r.name;
  }
  EXPECT_EQ(subscriber_streams, slow_readers) << "every subscriber is served";
}

}  // namespace
}  // namespace casework

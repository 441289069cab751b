// watch_bench: catch-up rate of one WatchEvents subscriber over loopback.
//
// Fills a fresh log with N events (one small case listing each, ~250 bytes, over many
// streams), serves EventService on 127.0.0.1 in this process, and reads the whole log with
// one subscriber from position 0, parsing every message as a client would. Prints
// events/s and MB/s. Usage:
//   watch_bench [events=1000000] [max_events_per_message=4096] [catch_up_mib_per_second=0]
// The last is the server's --watch-catch-up-mib-per-second (caseworkd's default is 32);
// 0 here, so that the bench measures what the stream can do.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "casework/v1/event_service.grpc.pb.h"
#include "casework/v1/events.pb.h"
#include "grpcpp/grpcpp.h"
#include "services/shell/auth.h"
#include "services/shell/commit_broadcaster.h"
#include "services/shell/event_service.h"
#include "store/rocks_event_log.h"

namespace {

namespace v1 = ::casework::v1;

std::string EventBytes(int64_t i) {
  v1::Event e;
  e.set_stream("cases/b-" + std::to_string(i));
  e.set_version(1);
  e.set_actor("lister");
  e.mutable_time()->set_seconds(1767225600 + i);
  e.set_request_id("r-" + std::to_string(i));
  e.set_rules_version("rules/2026.1");
  auto* listed = e.mutable_organisation_listed();
  auto* org = listed->mutable_organisation();
  org->set_organisation_id("org-" + std::to_string(i));
  org->set_display_name("东山村党支部");
  org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + std::to_string(i));
  listed->set_case_type(v1::CASE_TYPE_POOR);
  listed->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  listed->set_findings("no collective income; secretary post vacant");
  listed->mutable_deadline()->set_seconds(1767225600 + 180 * 86400);
  return e.SerializeAsString();
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t events = argc > 1 ? std::atoll(argv[1]) : 1'000'000;
  const int per_message = argc > 2 ? std::atoi(argv[2]) : 4096;
  const int64_t catch_up_mib = argc > 3 ? std::atoll(argv[3]) : 0;
  const auto dir =
      std::filesystem::temp_directory_path() / ("cw-watch-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  int rc = 0;
  {
    casework::store::RocksEventLog::Options options;
    options.path = (dir / "log").string();
    auto log = casework::store::RocksEventLog::Open(options);
    if (!log.ok()) {
      std::fprintf(stderr, "open: %s\n", log.status().ToString().c_str());
      return 1;
    }
    // Fill: appends in flight, group-committed by the log.
    const auto fill_start = std::chrono::steady_clock::now();
    constexpr int64_t kInFlight = 4096;
    std::atomic<int64_t> done{0};
    for (int64_t i = 0; i < events; ++i) {
      while (i - done.load() >= kInFlight) std::this_thread::yield();
      casework::store::AppendRequest request;
      request.stream = "cases/b-" + std::to_string(i);
      request.events.push_back(EventBytes(i));
      (*log)->AppendAsync(std::move(request), [&done](auto result) {
        if (!result.ok()) std::abort();
        done.fetch_add(1);
      });
    }
    while (done.load() < events) std::this_thread::yield();
    std::printf(
        "filled %lld events in %.1f s\n", static_cast<long long>(events),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count());

    auto principals = casework::shell::Principals::Parse(
        R"({"principals": [{"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"}]})");
    casework::shell::PrincipalsHolder holder(*principals);
    casework::shell::Authenticator auth(&holder);
    casework::shell::CommitBroadcaster commits;
    (*log)->SetCommitListener([&commits](int64_t size) { commits.Publish(size); });
    casework::shell::EventServiceImpl service(
        log->get(), &auth, &commits,
        casework::shell::WatchOptions{.catch_up_bytes_per_second = catch_up_mib << 20});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();

    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                             grpc::InsecureChannelCredentials(), args);
    auto stub = v1::EventService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-casework-identity", "auditor");
    v1::WatchEventsRequest request;
    request.set_max_events_per_message(per_message);
    const auto start = std::chrono::steady_clock::now();
    auto reader = stub->WatchEvents(&ctx, request);
    v1::WatchEventsResponse message;
    int64_t received = 0;
    int64_t bytes = 0;
    int64_t messages = 0;
    while (received < events && reader->Read(&message)) {
      for (const auto& r : message.events()) {
        if (r.position() != received) {
          std::fprintf(stderr, "position %lld, expected %lld\n",
                       static_cast<long long>(r.position()), static_cast<long long>(received));
          rc = 1;
        }
        ++received;
      }
      bytes += static_cast<int64_t>(message.ByteSizeLong());
      ++messages;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.TryCancel();
    (void)reader->Finish();
    std::printf(
        "catch-up: %lld events in %.2f s = %.0f events/s, %.1f MB/s, %lld messages "
        "(max %d events each), one subscriber on 127.0.0.1\n",
        static_cast<long long>(received), seconds, received / seconds, bytes / seconds / 1e6,
        static_cast<long long>(messages), per_message);
    server->Shutdown();
  }
  std::filesystem::remove_all(dir);
  return rc;
}

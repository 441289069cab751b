// The health status follows the log's write mode, over loopback against an in-process
// server on a real log whose disk is made full behind the log's guard: SERVING while the
// log takes writes, NOT_SERVING once a write failed (read-only until restart), and
// NOT_SERVING for good from the shutdown on.
#include "services/shell/health.h"

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "store/rocks_event_log.h"
#include "store/testing/full_disk_fs.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

// grpc.health.v1.Health/Check for the whole server, without generated stubs: the request
// is empty on the wire; the answer's status is field 1 (SERVING 1, NOT_SERVING 2).
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice empty(std::string{});
  grpc::ByteBuffer request(&empty, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = std::move(s);
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -100;
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return bytes.size() == 2 && bytes[0] == '\x08' ? bytes[1] : -101;
}

// A server on loopback with the default health service and nothing else to serve.
struct HealthServer {
  HealthServer() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterCallbackGenericService(&unknown_methods);  // a server serves something
    server = builder.BuildAndStart();
  }
  int port = 0;
  grpc::CallbackGenericService unknown_methods;
  std::unique_ptr<grpc::Server> server;
};

TEST(Health, FollowsTheLogsWriteModeAndTheShutdown) {
  store::testing::TempDir dir;
  auto fs = std::make_shared<store::testing::FullDiskFs>(rocksdb::FileSystem::Default());
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  std::filesystem::create_directories(options.path);
  options.env = env.get();
  options.disk_full_retry_ms = 10;
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  HealthFollower follower;
  (*log)->SetWriteStateListener(
      [&follower](const store::RocksEventLog::WriteState& state) { follower.OnWriteState(state); });

  HealthServer health;
  ASSERT_NE(health.port, 0);
  follower.Attach(health.server->GetHealthCheckService());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(health.port),
                                     grpc::InsecureChannelCredentials());
  ASSERT_TRUE((*log)->Append({.stream = "s", .expected_version = 0, .events = {"e1"}}).ok());
  EXPECT_EQ(HealthStatus(channel), 1);

  // A write meets a full disk the guard did not see: read-only until restart.
  fs->SetFull(true, /*syncs_fail=*/false, /*hidden=*/true);
  ASSERT_FALSE((*log)->Append({.stream = "s", .expected_version = 1, .events = {"e2"}}).ok());
  ASSERT_EQ((*log)->GetWriteState().mode, store::RocksEventLog::WriteState::Mode::kFailed);
  EXPECT_EQ(HealthStatus(channel), 2);
  fs->SetFull(false);
  EXPECT_EQ(HealthStatus(channel), 2) << "space returned, but only a restart takes writes";

  // The shutdown: NOT_SERVING for good, whatever the log reports afterwards.
  follower.Shutdown();
  follower.OnWriteState({});
  EXPECT_EQ(HealthStatus(channel), 2);
  health.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  log->reset();
}

TEST(Health, ServesUntilTheShutdown) {
  HealthServer health;
  ASSERT_NE(health.port, 0);
  HealthFollower follower;
  follower.Attach(health.server->GetHealthCheckService());
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(health.port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(channel), 1);
  follower.Shutdown();
  EXPECT_EQ(HealthStatus(channel), 2);
  health.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace
}  // namespace casework::shell

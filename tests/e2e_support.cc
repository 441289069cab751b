#include "tests/e2e_support.h"

#include <chrono>
#include <map>
#include <string_view>
#include <vector>

#include "casework/v1/audit_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "services/shell/projections.h"
#include "store/rocks_event_log.h"

namespace casework::testing {

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void ExpectLogVerifies(const std::string& address, const std::string& identity) {
  auto stub = v1::AuditService::NewStub(OwnChannel(address));
  for (bool deep : {false, true}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-casework-identity", identity);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
    v1::VerifyLogRequest req;
    req.set_deep(deep);
    auto reader = stub->VerifyLog(&ctx, req);
    v1::VerifyLogResponse m;
    bool ok = false;
    std::string problem;
    while (reader->Read(&m)) {
      if (m.done()) {
        ok = m.ok();
        problem = m.problem();
      }
    }
    const grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(ok) << (deep ? "deep: " : "tree: ") << problem;
  }
}

size_t ExpectProjectionsEqualRebuild(const std::string& log_path, int64_t* events) {
  store::RocksEventLog::Options options;
  options.path = log_path;
  auto log = store::RocksEventLog::Open(options);
  EXPECT_TRUE(log.ok()) << log.status();
  if (!log.ok()) return 0;
  std::map<std::string, std::string> maintained, rebuilt;
  EXPECT_TRUE((*log)
                  ->ScanAllProjections([&](std::string_view k, std::string_view v) {
                    maintained.emplace(std::string(k), std::string(v));
                  })
                  .ok());
  shell::ProjectionReplayer replayer;
  EXPECT_TRUE((*log)
                  ->RebuildProjections([&](const store::StoredEvent& e) {
                    auto writes = replayer.Project(e);
                    EXPECT_TRUE(writes.ok());
                    return writes.ok() ? *writes : std::vector<store::ProjectionWrite>{};
                  })
                  .ok());
  EXPECT_TRUE((*log)
                  ->ScanAllProjections([&](std::string_view k, std::string_view v) {
                    rebuilt.emplace(std::string(k), std::string(v));
                  })
                  .ok());
  EXPECT_EQ(maintained.size(), rebuilt.size());
  EXPECT_TRUE(maintained == rebuilt) << "the read models differ from a rebuild";
  if (events != nullptr) *events = (*log)->Size();
  return maintained.size();
}

}  // namespace casework::testing

// The server's limits over loopback with the real caseworkd: a request above the
// message size limit and request metadata above the metadata limit are refused before
// any handler runs (gRPC 1.51 also closes the connection that sent the oversized
// metadata), a request at our largest legal size is served, and the server keeps
// serving afterwards.
#include <string>

#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

constexpr size_t kTextBytesMax = 16 * 1024;  // services/workflow/limits.h

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::CreateCaseRequest Listing(const std::string& case_id, size_t findings_bytes) {
  v1::CreateCaseRequest req;
  req.set_case_id(case_id);
  req.set_request_id("r-" + case_id);
  auto* org = req.mutable_organisation();
  org->set_organisation_id("org-" + case_id);
  org->set_display_name(std::string(256, 'n'));
  org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
  org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  req.set_case_type(v1::CASE_TYPE_POOR);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  req.set_findings(std::string(findings_bytes, 'f'));
  req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
  return req;
}

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "data");
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data",
                                              casework::testing::WriteTestPrincipals(dir_.path()));
    ASSERT_TRUE(server_->Start()) << server_->error();
    lister_ =
        std::make_unique<Client>(ClientOptions{.server = server_->address(), .identity = "lister"});
  }

  grpc::Status Create(const v1::CreateCaseRequest& req,
                      const std::string& padding_header_bytes = "") {
    auto ctx = lister_->NewContext();
    if (!padding_header_bytes.empty()) ctx->AddMetadata("x-padding", padding_header_bytes);
    v1::CaseCommandResponse resp;
    return lister_->cases().CreateCase(ctx.get(), req, &resp);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> lister_;
};

TEST_F(LimitsTest, OversizedMessageIsRefusedAndTheLargestLegalOneServed) {
  // 300 KiB of findings: above the 256 KiB default receive limit.
  const auto refused = Create(Listing("big-1", 300 * 1024));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  // The largest legal findings (16 KiB) with the longest display name: served.
  const auto served = Create(Listing("max-1", kTextBytesMax));
  EXPECT_TRUE(served.ok()) << served.error_message();
  // One byte more is the core's refusal, not the transport's.
  const auto too_long = Create(Listing("max-2", kTextBytesMax + 1));
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(casework::client::DecodeError(too_long).reason, "TEXT_TOO_LONG");
}

TEST_F(LimitsTest, OversizedMetadataIsRefused) {
  const auto refused = Create(Listing("md-1", 10), std::string(32 * 1024, 'm'));
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  // gRPC 1.51 closes the offending connection. A new connection with metadata well
  // inside the limit is served: the server itself is unharmed.
  lister_ =
      std::make_unique<Client>(ClientOptions{.server = server_->address(), .identity = "lister"});
  grpc::Status served;
  for (int attempt = 0; attempt < 3; ++attempt) {  // the first may meet the closed socket
    auto ctx = lister_->NewContext();
    ctx->set_wait_for_ready(true);
    ctx->AddMetadata("x-padding", std::string(1024, 'm'));
    v1::CaseCommandResponse resp;
    served = lister_->cases().CreateCase(ctx.get(), Listing("md-2", 10), &resp);
    if (served.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  EXPECT_TRUE(served.ok()) << served.error_message();
  // Nothing of the refused call reached the log.
  auto ctx = lister_->NewContext();
  v1::GetCaseRequest get;
  get.set_name("cases/md-1");
  v1::Case c;
  EXPECT_EQ(lister_->cases().GetCase(ctx.get(), get, &c).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(LimitsTest, TheReceiveLimitIsConfigurable) {
  server_->Stop();
  ServerProcess small(dir_.path() / "data", dir_.path() / "principals.json",
                      {"--max-receive-message-bytes=8192"});
  ASSERT_TRUE(small.Start()) << small.error();
  Client c(ClientOptions{.server = small.address(), .identity = "lister"});
  auto ctx = c.NewContext();
  v1::CaseCommandResponse resp;
  const auto refused = c.cases().CreateCase(ctx.get(), Listing("cfg-1", 10 * 1024), &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace casework

// Retries and contention against the real server:
//   - 10,000 commands, each sent again with the same request id, half of the retries
//     after a kill -9 and restart, make exactly one event each, and every retry answers
//     the first answer (same positions, `replayed`);
//   - 32 writers contending on one case with optimistic concurrency lose no update: every
//     refusal is ABORTED (stale expected version), and every accepted command is in the
//     case's history exactly once.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "casework/v1/audit_service.grpc.pb.h"
#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::client::DecodeError;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ContentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
    Start();
  }

  void Start() {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  static v1::CreateCaseRequest Listing(const std::string& id, int64_t deadline) {
    v1::CreateCaseRequest req;
    req.set_case_id(id);
    req.set_request_id("create-" + id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant");
    req.mutable_deadline()->set_seconds(deadline);
    return req;
  }

  int64_t LogSize() {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    v1::GetCheckpointResponse head;
    EXPECT_TRUE(v1::AuditService::NewStub(auditor->channel())
                    ->GetCheckpoint(ctx.get(), v1::GetCheckpointRequest(), &head)
                    .ok());
    return head.tree_size();
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ContentionTest, TenThousandRetriedRequestsMakeOneEventEach) {
  constexpr int kRequests = 10'000;
  constexpr int kThreads = 16;
  const int64_t deadline = NowSeconds() + 365 * 86400;
  std::vector<int64_t> first_position(kRequests, -1);
  std::atomic<int> failures{0}, not_replayed{0}, moved{0};
  // Sends request i (the same bytes every time); records or compares its position.
  auto send = [&](Client& lister, int i, bool retry) {
    const v1::CreateCaseRequest req = Listing("r-" + std::to_string(i), deadline);
    v1::CaseCommandResponse resp;
    auto ctx = lister.NewContext();
    auto status = lister.cases().CreateCase(ctx.get(), req, &resp);
    if (!status.ok() || resp.events_size() != 1) {
      ++failures;
      return;
    }
    if (!retry) {
      first_position[static_cast<size_t>(i)] = resp.events(0).position();
      return;
    }
    if (!resp.replayed()) ++not_replayed;
    if (resp.events(0).position() != first_position[static_cast<size_t>(i)]) ++moved;
  };
  auto run = [&](int from, int to, bool retry) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        auto lister = As("lister");
        for (int i = from + t; i < to; i += kThreads) send(*lister, i, retry);
      });
    }
    for (auto& th : threads) th.join();
  };
  run(0, kRequests, false);
  ASSERT_EQ(failures.load(), 0);
  run(0, kRequests / 2, true);  // retried while the server runs
  server_->Kill();              // kill -9, then the other half is retried after restart
  Start();
  run(kRequests / 2, kRequests, true);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(not_replayed.load(), 0);
  EXPECT_EQ(moved.load(), 0);
  EXPECT_EQ(LogSize(), kRequests);  // exactly one event per request
  std::printf("%d requests, each retried once (half after kill -9): %lld events, 0 duplicates\n",
              kRequests, static_cast<long long>(LogSize()));
}

TEST_F(ContentionTest, ThirtyTwoWritersOnOneCaseLoseNoUpdate) {
  constexpr int kWriters = 32;
  constexpr int kEachWrites = 15;
  // One case under assistance.
  {
    auto lister = As("lister");
    v1::CaseCommandResponse resp;
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases()
                    .CreateCase(ctx.get(), Listing("hot", NowSeconds() + 365 * 86400), &resp)
                    .ok());
    auto reviewer = As("reviewer");
    v1::ReviewListingRequest review;
    review.set_name("cases/hot");
    review.set_request_id("review-hot");
    review.set_expected_version(1);
    review.set_confirmed(true);
    auto ctx2 = reviewer->NewContext();
    ASSERT_TRUE(reviewer->cases().ReviewListing(ctx2.get(), review, &resp).ok());
    v1::AssignAssistanceRequest assign;
    assign.set_name("cases/hot");
    assign.set_request_id("assign-hot");
    assign.set_expected_version(2);
    auto* a = assign.mutable_assignment();
    a->mutable_paired_department()->set_department_id("dept-org");
    a->mutable_paired_department()->set_display_name("组织部");
    a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_PARTY_GOVERNMENT);
    a->mutable_first_secretary()->set_person_id("assister");
    auto* cadre = a->add_stationed_cadres();
    cadre->set_person_id("cadre.hot");
    cadre->set_display_name("驻村干部");
    a->set_plan("elect a secretary");
    auto ctx3 = lister->NewContext();
    auto status = lister->cases().AssignAssistance(ctx3.get(), assign, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  std::atomic<int> accepted{0}, aborted{0}, other{0};
  std::mutex mu;
  std::set<std::string> accepted_ids;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto assister = As("assister");
      for (int n = 0; n < kEachWrites;) {
        // Read the version, then write at it; a conflict is retried with a new read.
        v1::Case c;
        {
          auto ctx = assister->NewContext();
          v1::GetCaseRequest get;
          get.set_name("cases/hot");
          if (!assister->cases().GetCase(ctx.get(), get, &c).ok()) {
            ++other;
            return;
          }
        }
        v1::RecordMeasureRequest req;
        req.set_name("cases/hot");
        req.set_request_id("m-" + std::to_string(w) + "-" + std::to_string(n));
        req.set_expected_version(c.version());
        req.set_description("measure " + req.request_id());
        req.set_problem_category(v1::PROBLEM_CATEGORY_LEADERSHIP);
        v1::CaseCommandResponse resp;
        auto ctx = assister->NewContext();
        auto status = assister->cases().RecordMeasure(ctx.get(), req, &resp);
        if (status.ok()) {
          ++accepted;
          ++n;
          std::lock_guard<std::mutex> lock(mu);
          accepted_ids.insert(req.request_id());
        } else if (status.error_code() == grpc::StatusCode::ABORTED) {
          ++aborted;
        } else {
          ++other;
          std::printf("unexpected: %s [%s]\n", status.error_message().c_str(),
                      DecodeError(status).reason.c_str());
          return;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(accepted.load(), kWriters * kEachWrites);

  // Every accepted measure is in the history exactly once, and nothing else is.
  auto auditor = As("auditor");
  auto ctx = auditor->NewContext();
  v1::ListCaseEventsRequest list;
  list.set_name("cases/hot");
  list.set_page_size(1000);
  v1::ListCaseEventsResponse history;
  ASSERT_TRUE(auditor->cases().ListCaseEvents(ctx.get(), list, &history).ok());
  std::multiset<std::string> measured;
  for (const auto& e : history.events()) {
    if (e.event().has_measure_completed()) measured.insert(e.event().request_id());
  }
  EXPECT_EQ(measured.size(), accepted_ids.size());
  EXPECT_EQ(std::set<std::string>(measured.begin(), measured.end()), accepted_ids);
  EXPECT_EQ(history.events_size(), 3 + kWriters * kEachWrites);
  std::printf("%d writers on one case: %d accepted, %d refused ABORTED and retried, 0 lost\n",
              kWriters, accepted.load(), aborted.load());
}

}  // namespace
}  // namespace casework

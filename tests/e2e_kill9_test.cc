// kill -9 under load against the real server, many times over one data folder. The
// oracle is the client side: every command the server acknowledged is recorded with the
// positions and versions it was given. After each kill the server restarts and:
//   - every acknowledged event is there, at its position, with its version and request id;
//   - a command whose answer was lost is retried with the same request id and answers
//     (its first answer if it had become durable), and never appends twice;
//   - no case holds a duplicated event (versions contiguous, request ids distinct).
// At the end the log verifies (tree and deep rules) and the read models equal a rebuild
// from the log. Cycles: CW_KILL_CYCLES (default 200); seed: CW_TEST_SEED.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/e2e_support.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

constexpr int kWriters = 8;

struct Command {
  std::string case_id;
  std::string request_id;
  bool review = false;   // false: CreateCase; true: ReviewListing at version 1
  int64_t deadline = 0;  // CreateCase: fixed once, so that a retry is the same request
};

struct Acked {
  int64_t version = 0;
  std::vector<int64_t> positions;
};

using casework::testing::NowSeconds;

class Kill9Test : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
  }

  std::chrono::duration<double> Start() {
    const auto t = std::chrono::steady_clock::now();
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    EXPECT_TRUE(server_->Start()) << server_->error();
    return std::chrono::steady_clock::now() - t;
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(ClientOptions{.server = server_->address(),
                                                  .identity = identity,
                                                  .timeout = std::chrono::milliseconds(10000)});
  }

  // Sends one command; OK with the response, or the failure.
  grpc::Status Send(const Command& c, v1::CaseCommandResponse* resp) {
    auto client = As(c.review ? "reviewer" : "lister");
    auto ctx = client->NewContext();
    if (c.review) {
      v1::ReviewListingRequest req;
      req.set_name("cases/" + c.case_id);
      req.set_request_id(c.request_id);
      req.set_expected_version(1);
      req.set_confirmed(true);
      return client->cases().ReviewListing(ctx.get(), req, resp);
    }
    v1::CreateCaseRequest req;
    req.set_case_id(c.case_id);
    req.set_request_id(c.request_id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + c.case_id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + c.case_id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant");
    req.mutable_deadline()->set_seconds(c.deadline);
    return client->cases().CreateCase(ctx.get(), req, resp);
  }

  void Record(const Command& c, const v1::CaseCommandResponse& resp) {
    Acked a{.version = resp.case_().version()};
    for (const auto& e : resp.events()) a.positions.push_back(e.position());
    std::lock_guard<std::mutex> lock(mu_);
    acked_[c.request_id] = std::move(a);
    commands_[c.request_id] = c;
  }

  // Checks the acknowledged commands with the given request ids (all when empty).
  void Check(const std::vector<std::string>& only = {}) {
    auto auditor = As("auditor");
    std::map<std::string, v1::ListCaseEventsResponse> events;  // by case
    std::vector<std::string> ids = only;
    if (ids.empty()) {
      for (const auto& [id, a] : acked_) ids.push_back(id);
    }
    for (const std::string& id : ids) {
      const Command& c = commands_.at(id);
      const Acked& a = acked_.at(id);
      if (!events.contains(c.case_id)) {
        auto ctx = auditor->NewContext();
        v1::ListCaseEventsRequest req;
        req.set_name("cases/" + c.case_id);
        req.set_page_size(1000);
        auto status = auditor->cases().ListCaseEvents(ctx.get(), req, &events[c.case_id]);
        ASSERT_TRUE(status.ok()) << c.case_id << ": " << status.error_message();
        // No duplicate: versions 1..n in order, each request id once, at most 2 events.
        const auto& list = events[c.case_id].events();
        ASSERT_LE(list.size(), 2) << c.case_id;
        std::set<std::string> seen;
        for (int i = 0; i < list.size(); ++i) {
          EXPECT_EQ(list[i].event().version(), i + 1) << c.case_id;
          EXPECT_TRUE(seen.insert(list[i].event().request_id()).second) << c.case_id;
        }
      }
      // Every acknowledged event at its position with its version and request id.
      const auto& list = events[c.case_id].events();
      ASSERT_EQ(a.positions.size(), 1u) << id;
      const int64_t version = a.version;
      ASSERT_GE(list.size(), version) << id << " lost";
      const v1::EventRecord& r = list[static_cast<int>(version - 1)];
      EXPECT_EQ(r.position(), a.positions[0]) << id;
      EXPECT_EQ(r.event().request_id(), id) << id;
      ++checked_;
    }
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
  std::mutex mu_;
  std::map<std::string, Acked> acked_;       // by request id
  std::map<std::string, Command> commands_;  // by request id
  std::map<std::string, bool> last_cycle_;   // acknowledged in the last cycle
  int64_t checked_ = 0;
};

TEST_F(Kill9Test, EveryAcknowledgedEventSurvivesAndNothingIsDuplicated) {
  const int cycles = std::getenv("CW_KILL_CYCLES") ? std::atoi(std::getenv("CW_KILL_CYCLES")) : 200;
  const uint64_t seed = std::getenv("CW_TEST_SEED")
                            ? std::strtoull(std::getenv("CW_TEST_SEED"), nullptr, 10)
                            : std::random_device()();
  std::printf("seed %llu (CW_TEST_SEED replays), %d cycles\n",
              static_cast<unsigned long long>(seed), cycles);
  std::mt19937_64 rng(seed);
  std::vector<Command> unknown;  // sent, answer lost in a kill
  std::vector<double> restart_seconds;
  int64_t retried_replayed = 0, retried_fresh = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    restart_seconds.push_back(Start().count());
    if (HasFatalFailure()) return;
    // The commands whose answer was lost: retried with the same request id.
    std::vector<std::string> to_check;
    for (const Command& c : unknown) {
      v1::CaseCommandResponse resp;
      auto status = Send(c, &resp);
      ASSERT_TRUE(status.ok()) << c.request_id << ": " << status.error_message();
      (resp.replayed() ? retried_replayed : retried_fresh)++;
      Record(c, resp);
      to_check.push_back(c.request_id);
    }
    unknown.clear();
    // Last cycle's acknowledgements first: they are the ones a crash could lose.
    for (const auto& [id, a] : last_cycle_) to_check.push_back(id);
    last_cycle_.clear();
    Check(to_check);
    if (HasFatalFailure()) return;

    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    std::vector<std::vector<Command>> lost(kWriters);
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        for (int n = 0; !stop.load(); ++n) {
          const std::string id =
              "k" + std::to_string(cycle) + "-" + std::to_string(w) + "-" + std::to_string(n);
          for (bool review : {false, true}) {
            Command c{.case_id = id,
                      .request_id = (review ? "r-" : "c-") + id,
                      .review = review,
                      .deadline = NowSeconds() + 365 * 86400};
            v1::CaseCommandResponse resp;
            auto status = Send(c, &resp);
            if (!status.ok()) {
              lost[static_cast<size_t>(w)].push_back(c);
              return;
            }
            Record(c, resp);
            std::lock_guard<std::mutex> lock(mu_);
            last_cycle_[c.request_id] = true;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
    server_->Kill();
    stop = true;
    for (auto& t : writers) t.join();
    for (auto& l : lost) unknown.insert(unknown.end(), l.begin(), l.end());
  }

  // The end: every acknowledged command, the whole log, the read models.
  Start();
  for (const Command& c : unknown) {
    v1::CaseCommandResponse resp;
    auto status = Send(c, &resp);
    ASSERT_TRUE(status.ok()) << c.request_id << ": " << status.error_message();
    Record(c, resp);
  }
  Check();
  casework::testing::ExpectLogVerifies(server_->address());
  ASSERT_EQ(server_->Stop(), 0);

  // The read models as maintained equal a rebuild from the log.
  int64_t events = 0;
  const size_t entries = casework::testing::ExpectProjectionsEqualRebuild(
      (dir_.path() / "data" / "log").string(), &events);

  std::sort(restart_seconds.begin(), restart_seconds.end());
  std::printf(
      "%d kill -9 cycles: %zu acknowledged commands checked %lld times, 0 lost; %lld answers "
      "lost in a kill, retried: %lld had been recorded (replayed), %lld were not (applied "
      "then); %lld events; read models equal a rebuild (%zu entries); restart to serving "
      "p50 %.2f s, max %.2f s\n",
      cycles, acked_.size(), static_cast<long long>(checked_),
      static_cast<long long>(retried_replayed + retried_fresh),
      static_cast<long long>(retried_replayed), static_cast<long long>(retried_fresh),
      static_cast<long long>(events), entries, restart_seconds[restart_seconds.size() / 2],
      restart_seconds.back());
}

}  // namespace
}  // namespace casework

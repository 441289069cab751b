// Disk full against the real server. The data folder is a 64 MiB tmpfs that the test
// mounts (skipped, saying so, where it may not mount), filled by a file while 8 clients
// list organisations, held full, then emptied; several times over. Checked:
//   - no false acknowledgement: after a restart the log holds exactly the acknowledged
//     commands, each at the position it was acknowledged at, and it verifies (tree and
//     deep), and the read models equal a rebuild from the log;
//   - every refused write is RESOURCE_EXHAUSTED with the reason DISK_FULL, answered well
//     within its deadline (a retry of the same request id then appends it once);
//   - reads (GetCase, ListCases) keep working while the disk is full, and the server
//     does not crash;
//   - writes resume by themselves within 30 s of the space returning; except when the
//     disk filled within one batch, between the guard's look at the free space and the
//     write's own WAL append: that write is answered UNAVAILABLE READ_ONLY (outcome
//     unknown) and the log stays read-only until a restart (docs/storage.md, "Write
//     failures"), which the test then does as an operator would, the clients retrying
//     their commands with the same request ids.
// Fills: CW_DISK_FULL_FILLS (default 3).
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "clients/client.h"
#include "gtest/gtest.h"
#include "store/rocks_event_log.h"
#include "tests/e2e_support.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr int kWriters = 8;
constexpr auto kCallDeadline = std::chrono::seconds(5);
constexpr auto kResumeLimit = std::chrono::seconds(30);

// Stops and joins threads when leaving a scope, also through a failed assertion.
struct JoinOnExit {
  std::atomic<bool>* stop;
  std::vector<std::thread>* threads;
  ~JoinOnExit() {
    *stop = true;
    for (std::thread& t : *threads) {
      if (t.joinable()) t.join();
    }
  }
};

using casework::testing::NowSeconds;

// Writes `path` until the file system is full (ENOSPC), in shrinking chunks so that no
// page is left. Returns the bytes written, or -1 on another error (errno set).
int64_t FillUp(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return -1;
  std::string chunk(1u << 20, 'f');
  int64_t written = 0;
  // Bounded: the file system is 64 MiB; at most a few hundred writes of each size.
  for (size_t size = chunk.size(); size >= 512; size /= 4) {
    for (int i = 0; i < 100000; ++i) {
      const ssize_t n = ::write(fd, chunk.data(), size);
      if (n > 0) {
        written += n;
        continue;
      }
      if (n < 0 && errno != ENOSPC) {
        ::close(fd);
        return -1;
      }
      break;
    }
  }
  ::close(fd);
  return written;
}

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    data_ = dir_.path() / "data";
    std::filesystem::create_directories(data_);
    if (::mount("tmpfs", data_.c_str(), "tmpfs", 0, "size=64m,mode=0755") != 0) {
      GTEST_SKIP() << "cannot mount a 64 MiB tmpfs on the data folder (" << std::strerror(errno)
                   << "): the disk-full test needs root (CAP_SYS_ADMIN); CI runs as root";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Kill();
    if (mounted_) ::umount2(data_.c_str(), MNT_DETACH);
  }

  void Start(bool record_principals = false) {
    server_ = std::make_unique<ServerProcess>(
        data_, principals_,
        std::vector<std::string>{"--memtable-mib=8", "--wal-mib=8", "--block-cache-mib=8",
                                 "--disk-full-retry-ms=100"});
    server_->set_record_principals(record_principals);
    // The server's own output stays off the full disk, so that it can be read.
    server_->set_log_file(dir_.path() / "caseworkd.log");
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(ClientOptions{
        .server = server_->address(), .identity = identity, .timeout = kCallDeadline});
  }

  static grpc::Status Create(Client& client, const std::string& case_id, int64_t deadline,
                             v1::CaseCommandResponse* resp) {
    auto ctx = client.NewContext();
    v1::CreateCaseRequest req;
    req.set_case_id(case_id);
    req.set_request_id("req-" + case_id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + case_id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant; 书记空岗");
    req.mutable_deadline()->set_seconds(deadline);
    return client.cases().CreateCase(ctx.get(), req, resp);
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::filesystem::path data_;
  bool mounted_ = false;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(DiskFullTest, WritesRefusedWhileFullReadsServedAndWritesResumeWhenSpaceReturns) {
  const int fills =
      std::getenv("CW_DISK_FULL_FILLS") ? std::atoi(std::getenv("CW_DISK_FULL_FILLS")) : 3;
  Start();
  if (HasFatalFailure()) return;
  const int64_t deadline = NowSeconds() + 365 * 86400;

  std::mutex mu;
  std::map<std::string, int64_t> acked;  // case id -> acknowledged position
  std::vector<std::string> bad;          // failures other than RESOURCE_EXHAUSTED DISK_FULL
  int64_t refused = 0;
  Clock::duration refusal_max{};
  std::atomic<Clock::time_point::rep> last_ack{0};
  std::atomic<bool> stop{false};
  // The server's address (it changes when the test restarts a read-only server), and
  // whether a write turned the log read-only until restart.
  std::mutex address_mu;
  std::string address = server_->address();
  std::atomic<bool> read_only{false};
  int64_t restarts = 0;
  int64_t unknown_outcomes = 0;  // UNAVAILABLE or CANCELLED answers, each retried
  std::vector<std::thread> writers;
  // A failed assertion returns early: the writers are stopped and joined all the same.
  JoinOnExit join_writers{&stop, &writers};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::string connected_to;
      std::unique_ptr<Client> client;
      // Bounded: stops when told, and after at most this many commands.
      for (int n = 0; n < 1000000 && !stop.load(); ++n) {
        const std::string case_id = "d" + std::to_string(w) + "-" + std::to_string(n);
        // The same command (same request id) until it is acknowledged.
        for (int attempt = 0; attempt < 100000 && !stop.load(); ++attempt) {
          {
            std::lock_guard<std::mutex> lock(address_mu);
            if (address != connected_to) {
              connected_to = address;
              client = std::make_unique<Client>(
                  ClientOptions{.server = address, .identity = "lister", .timeout = kCallDeadline});
            }
          }
          v1::CaseCommandResponse resp;
          const auto sent = Clock::now();
          grpc::Status status = Create(*client, case_id, deadline, &resp);
          const auto took = Clock::now() - sent;
          std::lock_guard<std::mutex> lock(mu);
          if (status.ok()) {
            if (resp.events_size() != 1 || acked.contains(case_id)) {
              bad.push_back(case_id + ": not one new event");
              return;
            }
            acked[case_id] = resp.events(0).position();
            last_ack = Clock::now().time_since_epoch().count();
            break;
          }
          const std::string reason = client::DecodeError(status).reason;
          if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
              status.error_code() == grpc::StatusCode::CANCELLED) {
            // Read-only until restart, or the restart itself: the outcome is unknown, and
            // the same command (request id) is sent again.
            if (reason == "READ_ONLY") {
              read_only = true;
              ++refused;
            }
            ++unknown_outcomes;
            mu.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            mu.lock();
            continue;
          }
          if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED ||
              reason != "DISK_FULL") {
            bad.push_back(case_id + ": " + std::to_string(status.error_code()) + " " + reason +
                          " " + status.error_message());
            return;
          }
          ++refused;
          refusal_max = std::max(refusal_max, took);
          mu.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          mu.lock();
        }
      }
    });
  }

  auto reader = As("auditor");
  std::vector<double> resume_seconds;
  int64_t reads_while_full = 0;
  const auto filler = data_ / "filler";
  for (int fill = 0; fill < fills; ++fill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    // Fill the disk; the server's next writes find no room.
    const int64_t filled = FillUp(filler);
    ASSERT_GE(filled, 0) << std::strerror(errno);
    // Until a write is refused: the clients keep writing (bounded wait).
    const auto waiting = Clock::now();
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (refused > 0 && Clock::now() - Clock::time_point(Clock::duration(last_ack.load())) >
                               std::chrono::milliseconds(300)) {
          break;
        }
      }
      ASSERT_LT(Clock::now() - waiting, std::chrono::seconds(60)) << "no write was refused";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      FillUp(filler);  // whatever RocksDB freed meanwhile (an obsolete file)
    }
    // Held full: reads keep working.
    const auto held = Clock::now();
    while (Clock::now() - held < std::chrono::seconds(2)) {
      std::string some;
      {
        std::lock_guard<std::mutex> lock(mu);
        ASSERT_FALSE(acked.empty());
        some = std::next(acked.begin(), static_cast<long>(acked.size() / 2))->first;
      }
      auto ctx = reader->NewContext();
      v1::GetCaseRequest get;
      get.set_name("cases/" + some);
      v1::Case c;
      grpc::Status got = reader->cases().GetCase(ctx.get(), get, &c);
      ASSERT_TRUE(got.ok()) << got.error_message();
      EXPECT_EQ(c.case_id(), some);
      auto list_ctx = reader->NewContext();
      v1::ListCasesRequest list;
      list.set_page_size(50);
      v1::ListCasesResponse page;
      grpc::Status listed = reader->cases().ListCases(list_ctx.get(), list, &page);
      ASSERT_TRUE(listed.ok()) << listed.error_message();
      EXPECT_GT(page.cases_size(), 0);
      reads_while_full += 2;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(::kill(server_->pid(), 0), 0) << "the server is gone";
    // Space returns: writes resume by themselves.
    int64_t acked_before = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      acked_before = static_cast<int64_t>(acked.size());
    }
    ASSERT_EQ(::unlink(filler.c_str()), 0);
    const auto freed = Clock::now();
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (static_cast<int64_t>(acked.size()) > acked_before) break;
      }
      if (read_only.exchange(false)) {
        // A write met the full disk itself: read-only until restart, as documented.
        ASSERT_EQ(server_->Stop(), 0) << server_->log();
        Start();
        if (HasFatalFailure()) return;
        reader = As("auditor");
        std::lock_guard<std::mutex> lock(address_mu);
        address = server_->address();
        ++restarts;
      }
      ASSERT_LT(Clock::now() - freed, kResumeLimit)
          << "writes did not resume within 30 s; server log:\n"
          << server_->log();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    resume_seconds.push_back(std::chrono::duration<double>(Clock::now() - freed).count());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (std::thread& t : writers) t.join();
  ASSERT_TRUE(bad.empty()) << bad.front();
  EXPECT_LT(refusal_max, kCallDeadline);
  // Outcomes are unknown only around a read-only turn and its restart.
  if (restarts == 0) {
    EXPECT_EQ(unknown_outcomes, 0);
  }

  // Restart, then audit: tree and deep verification pass.
  ASSERT_EQ(server_->Stop(), 0) << server_->log();
  Start();
  if (HasFatalFailure()) return;
  casework::testing::ExpectLogVerifies(server_->address());
  ASSERT_EQ(server_->Stop(), 0);

  // Exactly the acknowledged commands, each where it was acknowledged; the read models
  // equal a rebuild from the log.
  store::RocksEventLog::Options options;
  options.path = (data_ / "log").string();
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ((*log)->Size(), static_cast<int64_t>(acked.size()));
  for (const auto& [case_id, position] : acked) {
    auto events = (*log)->ReadStream("cases/" + case_id, 1, 2);
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_EQ(events->size(), 1u) << case_id;
    EXPECT_EQ((*events)[0].position, position) << case_id;
  }
  log->reset();
  int64_t events = 0;
  casework::testing::ExpectProjectionsEqualRebuild(options.path, &events);
  EXPECT_EQ(events, static_cast<int64_t>(acked.size()));

  std::sort(resume_seconds.begin(), resume_seconds.end());
  std::printf(
      "disk full: %d fills of a 64 MiB tmpfs under 8 writers; %zu commands acknowledged, all "
      "in the log after restart and nothing else; %lld refusals, all RESOURCE_EXHAUSTED "
      "DISK_FULL, the slowest answered in %.3f s (deadline %lld s); %lld reads served while "
      "full; writes resumed %.2f s (median) and %.2f s (max) after the space returned; %lld "
      "restarts after a write met the full disk itself\n",
      fills, acked.size(), static_cast<long long>(refused),
      std::chrono::duration<double>(refusal_max).count(),
      static_cast<long long>(kCallDeadline.count()), static_cast<long long>(reads_while_full),
      resume_seconds[resume_seconds.size() / 2], resume_seconds.back(),
      static_cast<long long>(restarts));
}

// A principals reload the full disk keeps out of the log is not served, and fails closed:
// whom the new file removes is refused at once, the unchanged act as before under the
// recorded version, the new file's newcomers wait. Once there is room, a SIGHUP records
// and serves the file.
TEST_F(DiskFullTest, APrincipalsReloadThatCannotBeRecordedRefusesWhomItRemoves) {
  ASSERT_NO_FATAL_FAILURE(Start(/*record_principals=*/true));
  auto lister = As("lister");
  auto lister_b = As("lister.b");
  v1::CaseCommandResponse first;
  ASSERT_TRUE(Create(*lister, "p-1", NowSeconds() + 90 * 86400, &first).ok());
  const std::string recorded_version = first.events(0).event().principals_version();
  ASSERT_FALSE(recorded_version.empty());
  ASSERT_TRUE(Create(*lister_b, "p-2", NowSeconds() + 90 * 86400, &first).ok());

  // lister.b removed and a newcomer added, while the disk is full.
  std::string json;
  {
    std::ifstream in(principals_);
    json.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string removed =
      R"({"id": "lister.b", "roles": ["lister"], "jurisdiction": "jiangcheng"},)";
  ASSERT_NE(json.find(removed), std::string::npos);
  json.replace(json.find(removed), removed.size(),
               R"({"id": "newcomer", "roles": ["lister"], "jurisdiction": "jiangcheng"},)");
  const std::filesystem::path filler = data_ / "filler";
  ASSERT_GT(FillUp(filler), 0) << std::strerror(errno);
  {
    std::ofstream(principals_.string() + ".tmp", std::ios::trunc) << json;
    std::filesystem::rename(principals_.string() + ".tmp", principals_);
  }
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  const auto get = [this](const std::string& who, const std::string& case_id) {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::GetCaseRequest req;
    req.set_name("cases/" + case_id);
    v1::Case got;
    return c->cases().GetCase(ctx.get(), req, &got);
  };
  grpc::Status refused;
  for (int i = 0; i < 200 && refused.ok(); ++i) {
    refused = get("lister.b", "p-2");
    if (refused.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << refused.error_message();
  EXPECT_TRUE(get("lister", "p-2").ok()) << "an unchanged identity lost its powers";
  const grpc::Status waiting = get("newcomer", "p-1");
  EXPECT_EQ(waiting.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << "an identity acted before the set that names it was recorded";
  EXPECT_NE(waiting.error_message().find("could not record in its log yet"), std::string::npos)
      << waiting.error_message();
  // The same reload asked for by an administrator (AdminService.ReloadPrincipals): refused
  // with the store's reason, and it fails closed the same way.
  {
    auto admin = As("admin");
    auto ctx = admin->NewContext();
    v1::ReloadPrincipalsResponse resp;
    const grpc::Status full =
        v1::AdminService::NewStub(admin->channel())
            ->ReloadPrincipals(ctx.get(), v1::ReloadPrincipalsRequest(), &resp);
    EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
    EXPECT_EQ(casework::client::DecodeError(full).reason, "DISK_FULL") << full.error_message();
    EXPECT_NE(full.error_message().find("not recorded, so not reloaded"), std::string::npos)
        << full.error_message();
    EXPECT_EQ(get("lister.b", "p-2").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }

  // Room again: a SIGHUP records the file and serves it; events carry its version. (The
  // log takes appends again a moment after the space returns: a SIGHUP before that is
  // refused like the first, so the operator's SIGHUP is repeated until one is taken.)
  std::filesystem::remove(filler);
  grpc::Status admitted = grpc::Status(grpc::StatusCode::UNKNOWN, "not tried");
  for (int round = 0; round < 30 && !admitted.ok(); ++round) {
    ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
    for (int i = 0; i < 10 && !admitted.ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      admitted = get("newcomer", "p-1");
    }
  }
  ASSERT_TRUE(admitted.ok()) << admitted.error_message() << "\n" << server_->log();
  auto newcomer = As("newcomer");
  v1::CaseCommandResponse later;
  grpc::Status created;
  // The log may still be resuming from the full disk: retried with the same request id.
  for (int i = 0; i < 100; ++i) {
    created = Create(*newcomer, "p-3", NowSeconds() + 90 * 86400, &later);
    if (created.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(created.ok()) << created.error_message();
  EXPECT_NE(later.events(0).event().principals_version(), recorded_version);
  EXPECT_EQ(get("lister.b", "p-2").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  casework::testing::ExpectLogVerifies(server_->address());
}

}  // namespace
}  // namespace casework

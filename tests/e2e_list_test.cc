// ListCases and ListCaseEvents over the wire: pages follow their tokens to the end with
// every matching case exactly once, filters and orders hold, a token only continues its
// own query, and callers see only their jurisdiction.
#include <set>

#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

constexpr int kCases = 37;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ListTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::filesystem::create_directories(dir_->path() / "data");
    server_ = new ServerProcess(dir_->path() / "data",
                                casework::testing::WriteTestPrincipals(dir_->path()));
    ASSERT_TRUE(server_->Start()) << server_->error();
    Client lister = As("lister");
    Client reviewer = As("reviewer");
    // Cases alternate between two counties; every third is confirmed by review; the
    // deadlines run backwards so that deadline order differs from case id order.
    for (int i = 0; i < kCases; ++i) {
      v1::CreateCaseRequest req;
      req.set_case_id(CaseId(i));
      req.set_request_id("create-" + std::to_string(i));
      auto* org = req.mutable_organisation();
      org->set_organisation_id("org-" + std::to_string(i));
      org->set_display_name("村党支部");
      org->set_jurisdiction(std::string("jiangcheng/") + (i % 2 ? "xihe" : "dongshan") +
                            "/t01/org-" + std::to_string(i));
      org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
      req.set_case_type(i % 4 == 0 ? v1::CASE_TYPE_WEAK : v1::CASE_TYPE_POOR);
      req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
      req.set_findings("findings");
      req.mutable_deadline()->set_seconds(NowSeconds() + (1000 - i) * 86400);
      v1::CaseCommandResponse resp;
      auto ctx = lister.NewContext();
      ASSERT_TRUE(lister.cases().CreateCase(ctx.get(), req, &resp).ok());
      if (i % 3 == 0) {
        v1::ReviewListingRequest review;
        review.set_name("cases/" + req.case_id());
        review.set_request_id("review-" + std::to_string(i));
        review.set_expected_version(1);
        review.set_confirmed(true);
        auto ctx2 = reviewer.NewContext();
        ASSERT_TRUE(reviewer.cases().ReviewListing(ctx2.get(), review, &resp).ok());
      }
    }
  }
  static void TearDownTestSuite() {
    server_->Stop();
    delete server_;
    delete dir_;
  }

  static std::string CaseId(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "l-%03d", i);
    return buf;
  }

  static Client As(const std::string& identity) {
    return Client(ClientOptions{.server = server_->address(), .identity = identity});
  }

  // Follows the tokens to the end; returns the case ids in order.
  static std::vector<std::string> ListAll(const std::string& identity, const std::string& filter,
                                          const std::string& order_by, int page_size) {
    Client c = As(identity);
    v1::ListCasesRequest req;
    req.set_filter(filter);
    req.set_order_by(order_by);
    req.set_page_size(page_size);
    std::vector<std::string> ids;
    for (int pages = 0; pages < 1000; ++pages) {
      v1::ListCasesResponse resp;
      auto ctx = c.NewContext();
      auto status = c.cases().ListCases(ctx.get(), req, &resp);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_LE(resp.cases_size(), page_size);
      for (const auto& cs : resp.cases()) ids.push_back(cs.case_id());
      if (resp.next_page_token().empty()) break;
      req.set_page_token(resp.next_page_token());
    }
    return ids;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
};

TempDir* ListTest::dir_ = nullptr;
ServerProcess* ListTest::server_ = nullptr;

TEST_F(ListTest, PagesCoverEveryCaseOnceInIdOrder) {
  for (int page_size : {1, 7, 50}) {
    SCOPED_TRACE(page_size);
    auto ids = ListAll("auditor", "", "", page_size);
    ASSERT_EQ(ids.size(), static_cast<size_t>(kCases));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  }
}

TEST_F(ListTest, OrderByDeadlineIsEarliestFirst) {
  auto ids = ListAll("auditor", "", "deadline", 5);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kCases));
  // Deadlines run backwards with the index, so deadline order is reverse id order.
  EXPECT_TRUE(std::is_sorted(ids.rbegin(), ids.rend()));
}

TEST_F(ListTest, OrderByJurisdictionGroupsCounties) {
  auto ids = ListAll("auditor", "", "jurisdiction", 4);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kCases));
  // dongshan (even ids) sorts before xihe (odd ids).
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(std::stoi(ids[i].substr(2)) % 2, i < (kCases + 1) / 2 ? 0 : 1) << ids[i];
  }
  auto xihe = ListAll("auditor", "jurisdiction = \"jiangcheng/xihe\"", "jurisdiction", 5);
  EXPECT_EQ(xihe.size(), static_cast<size_t>(kCases / 2));
}

TEST_F(ListTest, FiltersMatchExactly) {
  auto xihe = ListAll("auditor", "jurisdiction = \"jiangcheng/xihe\"", "", 4);
  EXPECT_EQ(xihe.size(), static_cast<size_t>(kCases / 2));
  for (const auto& id : xihe) EXPECT_EQ(std::stoi(id.substr(2)) % 2, 1) << id;

  auto weak =
      ListAll("auditor", "case_type = WEAK AND jurisdiction = \"jiangcheng/dongshan\"", "", 3);
  for (const auto& id : weak) EXPECT_EQ(std::stoi(id.substr(2)) % 4, 0) << id;
  EXPECT_EQ(weak.size(), static_cast<size_t>((kCases + 3) / 4));

  // Every case has version 1 or 2; the confirmed ones (every third) were reviewed.
  auto listed = ListAll("auditor", "state = LISTED", "", 10);
  EXPECT_EQ(listed.size(), static_cast<size_t>(kCases));

  auto early =
      ListAll("auditor", "deadline < \"2100-01-01T00:00:00Z\" AND state = LISTED", "deadline", 6);
  EXPECT_EQ(early.size(), static_cast<size_t>(kCases));
  EXPECT_TRUE(ListAll("auditor", "deadline < \"2000-01-01T00:00:00Z\"", "", 6).empty());
}

TEST_F(ListTest, CallersSeeOnlyTheirJurisdiction) {
  auto ids = ListAll("outsider", "", "", 6);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kCases / 2));
  for (const auto& id : ids) EXPECT_EQ(std::stoi(id.substr(2)) % 2, 1) << id;
}

TEST_F(ListTest, TokenContinuesOnlyItsOwnQuery) {
  Client c = As("auditor");
  v1::ListCasesRequest req;
  req.set_page_size(2);
  req.set_filter("state = LISTED");
  v1::ListCasesResponse resp;
  {
    auto ctx = c.NewContext();
    ASSERT_TRUE(c.cases().ListCases(ctx.get(), req, &resp).ok());
  }
  ASSERT_FALSE(resp.next_page_token().empty());
  req.set_page_token(resp.next_page_token());
  req.set_filter("case_type = POOR");
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "PAGE_TOKEN_INVALID");
  }
  req.set_page_token("not-a-token!");
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  req.clear_page_token();
  req.set_filter("colour = red");
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "FILTER_INVALID");
    EXPECT_EQ(client::DecodeError(status).field, "filter");
  }
  // A filter quoting 1,800 bytes of Chinese: the refusal still reaches the client (its
  // message cut short), not "metadata size exceeds limit".
  std::string long_value;
  for (int i = 0; i < 600; ++i) long_value += "村";
  req.set_filter("state = \"" + long_value + "\"");
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(client::DecodeError(status).reason, "FILTER_INVALID") << status.error_message();
  }
  req.clear_filter();
  req.set_order_by("colour");
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "ORDER_BY_INVALID");
  }
  req.clear_order_by();
  req.set_page_size(-1);
  {
    auto ctx = c.NewContext();
    auto status = c.cases().ListCases(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "PAGE_SIZE_INVALID");
    EXPECT_EQ(client::DecodeError(status).field, "page_size");
    EXPECT_FALSE(client::DecodeError(status).message_zh.empty());
  }
  {  // The same for a case's events.
    v1::ListCaseEventsRequest events;
    events.set_name("cases/l-000");
    events.set_page_size(-5);
    v1::ListCaseEventsResponse page;
    auto ctx = c.NewContext();
    auto status = c.cases().ListCaseEvents(ctx.get(), events, &page);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(status).reason, "PAGE_SIZE_INVALID");
  }
}

TEST_F(ListTest, CaseEventsPageThroughHistory) {
  Client c = As("auditor");
  v1::ListCaseEventsRequest req;
  req.set_name("cases/l-000");
  req.set_page_size(1);
  std::vector<int64_t> versions;
  for (int pages = 0; pages < 10; ++pages) {
    v1::ListCaseEventsResponse resp;
    auto ctx = c.NewContext();
    ASSERT_TRUE(c.cases().ListCaseEvents(ctx.get(), req, &resp).ok());
    for (const auto& r : resp.events()) versions.push_back(r.event().version());
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(versions, (std::vector<int64_t>{1, 2}));
}

// A listed or fetched case carries the log position of its latest event (the stored row
// cannot: it is written before the log places its events), the same the case's own events
// show.
TEST_F(ListTest, CasesCarryThePositionOfTheirLatestEvent) {
  Client c = As("auditor");
  v1::ListCasesRequest req;
  req.set_page_size(100);
  v1::ListCasesResponse listed;
  auto ctx = c.NewContext();
  ASSERT_TRUE(c.cases().ListCases(ctx.get(), req, &listed).ok());
  ASSERT_GE(listed.cases_size(), 10);
  for (const v1::Case& listed_case : listed.cases()) {
    SCOPED_TRACE(listed_case.case_id());
    v1::ListCaseEventsRequest events_req;
    events_req.set_name(listed_case.name());
    events_req.set_page_size(100);
    v1::ListCaseEventsResponse events;
    auto ctx2 = c.NewContext();
    ASSERT_TRUE(c.cases().ListCaseEvents(ctx2.get(), events_req, &events).ok());
    ASSERT_EQ(events.events_size(), listed_case.version());
    const int64_t latest = events.events(events.events_size() - 1).position();
    EXPECT_EQ(listed_case.last_position(), latest);
    v1::GetCaseRequest get;
    get.set_name(listed_case.name());
    v1::Case fetched;
    auto ctx3 = c.NewContext();
    ASSERT_TRUE(c.cases().GetCase(ctx3.get(), get, &fetched).ok());
    EXPECT_EQ(fetched.last_position(), latest);
  }
}

}  // namespace
}  // namespace casework

// The ListCases filter parses the documented subset of AIP-160 and refuses everything
// else with a message naming the offending term.
#include "services/shell/list_filter.h"

#include "gtest/gtest.h"

namespace casework::shell {
namespace {

using casework::v1::Case;

Case MakeCase(casework::v1::CaseState state, std::string jurisdiction) {
  Case c;
  c.set_state(state);
  c.mutable_organisation()->set_jurisdiction(std::move(jurisdiction));
  c.set_case_type(casework::v1::CASE_TYPE_POOR);
  c.add_problem_categories(casework::v1::PROBLEM_CATEGORY_DEVELOPMENT);
  c.mutable_deadline()->set_seconds(1800000000);
  return c;
}

TEST(ListFilter, EmptyMatchesEverything) {
  auto f = ParseCaseFilter("");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches(MakeCase(casework::v1::CASE_STATE_LISTED, "c/a/t/o")));
}

TEST(ListFilter, StateAndJurisdictionSubtree) {
  auto f = ParseCaseFilter("state = ASSISTED AND jurisdiction = \"c/a\"");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(MakeCase(casework::v1::CASE_STATE_ASSISTED, "c/a/t/o")));
  EXPECT_FALSE(f->Matches(MakeCase(casework::v1::CASE_STATE_LISTED, "c/a/t/o")));
  EXPECT_FALSE(f->Matches(MakeCase(casework::v1::CASE_STATE_ASSISTED, "c/ab/t/o")));
}

TEST(ListFilter, TypeCategoryDeadline) {
  auto f = ParseCaseFilter(
      "case_type = POOR AND problem_category = 3 AND deadline < \"2030-01-01T00:00:00Z\" AND "
      "deadline > \"2020-01-01T00:00:00Z\"");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Matches(MakeCase(casework::v1::CASE_STATE_LISTED, "c/a/t/o")));
  auto g = ParseCaseFilter("problem_category = 1");
  ASSERT_TRUE(g.ok());
  EXPECT_FALSE(g->Matches(MakeCase(casework::v1::CASE_STATE_LISTED, "c/a/t/o")));
}

TEST(ListFilter, RefusesMalformed) {
  for (const char* bad :
       {"state", "state = BOGUS", "colour = red", "state < LISTED",
        "state = LISTED OR state = CLOSED", "state = LISTED AND",
        "deadline = \"2020-01-01T00:00:00Z\"", "deadline < yesterday", "problem_category = 7",
        "jurisdiction = \"open",
        // A field twice: the second term would replace the first.
        "state = LISTED AND state = CLOSED", "problem_category = 1 AND problem_category = 2",
        "deadline < \"2026-01-01T00:00:00Z\" AND deadline < \"2027-01-01T00:00:00Z\""}) {
    SCOPED_TRACE(bad);
    auto f = ParseCaseFilter(bad);
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(f.status().message().empty());
  }
}

TEST(ListFilter, PathWithinIsSegmentWise) {
  EXPECT_TRUE(PathWithin("a/b/c", "a/b"));
  EXPECT_TRUE(PathWithin("a/b", "a/b"));
  EXPECT_FALSE(PathWithin("a/bc", "a/b"));
  EXPECT_TRUE(PathWithin("a", ""));
  // A trailing slash names the same subtree.
  EXPECT_TRUE(PathWithin("a/b/c", "a/b/"));
  EXPECT_FALSE(PathWithin("a/bc", "a/b/"));
  auto f = ParseCaseFilter("jurisdiction = \"c/a/\"");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->jurisdiction, "c/a");
  EXPECT_TRUE(f->Matches(MakeCase(casework::v1::CASE_STATE_ASSISTED, "c/a/t/o")));
}

}  // namespace
}  // namespace casework::shell

// The read-model rows a command writes (ProjectCase): above all the jurisdiction counters,
// which a case adds to at every level of its jurisdiction above the organisation.
#include "services/shell/projections.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casework::shell {
namespace {

using casework::v1::Case;
using casework::v1::CaseState;
using store::ProjectionWrite;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

Case MakeCase(const std::string& jurisdiction, CaseState state, int64_t version) {
  Case c;
  c.set_case_id("c-1");
  c.set_version(version);
  c.set_state(state);
  c.mutable_organisation()->set_jurisdiction(jurisdiction);
  return c;
}

// (key, delta) of every counter write, in order.
std::vector<std::pair<std::string, int64_t>> Counters(const std::vector<ProjectionWrite>& out) {
  std::vector<std::pair<std::string, int64_t>> counters;
  for (const ProjectionWrite& w : out) {
    if (w.op == ProjectionWrite::Op::kAddInt64) {
      EXPECT_EQ(w.table, kCountsTable);
      counters.emplace_back(w.key, w.delta);
    }
  }
  return counters;
}

TEST(Projections, ANewCaseCountsAtEveryLevelAboveItsOrganisation) {
  const CaseState listed = casework::v1::CASE_STATE_LISTED;
  std::vector<ProjectionWrite> out;
  ProjectCase(Case(), MakeCase("city/county/town/org-1", listed, 1), &out);
  EXPECT_THAT(Counters(out), ElementsAre(Pair(CountKey("city", listed), 1),
                                         Pair(CountKey("city/county", listed), 1),
                                         Pair(CountKey("city/county/town", listed), 1)));
}

TEST(Projections, ShortJurisdictionsCountAtTheirFirstLevel) {
  const CaseState listed = casework::v1::CASE_STATE_LISTED;
  for (const auto& [jurisdiction, first] : std::vector<std::pair<std::string, std::string>>{
           {"city", "city"}, {"city/org-1", "city"}, {"", ""}, {"city//org", "city"}}) {
    SCOPED_TRACE(jurisdiction);
    std::vector<ProjectionWrite> out;
    ProjectCase(Case(), MakeCase(jurisdiction, listed, 1), &out);
    auto counters = Counters(out);
    ASSERT_FALSE(counters.empty());
    EXPECT_EQ(counters.front(), std::make_pair(CountKey(first, listed), int64_t{1}));
  }
  std::vector<ProjectionWrite> out;
  ProjectCase(Case(), MakeCase("city//org", listed, 1), &out);
  // An empty segment is a level of its own, as the jurisdiction spells it.
  EXPECT_THAT(Counters(out),
              ElementsAre(Pair(CountKey("city", listed), 1), Pair(CountKey("city/", listed), 1)));
}

TEST(Projections, AStateChangeMovesTheCountsAndAnUnchangedStateLeavesThem) {
  const CaseState listed = casework::v1::CASE_STATE_LISTED;
  const CaseState assisting = casework::v1::CASE_STATE_ASSISTED;
  const Case before = MakeCase("city/county/org-1", listed, 1);
  std::vector<ProjectionWrite> out;
  ProjectCase(before, MakeCase("city/county/org-1", assisting, 2), &out);
  EXPECT_THAT(Counters(out), ElementsAre(Pair(CountKey("city", listed), -1),
                                         Pair(CountKey("city/county", listed), -1),
                                         Pair(CountKey("city", assisting), 1),
                                         Pair(CountKey("city/county", assisting), 1)));
  out.clear();
  ProjectCase(before, MakeCase("city/county/org-1", listed, 2), &out);
  EXPECT_THAT(Counters(out), IsEmpty());
}

}  // namespace
}  // namespace casework::shell

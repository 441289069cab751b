// The oversight rules on hand-built ledgers: each flag at its limit and one microsecond
// past it, the listed ratio and the order of listing, county reports and the
// accountability report with the positions behind each line.
#include "services/oversight/oversight.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casework::oversight {
namespace {

namespace v1 = ::casework::v1;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr int64_t kT0 = int64_t{1767225600} * 1'000'000;  // 2026-01-01T00:00:00Z
constexpr int64_t kDay = kMicrosPerDay;

google::protobuf::Timestamp At(int64_t micros) {
  google::protobuf::Timestamp t;
  t.set_seconds(micros / 1'000'000);
  t.set_nanos(static_cast<int32_t>(micros % 1'000'000) * 1000);
  return t;
}

// Builds a log event by event and folds it into a Ledger.
class Log {
 public:
  v1::Event& Next(const std::string& stream, const std::string& actor, int64_t micros) {
    v1::Event& e = events_.emplace_back();
    e.set_stream(stream);
    e.set_version(++versions_[stream]);
    e.set_actor(actor);
    *e.mutable_time() = At(micros);
    e.set_request_id("r" + std::to_string(events_.size()));
    e.set_rules_version("rules/2026.1");
    return e;
  }

  // A case listed in "city/<county>/t1/<org>", confirmed, with a deadline.
  void List(const std::string& id, const std::string& county, const std::string& org,
            int64_t micros, int64_t deadline, bool confirmed = true) {
    v1::Event& e = Next("cases/" + id, "lister." + county, micros);
    auto* l = e.mutable_organisation_listed();
    l->mutable_organisation()->set_organisation_id(org);
    l->mutable_organisation()->set_display_name(org + " branch");
    l->mutable_organisation()->set_jurisdiction("city/" + county + "/t1/" + org);
    l->set_case_type(v1::CASE_TYPE_WEAK);
    l->add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    *l->mutable_deadline() = At(deadline);
    Next("cases/" + id, "reviewer", micros).mutable_listing_reviewed()->set_confirmed(confirmed);
  }
  void Assign(const std::string& id, int64_t micros, const std::vector<std::string>& cadres) {
    auto* a = Next("cases/" + id, "assigner", micros).mutable_assistance_assigned();
    a->mutable_assignment()->mutable_first_secretary()->set_person_id("sec." + id);
    for (const std::string& c : cadres)
      a->mutable_assignment()->add_stationed_cadres()->set_person_id(c);
    a->mutable_assignment()->set_assigned_by("assigner");
  }
  void Visit(const std::string& id, int64_t micros, const std::vector<std::string>& who) {
    auto* v = Next("cases/" + id, who.front(), micros).mutable_field_visit_recorded();
    for (const std::string& w : who) v->add_visitors(w);
    *v->mutable_visit_time() = At(micros);
  }
  void Close(const std::string& id, int64_t micros) {
    Next("cases/" + id, "inspector", micros).mutable_inspection_passed()->set_inspection_id("i1");
    for (const char* who : {"approver.a", "approver.b"}) {
      auto* s = Next("cases/" + id, who, micros).mutable_closure_signed_off()->mutable_sign_off();
      s->set_approver(who);
      s->set_inspection_id("i1");
    }
    auto* c = Next("cases/" + id, "approver.b", micros).mutable_case_closed();
    c->set_inspection_id("i1");
    c->add_approvers("approver.a");
    c->add_approvers("approver.b");
  }
  void PassInspection(const std::string& id, int64_t micros) {
    Next("cases/" + id, "inspector", micros).mutable_inspection_passed()->set_inspection_id("i1");
  }
  void SendBack(const std::string& id, int64_t micros) {
    Next("cases/" + id, "approver.a", micros).mutable_case_sent_back()->set_reason("thin evidence");
  }
  void Review(const std::string& id, int64_t micros) {
    Next("cases/" + id, "inspector", micros).mutable_follow_up_review_held()->set_findings("holds");
  }
  void Relapse(const std::string& id, int64_t micros, int64_t deadline) {
    auto* r = Next("cases/" + id, "inspector", micros).mutable_relapse_found();
    r->set_findings("meetings stopped again");
    r->add_problem_categories(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE);
    *r->mutable_deadline() = At(deadline);
  }
  void Register(const std::string& county, const std::string& org, int grade, int stars,
                int64_t micros = kT0) {
    auto* r = Next("registry/city/" + county, "admin", micros).mutable_organisation_registered();
    r->mutable_organisation()->set_organisation_id(org);
    r->mutable_organisation()->set_display_name(org + " branch");
    r->mutable_organisation()->set_jurisdiction("city/" + county + "/t1/" + org);
    r->set_grade(grade);
    r->set_stars(stars);
  }
  int64_t size() const { return static_cast<int64_t>(events_.size()); }
  // The `index`-th event of `stream` (0: its first), to alter it.
  v1::Event& MutableEvent(const std::string& stream, int index) {
    int seen = 0;
    for (v1::Event& e : events_) {
      if (e.stream() == stream && seen++ == index) return e;
    }
    std::abort();
  }

  // The ledger of every event with time <= cut.
  Ledger Fold(int64_t cut = INT64_MAX) const {
    Ledger ledger;
    for (size_t i = 0; i < events_.size(); ++i) {
      const auto& t = events_[i].time();
      if (t.seconds() * 1'000'000 + t.nanos() / 1000 > cut) break;
      ledger.Add(static_cast<int64_t>(i), events_[i]);
    }
    return ledger;
  }

 private:
  std::vector<v1::Event> events_;
  std::map<std::string, int64_t> versions_;
};

std::vector<std::string> Rules(const std::vector<v1::Flag>& flags) {
  std::vector<std::string> out;
  for (const v1::Flag& f : flags) out.push_back(f.rule() + " " + f.subject());
  return out;
}

workflow::Policy Periods() {
  workflow::Policy p;
  p.absence_flag_days = 30;
  p.stale_case_days = 3 * 365;
  p.follow_up_review_days = 365;
  return p;
}

TEST(ImportRecordTest, TheScopeIsTheDeepestPathHoldingEveryRow) {
  EXPECT_EQ(CommonScope({}), "");
  EXPECT_EQ(CommonScope({"jiangcheng/xihe/t01/org-1"}), "jiangcheng/xihe/t01/org-1");
  EXPECT_EQ(CommonScope({"jiangcheng/xihe/t01/org-1", "jiangcheng/xihe/t01/org-2"}),
            "jiangcheng/xihe/t01");
  EXPECT_EQ(CommonScope({"jiangcheng/xihe/t01/a", "jiangcheng/xihe/t02/a", "jiangcheng/xihe"}),
            "jiangcheng/xihe");
  // Segment-wise, not by characters.
  EXPECT_EQ(CommonScope({"jiangcheng/xihe/t1", "jiangcheng/xihe/t10"}), "jiangcheng/xihe");
  EXPECT_EQ(CommonScope({"jiangcheng/dongshan/t01/a", "jiangcheng/xihe/t01/a"}), "jiangcheng");
  EXPECT_EQ(CommonScope({"jiangcheng/x", "haicheng/x"}), "");
}

TEST(ImportRecordTest, TheStreamIsNamedByTheRequestIdsHash) {
  // `printf reg-1 | sha256sum` begins 1226f88b81dcaf0a.
  EXPECT_EQ(ImportStream("reg-1"), "registry-imports/1226f88b81dcaf0a");
  EXPECT_NE(ImportStream("reg-1"), ImportStream("reg-2"));
}

TEST(FlagsTest, StationedButAbsentAtTheLimitAndOneMicrosecondPast) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 2000 * kDay);
  log.Assign("c1", kT0 + kDay, {"cadre.x"});
  const Ledger ledger = log.Fold();
  const int64_t limit = kT0 + kDay + 30 * kDay;
  EXPECT_TRUE(ComputeFlags(ledger, Periods(), limit, "").empty());
  const auto flags = ComputeFlags(ledger, Periods(), limit + 1, "");
  ASSERT_EQ(flags.size(), 2u);  // the first secretary and the cadre
  for (const v1::Flag& f : flags) {
    EXPECT_EQ(f.rule(), kStationedButAbsent);
    EXPECT_EQ(f.subject(), "cases/c1");
    EXPECT_EQ(f.county(), "city/east");
    ASSERT_EQ(f.responsible_size(), 1);
    EXPECT_THAT(f.evidence_positions(), ElementsAre(2));  // the assignment
    EXPECT_EQ(f.since_time().seconds(), limit / 1'000'000);
  }
  EXPECT_THAT((std::vector<std::string>{flags[0].responsible(0), flags[1].responsible(0)}),
              UnorderedElementsAre("cadre.x", "sec.c1"));
}

TEST(FlagsTest, AFieldVisitResetsOnlyTheVisitorsClock) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 2000 * kDay);
  log.Assign("c1", kT0, {"cadre.x"});
  log.Visit("c1", kT0 + 20 * kDay, {"cadre.x"});
  const Ledger ledger = log.Fold();
  const auto flags = ComputeFlags(ledger, Periods(), kT0 + 31 * kDay, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].responsible(0), "sec.c1");
  // The visitor is flagged 30 days after the visit, not before.
  EXPECT_EQ(ComputeFlags(ledger, Periods(), kT0 + 50 * kDay, "").size(), 1u);
  const auto later = ComputeFlags(ledger, Periods(), kT0 + 50 * kDay + 1, "");
  ASSERT_EQ(later.size(), 2u);
  EXPECT_THAT(later[0].evidence_positions(), ElementsAre(3));  // the visit
}

TEST(FlagsTest, NoAbsenceFlagOutsideAssisted) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 2000 * kDay);
  log.Assign("c1", kT0, {});
  log.Close("c1", kT0 + kDay);
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), kT0 + 100 * kDay, "").empty());
}

// Field visits cannot be recorded while a case is VERIFIED: a send-back restarts the
// assigned people's clocks instead of flagging them at once for the approvers' time.
TEST(FlagsTest, ASendBackRestartsTheAbsenceClock) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 2000 * kDay);
  log.Assign("c1", kT0, {"cadre.x"});
  log.Visit("c1", kT0 + 20 * kDay, {"sec.c1", "cadre.x"});
  log.PassInspection("c1", kT0 + 25 * kDay);
  log.SendBack("c1", kT0 + 70 * kDay);
  const int64_t sent_back = log.size() - 1;
  const Ledger ledger = log.Fold();
  EXPECT_TRUE(ComputeFlags(ledger, Periods(), kT0 + 70 * kDay + 1, "").empty());
  EXPECT_TRUE(ComputeFlags(ledger, Periods(), kT0 + 100 * kDay, "").empty());
  const auto flags = ComputeFlags(ledger, Periods(), kT0 + 100 * kDay + 1, "");
  ASSERT_EQ(flags.size(), 2u);
  for (const v1::Flag& f : flags) {
    EXPECT_EQ(f.rule(), kStationedButAbsent);
    EXPECT_THAT(f.evidence_positions(), ElementsAre(sent_back));
    EXPECT_EQ(f.since_time().seconds(), (kT0 + 100 * kDay) / 1'000'000);
  }
}

TEST(FlagsTest, ThreeYearsWithoutChangeCountsFromTheLatestOpening) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 5000 * kDay);
  const Ledger ledger = log.Fold();
  const int64_t limit = kT0 + 3 * 365 * kDay;
  EXPECT_TRUE(ComputeFlags(ledger, Periods(), limit, "").empty());
  auto flags = ComputeFlags(ledger, Periods(), limit + 1, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].rule(), kThreeYearsWithoutChange);
  EXPECT_THAT(flags[0].responsible(), ElementsAre("lister.east"));  // nobody assigned yet
  EXPECT_THAT(flags[0].evidence_positions(), ElementsAre(0));

  // Closed, then reopened two years later: the clock restarts at the relapse.
  Log again;
  again.List("c1", "east", "o1", kT0, kT0 + 5000 * kDay);
  again.Assign("c1", kT0, {});
  again.Visit("c1", kT0 + kDay, {"sec.c1"});
  again.Close("c1", kT0 + 2 * kDay);
  again.Relapse("c1", kT0 + 700 * kDay, kT0 + 5000 * kDay);
  const Ledger reopened = again.Fold();
  EXPECT_TRUE(ComputeFlags(reopened, Periods(), limit + kDay, "").empty());
  flags = ComputeFlags(reopened, Periods(), kT0 + 700 * kDay + 3 * 365 * kDay + 1, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].rule(), kThreeYearsWithoutChange);
  EXPECT_THAT(flags[0].evidence_positions(), ElementsAre(again.size() - 1));
}

TEST(FlagsTest, OverdueAfterTheDeadlineNamesTheAssignedPeople) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 10 * kDay);
  log.Assign("c1", kT0, {"cadre.x"});
  log.Visit("c1", kT0 + 10 * kDay, {"sec.c1", "cadre.x"});
  const Ledger ledger = log.Fold();
  EXPECT_TRUE(ComputeFlags(ledger, Periods(), kT0 + 10 * kDay, "").empty());
  const auto flags = ComputeFlags(ledger, Periods(), kT0 + 10 * kDay + 1, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].rule(), kOverdue);
  EXPECT_THAT(flags[0].responsible(), ElementsAre("sec.c1", "cadre.x", "assigner"));
  EXPECT_THAT(flags[0].evidence_positions(), ElementsAre(0));  // the listing set the deadline
}

TEST(FlagsTest, FollowUpReviewDueAfterClosureAndAgainAfterEachReview) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 100 * kDay);
  log.Assign("c1", kT0, {});
  log.Close("c1", kT0 + kDay);
  const int64_t closed_at = log.size() - 1;
  const int64_t due = kT0 + kDay + 365 * kDay;
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), due, "").empty());
  auto flags = ComputeFlags(log.Fold(), Periods(), due + 1, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].rule(), kFollowUpReviewDue);
  EXPECT_THAT(flags[0].responsible(), ElementsAre("approver.a", "approver.b"));
  EXPECT_THAT(flags[0].evidence_positions(), ElementsAre(closed_at));

  log.Review("c1", due + 2);
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), due + 2 + 365 * kDay, "").empty());
  flags = ComputeFlags(log.Fold(), Periods(), due + 3 + 365 * kDay, "");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_THAT(flags[0].evidence_positions(), ElementsAre(closed_at, log.size() - 1));
}

TEST(FlagsTest, ListedRatioBelowTenPercentIsFlaggedExactlyTenPercentIsNot) {
  Log log;
  for (int i = 0; i < 20; ++i) log.Register("east", "o" + std::to_string(i), 4, 0);
  log.List("c1", "east", "o0", kT0, kT0 + 1000 * kDay);
  auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "");
  ASSERT_THAT(Rules(flags), ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/east"));
  EXPECT_THAT(flags[0].responsible(), ElementsAre("lister.east"));
  EXPECT_NE(flags[0].detail().find("1 of its 20"), std::string::npos) << flags[0].detail();
  log.List("c2", "east", "o1", kT0, kT0 + 1000 * kDay);  // 2 of 20: exactly 10%
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "").empty());
  const auto lines = CountyReport(log.Fold(), Periods(), kT0 + kDay, 0, "");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].listed_ratio_bp(), 1000);
  EXPECT_EQ(lines[0].organisations(), 20);
}

// Listing is reviewed (逐个过筛子): a listing returned for correction does not count toward
// the 10%, so a county cannot reach it with listings its reviewers turned down.
TEST(FlagsTest, OnlyConfirmedListingsCountTowardTheListedRatio) {
  Log log;
  for (int i = 0; i < 20; ++i) log.Register("east", "o" + std::to_string(i), 4, 0);
  log.List("c1", "east", "o0", kT0, kT0 + 1000 * kDay);
  log.List("c2", "east", "o1", kT0, kT0 + 1000 * kDay, /*confirmed=*/false);
  auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "");
  ASSERT_THAT(Rules(flags), ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/east"));
  EXPECT_NE(flags[0].detail().find("1 of its 20"), std::string::npos) << flags[0].detail();
  auto lines = CountyReport(log.Fold(), Periods(), kT0 + kDay, 0, "");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].listed_ratio_bp(), 500);
  EXPECT_EQ(lines[0].listed(), 2);  // both are on the ledger
  // Amended and confirmed on a second review: now it counts.
  *log.Next("cases/c2", "lister.east", kT0).mutable_listing_amended()->mutable_deadline() =
      At(kT0 + 1000 * kDay);
  log.Next("cases/c2", "reviewer", kT0).mutable_listing_reviewed()->set_confirmed(true);
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "")), ElementsAre());
  lines = CountyReport(log.Fold(), Periods(), kT0 + kDay, 0, "");
  EXPECT_EQ(lines[0].listed_ratio_bp(), 1000);
}

// "As of t" per stream: an event stamped after t leaves out its stream's later events and
// no other's; an event stamped more than the skew after t ends the scan.
TEST(AsOfCutTest, PerStreamWithinTheSkewThenEnd) {
  using V = AsOfCut::Verdict;
  AsOfCut cut(1000);
  EXPECT_EQ(cut.Judge("cases/a", 900), V::kTake);
  EXPECT_EQ(cut.Judge("cases/b", 1001), V::kSkip);  // appended before a's next, stamped later
  EXPECT_EQ(cut.Judge("cases/a", 999), V::kTake);   // a's event at or before t still counts
  EXPECT_EQ(cut.Judge("cases/a", 1000), V::kTake);
  EXPECT_EQ(cut.Judge("cases/b", 950), V::kSkip);  // b went past t: its later events too
  EXPECT_EQ(cut.Judge("cases/c", 1000 + AsOfCut::kSkewMicros), V::kSkip);
  EXPECT_EQ(cut.Judge("cases/d", 1001 + AsOfCut::kSkewMicros), V::kEnd);
  AsOfCut everything(INT64_MAX);
  EXPECT_EQ(everything.Judge("cases/a", INT64_MAX), V::kTake);
}

TEST(FlagsTest, ACountyThatListedNothingIsFlaggedAgainstTheRegistry) {
  Log log;
  log.Register("west", "w1", 4, 0);
  const auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "");
  ASSERT_THAT(Rules(flags), ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/west"));
  EXPECT_THAT(flags[0].responsible(), ElementsAre("admin"));
}

// The listed ratio's flag is dated from when the county went below 10%, not from its
// latest registry edit (a rename months later would make it look recent).
TEST(FlagsTest, TheListedRatioIsBelowSinceItWentBelow) {
  Log log;
  for (int i = 0; i < 20; ++i) log.Register("east", "o" + std::to_string(i), 4, 0);
  log.List("c1", "east", "o0", kT0, kT0 + 2000 * kDay);
  log.List("c2", "east", "o1", kT0, kT0 + 2000 * kDay);  // 2 of 20: 10%
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "city/east")), ElementsAre());
  for (int i = 20; i < 25; ++i) {
    log.Register("east", "o" + std::to_string(i), 4, 0, kT0 + 100 * kDay);  // 2 of 25
  }
  log.Register("east", "o3", 4, 1, kT0 + 200 * kDay);  // a regrade, still below
  auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + 250 * kDay, "city/east");
  ASSERT_THAT(Rules(flags), ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/east"));
  EXPECT_EQ(flags[0].since_time().seconds(), (kT0 + 100 * kDay) / 1'000'000);
  // Listed up to 3 of 25, it is fine; 6 organisations more take it below again, from then.
  log.List("c3", "east", "o2", kT0 + 300 * kDay, kT0 + 2000 * kDay);
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + 301 * kDay, "city/east")),
              ElementsAre());
  for (int i = 25; i < 31; ++i) {
    log.Register("east", "o" + std::to_string(i), 4, 0, kT0 + 400 * kDay);  // 3 of 31
  }
  flags = ComputeFlags(log.Fold(), Periods(), kT0 + 401 * kDay, "city/east");
  ASSERT_THAT(Rules(flags), ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/east"));
  EXPECT_EQ(flags[0].since_time().seconds(), (kT0 + 400 * kDay) / 1'000'000);
  // As of day 150 the fold saw it below since day 100.
  flags = ComputeFlags(log.Fold(kT0 + 150 * kDay), Periods(), kT0 + 150 * kDay, "city/east");
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].since_time().seconds(), (kT0 + 100 * kDay) / 1'000'000);
}

TEST(FlagsTest, ListingABetterRankedOrganisationBeforeAWorseOneIsFlagged) {
  Log log;
  log.Register("east", "good", 1, 5);
  log.Register("east", "poor", 4, 0);
  log.Register("east", "fair", 3, 2);
  log.Register("east", "fair2", 3, 3);
  for (int i = 0; i < 6; ++i) log.Register("east", "x" + std::to_string(i), 1, 4);
  log.List("c1", "east", "fair2", kT0, kT0 + 1000 * kDay);  // skips "poor" and "fair"
  auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "");
  ASSERT_THAT(Rules(flags), ElementsAre("LOWER_RANKED_SKIPPED counties/city/east"));
  EXPECT_NE(flags[0].detail().find("poor (grade 4, 0 stars), fair (grade 3, 2 stars)"),
            std::string::npos)
      << flags[0].detail();
  // Listing both worse-ranked ones clears it (3 of 10 listed: ratio fine).
  log.List("c2", "east", "poor", kT0, kT0 + 1000 * kDay);
  log.List("c3", "east", "fair", kT0, kT0 + 1000 * kDay);
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "").empty());
}

// The campaign's success: a poor organisation listed, rectified, closed and regraded
// good. Its listing is judged by its rank when listed, so the county is not flagged for
// listing a good organisation before worse ones.
TEST(FlagsTest, ARegradeAfterTheListingDoesNotMakeItASkip) {
  Log log;
  log.Register("east", "poor", 4, 0);
  for (int i = 0; i < 9; ++i) log.Register("east", "x" + std::to_string(i), 3, i % 5);
  log.List("c1", "east", "poor", kT0, kT0 + 1000 * kDay);
  log.Assign("c1", kT0, {});
  log.Close("c1", kT0 + 100 * kDay);
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), kT0 + 101 * kDay, "city/east").empty());
  log.Register("east", "poor", 2, 3, kT0 + 200 * kDay);  // the next year's registry
  const Ledger ledger = log.Fold();
  EXPECT_THAT(Rules(ComputeFlags(ledger, Periods(), kT0 + 201 * kDay, "city/east")), ElementsAre());
  const auto lines = CountyReport(ledger, Periods(), kT0 + 201 * kDay, kT0, "city");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].listed_ratio_bp(), 1000);
  // A listing made after the regrade is judged by the new rank: "poor" is now ranked
  // above every x, all unlisted.
  log.List("c2", "east", "poor", kT0 + 300 * kDay, kT0 + 1000 * kDay);
  auto flags = ComputeFlags(log.Fold(), Periods(), kT0 + 301 * kDay, "city/east");
  ASSERT_THAT(Rules(flags), ElementsAre("LOWER_RANKED_SKIPPED counties/city/east"));
  EXPECT_NE(flags[0].detail().find("poor (grade 2, 3 stars when listed)"), std::string::npos)
      << flags[0].detail();
}

// A case listed under the id of another place's organisation counts for neither: not for
// the organisation whose id it gives (a good branch listed under a poor one's id would hide
// the poor one, 以好充次), nor for the place's own.
TEST(FlagsTest, ACaseUnderAnotherPlacesOrganisationIdCountsForNone) {
  Log log;
  log.Register("east", "worst", 4, 0);
  log.Register("east", "best", 1, 5);
  for (int i = 0; i < 8; ++i) log.Register("east", "x" + std::to_string(i), 1, 4);
  log.List("c1", "east", "best", kT0, kT0 + 1000 * kDay);
  log.MutableEvent("cases/c1", 0)
      .mutable_organisation_listed()
      ->mutable_organisation()
      ->set_organisation_id("worst");
  const Ledger ledger = log.Fold();
  EXPECT_THAT(Rules(ComputeFlags(ledger, Periods(), kT0 + kDay, "city/east")),
              ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/city/east"));
  const auto lines = CountyReport(ledger, Periods(), kT0 + kDay, kT0, "city");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].listed_ratio_bp(), 0);
  // Listed under its own id, at its own place, it counts.
  log.List("c2", "east", "worst", kT0, kT0 + 1000 * kDay);
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "city/east")), ElementsAre());
}

TEST(FlagsTest, ScopeLimitsTheFlags) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + kDay);
  log.List("c2", "west", "o2", kT0, kT0 + kDay);
  EXPECT_EQ(ComputeFlags(log.Fold(), Periods(), kT0 + 2 * kDay, "city").size(), 2u);
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + 2 * kDay, "city/west")),
              ElementsAre("OVERDUE cases/c2"));
  EXPECT_TRUE(ComputeFlags(log.Fold(), Periods(), kT0 + 2 * kDay, "city/westward").empty());
}

TEST(FlagsTest, AsOfAnEarlierTimeSeesTheLedgerThen) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 10 * kDay);
  log.Assign("c1", kT0, {});
  log.Close("c1", kT0 + 20 * kDay);
  // As of day 15 the case was open and past its deadline; as of day 21 it was closed.
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(kT0 + 15 * kDay), Periods(), kT0 + 15 * kDay, "")),
              ElementsAre("OVERDUE cases/c1"));
  EXPECT_TRUE(ComputeFlags(log.Fold(kT0 + 21 * kDay), Periods(), kT0 + 21 * kDay, "").empty());
}

TEST(ReportTest, CountyLinesCountStatesConversionsAndPeriods) {
  Log log;
  for (int i = 0; i < 10; ++i) log.Register("east", "o" + std::to_string(i), 4, 0);
  log.List("c1", "east", "o1", kT0, kT0 + 1000 * kDay);
  log.List("c2", "east", "o2", kT0, kT0 + 1000 * kDay);
  log.List("c3", "east", "o3", kT0, kT0 + 1000 * kDay);
  log.Assign("c2", kT0, {});
  log.Assign("c3", kT0, {});
  log.Close("c3", kT0 + 100 * kDay);
  log.Relapse("c3", kT0 + 200 * kDay, kT0 + 1000 * kDay);
  log.List("c4", "west", "w1", kT0, kT0 + 1000 * kDay);
  log.Next("counties/city/east", "auditor", kT0 + 150 * kDay)
      .mutable_admonishment_talk_recorded()
      ->set_subject("slow progress");
  const Ledger ledger = log.Fold();
  const auto lines = CountyReport(ledger, Periods(), kT0 + 300 * kDay, kT0 + 50 * kDay, "city");
  ASSERT_EQ(lines.size(), 2u);
  const v1::CountyLine& east = lines[0];
  EXPECT_EQ(east.jurisdiction(), "city/east");
  EXPECT_EQ(east.organisations(), 10);
  EXPECT_EQ(east.listed(), 3);
  EXPECT_EQ(east.awaiting_assistance(), 1);
  EXPECT_EQ(east.assisted(), 1);
  EXPECT_EQ(east.reopened(), 1);
  EXPECT_EQ(east.closed(), 0);
  EXPECT_EQ(east.listed_ratio_bp(), 3000);
  EXPECT_EQ(east.conversion_rate_bp(), 0);
  EXPECT_EQ(east.conversions_in_period(), 1);
  EXPECT_EQ(east.relapses_in_period(), 1);
  EXPECT_EQ(east.talks_in_period(), 1);
  EXPECT_EQ(east.period_conversion_rate_bp(), 3333);  // 1 closure of 3 cases open
  EXPECT_EQ(lines[1].jurisdiction(), "city/west");
  EXPECT_EQ(lines[1].organisations(), 0);
  EXPECT_EQ(lines[1].listed(), 1);
  // A period after the closure and relapse counts neither.
  const auto later =
      CountyReport(ledger, Periods(), kT0 + 300 * kDay, kT0 + 250 * kDay, "city/east");
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].conversions_in_period(), 0);
  EXPECT_EQ(later[0].relapses_in_period(), 0);
  EXPECT_EQ(later[0].talks_in_period(), 0);
}

// Rates are cases over cases: an organisation listed twice (two cases) and a case closed
// twice in the period (closed, relapsed, closed again) cannot lift a rate above 100%
// (虚报转化率). The closures themselves are all counted.
TEST(ReportTest, ConversionRatesNeverExceedAllTheCases) {
  Log log;
  log.Register("east", "o1", 4, 0);
  log.List("c1", "east", "o1", kT0, kT0 + 1000 * kDay);
  log.List("c2", "east", "o1", kT0, kT0 + 1000 * kDay);  // the same organisation again
  for (const char* id : {"c1", "c2"}) {
    log.Assign(id, kT0, {});
    log.Close(id, kT0 + 10 * kDay);
  }
  log.Relapse("c1", kT0 + 20 * kDay, kT0 + 1000 * kDay);
  log.Assign("c1", kT0 + 21 * kDay, {});
  log.Close("c1", kT0 + 30 * kDay);
  const auto lines = CountyReport(log.Fold(), Periods(), kT0 + 40 * kDay, kT0, "city");
  ASSERT_EQ(lines.size(), 1u);
  const v1::CountyLine& east = lines[0];
  EXPECT_EQ(east.listed(), 1);  // distinct organisations
  EXPECT_EQ(east.closed(), 2);
  EXPECT_EQ(east.conversion_rate_bp(), 10000);  // 2 closed of 2 cases (was 2 of 1: 200%)
  EXPECT_EQ(east.conversions_in_period(), 3);
  EXPECT_EQ(east.period_conversion_rate_bp(), 10000);  // 2 cases converted of 2 open
}

// An organisation registered again under another county has moved: it counts in the new
// county only (the latest record), for the ratio and for the order of listing.
TEST(ReportTest, AnOrganisationThatMovedCountsInItsNewCountyOnly) {
  Log log;
  for (int i = 0; i < 9; ++i) log.Register("east", "e" + std::to_string(i), 1, 5);
  log.Register("east", "moved", 4, 0);  // the worst-ranked of east, until it moves
  log.List("c1", "east", "e0", kT0, kT0 + 1000 * kDay);
  EXPECT_THAT(Rules(ComputeFlags(log.Fold(), Periods(), kT0 + kDay, "city/east")),
              ElementsAre("LOWER_RANKED_SKIPPED counties/city/east"));
  log.Register("west", "moved", 4, 0);
  const Ledger ledger = log.Fold();
  EXPECT_THAT(Rules(ComputeFlags(ledger, Periods(), kT0 + kDay, "city/east")), ElementsAre());
  const auto lines = CountyReport(ledger, Periods(), kT0 + kDay, kT0, "city");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].jurisdiction(), "city/east");
  EXPECT_EQ(lines[0].organisations(), 9);
  EXPECT_EQ(lines[0].listed_ratio_bp(), 1111);
  EXPECT_EQ(lines[1].jurisdiction(), "city/west");
  EXPECT_EQ(lines[1].organisations(), 1);
}

TEST(ReportTest, AccountabilityReportTracesEveryLineToItsEvents) {
  Log log;
  log.List("c1", "east", "o1", kT0, kT0 + 1000 * kDay);
  log.Assign("c1", kT0, {});
  log.Close("c1", kT0 + 100 * kDay);
  const int64_t closure = log.size() - 1;
  log.Relapse("c1", kT0 + 200 * kDay, kT0 + 250 * kDay);
  const int64_t relapse = log.size() - 1;
  log.List("c2", "east", "o2", kT0 + 10 * kDay, kT0 + 1000 * kDay);
  auto* notice = log.Next("counties/city/east", "auditor", kT0 + 300 * kDay)
                     .mutable_rectification_notice_issued();
  notice->set_notice_id("N-1");
  notice->set_content("list the remaining weak branches");
  const int64_t notice_at = log.size() - 1;
  log.List("c3", "west", "w1", kT0, kT0 + 1000 * kDay);  // another county: not in it

  const int64_t end = kT0 + 365 * kDay;
  const auto report = AccountabilityReport(log.Fold(end - 1), Periods(), "city/east", kT0, end);
  std::vector<std::string> lines;
  for (const auto& l : report.lines()) {
    std::string positions;
    for (int64_t p : l.positions()) positions += " " + std::to_string(p);
    lines.push_back(l.section() + " " + l.subject() + positions);
  }
  // Open cases by the time they were (re)opened: c2 listed on day 10, c1 reopened on day 200.
  EXPECT_THAT(
      lines,
      ElementsAre(
          "OPEN_CASE cases/c2 " + std::to_string(relapse + 1) + " " + std::to_string(relapse + 2),
          "OPEN_CASE cases/c1 " + std::to_string(relapse) + " " + std::to_string(relapse),
          "CONVERSION cases/c1 " + std::to_string(closure),
          "RELAPSE cases/c1 " + std::to_string(relapse), "FLAG cases/c1 " + std::to_string(relapse),
          "NOTICE counties/city/east " + std::to_string(notice_at)));
  EXPECT_EQ(report.summary().jurisdiction(), "city/east");
  EXPECT_EQ(report.summary().conversions_in_period(), 1);
  EXPECT_EQ(report.summary().notices_in_period(), 1);
  EXPECT_EQ(report.lines(4).detail().substr(0, 7), "OVERDUE");
  // Every line also says it in Chinese, with the text people wrote quoted as written.
  std::vector<std::string> zh;
  for (const auto& l : report.lines()) zh.push_back(l.detail_zh());
  EXPECT_THAT(zh, ElementsAre(::testing::HasSubstr("o2 branch：列入台账，"),
                              ::testing::HasSubstr("o1 branch：反弹重整，"), "依据检查 i1 销号",
                              "回头看发现反弹：meetings stopped again",
                              ::testing::StartsWith("OVERDUE：o1 branch 已超过整改期限 "),
                              "通报整改 N-1：list the remaining weak branches"));
  EXPECT_THAT(report.lines(0).detail_zh(), ::testing::HasSubstr(" 起在册，整改期限 "));
}

}  // namespace
}  // namespace casework::oversight

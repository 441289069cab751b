// Random command sequences against one case, seeded and replayable: thousands of lives of
// a case, biased toward valid commands with a share of invalid ones, checking after every
// step that a refusal changes nothing, Evolve accepts what Decide emits, the replay of the
// log equals the incremental state, the state agrees with a tiny reference model, no case
// is CLOSED without its own passed inspection and a valid sign-off set after its latest
// (re)opening, and separation of duties holds.
//
// On failure the seed is printed; CW_SEED=<seed> replays that one sequence.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "services/workflow/decider.h"
#include "services/workflow/names.h"
#include "services/workflow/policy.h"
#include "services/workflow/statement.h"
#include "services/workflow/workflow_testing.h"

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer, recording a deep stack for every allocation is most of this
// test's time; five frames still locate a leak or an overflow in the core.
extern "C" const char* __asan_default_options() { return "malloc_context_size=5"; }
#endif

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;
using google::protobuf::util::MessageDifferencer;

constexpr uint64_t kDefaultSeed = 20260101;
constexpr int kSequences = 1000;
constexpr int kStepsMax = 40;

// The people of the world. Some hold two roles so that separation of duties is tested.
struct World {
  std::vector<Principal> people;
  std::vector<std::string> assignable;  // person ids the generator names in assignments

  World() {
    auto add = [&](const char* id, std::vector<Role> roles, const char* where,
                   v1::ApprovalLevel level = v1::APPROVAL_LEVEL_UNSPECIFIED) {
      people.push_back(testing::MakePrincipal(id, std::move(roles), where, level));
    };
    add("l1", {Role::kLister}, "city/east");
    add("l2", {Role::kLister, Role::kReviewer}, "city/east");
    add("r1", {Role::kReviewer}, "city/east");
    add("r2", {Role::kReviewer}, "city");
    add("a1", {Role::kAssister}, "city/east/hill/dongshan");
    add("a2", {Role::kAssister}, "city/east");
    add("a3", {Role::kAssister}, "city/east/hill");
    add("x1", {Role::kAssister, Role::kInspector}, "city/east");
    add("i1", {Role::kInspector}, "city/east");
    add("i2", {Role::kInspector}, "city");
    add("p1", {Role::kInspector, Role::kApprover}, "city/east", v1::APPROVAL_LEVEL_COUNTY);
    add("ap1", {Role::kApprover}, "city/east", v1::APPROVAL_LEVEL_COUNTY);
    add("ap2", {Role::kApprover}, "city", v1::APPROVAL_LEVEL_CITY);
    add("ap3", {Role::kApprover}, "city/east", v1::APPROVAL_LEVEL_COUNTY);
    add("au", {Role::kAuditor}, "city");
    add("ad", {Role::kAdmin}, "city");
    add("o", {Role::kLister, Role::kReviewer, Role::kAssister, Role::kInspector, Role::kApprover},
        "city/west", v1::APPROVAL_LEVEL_CITY);
    assignable = {"a1", "a2", "a3", "x1", "p1"};
  }
};

// What the rules say the case is, computed from accepted commands and their actors alone,
// independently of Evolve.
struct Model {
  v1::CaseState state = v1::CASE_STATE_UNSPECIFIED;
  std::string lister;
  bool confirmed = false;
  v1::CaseType type = v1::CASE_TYPE_UNSPECIFIED;
  std::set<std::string> assisters;
  std::set<std::string> earlier_assisters;  // of rounds before the latest reopening
  std::set<std::string> inspectors;         // everyone who inspected, in any round
  std::set<std::string> assigned;
  std::vector<std::string> inspection_ids;  // since the latest opening
  std::string passed_id;
  std::string passed_inspector;
  std::map<std::string, v1::ApprovalLevel> signers;
  int64_t visits = 0;
  int64_t measures = 0;
  int64_t funds = 0;
  int64_t accountability = 0;
  int reopens = 0;
};

bool ModelCloses(const ClosurePolicy& policy, const Model& m) {
  int city = 0;
  int county = 0;
  bool other = false;
  for (const auto& [who, level] : m.signers) {
    city += level == v1::APPROVAL_LEVEL_CITY;
    county += level == v1::APPROVAL_LEVEL_COUNTY;
    other = other || !m.inspectors.count(who);
  }
  return other && static_cast<int>(m.signers.size()) >= policy.approvers_min &&
         city >= policy.city_approvers_min && county >= policy.county_approvers_min;
}

google::protobuf::Timestamp At(int64_t micros) {
  google::protobuf::Timestamp t;
  t.set_seconds(micros / 1'000'000);
  t.set_nanos(static_cast<int32_t>(micros % 1'000'000) * 1000);
  return t;
}

class Sequence {
 public:
  Sequence(uint64_t seed, const World& world) : rng_(seed), world_(world) {
    // Vary the closure policy too.
    switch (Pick(4)) {
      case 0:
        break;  // default: 2 approvers, one of county level
      case 1:
        policy_.closure = {.approvers_min = 1, .city_approvers_min = 0, .county_approvers_min = 0};
        break;
      case 2:
        policy_.closure = {.approvers_min = 2, .city_approvers_min = 1, .county_approvers_min = 1};
        break;
      default:
        policy_.closure = {.approvers_min = 3, .city_approvers_min = 0, .county_approvers_min = 2};
        break;
    }
  }

  // Runs the sequence; returns false after the first failed check (already reported).
  bool Run() {
    for (int step = 0; step < kStepsMax; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      now_ += kHour + static_cast<int64_t>(Pick(240)) * kHour;
      if (!Step()) return false;
    }
    return true;
  }

  bool closed_once() const { return closed_once_; }
  bool reopened_once() const { return model_.reopens > 0; }
  int accepted() const { return accepted_; }

 private:
  static constexpr int64_t kHour = testing::kHourMicros;
  static constexpr int64_t kDay = testing::kDayMicros;

  uint64_t Pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(int percent) { return static_cast<int>(Pick(100)) < percent; }

  const Principal& Anyone() { return world_.people[Pick(world_.people.size())]; }
  const Principal& WithRole(Role role) {
    std::vector<const Principal*> holders;
    for (const Principal& p : world_.people) {
      if (p.HasRole(role) && p.id != "o") holders.push_back(&p);
    }
    return *holders[Pick(holders.size())];
  }

  template <typename Request>
  void Address(Request* r) {
    r->set_name(testing::kCaseName);
    r->set_request_id("req-" + std::to_string(state_.version()));
    r->set_expected_version(Chance(97) ? state_.version()
                                       : state_.version() + static_cast<int64_t>(Pick(3)) - 1);
  }

  v1::Assignment MakeAssignment() {
    v1::Assignment a;
    v1::DepartmentKind kind = static_cast<v1::DepartmentKind>(static_cast<int>(model_.type));
    if (Chance(5)) kind = static_cast<v1::DepartmentKind>(1 + Pick(4));
    a.mutable_paired_department()->set_department_id("dept-" + std::to_string(Pick(5)));
    a.mutable_paired_department()->set_kind(kind);
    std::vector<std::string> pool = world_.assignable;
    std::shuffle(pool.begin(), pool.end(), rng_);
    a.mutable_first_secretary()->set_person_id(pool[0]);
    const int cadres = 1 + static_cast<int>(Pick(2));
    for (int i = 0; i < cadres; ++i) a.add_stationed_cadres()->set_person_id(pool[1 + i]);
    if (Chance(3)) a.add_stationed_cadres()->set_person_id(pool[0]);
    if (!Chance(3)) a.set_plan("plan " + std::to_string(Pick(100)));
    return a;
  }

  void RandomCategories(google::protobuf::RepeatedField<int>* out) {
    const int n = 1 + static_cast<int>(Pick(3));
    std::vector<int> all = {1, 2, 3, 4, 5, 6};
    std::shuffle(all.begin(), all.end(), rng_);
    for (int i = 0; i < n; ++i) out->Add(all[i]);
    if (Chance(3)) out->Add(all[0]);
  }

  // A command, mostly valid and mostly one the state allows.
  v1::Command Generate(Principal* actor) {
    using K = v1::Command::KindCase;
    std::vector<std::pair<K, int>> weights;  // kind, weight
    switch (model_.state) {
      case v1::CASE_STATE_UNSPECIFIED:
        weights = {{K::kCreateCase, 20}};
        break;
      case v1::CASE_STATE_LISTED:
        weights = {{K::kReviewListing, 10}, {K::kAmendListing, 3}, {K::kAssignAssistance, 8}};
        break;
      case v1::CASE_STATE_ASSISTED:
        weights = {{K::kRecordFieldVisit, 3},
                   {K::kRecordMeasure, 3},
                   {K::kRecordFunds, 2},
                   {K::kReplaceAssignment, 1},
                   {K::kRecordInspection, 8}};
        break;
      case v1::CASE_STATE_VERIFIED:
        weights = {{K::kSignOffClosure, 12}, {K::kSendBack, 1}};
        break;
      case v1::CASE_STATE_CLOSED:
        weights = {{K::kRecordFollowUpReview, 10}};
        break;
      case v1::CASE_STATE_REOPENED:
        weights = {{K::kAssignAssistance, 10}};
        break;
      default:
        break;
    }
    weights.push_back({K::kRecordAdmonishmentTalk, 1});
    weights.push_back({K::kIssueRectificationNotice, 1});
    K kind = K::kCreateCase;
    if (Chance(10)) {
      kind = static_cast<K>(1 + Pick(14));
    } else {
      int total = 0;
      for (const auto& [k, w] : weights) total += w;
      int x = static_cast<int>(Pick(total));
      for (const auto& [k, w] : weights) {
        if (x < w) {
          kind = k;
          break;
        }
        x -= w;
      }
    }

    v1::Command c;
    const bool valid = Chance(92);
    switch (kind) {
      case K::kCreateCase: {
        *actor = WithRole(Role::kLister);
        v1::CreateCaseRequest* r = c.mutable_create_case();
        r->set_case_id(testing::kCaseId);
        r->set_request_id("req-create");
        r->mutable_organisation()->set_organisation_id("dongshan");
        r->mutable_organisation()->set_display_name("东山村党支部");
        r->mutable_organisation()->set_jurisdiction(valid ? testing::kOrgJurisdiction
                                                          : "city/east");
        r->mutable_organisation()->set_kind(v1::ORGANISATION_KIND_VILLAGE);
        r->set_case_type(static_cast<v1::CaseType>(1 + Pick(4)));
        RandomCategories(r->mutable_problem_categories());
        r->set_findings("findings");
        *r->mutable_deadline() = At(now_ + (Chance(95) ? 300 * kDay : -kDay));
        break;
      }
      case K::kReviewListing: {
        *actor = WithRole(Role::kReviewer);
        v1::ReviewListingRequest* r = c.mutable_review_listing();
        Address(r);
        r->set_confirmed(Chance(70));
        if (valid || r->confirmed()) r->set_comment("comment");
        break;
      }
      case K::kAmendListing: {
        *actor = WithRole(Role::kLister);
        v1::AmendListingRequest* r = c.mutable_amend_listing();
        Address(r);
        r->set_case_type(static_cast<v1::CaseType>(1 + Pick(4)));
        RandomCategories(r->mutable_problem_categories());
        if (valid) r->set_findings("amended findings");
        *r->mutable_deadline() = At(now_ + 200 * kDay);
        break;
      }
      case K::kAssignAssistance: {
        *actor = WithRole(Role::kLister);
        v1::AssignAssistanceRequest* r = c.mutable_assign_assistance();
        Address(r);
        *r->mutable_assignment() = MakeAssignment();
        break;
      }
      case K::kReplaceAssignment: {
        *actor = WithRole(Role::kLister);
        v1::ReplaceAssignmentRequest* r = c.mutable_replace_assignment();
        Address(r);
        *r->mutable_assignment() = MakeAssignment();
        if (valid) r->set_reason("transferred");
        break;
      }
      case K::kRecordFieldVisit: {
        *actor = WithRole(Role::kAssister);
        v1::RecordFieldVisitRequest* r = c.mutable_record_field_visit();
        Address(r);
        std::vector<std::string> assigned(model_.assigned.begin(), model_.assigned.end());
        if (!assigned.empty()) r->add_visitors(assigned[Pick(assigned.size())]);
        if (!valid) r->add_visitors("l1");
        *r->mutable_visit_time() = At(now_ - static_cast<int64_t>(Pick(48)) * kHour);
        break;
      }
      case K::kRecordMeasure: {
        *actor = WithRole(Role::kAssister);
        v1::RecordMeasureRequest* r = c.mutable_record_measure();
        Address(r);
        r->set_description("measure");
        r->set_problem_category(static_cast<v1::ProblemCategory>(
            valid && !listed_.empty() ? listed_[Pick(listed_.size())]
                                      : static_cast<int>(1 + Pick(6))));
        break;
      }
      case K::kRecordFunds: {
        *actor = WithRole(Role::kAssister);
        v1::RecordFundsRequest* r = c.mutable_record_funds();
        Address(r);
        r->set_amount_fen(valid ? 1 + static_cast<int64_t>(Pick(1'000'000)) : 0);
        break;
      }
      case K::kRecordInspection: {
        *actor = WithRole(Role::kInspector);
        v1::RecordInspectionRequest* r = c.mutable_record_inspection();
        Address(r);
        const bool reuse = !valid && !model_.inspection_ids.empty();
        r->set_inspection_id(reuse ? model_.inspection_ids[0]
                                   : "insp-" + std::to_string(next_inspection_++));
        r->set_passed(Chance(60));
        r->set_findings("found");
        if (!r->passed()) r->set_further_measures("more");
        break;
      }
      case K::kSignOffClosure: {
        *actor = WithRole(Role::kApprover);
        v1::SignOffClosureRequest* r = c.mutable_sign_off_closure();
        Address(r);
        r->set_inspection_id(valid ? model_.passed_id : "insp-x");
        r->set_key_id("key-" + actor->id);
        r->set_signature(std::string(64, 's'));
        break;
      }
      case K::kSendBack: {
        *actor = WithRole(Role::kApprover);
        v1::SendBackRequest* r = c.mutable_send_back();
        Address(r);
        if (valid) r->set_reason("not convincing");
        break;
      }
      case K::kRecordFollowUpReview: {
        *actor = WithRole(Role::kInspector);
        v1::RecordFollowUpReviewRequest* r = c.mutable_record_follow_up_review();
        Address(r);
        r->set_relapsed(Chance(60));
        r->set_findings("reviewed");
        if (r->relapsed() || !valid) {
          RandomCategories(r->mutable_problem_categories());
          *r->mutable_deadline() = At(now_ + 180 * kDay);
        }
        break;
      }
      case K::kRecordAdmonishmentTalk: {
        *actor = Chance(50) ? WithRole(Role::kAuditor) : WithRole(Role::kApprover);
        v1::RecordAdmonishmentTalkRequest* r = c.mutable_record_admonishment_talk();
        Address(r);
        r->add_talked_with()->set_person_id("ma.qiang");
        if (valid) r->set_subject("slow progress");
        break;
      }
      case K::kIssueRectificationNotice: {
        *actor = Chance(50) ? WithRole(Role::kAdmin) : WithRole(Role::kAuditor);
        v1::IssueRectificationNoticeRequest* r = c.mutable_issue_rectification_notice();
        Address(r);
        r->set_notice_id("n-" + std::to_string(Pick(100)));
        if (valid) r->set_content("rectify");
        break;
      }
      default:
        break;
    }
    if (Chance(8)) *actor = Anyone();
    return c;
  }

  Context ContextFor(const Principal& actor) {
    Context context{.actor = actor, .now_micros = now_, .policy = &policy_};
    if (actor.HasRole(Role::kApprover) && Chance(96)) {
      context.verified_key_id = "key-" + actor.id;
      context.verified_level = actor.approval_level;
      context.verified_latest_leaf_hash = std::string(kLeafHashBytes, '\x5a');
    }
    return context;
  }

  // One step; on failure, names the command (built lazily: it is the costly part).
  bool Step() {
    Principal actor;
    v1::Command command;
    const bool ok = StepWith(&actor, &command);
    if (!ok) ADD_FAILURE() << "at " << actor.id << ": " << command.ShortDebugString();
    return ok;
  }

  bool StepWith(Principal* actor_out, v1::Command* command_out) {
    Principal& actor = *actor_out;
    *command_out = Generate(&actor);
    const v1::Command& command = *command_out;
    const Context context = ContextFor(actor);
    const v1::Case before = state_;
    const Decision decision = Decide(state_, command, context);

    if (const Refusal* refusal = std::get_if<Refusal>(&decision)) {
      // A refusal changes nothing and says why.
      EXPECT_EQ(before.SerializeAsString(), state_.SerializeAsString());
      EXPECT_EQ(refusal->category, CategoryOf(refusal->reason));
      EXPECT_FALSE(refusal->message_en.empty());
      EXPECT_FALSE(refusal->message_zh.empty());
      return !::testing::Test::HasFailure();
    }

    const Events& events = std::get<Events>(decision);
    EXPECT_FALSE(events.empty());
    for (size_t i = 0; i < events.size(); ++i) {
      const v1::Event& e = events[i];
      EXPECT_EQ(e.version(), before.version() + 1 + static_cast<int64_t>(i));
      EXPECT_EQ(e.stream(), testing::kCaseName);
      EXPECT_EQ(e.actor(), actor.id);
      EXPECT_EQ(e.rules_version(), kRulesVersion);
      EXPECT_EQ(e.time().seconds() * 1'000'000 + e.time().nanos() / 1000, now_);
      Evolve(state_, e);  // aborts if Decide emitted something Evolve cannot take
      log_.push_back(e);
    }
    ++accepted_;
    UpdateModel(actor, command, events);
    CheckInvariants();
    return !::testing::Test::HasFailure();
  }

  void UpdateModel(const Principal& actor, const v1::Command& c, const Events& events) {
    using K = v1::Command::KindCase;
    Model& m = model_;
    switch (c.kind_case()) {
      case K::kCreateCase:
        m.state = v1::CASE_STATE_LISTED;
        m.lister = actor.id;
        m.type = c.create_case().case_type();
        listed_.assign(c.create_case().problem_categories().begin(),
                       c.create_case().problem_categories().end());
        break;
      case K::kReviewListing:
        EXPECT_NE(actor.id, m.lister) << "the lister reviewed the own listing";
        EXPECT_FALSE(m.confirmed);
        m.confirmed = c.review_listing().confirmed();
        break;
      case K::kAmendListing:
        EXPECT_EQ(actor.id, m.lister);
        m.confirmed = false;
        m.type = c.amend_listing().case_type();
        listed_.assign(c.amend_listing().problem_categories().begin(),
                       c.amend_listing().problem_categories().end());
        break;
      case K::kAssignAssistance:
      case K::kReplaceAssignment: {
        EXPECT_TRUE(m.state == v1::CASE_STATE_ASSISTED || m.confirmed ||
                    m.state == v1::CASE_STATE_REOPENED);
        const v1::Assignment& a = c.has_assign_assistance() ? c.assign_assistance().assignment()
                                                            : c.replace_assignment().assignment();
        m.assigned = {a.first_secretary().person_id()};
        for (const v1::Person& p : a.stationed_cadres()) m.assigned.insert(p.person_id());
        m.assisters.insert(m.assigned.begin(), m.assigned.end());
        m.state = v1::CASE_STATE_ASSISTED;
        break;
      }
      case K::kRecordFieldVisit:
        m.visits++;
        m.assisters.insert(actor.id);
        for (const std::string& v : c.record_field_visit().visitors()) {
          EXPECT_TRUE(m.assigned.count(v)) << v << " visited without being assigned";
        }
        break;
      case K::kRecordMeasure:
        m.measures++;
        m.assisters.insert(actor.id);
        break;
      case K::kRecordFunds:
        m.funds += c.record_funds().amount_fen();
        m.assisters.insert(actor.id);
        break;
      case K::kRecordInspection: {
        const v1::RecordInspectionRequest& r = c.record_inspection();
        EXPECT_FALSE(m.assisters.count(actor.id)) << actor.id << " assisted and inspected";
        EXPECT_FALSE(m.earlier_assisters.count(actor.id))
            << actor.id << " assisted in an earlier round and inspected";
        m.inspectors.insert(actor.id);
        EXPECT_EQ(std::count(m.inspection_ids.begin(), m.inspection_ids.end(), r.inspection_id()),
                  0);
        m.inspection_ids.push_back(r.inspection_id());
        if (r.passed()) {
          m.state = v1::CASE_STATE_VERIFIED;
          m.passed_id = r.inspection_id();
          m.passed_inspector = actor.id;
          m.signers.clear();
        }
        break;
      }
      case K::kSignOffClosure: {
        EXPECT_EQ(c.sign_off_closure().inspection_id(), m.passed_id);
        EXPECT_EQ(m.signers.count(actor.id), 0u);
        m.signers[actor.id] = actor.approval_level;
        const bool closes = ModelCloses(policy_.closure, m);
        EXPECT_EQ(events.size(), closes ? 2u : 1u);
        if (closes) {
          m.state = v1::CASE_STATE_CLOSED;
          closed_once_ = true;
        }
        break;
      }
      case K::kSendBack:
        m.state = v1::CASE_STATE_ASSISTED;
        m.signers.clear();
        break;
      case K::kRecordFollowUpReview:
        EXPECT_FALSE(m.assisters.count(actor.id)) << actor.id << " assisted and reviewed";
        EXPECT_FALSE(m.earlier_assisters.count(actor.id))
            << actor.id << " assisted in an earlier round and reviewed";
        if (c.record_follow_up_review().relapsed()) {
          m.state = v1::CASE_STATE_REOPENED;
          m.reopens++;
          m.earlier_assisters.insert(m.assisters.begin(), m.assisters.end());
          m.assisters.clear();
          m.inspection_ids.clear();
          m.signers.clear();
          m.passed_id.clear();
          listed_.assign(c.record_follow_up_review().problem_categories().begin(),
                         c.record_follow_up_review().problem_categories().end());
        }
        break;
      case K::kRecordAdmonishmentTalk:
      case K::kIssueRectificationNotice:
        m.accountability++;
        break;
      default:
        ADD_FAILURE() << "accepted an empty command";
    }
  }

  void CheckInvariants() {
    const v1::Case& s = state_;
    // Replay from scratch equals the incremental state.
    // Equal messages serialize to equal bytes (no maps, no unknown fields), which is much
    // cheaper to compare; the differencer explains a mismatch.
    const v1::Case replayed = Replay(log_);
    if (replayed.SerializeAsString() != s.SerializeAsString()) {
      std::string diff;
      MessageDifferencer differencer;
      differencer.ReportDifferencesToString(&diff);
      EXPECT_TRUE(differencer.Compare(replayed, s)) << diff;
      ADD_FAILURE() << "replay differs from the incremental state";
    }

    // The state agrees with the reference model.
    const Model& m = model_;
    EXPECT_EQ(s.state(), m.state);
    EXPECT_EQ(s.listed_by(), m.lister);
    if (s.state() == v1::CASE_STATE_LISTED) {
      EXPECT_EQ(s.listing_review().confirmed(), m.confirmed);
    }
    EXPECT_EQ(std::set<std::string>(s.assisters().begin(), s.assisters().end()), m.assisters);
    EXPECT_EQ(std::set<std::string>(s.earlier_assisters().begin(), s.earlier_assisters().end()),
              m.earlier_assisters);
    std::set<std::string> inspectors(s.earlier_inspectors().begin(), s.earlier_inspectors().end());
    for (const v1::Inspection& i : s.inspections()) inspectors.insert(i.inspector());
    EXPECT_EQ(inspectors, m.inspectors);
    EXPECT_EQ(s.inspections_size(), static_cast<int>(m.inspection_ids.size()));
    EXPECT_EQ(s.field_visit_count(), m.visits);
    EXPECT_EQ(s.measure_count(), m.measures);
    EXPECT_EQ(s.funds_provided_fen(), m.funds);
    EXPECT_EQ(s.accountability_event_count(), m.accountability);
    EXPECT_EQ(s.reopen_count(), m.reopens);
    EXPECT_EQ(s.version(), static_cast<int64_t>(log_.size()));

    // Separation of duties, on the state itself.
    if (s.listing_review().confirmed()) {
      EXPECT_NE(s.listing_review().reviewer(), s.listed_by());
    }
    if (s.state() == v1::CASE_STATE_VERIFIED || s.state() == v1::CASE_STATE_CLOSED) {
      // The inspection the case rests on is the last one, by someone who never assisted.
      ASSERT_FALSE(s.inspections().empty());
      const v1::Inspection& last = *s.inspections().rbegin();
      EXPECT_TRUE(last.passed());
      EXPECT_EQ(std::count(s.assisters().begin(), s.assisters().end(), last.inspector()), 0)
          << last.inspector() << " assisted and passed the inspection";
      EXPECT_EQ(
          std::count(s.earlier_assisters().begin(), s.earlier_assisters().end(), last.inspector()),
          0)
          << last.inspector() << " assisted in an earlier round and passed the inspection";
    }

    // One by one: CLOSED only on its own passed inspection and a valid set of sign-offs,
    // all after the latest (re)opening.
    if (s.state() == v1::CASE_STATE_CLOSED) {
      const v1::Inspection* passed = nullptr;
      for (const v1::Inspection& i : s.inspections()) {
        if (i.passed()) passed = &i;
      }
      ASSERT_NE(passed, nullptr) << "closed without a passed inspection";
      EXPECT_GE(passed->inspection_time().seconds(), s.opened_time().seconds());
      ASSERT_FALSE(s.sign_offs().empty());
      std::set<std::string> approvers;
      for (const v1::SignOff& so : s.sign_offs()) {
        EXPECT_EQ(so.inspection_id(), passed->inspection_id());
        EXPECT_FALSE(so.key_id().empty());
        EXPECT_FALSE(so.signature().empty());
        EXPECT_GE(so.sign_time().seconds(), passed->inspection_time().seconds());
        EXPECT_TRUE(approvers.insert(so.approver()).second) << so.approver() << " signed twice";
      }
      EXPECT_TRUE(ClosurePolicySatisfied(policy_.closure, s.sign_offs(), passed->inspector()));
      EXPECT_TRUE(std::any_of(approvers.begin(), approvers.end(), [&](const std::string& a) {
        return !inspectors.count(a);
      })) << "only inspectors of the case signed its closure";
      // The closing event follows, in the same decision, the sign-off that satisfied the
      // policy, after the latest reopening.
      auto closing = std::find_if(log_.rbegin(), log_.rend(),
                                  [](const v1::Event& e) { return e.has_case_closed(); });
      ASSERT_NE(closing, log_.rend());
      ASSERT_NE(std::next(closing), log_.rend());
      EXPECT_TRUE(std::next(closing)->has_closure_signed_off());
      EXPECT_EQ(std::next(closing)->request_id(), closing->request_id());
      EXPECT_EQ(closing->case_closed().inspection_id(), passed->inspection_id());
      EXPECT_EQ(std::find_if(log_.rbegin(), closing,
                             [](const v1::Event& e) { return e.has_relapse_found(); }),
                closing);
    }
  }

  std::mt19937_64 rng_;
  const World& world_;
  Policy policy_;
  v1::Case state_;
  std::vector<v1::Event> log_;
  Model model_;
  std::vector<int> listed_;
  int64_t now_ = testing::kStartMicros;
  int next_inspection_ = 1;
  bool closed_once_ = false;
  int accepted_ = 0;
};

TEST(Property, RandomSequencesKeepEveryInvariant) {
  const World world;
  uint64_t first = kDefaultSeed;
  int count = kSequences;
  if (const char* env = std::getenv("CW_SEED"); env != nullptr && *env != '\0') {
    first = std::strtoull(env, nullptr, 10);
    count = 1;
  }
  int closed = 0;
  int reopened = 0;
  int64_t accepted = 0;
  for (int i = 0; i < count; ++i) {
    const uint64_t seed = first + static_cast<uint64_t>(i);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with CW_SEED=" + std::to_string(seed) +
                 ")");
    Sequence sequence(seed, world);
    if (!sequence.Run()) {
      ADD_FAILURE() << "sequence failed; replay with CW_SEED=" << seed;
      return;
    }
    closed += sequence.closed_once();
    reopened += sequence.reopened_once();
    accepted += sequence.accepted();
  }
  if (count == kSequences) {
    // The generator must reach the interesting states, or the test proves little.
    EXPECT_GT(closed, kSequences / 4) << "too few sequences reached CLOSED";
    EXPECT_GT(reopened, kSequences / 10) << "too few sequences reached REOPENED";
  }
  std::printf("%d sequences, %lld accepted commands, %d closed, %d reopened\n", count,
              static_cast<long long>(accepted), closed, reopened);
}

}  // namespace
}  // namespace casework::workflow

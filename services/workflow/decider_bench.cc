// Decide + Evolve per command, the core's cost on the write path (the shell adds I/O).
//   BM_RecordMeasure:  the commonest command, on an ASSISTED case.
//   BM_Lifecycle:      a whole life (list, review, assign, activities, inspect, two
//                      sign-offs closing the case, follow-up review); per command.
//   BM_RefusedStale:   a refusal with its messages (stale expected version).
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "benchmark/benchmark.h"
#include "services/workflow/decider.h"
#include "services/workflow/statement.h"

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;

constexpr int64_t kNow = int64_t{1767225600} * 1'000'000;
constexpr int64_t kDay = int64_t{86400} * 1'000'000;

google::protobuf::Timestamp At(int64_t micros) {
  google::protobuf::Timestamp t;
  t.set_seconds(micros / 1'000'000);
  return t;
}

Principal P(const char* id, Role role, v1::ApprovalLevel level = v1::APPROVAL_LEVEL_UNSPECIFIED) {
  return Principal{.id = id, .roles = {role}, .jurisdiction = "city/east", .approval_level = level};
}

const Policy kPolicy;

struct Step {
  Context context;
  v1::Command command;
};

template <typename Request>
void Address(Request* r, const char* request_id) {
  r->set_name("cases/c1");
  r->set_request_id(request_id);
}

std::vector<Step> Lifecycle() {
  std::vector<Step> steps;
  auto add = [&](Principal who, v1::Command c) {
    Context context{.actor = std::move(who), .now_micros = kNow, .policy = &kPolicy};
    if (context.actor.HasRole(Role::kApprover)) {
      context.verified_key_id = "key-" + context.actor.id;
      context.verified_level = context.actor.approval_level;
      context.verified_latest_leaf_hash = std::string(kLeafHashBytes, '\x5a');
    }
    steps.push_back({std::move(context), std::move(c)});
  };
  v1::Command c;
  v1::CreateCaseRequest* create = c.mutable_create_case();
  create->set_case_id("c1");
  create->set_request_id("r-create");
  create->mutable_organisation()->set_organisation_id("dongshan");
  create->mutable_organisation()->set_display_name("东山村党支部");
  create->mutable_organisation()->set_jurisdiction("city/east/hill/dongshan");
  create->mutable_organisation()->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  create->set_case_type(v1::CASE_TYPE_POOR);
  create->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  create->set_findings("no collective income");
  *create->mutable_deadline() = At(kNow + 365 * kDay);
  add(P("li.na", Role::kLister), c);

  c.Clear();
  Address(c.mutable_review_listing(), "r-review");
  c.mutable_review_listing()->set_confirmed(true);
  add(P("wang.fang", Role::kReviewer), c);

  c.Clear();
  Address(c.mutable_assign_assistance(), "r-assign");
  v1::Assignment* a = c.mutable_assign_assistance()->mutable_assignment();
  a->mutable_paired_department()->set_department_id("dept-finance");
  a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_ECONOMIC);
  a->mutable_first_secretary()->set_person_id("zhang.wei");
  a->add_stationed_cadres()->set_person_id("chen.jie");
  a->set_plan("cooperative");
  add(P("li.na", Role::kLister), c);

  c.Clear();
  Address(c.mutable_record_field_visit(), "r-visit");
  c.mutable_record_field_visit()->add_visitors("zhang.wei");
  *c.mutable_record_field_visit()->mutable_visit_time() = At(kNow - kDay);
  add(P("zhang.wei", Role::kAssister), c);

  c.Clear();
  Address(c.mutable_record_measure(), "r-measure");
  c.mutable_record_measure()->set_description("cooperative registered");
  c.mutable_record_measure()->set_problem_category(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  add(P("chen.jie", Role::kAssister), c);

  c.Clear();
  Address(c.mutable_record_funds(), "r-funds");
  c.mutable_record_funds()->set_amount_fen(500000);
  add(P("chen.jie", Role::kAssister), c);

  c.Clear();
  Address(c.mutable_record_inspection(), "r-inspect");
  c.mutable_record_inspection()->set_inspection_id("insp-1");
  c.mutable_record_inspection()->set_passed(true);
  c.mutable_record_inspection()->set_findings("income 120,000 CNY");
  add(P("zhao.lei", Role::kInspector), c);

  for (const Principal& approver : {P("sun.li", Role::kApprover, v1::APPROVAL_LEVEL_COUNTY),
                                    P("zhou.min", Role::kApprover, v1::APPROVAL_LEVEL_CITY)}) {
    c.Clear();
    Address(c.mutable_sign_off_closure(), "r-sign");
    c.mutable_sign_off_closure()->set_inspection_id("insp-1");
    c.mutable_sign_off_closure()->set_key_id("key-" + approver.id);
    c.mutable_sign_off_closure()->set_signature(std::string(64, 's'));
    add(approver, c);
  }

  c.Clear();
  Address(c.mutable_record_follow_up_review(), "r-follow-up");
  c.mutable_record_follow_up_review()->set_findings("holds");
  add(P("zhao.lei", Role::kInspector), c);
  return steps;
}

void SetVersion(v1::Command& c, int64_t version) {
  switch (c.kind_case()) {
    case v1::Command::kReviewListing:
      c.mutable_review_listing()->set_expected_version(version);
      break;
    case v1::Command::kAssignAssistance:
      c.mutable_assign_assistance()->set_expected_version(version);
      break;
    case v1::Command::kRecordFieldVisit:
      c.mutable_record_field_visit()->set_expected_version(version);
      break;
    case v1::Command::kRecordMeasure:
      c.mutable_record_measure()->set_expected_version(version);
      break;
    case v1::Command::kRecordFunds:
      c.mutable_record_funds()->set_expected_version(version);
      break;
    case v1::Command::kRecordInspection:
      c.mutable_record_inspection()->set_expected_version(version);
      break;
    case v1::Command::kSignOffClosure:
      c.mutable_sign_off_closure()->set_expected_version(version);
      break;
    case v1::Command::kRecordFollowUpReview:
      c.mutable_record_follow_up_review()->set_expected_version(version);
      break;
    default:
      break;
  }
}

// Applies `step`; aborts the benchmark if it is refused (the setup is wrong).
bool Apply(v1::Case& state, Step& step) {
  SetVersion(step.command, state.version());
  Decision d = Decide(state, step.command, step.context);
  Events* events = std::get_if<Events>(&d);
  if (events == nullptr) return false;
  for (const v1::Event& e : *events) Evolve(state, e);
  return true;
}

void BM_RecordMeasure(benchmark::State& bench) {
  std::vector<Step> steps = Lifecycle();
  v1::Case state;
  for (int i = 0; i < 3; ++i) Apply(state, steps[i]);  // create, review, assign
  Step measure = steps[4];
  for (auto _ : bench) {
    if (!Apply(state, measure)) {
      bench.SkipWithError("refused");
      break;
    }
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_RecordMeasure);

void BM_Lifecycle(benchmark::State& bench) {
  std::vector<Step> steps = Lifecycle();
  for (auto _ : bench) {
    v1::Case state;
    for (Step& step : steps) {
      if (!Apply(state, step)) {
        bench.SkipWithError("refused");
        return;
      }
    }
    benchmark::DoNotOptimize(state);
  }
  bench.SetItemsProcessed(bench.iterations() * static_cast<int64_t>(steps.size()));
}
BENCHMARK(BM_Lifecycle);

void BM_RefusedStale(benchmark::State& bench) {
  std::vector<Step> steps = Lifecycle();
  v1::Case state;
  for (int i = 0; i < 3; ++i) Apply(state, steps[i]);
  Step measure = steps[4];
  measure.command.mutable_record_measure()->set_expected_version(1);
  for (auto _ : bench) {
    Decision d = Decide(state, measure.command, measure.context);
    benchmark::DoNotOptimize(d);
  }
  bench.SetItemsProcessed(bench.iterations());
}
BENCHMARK(BM_RefusedStale);

}  // namespace
}  // namespace casework::workflow

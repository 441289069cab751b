#include "services/workflow/workflow_testing.h"

#include <utility>

#include "gtest/gtest.h"
#include "services/workflow/refusal.h"
#include "services/workflow/statement.h"

namespace casework::workflow::testing {
namespace {

namespace v1 = ::casework::v1;

google::protobuf::Timestamp At(int64_t micros) {
  google::protobuf::Timestamp t;
  t.set_seconds(micros / 1'000'000);
  t.set_nanos(static_cast<int32_t>(micros % 1'000'000) * 1000);
  return t;
}

template <typename Request>
void Address(Request* request, int64_t version, const char* request_id) {
  request->set_name(kCaseName);
  request->set_request_id(request_id);
  request->set_expected_version(version);
}

v1::Assignment DefaultAssignment() {
  v1::Assignment a;
  a.mutable_paired_department()->set_department_id("dept-finance");
  a.mutable_paired_department()->set_display_name("市财政局");
  a.mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_ECONOMIC);
  a.mutable_first_secretary()->set_person_id("zhang.wei");
  a.mutable_first_secretary()->set_display_name("张伟");
  v1::Person* cadre = a.add_stationed_cadres();
  cadre->set_person_id("chen.jie");
  cadre->set_display_name("陈杰");
  a.set_plan("build a cooperative; hold the three meetings and one lesson monthly");
  return a;
}

}  // namespace

Principal MakePrincipal(std::string id, std::vector<Role> roles, std::string jurisdiction,
                        v1::ApprovalLevel level) {
  return Principal{.id = std::move(id),
                   .roles = std::move(roles),
                   .jurisdiction = std::move(jurisdiction),
                   .approval_level = level};
}

v1::Command CreateCase(int64_t now, std::string case_id) {
  v1::Command command;
  v1::CreateCaseRequest* r = command.mutable_create_case();
  r->set_case_id(std::move(case_id));
  r->set_request_id("req-create");
  r->mutable_organisation()->set_organisation_id("dongshan");
  r->mutable_organisation()->set_display_name("东山村党支部");
  r->mutable_organisation()->set_jurisdiction(kOrgJurisdiction);
  r->mutable_organisation()->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  r->set_case_type(v1::CASE_TYPE_POOR);
  r->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  r->add_problem_categories(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE);
  r->set_findings("no collective income; branch meetings irregular");
  *r->mutable_deadline() = At(now + 365 * kDayMicros);
  return command;
}

v1::Command ReviewListing(int64_t version, bool confirmed) {
  v1::Command command;
  v1::ReviewListingRequest* r = command.mutable_review_listing();
  Address(r, version, "req-review");
  r->set_confirmed(confirmed);
  if (!confirmed) r->set_comment("findings lack the debt figures");
  return command;
}

v1::Command AmendListing(int64_t version, int64_t now) {
  v1::Command command;
  v1::AmendListingRequest* r = command.mutable_amend_listing();
  Address(r, version, "req-amend");
  r->set_case_type(v1::CASE_TYPE_POOR);
  r->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  r->add_problem_categories(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE);
  r->set_findings("no collective income, debts of 300,000 CNY; branch meetings irregular");
  *r->mutable_deadline() = At(now + 300 * kDayMicros);
  return command;
}

v1::Command AssignAssistance(int64_t version) {
  v1::Command command;
  v1::AssignAssistanceRequest* r = command.mutable_assign_assistance();
  Address(r, version, "req-assign");
  *r->mutable_assignment() = DefaultAssignment();
  return command;
}

v1::Command ReplaceAssignment(int64_t version) {
  v1::Command command;
  v1::ReplaceAssignmentRequest* r = command.mutable_replace_assignment();
  Address(r, version, "req-replace");
  *r->mutable_assignment() = DefaultAssignment();
  r->mutable_assignment()->mutable_stationed_cadres(0)->set_person_id("liu.yang");
  r->set_reason("chen.jie was transferred");
  return command;
}

v1::Command RecordFieldVisit(int64_t version, int64_t now) {
  v1::Command command;
  v1::RecordFieldVisitRequest* r = command.mutable_record_field_visit();
  Address(r, version, "req-visit");
  r->add_visitors("zhang.wei");
  *r->mutable_visit_time() = At(now - kHourMicros);
  r->set_notes("visited three households");
  return command;
}

v1::Command RecordMeasure(int64_t version) {
  v1::Command command;
  v1::RecordMeasureRequest* r = command.mutable_record_measure();
  Address(r, version, "req-measure");
  r->set_description("cooperative registered");
  r->set_problem_category(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  return command;
}

v1::Command RecordFunds(int64_t version, int64_t amount_fen) {
  v1::Command command;
  v1::RecordFundsRequest* r = command.mutable_record_funds();
  Address(r, version, "req-funds");
  r->set_amount_fen(amount_fen);
  r->set_source("county budget");
  r->set_purpose("greenhouses");
  return command;
}

v1::Command RecordInspection(int64_t version, std::string inspection_id, bool passed) {
  v1::Command command;
  v1::RecordInspectionRequest* r = command.mutable_record_inspection();
  Address(r, version, "req-inspect");
  r->set_inspection_id(std::move(inspection_id));
  r->set_passed(passed);
  r->set_findings(passed ? "income 120,000 CNY; meetings held" : "meetings still irregular");
  if (!passed) r->set_further_measures("county instructor attends monthly meetings");
  return command;
}

v1::Command SignOffClosure(int64_t version, std::string inspection_id, std::string key_id) {
  v1::Command command;
  v1::SignOffClosureRequest* r = command.mutable_sign_off_closure();
  Address(r, version, "req-sign");
  r->set_inspection_id(std::move(inspection_id));
  r->set_key_id(std::move(key_id));
  r->set_signature(std::string(64, 's'));
  return command;
}

v1::Command SendBack(int64_t version) {
  v1::Command command;
  v1::SendBackRequest* r = command.mutable_send_back();
  Address(r, version, "req-send-back");
  r->set_reason("income figures unaudited");
  return command;
}

v1::Command RecordFollowUpReview(int64_t version, bool relapsed, int64_t now) {
  v1::Command command;
  v1::RecordFollowUpReviewRequest* r = command.mutable_record_follow_up_review();
  Address(r, version, "req-follow-up");
  r->set_relapsed(relapsed);
  r->set_findings(relapsed ? "meetings stopped again" : "meetings held monthly");
  if (relapsed) {
    r->add_problem_categories(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE);
    *r->mutable_deadline() = At(now + 180 * kDayMicros);
  }
  return command;
}

v1::Command RecordAdmonishmentTalk(int64_t version) {
  v1::Command command;
  v1::RecordAdmonishmentTalkRequest* r = command.mutable_record_admonishment_talk();
  Address(r, version, "req-talk");
  v1::Person* p = r->add_talked_with();
  p->set_person_id("ma.qiang");
  p->set_display_name("马强");
  r->set_subject("no visible change in two years");
  return command;
}

v1::Command IssueRectificationNotice(int64_t version) {
  v1::Command command;
  v1::IssueRectificationNoticeRequest* r = command.mutable_issue_rectification_notice();
  Address(r, version, "req-notice");
  r->set_notice_id("east-2026-07");
  r->set_content("rectify the branch's organisational life within 60 days");
  return command;
}

std::string KeyIdOf(const Principal& principal) { return "key-" + principal.id; }

const char* StageName(Stage stage) {
  switch (stage) {
    case Stage::kNone:
      return "NONE";
    case Stage::kListed:
      return "LISTED";
    case Stage::kListedReturned:
      return "LISTED(returned)";
    case Stage::kListedConfirmed:
      return "LISTED(confirmed)";
    case Stage::kAssisted:
      return "ASSISTED";
    case Stage::kVerified:
      return "VERIFIED";
    case Stage::kClosed:
      return "CLOSED";
    case Stage::kReopened:
      return "REOPENED";
  }
  return "?";
}

Scenario::Scenario() = default;

Scenario::Scenario(Stage stage) { AdvanceTo(stage); }

Context Scenario::As(const Principal& actor) const {
  Context context{.actor = actor, .now_micros = now_, .policy = &policy_};
  if (actor.HasRole(Role::kApprover)) {
    context.verified_key_id = KeyIdOf(actor);
    context.verified_level = actor.approval_level;
    // The leaf hash the verified statement named: any 32 bytes, since the core records it
    // without reading the log.
    context.verified_latest_leaf_hash = std::string(kLeafHashBytes, '\x5a');
  }
  return context;
}

Decision Scenario::Try(const Principal& actor, const v1::Command& command) const {
  return Decide(state_, command, As(actor));
}

Events Scenario::Do(const Principal& actor, const v1::Command& command) {
  Decision decision = Try(actor, command);
  if (const Refusal* refusal = std::get_if<Refusal>(&decision)) {
    ADD_FAILURE() << "refused " << ReasonCode(refusal->reason) << " (" << refusal->field
                  << "): " << refusal->message_en << "\ncommand: " << command.ShortDebugString();
    return {};
  }
  Events events = std::get<Events>(std::move(decision));
  for (const v1::Event& event : events) {
    Evolve(state_, event);
    log_.push_back(event);
  }
  now_ += kHourMicros;
  return events;
}

Refusal Scenario::Refused(const Principal& actor, const v1::Command& command) const {
  Decision decision = Try(actor, command);
  if (const Refusal* refusal = std::get_if<Refusal>(&decision)) return *refusal;
  ADD_FAILURE() << "accepted, expected a refusal: " << command.ShortDebugString();
  return Refusal{.reason = Reason::kCommandEmpty};
}

void Scenario::AdvanceTo(Stage stage) {
  if (stage == Stage::kNone) return;
  Do(cast_.lister, CreateCase(now_));
  if (stage == Stage::kListed) return;
  if (stage == Stage::kListedReturned) {
    Do(cast_.reviewer, ReviewListing(version(), false));
    return;
  }
  Do(cast_.reviewer, ReviewListing(version(), true));
  if (stage == Stage::kListedConfirmed) return;
  Do(cast_.lister, AssignAssistance(version()));
  if (stage == Stage::kAssisted) return;
  Do(cast_.inspector, RecordInspection(version(), "insp-1", true));
  if (stage == Stage::kVerified) return;
  Do(cast_.county_approver, SignOffClosure(version(), "insp-1", KeyIdOf(cast_.county_approver)));
  Do(cast_.city_approver, SignOffClosure(version(), "insp-1", KeyIdOf(cast_.city_approver)));
  if (stage == Stage::kClosed) return;
  Do(cast_.inspector, RecordFollowUpReview(version(), true, now_));
}

}  // namespace casework::workflow::testing

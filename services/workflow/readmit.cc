#include "services/workflow/readmit.h"

#include <string_view>

#include "services/workflow/check.h"
#include "services/workflow/text.h"

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;

// "cases/{case_id}" -> case_id; empty otherwise.
std::string_view CaseIdOf(std::string_view stream) {
  constexpr std::string_view kPrefix = "cases/";
  if (stream.substr(0, kPrefix.size()) != kPrefix) return {};
  return stream.substr(kPrefix.size());
}

// Fills the fields every request on an existing case carries.
template <typename Request>
Request* Common(Request* request, const v1::Event& first) {
  request->set_name(first.stream());
  request->set_request_id(first.request_id());
  request->set_expected_version(first.version() - 1);
  return request;
}

}  // namespace

std::optional<v1::Command> CommandFor(const v1::Case& before, std::span<const v1::Event> events) {
  (void)before;
  if (events.empty()) return std::nullopt;
  const v1::Event& e = events.front();
  const bool closes =
      events.size() == 2 && e.has_closure_signed_off() && events[1].has_case_closed();
  if (events.size() > 1 && !closes) return std::nullopt;
  v1::Command command;
  switch (e.body_case()) {
    case v1::Event::kOrganisationListed: {
      const v1::OrganisationListed& b = e.organisation_listed();
      v1::CreateCaseRequest* r = command.mutable_create_case();
      r->set_case_id(std::string(CaseIdOf(e.stream())));
      r->set_request_id(e.request_id());
      *r->mutable_organisation() = b.organisation();
      r->set_case_type(b.case_type());
      *r->mutable_problem_categories() = b.problem_categories();
      r->set_findings(b.findings());
      if (b.has_deadline()) *r->mutable_deadline() = b.deadline();
      break;
    }
    case v1::Event::kListingReviewed: {
      v1::ReviewListingRequest* r = Common(command.mutable_review_listing(), e);
      r->set_confirmed(e.listing_reviewed().confirmed());
      r->set_comment(e.listing_reviewed().comment());
      break;
    }
    case v1::Event::kListingAmended: {
      const v1::ListingAmended& b = e.listing_amended();
      v1::AmendListingRequest* r = Common(command.mutable_amend_listing(), e);
      r->set_case_type(b.case_type());
      *r->mutable_problem_categories() = b.problem_categories();
      r->set_findings(b.findings());
      if (b.has_deadline()) *r->mutable_deadline() = b.deadline();
      break;
    }
    case v1::Event::kAssistanceAssigned:
      *Common(command.mutable_assign_assistance(), e)->mutable_assignment() =
          e.assistance_assigned().assignment();
      break;
    case v1::Event::kAssignmentReplaced: {
      v1::ReplaceAssignmentRequest* r = Common(command.mutable_replace_assignment(), e);
      *r->mutable_assignment() = e.assignment_replaced().assignment();
      r->set_reason(e.assignment_replaced().reason());
      break;
    }
    case v1::Event::kFieldVisitRecorded: {
      const v1::FieldVisitRecorded& b = e.field_visit_recorded();
      v1::RecordFieldVisitRequest* r = Common(command.mutable_record_field_visit(), e);
      *r->mutable_visitors() = b.visitors();
      if (b.has_visit_time()) *r->mutable_visit_time() = b.visit_time();
      r->set_notes(b.notes());
      break;
    }
    case v1::Event::kMeasureCompleted: {
      v1::RecordMeasureRequest* r = Common(command.mutable_record_measure(), e);
      r->set_description(e.measure_completed().description());
      r->set_problem_category(e.measure_completed().problem_category());
      break;
    }
    case v1::Event::kFundsProvided: {
      const v1::FundsProvided& b = e.funds_provided();
      v1::RecordFundsRequest* r = Common(command.mutable_record_funds(), e);
      r->set_amount_fen(b.amount_fen());
      r->set_source(b.source());
      r->set_purpose(b.purpose());
      break;
    }
    case v1::Event::kInspectionPassed: {
      v1::RecordInspectionRequest* r = Common(command.mutable_record_inspection(), e);
      r->set_inspection_id(e.inspection_passed().inspection_id());
      r->set_passed(true);
      r->set_findings(e.inspection_passed().findings());
      break;
    }
    case v1::Event::kInspectionFailed: {
      const v1::InspectionFailed& b = e.inspection_failed();
      v1::RecordInspectionRequest* r = Common(command.mutable_record_inspection(), e);
      r->set_inspection_id(b.inspection_id());
      r->set_passed(false);
      r->set_findings(b.findings());
      r->set_further_measures(b.further_measures());
      break;
    }
    case v1::Event::kClosureSignedOff: {
      const v1::SignOff& s = e.closure_signed_off().sign_off();
      v1::SignOffClosureRequest* r = Common(command.mutable_sign_off_closure(), e);
      r->set_inspection_id(s.inspection_id());
      r->set_key_id(s.key_id());
      r->set_signature(s.signature());
      break;
    }
    case v1::Event::kCaseSentBack:
      Common(command.mutable_send_back(), e)->set_reason(e.case_sent_back().reason());
      break;
    case v1::Event::kFollowUpReviewHeld: {
      v1::RecordFollowUpReviewRequest* r = Common(command.mutable_record_follow_up_review(), e);
      r->set_relapsed(false);
      r->set_findings(e.follow_up_review_held().findings());
      break;
    }
    case v1::Event::kRelapseFound: {
      const v1::RelapseFound& b = e.relapse_found();
      v1::RecordFollowUpReviewRequest* r = Common(command.mutable_record_follow_up_review(), e);
      r->set_relapsed(true);
      r->set_findings(b.findings());
      *r->mutable_problem_categories() = b.problem_categories();
      if (b.has_deadline()) *r->mutable_deadline() = b.deadline();
      break;
    }
    case v1::Event::kAdmonishmentTalkRecorded: {
      const v1::AdmonishmentTalkRecorded& b = e.admonishment_talk_recorded();
      v1::RecordAdmonishmentTalkRequest* r = Common(command.mutable_record_admonishment_talk(), e);
      *r->mutable_talked_with() = b.talked_with();
      r->set_subject(b.subject());
      r->set_notes(b.notes());
      break;
    }
    case v1::Event::kRectificationNoticeIssued: {
      const v1::RectificationNoticeIssued& b = e.rectification_notice_issued();
      v1::IssueRectificationNoticeRequest* r =
          Common(command.mutable_issue_rectification_notice(), e);
      r->set_notice_id(b.notice_id());
      r->set_content(b.content());
      if (b.has_deadline()) *r->mutable_deadline() = b.deadline();
      break;
    }
    default:
      return std::nullopt;
  }
  return command;
}

std::optional<std::string> Readmit(const v1::Case& before, std::span<const v1::Event> events,
                                   const Context& context) {
  CW_CHECK_MSG(context.policy != nullptr, "Readmit needs a policy");
  std::optional<v1::Command> command = CommandFor(before, events);
  if (!command.has_value()) {
    return Cat("no single command emits these ", events.size(), " events (kind field ",
               events.empty() ? 0 : static_cast<int>(events.front().body_case()), ")");
  }
  // A sign-off that records the closure policy it was judged by (rules/2026.4 on) is
  // decided again under that policy, not the one in force now: a closure admitted under a
  // policy changed since is re-checked against its own (which the record shows).
  Policy recorded;
  Context decide_in = context;
  if (!events.empty() && events.front().has_closure_signed_off() &&
      events.front().closure_signed_off().has_policy()) {
    const v1::ClosurePolicyApplied& applied = events.front().closure_signed_off().policy();
    recorded = *context.policy;
    recorded.closure.approvers_min = applied.approvers_min();
    recorded.closure.city_approvers_min = applied.city_approvers_min();
    recorded.closure.county_approvers_min = applied.county_approvers_min();
    if (absl::Status valid = ValidatePolicy(recorded); !valid.ok()) {
      return Cat("the closure policy the sign-off records is not one a server could run: ",
                 valid.message());
    }
    decide_in.policy = &recorded;
  }
  Decision decision = Decide(before, *command, decide_in);
  if (const Refusal* refusal = std::get_if<Refusal>(&decision)) {
    return Cat("the rules refuse it: ", ReasonCode(refusal->reason), ": ", refusal->message_en);
  }
  const Events& emitted = std::get<Events>(decision);
  if (emitted.size() != events.size()) {
    return Cat("the rules emit ", emitted.size(), " events for this command, the log holds ",
               events.size());
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (emitted[i].SerializeAsString() != events[i].SerializeAsString()) {
      return Cat("event ", i + 1, " of the command differs from what the rules emit: ",
                 emitted[i].ShortDebugString(), " vs. stored ", events[i].ShortDebugString());
    }
  }
  return std::nullopt;
}

}  // namespace casework::workflow

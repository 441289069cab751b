// One test per rule of docs/rules.md, named after it: the refusal of each reason with its
// category and field, the precedence between reasons, and the behaviour of each accepted
// transition (Given a case in some stage, When a command, Then these events and state).
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "services/workflow/decider.h"
#include "services/workflow/limits.h"
#include "services/workflow/names.h"
#include "services/workflow/policy.h"
#include "services/workflow/readmit.h"
#include "services/workflow/text.h"
#include "services/workflow/workflow_testing.h"

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;
using testing::Scenario;
using testing::Stage;

void Expect(const Refusal& r, Reason reason, Category category, std::string_view field) {
  EXPECT_EQ(ReasonCode(r.reason), ReasonCode(reason)) << r.message_en;
  EXPECT_EQ(CategoryName(r.category), CategoryName(category)) << r.message_en;
  EXPECT_EQ(r.field, field) << r.message_en;
  EXPECT_FALSE(r.message_en.empty());
  EXPECT_FALSE(r.message_zh.empty());
  // Messages are lower-case (they start with a value or a lower-case word).
  EXPECT_FALSE(r.message_en.front() >= 'A' && r.message_en.front() <= 'Z') << r.message_en;
}

Principal With(Principal p, std::string id, std::vector<Role> roles) {
  p.id = std::move(id);
  p.roles = std::move(roles);
  return p;
}

// --- Addressing, existence, version ---------------------------------------------------

TEST(Rules, CommandEmpty) {
  Scenario s(Stage::kListed);
  Expect(s.Refused(s.cast().lister, v1::Command()), Reason::kCommandEmpty,
         Category::kInvalidArgument, "kind");
}

TEST(Rules, ActorUnidentified) {
  Scenario s;
  Principal nobody = s.cast().lister;
  nobody.id.clear();
  Expect(s.Refused(nobody, testing::CreateCase(s.now())), Reason::kActorUnidentified,
         Category::kUnauthenticated, "");
}

TEST(Rules, RequestIdInvalid) {
  Scenario s(Stage::kListed);
  v1::Command c = testing::ReviewListing(s.version());
  c.mutable_review_listing()->set_request_id("");
  Expect(s.Refused(s.cast().reviewer, c), Reason::kRequestIdInvalid, Category::kInvalidArgument,
         "request_id");
  c.mutable_review_listing()->set_request_id(std::string(129, 'r'));
  Expect(s.Refused(s.cast().reviewer, c), Reason::kRequestIdInvalid, Category::kInvalidArgument,
         "request_id");
}

TEST(Rules, CaseIdInvalid) {
  Scenario s;
  for (const char* bad : {"", "C1", "-c1", "c_1", "c1/x"}) {
    SCOPED_TRACE(bad);
    Expect(s.Refused(s.cast().lister, testing::CreateCase(s.now(), bad)), Reason::kCaseIdInvalid,
           Category::kInvalidArgument, "case_id");
  }
  Expect(s.Refused(s.cast().lister, testing::CreateCase(s.now(), std::string(65, 'a'))),
         Reason::kCaseIdInvalid, Category::kInvalidArgument, "case_id");
}

TEST(Rules, CaseNameInvalid) {
  Scenario s(Stage::kListed);
  v1::Command c = testing::ReviewListing(s.version());
  c.mutable_review_listing()->set_name("case/c1");
  Expect(s.Refused(s.cast().reviewer, c), Reason::kCaseNameInvalid, Category::kInvalidArgument,
         "name");
  c.mutable_review_listing()->set_name("cases/c2");  // not the loaded case
  Expect(s.Refused(s.cast().reviewer, c), Reason::kCaseNameInvalid, Category::kInvalidArgument,
         "name");
}

TEST(Rules, CaseAlreadyExists) {
  Scenario s(Stage::kListed);
  Expect(s.Refused(s.cast().lister, testing::CreateCase(s.now())), Reason::kCaseAlreadyExists,
         Category::kAlreadyExists, "case_id");
}

TEST(Rules, CaseNotFound) {
  Scenario s;
  Expect(s.Refused(s.cast().reviewer, testing::ReviewListing(0)), Reason::kCaseNotFound,
         Category::kNotFound, "name");
}

TEST(Rules, StaleExpectedVersion) {
  Scenario s(Stage::kListed);
  Expect(s.Refused(s.cast().reviewer, testing::ReviewListing(s.version() - 1)),
         Reason::kStaleExpectedVersion, Category::kAborted, "expected_version");
  Expect(s.Refused(s.cast().reviewer, testing::ReviewListing(s.version() + 1)),
         Reason::kStaleExpectedVersion, Category::kAborted, "expected_version");
}

// --- Who may act ----------------------------------------------------------------------

TEST(Rules, ActorLacksRole) {
  Scenario s;
  Expect(s.Refused(s.cast().auditor, testing::CreateCase(s.now())), Reason::kActorLacksRole,
         Category::kPermissionDenied, "");
  Expect(s.Refused(s.cast().admin, testing::CreateCase(s.now())), Reason::kActorLacksRole,
         Category::kPermissionDenied, "");
  s.AdvanceTo(Stage::kAssisted);
  // An auditor reads only: it may record accountability events, nothing else.
  Expect(s.Refused(s.cast().auditor, testing::RecordMeasure(s.version())), Reason::kActorLacksRole,
         Category::kPermissionDenied, "");
  Expect(s.Refused(s.cast().lister, testing::RecordInspection(s.version(), "i9", true)),
         Reason::kActorLacksRole, Category::kPermissionDenied, "");
}

TEST(Rules, OrganisationJurisdictionInvalid) {
  Scenario s;
  for (const char* bad : {"city/east/hill", "city/east/hill/dongshan/x", "city//hill/dongshan",
                          "city/east/hill/dong shan", ""}) {
    SCOPED_TRACE(bad);
    v1::Command c = testing::CreateCase(s.now());
    c.mutable_create_case()->mutable_organisation()->set_jurisdiction(bad);
    Expect(s.Refused(s.cast().lister, c), Reason::kOrganisationJurisdictionInvalid,
           Category::kInvalidArgument, "organisation.jurisdiction");
  }
}

TEST(Rules, JurisdictionNotCovered) {
  Scenario s;
  Expect(s.Refused(s.cast().outsider, testing::CreateCase(s.now())),
         Reason::kJurisdictionNotCovered, Category::kPermissionDenied, "organisation.jurisdiction");
  s.AdvanceTo(Stage::kListed);
  Expect(s.Refused(s.cast().outsider, testing::ReviewListing(s.version())),
         Reason::kJurisdictionNotCovered, Category::kPermissionDenied, "");
  // Segment-wise: "city/eas" does not cover "city/east/...".
  Principal near = s.cast().reviewer;
  near.jurisdiction = "city/eas";
  Expect(s.Refused(near, testing::ReviewListing(s.version())), Reason::kJurisdictionNotCovered,
         Category::kPermissionDenied, "");
}

TEST(Rules, ReviewerMustBeCityOrCountyDepartment) {
  Scenario s(Stage::kListed);
  Principal township = s.cast().reviewer;
  township.jurisdiction = "city/east/hill";
  Expect(s.Refused(township, testing::ReviewListing(s.version())),
         Reason::kReviewerMustBeCityOrCountyDepartment, Category::kPermissionDenied, "");
  Principal city = s.cast().reviewer;
  city.jurisdiction = "city";
  EXPECT_TRUE(std::holds_alternative<Events>(s.Try(city, testing::ReviewListing(s.version()))));
}

TEST(Rules, ListerMustNotReviewOwnListing) {
  Scenario s;
  const Principal both = With(s.cast().lister, "li.na", {Role::kLister, Role::kReviewer});
  s.Do(both, testing::CreateCase(s.now()));
  Expect(s.Refused(both, testing::ReviewListing(s.version())),
         Reason::kListerMustNotReviewOwnListing, Category::kPermissionDenied, "");
}

TEST(Rules, OnlyListerMayAmendListing) {
  Scenario s(Stage::kListedReturned);
  const Principal other = With(s.cast().lister, "he.ping", {Role::kLister});
  Expect(s.Refused(other, testing::AmendListing(s.version(), s.now())),
         Reason::kOnlyListerMayAmendListing, Category::kPermissionDenied, "");
}

TEST(Rules, InspectorMustNotHaveAssisted) {
  // Named in the assignment.
  Scenario s(Stage::kAssisted);
  const Principal secretary =
      With(s.cast().secretary, "zhang.wei", {Role::kAssister, Role::kInspector});
  Expect(s.Refused(secretary, testing::RecordInspection(s.version(), "i9", true)),
         Reason::kInspectorMustNotHaveAssisted, Category::kPermissionDenied, "");
  // Recorded an activity without being assigned.
  const Principal helper = With(s.cast().cadre, "gao.yu", {Role::kAssister, Role::kInspector});
  s.Do(helper, testing::RecordFunds(s.version()));
  Expect(s.Refused(helper, testing::RecordInspection(s.version(), "i9", true)),
         Reason::kInspectorMustNotHaveAssisted, Category::kPermissionDenied, "");
  // The follow-up review of a closed case, too.
  Scenario closed(Stage::kClosed);
  Expect(closed.Refused(secretary,
                        testing::RecordFollowUpReview(closed.version(), false, closed.now())),
         Reason::kInspectorMustNotHaveAssisted, Category::kPermissionDenied, "");
}

// --- In which state -------------------------------------------------------------------

TEST(Rules, CommandNotAllowedInState) {
  Scenario s(Stage::kListedConfirmed);
  const Refusal r = s.Refused(s.cast().secretary, testing::RecordMeasure(s.version()));
  Expect(r, Reason::kCommandNotAllowedInState, Category::kFailedPrecondition, "");
  EXPECT_THAT(r.message_en, ::testing::HasSubstr("LISTED"));
  EXPECT_THAT(r.message_en, ::testing::HasSubstr("ASSISTED"));
}

TEST(Rules, ListingAlreadyConfirmed) {
  Scenario s(Stage::kListedConfirmed);
  Expect(s.Refused(s.cast().reviewer, testing::ReviewListing(s.version(), false)),
         Reason::kListingAlreadyConfirmed, Category::kFailedPrecondition, "");
  Expect(s.Refused(s.cast().lister, testing::AmendListing(s.version(), s.now())),
         Reason::kListingAlreadyConfirmed, Category::kFailedPrecondition, "");
}

TEST(Rules, ListingAwaitsAmendment) {
  Scenario s(Stage::kListedReturned);
  Expect(s.Refused(s.cast().reviewer, testing::ReviewListing(s.version())),
         Reason::kListingAwaitsAmendment, Category::kFailedPrecondition, "");
  s.Do(s.cast().lister, testing::AmendListing(s.version(), s.now()));
  s.Do(s.cast().reviewer, testing::ReviewListing(s.version()));
  EXPECT_TRUE(s.state().listing_review().confirmed());
}

TEST(Rules, ListingNotConfirmed) {
  Scenario s(Stage::kListed);
  Expect(s.Refused(s.cast().lister, testing::AssignAssistance(s.version())),
         Reason::kListingNotConfirmed, Category::kFailedPrecondition, "");
}

// --- Sign-off -------------------------------------------------------------------------

TEST(Rules, SignOffSignatureNotVerified) {
  Scenario s(Stage::kVerified);
  const Principal& approver = s.cast().county_approver;
  const v1::Command c = testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(approver));
  Context context = s.As(approver);
  context.verified_key_id.clear();
  Decision d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  Expect(std::get<Refusal>(d), Reason::kSignOffSignatureNotVerified, Category::kPermissionDenied,
         "signature");
  context.verified_key_id = "key-someone-else";
  d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  Expect(std::get<Refusal>(d), Reason::kSignOffSignatureNotVerified, Category::kPermissionDenied,
         "signature");
}

// Under rules/2026.3 a verified signature names the case's latest leaf hash; a shell that
// passes none has not verified the statement of these rules.
TEST(Rules, SignOffWithoutTheLatestLeafIsNotVerified) {
  Scenario s(Stage::kVerified);
  const Principal& approver = s.cast().county_approver;
  const v1::Command c = testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(approver));
  Context context = s.As(approver);
  context.verified_latest_leaf_hash.clear();
  Decision d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  Expect(std::get<Refusal>(d), Reason::kSignOffSignatureNotVerified, Category::kPermissionDenied,
         "signature");
  context.verified_latest_leaf_hash = std::string(31, 'x');
  d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  // The rules before 2026.3 signed no leaf hash, and record none.
  context.rules = kRulesVersion2026_2;
  context.verified_latest_leaf_hash.clear();
  d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Events>(d));
  EXPECT_TRUE(
      std::get<Events>(d).front().closure_signed_off().sign_off().latest_leaf_hash().empty());
  // The current rules record the hash the shell verified.
  context = s.As(approver);
  d = Decide(s.state(), c, context);
  ASSERT_TRUE(std::holds_alternative<Events>(d));
  EXPECT_EQ(std::get<Events>(d).front().closure_signed_off().sign_off().latest_leaf_hash(),
            context.verified_latest_leaf_hash);
}

// Under rules/2026.4 a sign-off records the closure policy it was judged by, and is decided
// again under that one: a closure admitted before the policy changed stays admitted, and a
// record claiming a policy that would not have closed the case does not verify.
TEST(Rules, ASignOffRecordsTheClosurePolicyItWasJudgedBy) {
  Scenario s(Stage::kVerified);
  const Principal& county = s.cast().county_approver;
  const Principal& city = s.cast().city_approver;
  const Events first =
      s.Do(county, testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(county)));
  ASSERT_EQ(first.size(), 1u);  // one of two approvers: not closed yet
  ASSERT_TRUE(first[0].closure_signed_off().has_policy());
  EXPECT_EQ(first[0].closure_signed_off().policy().approvers_min(), 2);
  EXPECT_EQ(first[0].closure_signed_off().policy().county_approvers_min(), 1);
  EXPECT_EQ(first[0].closure_signed_off().policy().city_approvers_min(), 0);
  const v1::Case before = s.state();
  const Context then = s.As(city);
  const Events closing =
      s.Do(city, testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(city)));
  ASSERT_EQ(closing.size(), 2u);
  ASSERT_TRUE(closing[1].has_case_closed());
  EXPECT_EQ(Readmit(before, closing, then), std::nullopt);
  // The server's policy now asks for three approvers: the closure is judged by its own.
  Policy stricter = *then.policy;
  stricter.closure.approvers_min = 3;
  Context now = then;
  now.policy = &stricter;
  EXPECT_EQ(Readmit(before, closing, now), std::nullopt);
  // A record that claims a policy of three approvers, under which two did not close it.
  Events claimed = closing;
  claimed[0].mutable_closure_signed_off()->mutable_policy()->set_approvers_min(3);
  EXPECT_NE(Readmit(before, claimed, then), std::nullopt);
  // Or one no server could run (no approver at all).
  claimed[0].mutable_closure_signed_off()->mutable_policy()->set_approvers_min(0);
  const std::optional<std::string> invalid = Readmit(before, claimed, then);
  ASSERT_TRUE(invalid.has_value());
  EXPECT_NE(invalid->find("not one a server could run"), std::string::npos) << *invalid;
  // The rules before 2026.4 record no policy, and are re-decided under the current one.
  Context older = then;
  older.rules = kRulesVersion2026_3;
  Decision d = Decide(
      before, testing::SignOffClosure(before.version(), "insp-1", testing::KeyIdOf(city)), older);
  ASSERT_TRUE(std::holds_alternative<Events>(d));
  EXPECT_FALSE(std::get<Events>(d).front().closure_signed_off().has_policy());
}

TEST(Rules, ApproverLevelUnknown) {
  Scenario s(Stage::kVerified);
  Principal approver = s.cast().county_approver;
  approver.approval_level = v1::APPROVAL_LEVEL_UNSPECIFIED;
  Expect(s.Refused(approver,
                   testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(approver))),
         Reason::kApproverLevelUnknown, Category::kPermissionDenied, "");
}

TEST(Rules, SignOffInspectionNotLatestPassed) {
  Scenario s(Stage::kVerified);
  const Principal& approver = s.cast().county_approver;
  Expect(s.Refused(approver,
                   testing::SignOffClosure(s.version(), "insp-0", testing::KeyIdOf(approver))),
         Reason::kSignOffInspectionNotLatestPassed, Category::kFailedPrecondition, "inspection_id");
}

TEST(Rules, ApproverAlreadySignedOff) {
  Scenario s(Stage::kVerified);
  const Principal& approver = s.cast().county_approver;
  s.Do(approver, testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(approver)));
  Expect(s.Refused(approver,
                   testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(approver))),
         Reason::kApproverAlreadySignedOff, Category::kFailedPrecondition, "");
}

// --- Fields ---------------------------------------------------------------------------

TEST(Rules, TextTooLong) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->set_findings(std::string(kTextBytesMax + 1, 'x'));
  Expect(s.Refused(s.cast().lister, c), Reason::kTextTooLong, Category::kInvalidArgument,
         "findings");
  c.mutable_create_case()->set_findings(std::string(kTextBytesMax, 'x'));
  EXPECT_TRUE(std::holds_alternative<Events>(s.Try(s.cast().lister, c)));
}

TEST(Rules, TooManyItems) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  for (int i = 0; i < kPeopleMax; ++i) {
    c.mutable_assign_assistance()->mutable_assignment()->add_stationed_cadres()->set_person_id(
        "cadre-" + std::to_string(i));
  }
  Expect(s.Refused(s.cast().lister, c), Reason::kTooManyItems, Category::kInvalidArgument,
         "assignment.stationed_cadres");
}

TEST(Rules, OrganisationIdInvalid) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->mutable_organisation()->set_organisation_id("");
  Expect(s.Refused(s.cast().lister, c), Reason::kOrganisationIdInvalid, Category::kInvalidArgument,
         "organisation.organisation_id");
}

TEST(Rules, OrganisationNameRequired) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->mutable_organisation()->set_display_name("  ");
  Expect(s.Refused(s.cast().lister, c), Reason::kOrganisationNameRequired,
         Category::kInvalidArgument, "organisation.display_name");
}

TEST(Rules, OrganisationKindRequired) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->mutable_organisation()->set_kind(v1::ORGANISATION_KIND_UNSPECIFIED);
  Expect(s.Refused(s.cast().lister, c), Reason::kOrganisationKindRequired,
         Category::kInvalidArgument, "organisation.kind");
}

TEST(Rules, InspectionIdInvalid) {
  Scenario s(Stage::kAssisted);
  Expect(s.Refused(s.cast().inspector, testing::RecordInspection(s.version(), "a b", true)),
         Reason::kInspectionIdInvalid, Category::kInvalidArgument, "inspection_id");
}

TEST(Rules, CaseTypeRequired) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->set_case_type(v1::CASE_TYPE_UNSPECIFIED);
  Expect(s.Refused(s.cast().lister, c), Reason::kCaseTypeRequired, Category::kInvalidArgument,
         "case_type");
  c.mutable_create_case()->set_case_type(static_cast<v1::CaseType>(9));
  Expect(s.Refused(s.cast().lister, c), Reason::kCaseTypeRequired, Category::kInvalidArgument,
         "case_type");
}

TEST(Rules, ProblemCategoriesRequired) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->clear_problem_categories();
  Expect(s.Refused(s.cast().lister, c), Reason::kProblemCategoriesRequired,
         Category::kInvalidArgument, "problem_categories");
}

TEST(Rules, ProblemCategoryInvalid) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->add_problem_categories(static_cast<v1::ProblemCategory>(7));
  Expect(s.Refused(s.cast().lister, c), Reason::kProblemCategoryInvalid, Category::kInvalidArgument,
         "problem_categories[2]");
  c.mutable_create_case()->set_problem_categories(2, v1::PROBLEM_CATEGORY_UNSPECIFIED);
  Expect(s.Refused(s.cast().lister, c), Reason::kProblemCategoryInvalid, Category::kInvalidArgument,
         "problem_categories[2]");
}

TEST(Rules, ProblemCategoryRepeated) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  Expect(s.Refused(s.cast().lister, c), Reason::kProblemCategoryRepeated,
         Category::kInvalidArgument, "problem_categories[2]");
}

TEST(Rules, FindingsRequired) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->set_findings("\n");
  Expect(s.Refused(s.cast().lister, c), Reason::kFindingsRequired, Category::kInvalidArgument,
         "findings");
}

TEST(Rules, NoticeIdRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::IssueRectificationNotice(s.version());
  c.mutable_issue_rectification_notice()->clear_notice_id();
  Expect(s.Refused(s.cast().admin, c), Reason::kNoticeIdRequired, Category::kInvalidArgument,
         "notice_id");
}

TEST(Rules, NoticeContentRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::IssueRectificationNotice(s.version());
  c.mutable_issue_rectification_notice()->clear_content();
  Expect(s.Refused(s.cast().admin, c), Reason::kNoticeContentRequired, Category::kInvalidArgument,
         "content");
}

TEST(Rules, DeadlineNotAfterNow) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->mutable_deadline()->set_seconds(s.now() / 1'000'000);
  Expect(s.Refused(s.cast().lister, c), Reason::kDeadlineNotAfterNow, Category::kInvalidArgument,
         "deadline");
  c.mutable_create_case()->clear_deadline();
  Expect(s.Refused(s.cast().lister, c), Reason::kDeadlineNotAfterNow, Category::kInvalidArgument,
         "deadline");
  Scenario closed(Stage::kClosed);
  v1::Command relapse = testing::RecordFollowUpReview(closed.version(), true, closed.now());
  relapse.mutable_record_follow_up_review()->mutable_deadline()->set_seconds(1);
  Expect(closed.Refused(closed.cast().inspector, relapse), Reason::kDeadlineNotAfterNow,
         Category::kInvalidArgument, "deadline");
}

TEST(Rules, ReviewCommentRequired) {
  Scenario s(Stage::kListed);
  v1::Command c = testing::ReviewListing(s.version(), false);
  c.mutable_review_listing()->clear_comment();
  Expect(s.Refused(s.cast().reviewer, c), Reason::kReviewCommentRequired,
         Category::kInvalidArgument, "comment");
}

TEST(Rules, ReplacementReasonRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::ReplaceAssignment(s.version());
  c.mutable_replace_assignment()->clear_reason();
  Expect(s.Refused(s.cast().lister, c), Reason::kReplacementReasonRequired,
         Category::kInvalidArgument, "reason");
}

// No decoupling before transformation (不转化不脱钩): a replacement is an assignment in full,
// so it cannot drop the first secretary or the stationed cadres either.
TEST(Rules, AReplacementKeepsAFirstSecretaryAndStationedCadres) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::ReplaceAssignment(s.version());
  c.mutable_replace_assignment()->mutable_assignment()->clear_first_secretary();
  Expect(s.Refused(s.cast().lister, c), Reason::kFirstSecretaryRequired, Category::kInvalidArgument,
         "assignment.first_secretary.person_id");
  c = testing::ReplaceAssignment(s.version());
  c.mutable_replace_assignment()->mutable_assignment()->clear_stationed_cadres();
  Expect(s.Refused(s.cast().lister, c), Reason::kStationedCadresRequired,
         Category::kInvalidArgument, "assignment.stationed_cadres");
}

TEST(Rules, PairedDepartmentRequired) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->clear_paired_department();
  Expect(s.Refused(s.cast().lister, c), Reason::kPairedDepartmentRequired,
         Category::kInvalidArgument, "assignment.paired_department.department_id");
}

TEST(Rules, PairedDepartmentKindMismatch) {
  Scenario s(Stage::kListedConfirmed);  // a POOR case: economic departments
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->mutable_paired_department()->set_kind(
      v1::DEPARTMENT_KIND_POLITICAL_LEGAL);
  const Refusal r = s.Refused(s.cast().lister, c);
  Expect(r, Reason::kPairedDepartmentKindMismatch, Category::kInvalidArgument,
         "assignment.paired_department.kind");
  EXPECT_THAT(r.message_en, ::testing::HasSubstr("ECONOMIC"));
}

TEST(Rules, PairedDepartmentKindFitsEachCaseType) {
  const std::pair<v1::CaseType, v1::DepartmentKind> kFits[] = {
      {v1::CASE_TYPE_WEAK, v1::DEPARTMENT_KIND_PARTY_GOVERNMENT},
      {v1::CASE_TYPE_POOR, v1::DEPARTMENT_KIND_ECONOMIC},
      {v1::CASE_TYPE_DISORDERLY, v1::DEPARTMENT_KIND_POLITICAL_LEGAL},
      {v1::CASE_TYPE_INDUSTRY, v1::DEPARTMENT_KIND_AGRICULTURAL_TECH}};
  for (const auto& [type, fit] : kFits) {
    Scenario s;
    v1::Command create = testing::CreateCase(s.now());
    create.mutable_create_case()->set_case_type(type);
    s.Do(s.cast().lister, create);
    s.Do(s.cast().reviewer, testing::ReviewListing(s.version()));
    for (int kind = 1; kind <= 4; ++kind) {
      SCOPED_TRACE(std::to_string(type) + " with kind " + std::to_string(kind));
      v1::Command c = testing::AssignAssistance(s.version());
      c.mutable_assign_assistance()->mutable_assignment()->mutable_paired_department()->set_kind(
          static_cast<v1::DepartmentKind>(kind));
      const Decision d = s.Try(s.cast().lister, c);
      EXPECT_EQ(std::holds_alternative<Events>(d), kind == fit);
    }
  }
}

TEST(Rules, FirstSecretaryRequired) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->clear_first_secretary();
  Expect(s.Refused(s.cast().lister, c), Reason::kFirstSecretaryRequired, Category::kInvalidArgument,
         "assignment.first_secretary.person_id");
}

TEST(Rules, StationedCadresRequired) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->clear_stationed_cadres();
  Expect(s.Refused(s.cast().lister, c), Reason::kStationedCadresRequired,
         Category::kInvalidArgument, "assignment.stationed_cadres");
}

TEST(Rules, TalkedWithRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordAdmonishmentTalk(s.version());
  c.mutable_record_admonishment_talk()->clear_talked_with();
  Expect(s.Refused(s.cast().auditor, c), Reason::kTalkedWithRequired, Category::kInvalidArgument,
         "talked_with");
}

TEST(Rules, PersonIdInvalid) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->add_stationed_cadres()->set_person_id("");
  Expect(s.Refused(s.cast().lister, c), Reason::kPersonIdInvalid, Category::kInvalidArgument,
         "assignment.stationed_cadres[1].person_id");
}

TEST(Rules, AssignedPersonRepeated) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->add_stationed_cadres()->set_person_id(
      "zhang.wei");  // the first secretary
  Expect(s.Refused(s.cast().lister, c), Reason::kAssignedPersonRepeated, Category::kInvalidArgument,
         "assignment.stationed_cadres[1].person_id");
}

TEST(Rules, PlanRequired) {
  Scenario s(Stage::kListedConfirmed);
  v1::Command c = testing::AssignAssistance(s.version());
  c.mutable_assign_assistance()->mutable_assignment()->clear_plan();
  Expect(s.Refused(s.cast().lister, c), Reason::kPlanRequired, Category::kInvalidArgument,
         "assignment.plan");
}

TEST(Rules, TalkSubjectRequired) {
  Scenario s(Stage::kClosed);
  v1::Command c = testing::RecordAdmonishmentTalk(s.version());
  c.mutable_record_admonishment_talk()->clear_subject();
  Expect(s.Refused(s.cast().county_approver, c), Reason::kTalkSubjectRequired,
         Category::kInvalidArgument, "subject");
}

TEST(Rules, VisitorsRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordFieldVisit(s.version(), s.now());
  c.mutable_record_field_visit()->clear_visitors();
  Expect(s.Refused(s.cast().secretary, c), Reason::kVisitorsRequired, Category::kInvalidArgument,
         "visitors");
}

TEST(Rules, VisitorRepeated) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordFieldVisit(s.version(), s.now());
  c.mutable_record_field_visit()->add_visitors("zhang.wei");
  Expect(s.Refused(s.cast().secretary, c), Reason::kVisitorRepeated, Category::kInvalidArgument,
         "visitors[1]");
}

TEST(Rules, VisitorNotAssigned) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordFieldVisit(s.version(), s.now());
  c.mutable_record_field_visit()->add_visitors("li.na");
  Expect(s.Refused(s.cast().secretary, c), Reason::kVisitorNotAssigned, Category::kInvalidArgument,
         "visitors[1]");
}

TEST(Rules, VisitTimeInvalid) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordFieldVisit(s.version(), s.now() + 2 * testing::kHourMicros);
  Expect(s.Refused(s.cast().secretary, c), Reason::kVisitTimeInvalid, Category::kInvalidArgument,
         "visit_time");
  c.mutable_record_field_visit()->clear_visit_time();
  Expect(s.Refused(s.cast().secretary, c), Reason::kVisitTimeInvalid, Category::kInvalidArgument,
         "visit_time");
}

TEST(Rules, MeasureDescriptionRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordMeasure(s.version());
  c.mutable_record_measure()->clear_description();
  Expect(s.Refused(s.cast().secretary, c), Reason::kMeasureDescriptionRequired,
         Category::kInvalidArgument, "description");
}

TEST(Rules, MeasureCategoryNotListed) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordMeasure(s.version());
  c.mutable_record_measure()->set_problem_category(v1::PROBLEM_CATEGORY_STABILITY);
  Expect(s.Refused(s.cast().secretary, c), Reason::kMeasureCategoryNotListed,
         Category::kInvalidArgument, "problem_category");
}

TEST(Rules, FundsAmountOutOfRange) {
  Scenario s(Stage::kAssisted);
  for (int64_t bad : {int64_t{0}, int64_t{-5}, kFundsAmountFenMax + 1}) {
    SCOPED_TRACE(bad);
    Expect(s.Refused(s.cast().secretary, testing::RecordFunds(s.version(), bad)),
           Reason::kFundsAmountOutOfRange, Category::kInvalidArgument, "amount_fen");
  }
}

// A total that would overflow is refused, not folded (folding it would abort).
TEST(Rules, FundsTotalPastTheLargestRecordableIsRefused) {
  Scenario s(Stage::kAssisted);
  v1::Case near_full = s.state();
  near_full.set_funds_provided_fen(INT64_MAX - kFundsAmountFenMax + 1);
  const Decision refused = Decide(near_full, testing::RecordFunds(s.version(), kFundsAmountFenMax),
                                  s.As(s.cast().secretary));
  const Refusal* refusal = std::get_if<Refusal>(&refused);
  ASSERT_NE(refusal, nullptr) << "a total past INT64_MAX was accepted";
  Expect(*refusal, Reason::kFundsAmountOutOfRange, Category::kInvalidArgument, "amount_fen");
  EXPECT_NE(refusal->message_en.find("past the largest total it can record"), std::string::npos)
      << refusal->message_en;
  // The last fen that fits is accepted.
  const Decision fits = Decide(near_full, testing::RecordFunds(s.version(), kFundsAmountFenMax - 1),
                               s.As(s.cast().secretary));
  EXPECT_EQ(std::get_if<Refusal>(&fits), nullptr);
}

TEST(Rules, FurtherMeasuresRequired) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordInspection(s.version(), "i2", false);
  c.mutable_record_inspection()->clear_further_measures();
  Expect(s.Refused(s.cast().inspector, c), Reason::kFurtherMeasuresRequired,
         Category::kInvalidArgument, "further_measures");
}

TEST(Rules, FurtherMeasuresOnlyWhenFailed) {
  Scenario s(Stage::kAssisted);
  v1::Command c = testing::RecordInspection(s.version(), "i2", true);
  c.mutable_record_inspection()->set_further_measures("more");
  Expect(s.Refused(s.cast().inspector, c), Reason::kFurtherMeasuresOnlyWhenFailed,
         Category::kInvalidArgument, "further_measures");
}

TEST(Rules, SendBackReasonRequired) {
  Scenario s(Stage::kVerified);
  v1::Command c = testing::SendBack(s.version());
  c.mutable_send_back()->clear_reason();
  Expect(s.Refused(s.cast().county_approver, c), Reason::kSendBackReasonRequired,
         Category::kInvalidArgument, "reason");
}

TEST(Rules, RelapseFieldsOnlyWhenRelapsed) {
  Scenario s(Stage::kClosed);
  v1::Command c = testing::RecordFollowUpReview(s.version(), false, s.now());
  c.mutable_record_follow_up_review()->add_problem_categories(v1::PROBLEM_CATEGORY_STABILITY);
  Expect(s.Refused(s.cast().inspector, c), Reason::kRelapseFieldsOnlyWhenRelapsed,
         Category::kInvalidArgument, "problem_categories");
}

TEST(Rules, InspectionIdReused) {
  Scenario s(Stage::kAssisted);
  s.Do(s.cast().inspector, testing::RecordInspection(s.version(), "i1", false));
  Expect(s.Refused(s.cast().inspector, testing::RecordInspection(s.version(), "i1", true)),
         Reason::kInspectionIdReused, Category::kAlreadyExists, "inspection_id");
}

// --- What a case's row keeps ---------------------------------------------------------

// Every command rewrites its case's row, so the history the row holds is bounded
// (limits.h): the latest replaced assignments, and the findings of the latest inspections
// of the round. The rules still see every inspection's id and inspector.
TEST(CaseRow, KeepsTheLatestReplacedAssignmentsAndInspectionFindings) {
  Scenario s(Stage::kAssisted);
  const std::string first_plan = s.state().assignment().plan();
  const int replacements = kReplacedAssignmentsKept + 3;
  for (int i = 0; i < replacements; ++i) {
    v1::Command c = testing::ReplaceAssignment(s.version());
    c.mutable_replace_assignment()->mutable_assignment()->set_plan("plan " + std::to_string(i));
    s.Do(s.cast().lister, c);
  }
  // Replaced, oldest first: the first assignment, then plans 0 to 9; the latest 8 kept.
  ASSERT_EQ(s.state().replaced_assignments_size(), kReplacedAssignmentsKept);
  for (int i = 0; i < kReplacedAssignmentsKept; ++i) {
    EXPECT_EQ(s.state().replaced_assignments(i).plan(),
              "plan " + std::to_string(replacements - 1 - kReplacedAssignmentsKept + i));
  }
  EXPECT_EQ(s.state().assignment().plan(), "plan " + std::to_string(replacements - 1));
  EXPECT_NE(s.state().replaced_assignments(0).plan(), first_plan);

  const int failed = kInspectionFindingsKept + 2;
  for (int i = 0; i < failed; ++i) {
    v1::Command c = testing::RecordInspection(s.version(), "i" + std::to_string(i), false);
    c.mutable_record_inspection()->set_findings("findings " + std::to_string(i));
    s.Do(s.cast().inspector, c);
  }
  ASSERT_EQ(s.state().inspections_size(), failed);
  for (int i = 0; i < failed; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(s.state().inspections(i).inspection_id(), "i" + std::to_string(i));
    EXPECT_EQ(s.state().inspections(i).inspector(), s.cast().inspector.id);
    EXPECT_FALSE(s.state().inspections(i).passed());
    EXPECT_EQ(s.state().inspections(i).findings(),
              i < failed - kInspectionFindingsKept ? "" : "findings " + std::to_string(i));
  }
  // The id of an inspection whose findings the row dropped is still taken.
  Expect(s.Refused(s.cast().inspector, testing::RecordInspection(s.version(), "i0", true)),
         Reason::kInspectionIdReused, Category::kAlreadyExists, "inspection_id");
  // And the case goes on to its closure.
  s.Do(s.cast().inspector, testing::RecordInspection(s.version(), "pass", true));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
  EXPECT_EQ(s.state().inspections(failed).findings(),
            testing::RecordInspection(0, "pass", true).record_inspection().findings());
  EXPECT_EQ(s.state().inspections(failed - kInspectionFindingsKept).findings(), "");
}

// --- Precedence -----------------------------------------------------------------------

TEST(Precedence, NotFoundBeforeStaleVersion) {
  Scenario s;
  EXPECT_EQ(s.Refused(s.cast().reviewer, testing::ReviewListing(7)).reason, Reason::kCaseNotFound);
}

// The version check comes before the role and the jurisdiction, so its refusal tells the
// current version (and CASE_ALREADY_EXISTS the state) only to someone who may read the
// case.
TEST(Precedence, AStaleVersionOrAnExistingCaseShowsNothingOutsideTheJurisdiction) {
  Scenario s(Stage::kAssisted);
  const Principal far = testing::MakePrincipal("far.away", {Role::kLister}, "city/west");
  v1::Command c = testing::RecordMeasure(s.version() - 1);
  Refusal r = s.Refused(far, c);
  Expect(r, Reason::kStaleExpectedVersion, Category::kAborted, "expected_version");
  EXPECT_EQ(r.message_en.find(std::to_string(s.version())), std::string::npos) << r.message_en;
  r = s.Refused(s.cast().lister, c);
  EXPECT_NE(r.message_en.find(std::to_string(s.version())), std::string::npos) << r.message_en;
  r = s.Refused(far, testing::CreateCase(s.now()));
  Expect(r, Reason::kCaseAlreadyExists, Category::kAlreadyExists, "case_id");
  EXPECT_EQ(r.message_en.find("ASSISTED"), std::string::npos) << r.message_en;
  r = s.Refused(s.cast().lister, testing::CreateCase(s.now()));
  EXPECT_NE(r.message_en.find("ASSISTED"), std::string::npos) << r.message_en;
}

TEST(Precedence, StaleVersionBeforeRole) {
  Scenario s(Stage::kListed);
  EXPECT_EQ(s.Refused(s.cast().auditor, testing::ReviewListing(99)).reason,
            Reason::kStaleExpectedVersion);
}

TEST(Precedence, RoleBeforeState) {
  Scenario s(Stage::kClosed);
  EXPECT_EQ(s.Refused(s.cast().auditor, testing::RecordMeasure(s.version())).reason,
            Reason::kActorLacksRole);
}

TEST(Precedence, SeparationOfDutiesBeforeState) {
  Scenario s(Stage::kListed);
  const Principal both = With(s.cast().lister, "li.na", {Role::kLister, Role::kReviewer});
  Scenario own;
  own.Do(both, testing::CreateCase(own.now()));
  own.Do(s.cast().reviewer, testing::ReviewListing(own.version()));
  EXPECT_EQ(own.Refused(both, testing::ReviewListing(own.version())).reason,
            Reason::kListerMustNotReviewOwnListing);
}

TEST(Precedence, StateBeforeFields) {
  Scenario s(Stage::kVerified);
  v1::Command c = testing::RecordFunds(s.version(), -1);
  EXPECT_EQ(s.Refused(s.cast().secretary, c).reason, Reason::kCommandNotAllowedInState);
}

TEST(Precedence, FieldsInOrderOfReason) {
  Scenario s;
  v1::Command c = testing::CreateCase(s.now());
  c.mutable_create_case()->set_case_type(v1::CASE_TYPE_UNSPECIFIED);
  c.mutable_create_case()->clear_findings();
  c.mutable_create_case()->clear_deadline();
  EXPECT_EQ(s.Refused(s.cast().lister, c).reason, Reason::kCaseTypeRequired);
}

// --- Transitions and what Evolve maintains --------------------------------------------

TEST(Transitions, CreateCaseListsTheOrganisation) {
  Scenario s(Stage::kListed);
  const v1::Case& c = s.state();
  EXPECT_EQ(c.name(), "cases/c1");
  EXPECT_EQ(c.case_id(), "c1");
  EXPECT_EQ(c.state(), v1::CASE_STATE_LISTED);
  EXPECT_EQ(c.version(), 1);
  EXPECT_EQ(c.listed_by(), "li.na");
  EXPECT_EQ(c.organisation().jurisdiction(), testing::kOrgJurisdiction);
  EXPECT_EQ(c.problem_categories_size(), 2);
  EXPECT_EQ(c.listed_time().seconds(), testing::kStartMicros / 1'000'000);
  EXPECT_EQ(c.opened_time().seconds(), c.listed_time().seconds());
  EXPECT_EQ(c.update_time().seconds(), c.listed_time().seconds());
}

TEST(Transitions, AmendListingResetsTheReview) {
  Scenario s(Stage::kListedReturned);
  EXPECT_TRUE(s.state().has_listing_review());
  s.Do(s.cast().lister, testing::AmendListing(s.version(), s.now()));
  EXPECT_FALSE(s.state().has_listing_review());
  EXPECT_THAT(s.state().findings(), ::testing::HasSubstr("300,000"));
}

TEST(Transitions, AssignmentMakesAssistersAndIsNeverWithdrawnOnlyReplaced) {
  Scenario s(Stage::kAssisted);
  EXPECT_THAT(s.state().assisters(), ::testing::UnorderedElementsAre("zhang.wei", "chen.jie"));
  EXPECT_EQ(s.state().assignment().assigned_by(), "li.na");
  s.Do(s.cast().lister, testing::ReplaceAssignment(s.version()));
  EXPECT_EQ(s.state().replaced_assignments_size(), 1);
  EXPECT_EQ(s.state().assignment().stationed_cadres(0).person_id(), "liu.yang");
  // Who assisted once stays an assister for this round.
  EXPECT_THAT(s.state().assisters(),
              ::testing::UnorderedElementsAre("zhang.wei", "chen.jie", "liu.yang"));
}

TEST(Transitions, ActivitiesAreCountedWhileAssisted) {
  Scenario s(Stage::kAssisted);
  s.Do(s.cast().secretary, testing::RecordFieldVisit(s.version(), s.now()));
  s.Do(s.cast().cadre, testing::RecordMeasure(s.version()));
  s.Do(s.cast().cadre, testing::RecordFunds(s.version(), 1234));
  s.Do(s.cast().cadre, testing::RecordFunds(s.version(), 66));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_ASSISTED);
  EXPECT_EQ(s.state().field_visit_count(), 1);
  EXPECT_EQ(s.state().measure_count(), 1);
  EXPECT_EQ(s.state().funds_provided_fen(), 1300);
  EXPECT_TRUE(s.state().has_last_field_visit_time());
}

TEST(Transitions, FailedInspectionStaysAssisted) {
  Scenario s(Stage::kAssisted);
  s.Do(s.cast().inspector, testing::RecordInspection(s.version(), "i1", false));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_ASSISTED);
  ASSERT_EQ(s.state().inspections_size(), 1);
  EXPECT_FALSE(s.state().inspections(0).passed());
  s.Do(s.cast().inspector, testing::RecordInspection(s.version(), "i2", true));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
}

TEST(Transitions, ClosureNeedsTheQuorumAndClosesInTheSameDecision) {
  Scenario s(Stage::kVerified);
  const testing::Cast& c = s.cast();
  Events first =
      s.Do(c.county_approver,
           testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(c.county_approver)));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
  const v1::SignOff& so = first[0].closure_signed_off().sign_off();
  EXPECT_EQ(so.approver(), "sun.li");
  EXPECT_EQ(so.key_id(), "key-sun.li");
  EXPECT_EQ(so.level(), v1::APPROVAL_LEVEL_COUNTY);
  EXPECT_EQ(so.signature(), std::string(64, 's'));
  EXPECT_EQ(so.inspection_id(), "insp-1");
  Events second = s.Do(c.city_approver, testing::SignOffClosure(s.version(), "insp-1",
                                                                testing::KeyIdOf(c.city_approver)));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_TRUE(second[0].has_closure_signed_off());
  ASSERT_TRUE(second[1].has_case_closed());
  EXPECT_EQ(second[1].version(), second[0].version() + 1);
  EXPECT_EQ(second[1].case_closed().inspection_id(), "insp-1");
  EXPECT_THAT(second[1].case_closed().approvers(), ::testing::ElementsAre("sun.li", "zhou.min"));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_CLOSED);
  EXPECT_TRUE(s.state().has_closed_time());
}

TEST(Transitions, ClosureNeedsTheLevelsOfThePolicy) {
  Scenario s(Stage::kVerified);
  const Principal city2 = With(s.cast().city_approver, "xu.hong", {Role::kApprover});
  s.Do(s.cast().city_approver,
       testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(s.cast().city_approver)));
  // Two city approvers, but the default policy wants one of county level.
  EXPECT_EQ(
      s.Do(city2, testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(city2))).size(),
      1u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
  EXPECT_EQ(s.Do(s.cast().county_approver,
                 testing::SignOffClosure(s.version(), "insp-1",
                                         testing::KeyIdOf(s.cast().county_approver)))
                .size(),
            2u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_CLOSED);
}

// An inspector who is also an approver.
Principal MakeInspectorApprover(const Scenario& s) {
  Principal p = With(s.cast().inspector, "zhao.lei", {Role::kInspector, Role::kApprover});
  p.approval_level = v1::APPROVAL_LEVEL_COUNTY;
  return p;
}

TEST(Transitions, InspectorMayNotBeTheOnlySigner) {
  Scenario s;
  s.policy().closure =
      ClosurePolicy{.approvers_min = 1, .city_approvers_min = 0, .county_approvers_min = 0};
  s.AdvanceTo(Stage::kAssisted);
  const Principal inspector_approver = MakeInspectorApprover(s);
  s.Do(inspector_approver, testing::RecordInspection(s.version(), "i1", true));
  // The policy wants one approver; the inspector's own sign-off never suffices alone.
  EXPECT_EQ(s.Do(inspector_approver,
                 testing::SignOffClosure(s.version(), "i1", testing::KeyIdOf(inspector_approver)))
                .size(),
            1u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
  // What the closure still needs, said to the caller (CaseCommandResponse).
  const ClosureOutstanding outstanding = DescribeClosureOutstanding(s.state(), s.policy());
  EXPECT_THAT(outstanding.en,
              ::testing::HasSubstr("a sign-off by someone who never inspected the case"));
  EXPECT_THAT(outstanding.zh, ::testing::HasSubstr("未参与验收"));
  EXPECT_EQ(
      s.Do(s.cast().county_approver,
           testing::SignOffClosure(s.version(), "i1", testing::KeyIdOf(s.cast().county_approver)))
          .size(),
      2u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_CLOSED);
  EXPECT_TRUE(DescribeClosureOutstanding(s.state(), s.policy()).en.empty());
}

// rules/2026.2: whoever inspected the case in this round or an earlier one may not be the
// only signer: a failed inspection's inspector and the passed inspection's inspector do not
// close it together; under rules/2026.1 (only the passed inspection's inspector counted)
// they did.
TEST(Transitions, InspectorsOfTheCaseMayNotBeItsOnlySigners) {
  Scenario s;
  s.AdvanceTo(Stage::kAssisted);
  Principal first = With(s.cast().inspector, "qin.lan", {Role::kInspector, Role::kApprover});
  first.approval_level = v1::APPROVAL_LEVEL_COUNTY;
  Principal second = With(s.cast().inspector, "zhao.lei", {Role::kInspector, Role::kApprover});
  second.approval_level = v1::APPROVAL_LEVEL_CITY;
  s.Do(first, testing::RecordInspection(s.version(), "i1", false));
  s.Do(second, testing::RecordInspection(s.version(), "i2", true));
  s.Do(first, testing::SignOffClosure(s.version(), "i2", testing::KeyIdOf(first)));
  const v1::Command last = testing::SignOffClosure(s.version(), "i2", testing::KeyIdOf(second));
  Context older = s.As(second);
  older.rules = kRulesVersion2026_1;
  const Decision before = Decide(s.state(), last, older);
  ASSERT_TRUE(std::holds_alternative<Events>(before));
  EXPECT_EQ(std::get<Events>(before).size(), 2u);  // it closed the case
  EXPECT_EQ(std::get<Events>(before)[0].rules_version(), kRulesVersion2026_1);
  EXPECT_EQ(s.Do(second, last).size(), 1u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
  EXPECT_EQ(
      s.Do(s.cast().county_approver,
           testing::SignOffClosure(s.version(), "i2", testing::KeyIdOf(s.cast().county_approver)))
          .size(),
      2u);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_CLOSED);
}

// rules/2026.2: whoever assisted the case in an earlier round may not inspect it (nor
// review it) in a later one; rules/2026.1 looked at the latest round only.
TEST(Transitions, WhoAssistedInAnEarlierRoundMayNotInspect) {
  Scenario s(Stage::kReopened);
  EXPECT_THAT(s.state().earlier_assisters(), ::testing::IsSupersetOf({"zhang.wei", "chen.jie"}));
  EXPECT_THAT(s.state().earlier_inspectors(), ::testing::ElementsAre("zhao.lei"));
  v1::Command assign = testing::AssignAssistance(s.version());
  v1::Assignment* a = assign.mutable_assign_assistance()->mutable_assignment();
  a->mutable_first_secretary()->set_person_id("he.ping");
  for (v1::Person& cadre : *a->mutable_stationed_cadres()) cadre.set_person_id("lu.yan");
  s.Do(s.cast().lister, assign);
  EXPECT_EQ(s.state().assisters_size(), 2);
  const Principal former = With(s.cast().inspector, "zhang.wei", {Role::kInspector});
  const v1::Command inspect = testing::RecordInspection(s.version(), "i9", true);
  const Refusal refused = s.Refused(former, inspect);
  Expect(refused, Reason::kInspectorMustNotHaveAssisted, Category::kPermissionDenied, "");
  EXPECT_NE(refused.message_en.find("earlier round"), std::string::npos) << refused.message_en;
  Context older = s.As(former);
  older.rules = kRulesVersion2026_1;
  EXPECT_TRUE(std::holds_alternative<Events>(Decide(s.state(), inspect, older)));
  // Someone who never assisted it inspects.
  s.Do(s.cast().inspector, inspect);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
}

TEST(Transitions, SendBackClearsSignOffsAndNeedsANewInspection) {
  Scenario s(Stage::kVerified);
  s.Do(s.cast().county_approver,
       testing::SignOffClosure(s.version(), "insp-1", testing::KeyIdOf(s.cast().county_approver)));
  s.Do(s.cast().city_approver, testing::SendBack(s.version()));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_ASSISTED);
  EXPECT_EQ(s.state().sign_offs_size(), 0);
  s.Do(s.cast().inspector, testing::RecordInspection(s.version(), "insp-2", true));
  // The sign-off now rests on the new inspection only.
  EXPECT_EQ(s.Refused(s.cast().county_approver,
                      testing::SignOffClosure(s.version(), "insp-1",
                                              testing::KeyIdOf(s.cast().county_approver)))
                .reason,
            Reason::kSignOffInspectionNotLatestPassed);
}

TEST(Transitions, FollowUpHoldsOrReopens) {
  Scenario s(Stage::kClosed);
  s.Do(s.cast().inspector, testing::RecordFollowUpReview(s.version(), false, s.now()));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_CLOSED);
  s.Do(s.cast().inspector, testing::RecordFollowUpReview(s.version(), true, s.now()));
  const v1::Case& c = s.state();
  EXPECT_EQ(c.state(), v1::CASE_STATE_REOPENED);
  EXPECT_EQ(c.reopen_count(), 1);
  EXPECT_THAT(c.problem_categories(),
              ::testing::ElementsAre(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE));
  EXPECT_EQ(c.assisters_size(), 0);
  EXPECT_EQ(c.inspections_size(), 0);
  EXPECT_EQ(c.sign_offs_size(), 0);
  EXPECT_EQ(c.opened_time().seconds(), c.update_time().seconds());
  // A new round: assistance again; the old assignment is kept as replaced.
  s.Do(s.cast().lister, testing::AssignAssistance(s.version()));
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_ASSISTED);
  EXPECT_EQ(s.state().replaced_assignments_size(), 1);
}

TEST(Transitions, AccountabilityEventsAreRecordedInAnyState) {
  Scenario s(Stage::kVerified);
  s.Do(s.cast().auditor, testing::RecordAdmonishmentTalk(s.version()));
  s.Do(s.cast().county_approver, testing::IssueRectificationNotice(s.version()));
  EXPECT_EQ(s.state().accountability_event_count(), 2);
  EXPECT_EQ(s.state().state(), v1::CASE_STATE_VERIFIED);
}

TEST(Transitions, ReplayEqualsTheIncrementalState) {
  Scenario s(Stage::kReopened);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(Replay(s.log()), s.state()));
}

TEST(Transitions, RefusalChangesNothing) {
  Scenario s(Stage::kAssisted);
  const v1::Case before = s.state();
  (void)s.Refused(s.cast().secretary, testing::RecordFunds(s.version(), 0));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, s.state()));
}

// --- Evolve: an impossible event is corruption ----------------------------------------

TEST(EvolveDeathTest, AbortsOnAnEventImpossibleInItsState) {
  Scenario s(Stage::kListed);
  v1::Case state = s.state();
  v1::Event event;
  event.set_stream(testing::kCaseName);
  event.set_version(state.version() + 1);
  event.mutable_inspection_passed()->set_inspection_id("i1");
  EXPECT_DEATH(Evolve(state, event), "InspectionPassed outside ASSISTED");
}

TEST(EvolveDeathTest, AbortsOnAGapInVersions) {
  Scenario s(Stage::kListed);
  v1::Case state = s.state();
  v1::Event event = s.log().back();
  event.set_version(state.version() + 2);
  EXPECT_DEATH(Evolve(state, event), "event version");
}

// --- Principals, policy, reasons ------------------------------------------------------

TEST(Principals, CoverIsSegmentWise) {
  const Principal p = testing::MakePrincipal("x", {}, "city/a");
  EXPECT_TRUE(p.Covers("city/a"));
  EXPECT_TRUE(p.Covers("city/a/b"));
  EXPECT_FALSE(p.Covers("city/ab"));
  EXPECT_FALSE(p.Covers("city"));
  EXPECT_TRUE(testing::MakePrincipal("x", {}, "city/a/").Covers("city/a/b"));
  EXPECT_FALSE(testing::MakePrincipal("x", {}, "").Covers("city/a"));
  EXPECT_TRUE(testing::MakePrincipal("x", {}, "city").Covers("city/z/y/x"));
}

TEST(Principals, RoleNamesRoundTrip) {
  for (Role role : {Role::kLister, Role::kReviewer, Role::kAssister, Role::kInspector,
                    Role::kApprover, Role::kAuditor, Role::kAdmin}) {
    EXPECT_EQ(RoleFromName(RoleName(role)), role);
  }
  EXPECT_EQ(RoleFromName("boss"), std::nullopt);
}

TEST(PolicyTest, DefaultIsValidAndNonsenseIsNot) {
  EXPECT_TRUE(ValidatePolicy(Policy()).ok());
  Policy p;
  p.closure.approvers_min = 0;
  EXPECT_FALSE(ValidatePolicy(p).ok());
  p = Policy();
  p.closure.county_approvers_min = -1;
  EXPECT_FALSE(ValidatePolicy(p).ok());
}

TEST(Reasons, CodesAreUniqueUpperSnakeCase) {
  std::set<std::string_view> codes;
  for (int i = 0; i < kReasonCount; ++i) {
    const std::string_view code = ReasonCode(static_cast<Reason>(i));
    EXPECT_TRUE(codes.insert(code).second) << code;
    for (char ch : code) EXPECT_TRUE((ch >= 'A' && ch <= 'Z') || ch == '_') << code;
  }
  EXPECT_EQ(ReasonCode(Reason::kInspectorMustNotHaveAssisted), "INSPECTOR_MUST_NOT_HAVE_ASSISTED");
  EXPECT_EQ(ReasonCode(Reason::kStaleExpectedVersion), "STALE_EXPECTED_VERSION");
  EXPECT_EQ(CategoryOf(Reason::kStaleExpectedVersion), Category::kAborted);
}

TEST(Names, Identifiers) {
  EXPECT_EQ(CaseIdFromName("cases/c-1"), std::optional<std::string_view>("c-1"));
  EXPECT_EQ(CaseIdFromName("cases/"), std::nullopt);
  EXPECT_EQ(JurisdictionDepth("city/east/"), 2);
  EXPECT_TRUE(IsValidOrganisationJurisdiction("city/east/hill/dongshan"));
  EXPECT_FALSE(IsValidOrganisationJurisdiction("city/east/hill/"));
}

// A request's value quoted in a message is cut at a character boundary: the message stays
// UTF-8 (a gRPC status detail that is not would not parse), and "…" marks the cut.
TEST(Shown, CutsAtACharacterBoundary) {
  EXPECT_EQ(Shown("abc", 3), "abc");
  EXPECT_EQ(Shown("abcd", 3), "abc…");
  // "东" is 3 bytes: a cut at 4 or 5 bytes keeps the first character whole.
  EXPECT_EQ(Shown("东山村", 4), "东…");
  EXPECT_EQ(Shown("东山村", 5), "东…");
  EXPECT_EQ(Shown("东山村", 6), "东山…");
  EXPECT_EQ(Shown("东山村", 2), "…");
  // The decider's own refusal of a long, non-ASCII case id.
  v1::Command command;
  v1::CreateCaseRequest* create = command.mutable_create_case();
  create->set_case_id(std::string(200, 'a') + "东山村");
  create->set_request_id("r-1");
  Scenario s(Stage::kListed);
  const Decision decision = Decide(v1::Case(), command, s.As(s.cast().lister));
  ASSERT_TRUE(std::holds_alternative<Refusal>(decision));
  const Refusal& refusal = std::get<Refusal>(decision);
  EXPECT_EQ(refusal.reason, Reason::kCaseIdInvalid);
  for (const std::string* text : {&refusal.message_en, &refusal.message_zh}) {
    EXPECT_NE(text->find("…"), std::string::npos) << *text;
    // Well-formed UTF-8 throughout: every lead byte has its continuation bytes.
    size_t i = 0;
    while (i < text->size()) {
      const auto c = static_cast<unsigned char>((*text)[i]);
      const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
      ASSERT_LE(i + n, text->size()) << *text;
      for (size_t k = 1; k < n; ++k) {
        ASSERT_EQ(static_cast<unsigned char>((*text)[i + k]) & 0xC0, 0x80) << *text;
      }
      i += n;
    }
  }
}

}  // namespace
}  // namespace casework::workflow

// Every rule's refusal over the wire: each row drives a case on the real caseworkd (over
// 127.0.0.1) to a starting stage as the sample identities, sends one bad command as a
// given identity, and checks the exact gRPC status, the ErrorInfo reason and field, and
// that a Chinese message came along. The core's own tests cover every reason in depth;
// this shows that the shell maps each one faithfully.
#include <functional>

#include "casework/v1/command.pb.h"
#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using v1::CaseCommandResponse;
using v1::Command;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The stage a row starts from.
enum class Stage { kNone, kListed, kConfirmed, kReturned, kAssisted, kVerified };

class RulesOverTheWire : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::filesystem::create_directories(dir_->path() / "data");
    server_ = new ServerProcess(dir_->path() / "data",
                                casework::testing::WriteTestPrincipals(dir_->path()));
    ASSERT_TRUE(server_->Start()) << server_->error();
  }
  static void TearDownTestSuite() {
    server_->Stop();
    delete server_;
    delete dir_;
  }

  static Client As(const std::string& identity) {
    return Client(ClientOptions{.server = server_->address(), .identity = identity});
  }

  // Sends any transition command with the matching RPC.
  static grpc::Status Send(const std::string& identity, const Command& command,
                           CaseCommandResponse* resp) {
    Client c = As(identity);
    auto ctx = c.NewContext();
    auto& s = c.cases();
    switch (command.kind_case()) {
      case Command::kCreateCase:
        return s.CreateCase(ctx.get(), command.create_case(), resp);
      case Command::kReviewListing:
        return s.ReviewListing(ctx.get(), command.review_listing(), resp);
      case Command::kAmendListing:
        return s.AmendListing(ctx.get(), command.amend_listing(), resp);
      case Command::kAssignAssistance:
        return s.AssignAssistance(ctx.get(), command.assign_assistance(), resp);
      case Command::kReplaceAssignment:
        return s.ReplaceAssignment(ctx.get(), command.replace_assignment(), resp);
      case Command::kRecordFieldVisit:
        return s.RecordFieldVisit(ctx.get(), command.record_field_visit(), resp);
      case Command::kRecordMeasure:
        return s.RecordMeasure(ctx.get(), command.record_measure(), resp);
      case Command::kRecordFunds:
        return s.RecordFunds(ctx.get(), command.record_funds(), resp);
      case Command::kRecordInspection:
        return s.RecordInspection(ctx.get(), command.record_inspection(), resp);
      case Command::kSignOffClosure:
        return s.SignOffClosure(ctx.get(), command.sign_off_closure(), resp);
      case Command::kSendBack:
        return s.SendBack(ctx.get(), command.send_back(), resp);
      case Command::kRecordFollowUpReview:
        return s.RecordFollowUpReview(ctx.get(), command.record_follow_up_review(), resp);
      case Command::kRecordAdmonishmentTalk:
        return s.RecordAdmonishmentTalk(ctx.get(), command.record_admonishment_talk(), resp);
      case Command::kIssueRectificationNotice:
        return s.IssueRectificationNotice(ctx.get(), command.issue_rectification_notice(), resp);
      case Command::KIND_NOT_SET:
        break;
    }
    return grpc::Status(grpc::StatusCode::INTERNAL, "empty command in test");
  }

  static std::string NextRequestId() { return "rq-" + std::to_string(++request_counter_); }

  static v1::CreateCaseRequest Listing(const std::string& case_id) {
    v1::CreateCaseRequest req;
    req.set_case_id(case_id);
    req.set_request_id(NextRequestId());
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + case_id);
    org->set_display_name("南坪村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_POOR);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    req.set_findings("no collective income");
    req.mutable_deadline()->set_seconds(NowSeconds() + 200 * 86400);
    return req;
  }

  static v1::Assignment GoodAssignment() {
    v1::Assignment a;
    a.mutable_paired_department()->set_department_id("dept-econ");
    a.mutable_paired_department()->set_display_name("市发改委");
    a.mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_ECONOMIC);
    a.mutable_first_secretary()->set_person_id("assister");
    a.mutable_first_secretary()->set_display_name("王强");
    auto* cadre = a.add_stationed_cadres();
    cadre->set_person_id("cadre-1");
    cadre->set_display_name("驻村干部");
    a.set_plan("build collective income");
    return a;
  }

  // Drives a new case to `stage` and returns its version.
  static int64_t Prepare(const std::string& case_id, Stage stage) {
    if (stage == Stage::kNone) return 0;
    CaseCommandResponse resp;
    Command c;
    *c.mutable_create_case() = Listing(case_id);
    EXPECT_TRUE(Send("lister", c, &resp).ok());
    int64_t v = resp.case_().version();
    if (stage == Stage::kListed) return v;
    c.Clear();
    auto* review = c.mutable_review_listing();
    review->set_name("cases/" + case_id);
    review->set_request_id(NextRequestId());
    review->set_expected_version(v);
    review->set_confirmed(stage != Stage::kReturned);
    review->set_comment("screened");
    EXPECT_TRUE(Send("reviewer", c, &resp).ok());
    v = resp.case_().version();
    if (stage == Stage::kConfirmed || stage == Stage::kReturned) return v;
    c.Clear();
    auto* assign = c.mutable_assign_assistance();
    assign->set_name("cases/" + case_id);
    assign->set_request_id(NextRequestId());
    assign->set_expected_version(v);
    *assign->mutable_assignment() = GoodAssignment();
    auto status = Send("lister", c, &resp);
    EXPECT_TRUE(status.ok()) << status.error_message();
    v = resp.case_().version();
    if (stage == Stage::kAssisted) return v;
    c.Clear();
    auto* inspect = c.mutable_record_inspection();
    inspect->set_name("cases/" + case_id);
    inspect->set_request_id(NextRequestId());
    inspect->set_expected_version(v);
    inspect->set_inspection_id("insp-1");
    inspect->set_passed(true);
    inspect->set_findings("solved");
    status = Send("inspector", c, &resp);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return resp.case_().version();
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static int request_counter_;
};

TempDir* RulesOverTheWire::dir_ = nullptr;
ServerProcess* RulesOverTheWire::server_ = nullptr;
int RulesOverTheWire::request_counter_ = 0;

struct Row {
  const char* name;
  Stage stage;
  const char* identity;
  // Builds the bad command for case `id` at version `v`.
  std::function<Command(const std::string& id, int64_t v)> command;
  grpc::StatusCode code;
  const char* reason;
  const char* field;  // "" when the refusal names no field
};

// Helpers that fill name, request id and expected version.
template <typename Req>
Req* Common(Req* r, const std::string& id, int64_t v) {
  r->set_name("cases/" + id);
  r->set_request_id("bad-" + id);
  r->set_expected_version(v);
  return r;
}

TEST_F(RulesOverTheWire, EveryRefusalHasItsStatusReasonAndField) {
  using Code = grpc::StatusCode;
  const std::vector<Row>
      rows =
          {
              {"create: case id invalid", Stage::kNone, "lister",
               [](const std::string&, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing("Bad_Id");
                 return c;
               },
               Code::INVALID_ARGUMENT, "CASE_ID_INVALID", "case_id"},
              {"create: already exists", Stage::kListed, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 return c;
               },
               Code::ALREADY_EXISTS, "CASE_ALREADY_EXISTS", "case_id"},
              {"create: organisation already listed", Stage::kListed, "lister",
               [](const std::string& id, int64_t) {
                 // Another case id for the same organisation (the same place).
                 Command c;
                 *c.mutable_create_case() = Listing(id + "-again");
                 c.mutable_create_case()->mutable_organisation()->set_organisation_id("org-" + id);
                 c.mutable_create_case()->mutable_organisation()->set_jurisdiction(
                     "jiangcheng/dongshan/t01/org-" + id);
                 return c;
               },
               Code::ALREADY_EXISTS, "ORGANISATION_ALREADY_LISTED", "organisation.jurisdiction"},
              {"create: lacks role", Stage::kNone, "inspector",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 return c;
               },
               Code::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", ""},
              {"create: outside jurisdiction", Stage::kNone, "outsider",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 return c;
               },
               Code::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "organisation.jurisdiction"},
              {"create: no categories", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->clear_problem_categories();
                 return c;
               },
               Code::INVALID_ARGUMENT, "PROBLEM_CATEGORIES_REQUIRED", "problem_categories"},
              {"create: category repeated", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
                 return c;
               },
               Code::INVALID_ARGUMENT, "PROBLEM_CATEGORY_REPEATED", "problem_categories[1]"},
              {"create: deadline in the past", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->mutable_deadline()->set_seconds(NowSeconds() - 86400);
                 return c;
               },
               Code::INVALID_ARGUMENT, "DEADLINE_NOT_AFTER_NOW", "deadline"},
              {"create: findings required", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->clear_findings();
                 return c;
               },
               Code::INVALID_ARGUMENT, "FINDINGS_REQUIRED", "findings"},
              {"create: case type required", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->clear_case_type();
                 return c;
               },
               Code::INVALID_ARGUMENT, "CASE_TYPE_REQUIRED", "case_type"},
              {"create: jurisdiction not four segments", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->mutable_organisation()->set_jurisdiction(
                     "jiangcheng/dongshan");
                 return c;
               },
               Code::INVALID_ARGUMENT, "ORGANISATION_JURISDICTION_INVALID",
               "organisation.jurisdiction"},
              {"create: findings too long", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->set_findings(std::string(20000, 'x'));
                 return c;
               },
               Code::INVALID_ARGUMENT, "TEXT_TOO_LONG", "findings"},
              {"create: organisation id invalid", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->mutable_organisation()->set_organisation_id("has space");
                 return c;
               },
               Code::INVALID_ARGUMENT, "ORGANISATION_ID_INVALID", "organisation.organisation_id"},
              {"create: organisation name required", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->mutable_organisation()->clear_display_name();
                 return c;
               },
               Code::INVALID_ARGUMENT, "ORGANISATION_NAME_REQUIRED", "organisation.display_name"},
              {"create: organisation kind required", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->mutable_organisation()->clear_kind();
                 return c;
               },
               Code::INVALID_ARGUMENT, "ORGANISATION_KIND_REQUIRED", "organisation.kind"},
              {"create: category out of range", Stage::kNone, "lister",
               [](const std::string& id, int64_t) {
                 Command c;
                 *c.mutable_create_case() = Listing(id);
                 c.mutable_create_case()->add_problem_categories(
                     static_cast<v1::ProblemCategory>(9));
                 return c;
               },
               Code::INVALID_ARGUMENT, "PROBLEM_CATEGORY_INVALID", "problem_categories[1]"},
              {"review: request id before the case name", Stage::kNone, "reviewer",
               [](const std::string&, int64_t) {
                 // Both are wrong: the request id is checked first, as in the core.
                 Command c;
                 auto* r = c.mutable_review_listing();
                 r->set_name("cases/Bad_Name");
                 r->set_request_id("");
                 r->set_expected_version(1);
                 return c;
               },
               Code::INVALID_ARGUMENT, "REQUEST_ID_INVALID", "request_id"},
              {"review: not found", Stage::kNone, "reviewer",
               [](const std::string& id, int64_t) {
                 Command c;
                 Common(c.mutable_review_listing(), id, 1)->set_confirmed(true);
                 return c;
               },
               Code::NOT_FOUND, "CASE_NOT_FOUND", "name"},
              {"review: stale version", Stage::kListed, "reviewer",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_review_listing(), id, v + 5)->set_confirmed(true);
                 return c;
               },
               Code::ABORTED, "STALE_EXPECTED_VERSION", "expected_version"},
              {"review: lister reviews own listing", Stage::kNone, "lister.reviewer",
               [](const std::string& id, int64_t) {
                 // The case is listed by lister.reviewer itself first.
                 Command create;
                 *create.mutable_create_case() = Listing(id);
                 CaseCommandResponse resp;
                 EXPECT_TRUE(Send("lister.reviewer", create, &resp).ok());
                 Command c;
                 Common(c.mutable_review_listing(), id, resp.case_().version())
                     ->set_confirmed(true);
                 return c;
               },
               Code::PERMISSION_DENIED, "LISTER_MUST_NOT_REVIEW_OWN_LISTING", ""},
              {"review: reviewer below county level", Stage::kListed, "reviewer.township",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_review_listing(), id, v)->set_confirmed(true);
                 return c;
               },
               Code::PERMISSION_DENIED, "REVIEWER_MUST_BE_CITY_OR_COUNTY_DEPARTMENT", ""},
              {"review: already confirmed", Stage::kConfirmed, "reviewer",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_review_listing(), id, v)->set_confirmed(true);
                 return c;
               },
               Code::FAILED_PRECONDITION, "LISTING_ALREADY_CONFIRMED", ""},
              {"review: returned listing awaits amendment", Stage::kReturned, "reviewer",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_review_listing(), id, v)->set_confirmed(true);
                 return c;
               },
               Code::FAILED_PRECONDITION, "LISTING_AWAITS_AMENDMENT", ""},
              {"review: return needs a comment", Stage::kListed, "reviewer",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_review_listing(), id, v)->set_confirmed(false);
                 return c;
               },
               Code::INVALID_ARGUMENT, "REVIEW_COMMENT_REQUIRED", "comment"},
              {"amend: only the lister", Stage::kReturned, "lister.b",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_amend_listing(), id, v);
                 a->set_case_type(v1::CASE_TYPE_WEAK);
                 a->add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
                 a->set_findings("corrected");
                 a->mutable_deadline()->set_seconds(NowSeconds() + 100 * 86400);
                 return c;
               },
               Code::PERMISSION_DENIED, "ONLY_LISTER_MAY_AMEND_LISTING", ""},
              {"assign: listing not confirmed", Stage::kListed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 *Common(c.mutable_assign_assistance(), id, v)->mutable_assignment() =
                     GoodAssignment();
                 return c;
               },
               Code::FAILED_PRECONDITION, "LISTING_NOT_CONFIRMED", ""},
              {"assign: department kind must fit the case type", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_POLITICAL_LEGAL);
                 return c;
               },
               Code::INVALID_ARGUMENT, "PAIRED_DEPARTMENT_KIND_MISMATCH",
               "assignment.paired_department.kind"},
              {"assign: first secretary required", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->clear_first_secretary();
                 return c;
               },
               Code::INVALID_ARGUMENT, "FIRST_SECRETARY_REQUIRED",
               "assignment.first_secretary.person_id"},
              {"assign: stationed cadres required", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->clear_stationed_cadres();
                 return c;
               },
               Code::INVALID_ARGUMENT, "STATIONED_CADRES_REQUIRED", "assignment.stationed_cadres"},
              {"assign: plan required", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->clear_plan();
                 return c;
               },
               Code::INVALID_ARGUMENT, "PLAN_REQUIRED", "assignment.plan"},
              {"assign: paired department required", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->clear_paired_department();
                 return c;
               },
               Code::INVALID_ARGUMENT, "PAIRED_DEPARTMENT_REQUIRED",
               "assignment.paired_department.department_id"},
              {"assign: person id invalid", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->mutable_stationed_cadres(0)->set_person_id("bad id");
                 return c;
               },
               Code::INVALID_ARGUMENT, "PERSON_ID_INVALID",
               "assignment.stationed_cadres[0].person_id"},
              // Whoever assisted may not inspect: the ids are compared as written, so a
              // person named by a variant of an identity is refused.
              {"assign: a person id resembling an identity", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->mutable_stationed_cadres(0)->set_person_id("Assister.Inspector");
                 return c;
               },
               Code::INVALID_ARGUMENT, "PERSON_ID_RESEMBLES_IDENTITY",
               "assignment.stationed_cadres[0].person_id"},
              // The rules' own checks come first: whoever may not assign hears that, not
              // which identity a name resembles.
              {"assign by someone without the role, naming a variant", Stage::kConfirmed,
               "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->mutable_stationed_cadres(0)->set_person_id("Assister.Inspector");
                 return c;
               },
               Code::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", ""},
              {"replace: a first secretary resembling an identity", Stage::kAssisted, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_replace_assignment(), id, v);
                 *r->mutable_assignment() = GoodAssignment();
                 r->mutable_assignment()->mutable_first_secretary()->set_person_id("INSPECTOR");
                 r->set_reason("the first secretary left");
                 return c;
               },
               Code::INVALID_ARGUMENT, "PERSON_ID_RESEMBLES_IDENTITY",
               "assignment.first_secretary.person_id"},
              {"assign: a person named twice", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 a->mutable_stationed_cadres(0)->set_person_id("assister");
                 return c;
               },
               Code::INVALID_ARGUMENT, "ASSIGNED_PERSON_REPEATED",
               "assignment.stationed_cadres[0].person_id"},
              {"assign: too many cadres", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* a = Common(c.mutable_assign_assistance(), id, v)->mutable_assignment();
                 *a = GoodAssignment();
                 for (int i = 0; i < 40; ++i) {
                   auto* p = a->add_stationed_cadres();
                   p->set_person_id("cadre-x" + std::to_string(i));
                   p->set_display_name("驻村干部");
                 }
                 return c;
               },
               Code::INVALID_ARGUMENT, "TOO_MANY_ITEMS", "assignment.stationed_cadres"},
              {"visit: visitors required", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_field_visit(), id, v);
                 r->mutable_visit_time()->set_seconds(NowSeconds() - 60);
                 return c;
               },
               Code::INVALID_ARGUMENT, "VISITORS_REQUIRED", "visitors"},
              {"visit: visitor named twice", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_field_visit(), id, v);
                 r->add_visitors("assister");
                 r->add_visitors("assister");
                 r->mutable_visit_time()->set_seconds(NowSeconds() - 60);
                 return c;
               },
               Code::INVALID_ARGUMENT, "VISITOR_REPEATED", "visitors[1]"},
              {"measure: description required", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_record_measure(), id, v)
                     ->set_problem_category(v1::PROBLEM_CATEGORY_DEVELOPMENT);
                 return c;
               },
               Code::INVALID_ARGUMENT, "MEASURE_DESCRIPTION_REQUIRED", "description"},
              {"inspect: inspection id invalid", Stage::kAssisted, "inspector",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* i = Common(c.mutable_record_inspection(), id, v);
                 i->set_inspection_id("bad id");
                 i->set_passed(true);
                 i->set_findings("solved");
                 return c;
               },
               Code::INVALID_ARGUMENT, "INSPECTION_ID_INVALID", "inspection_id"},
              {"inspect: inspection id reused", Stage::kAssisted, "inspector",
               [](const std::string& id, int64_t v) {
                 Command f;
                 auto* i = Common(f.mutable_record_inspection(), id, v);
                 i->set_request_id("first-" + id);
                 i->set_inspection_id("insp-r");
                 i->set_passed(false);
                 i->set_findings("not yet");
                 i->set_further_measures("more");
                 CaseCommandResponse resp;
                 EXPECT_TRUE(Send("inspector", f, &resp).ok());
                 Command c;
                 auto* j = Common(c.mutable_record_inspection(), id, resp.case_().version());
                 j->set_inspection_id("insp-r");
                 j->set_passed(true);
                 j->set_findings("solved");
                 return c;
               },
               Code::ALREADY_EXISTS, "INSPECTION_ID_REUSED", "inspection_id"},
              {"replace: reason required", Stage::kAssisted, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 *Common(c.mutable_replace_assignment(), id, v)->mutable_assignment() =
                     GoodAssignment();
                 return c;
               },
               Code::INVALID_ARGUMENT, "REPLACEMENT_REASON_REQUIRED", "reason"},
              // 不转化不脱钩: a replacement cannot withdraw the first secretary or the cadres.
              {"replace: first secretary required", Stage::kAssisted, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_replace_assignment(), id, v);
                 *r->mutable_assignment() = GoodAssignment();
                 r->mutable_assignment()->clear_first_secretary();
                 r->set_reason("the first secretary left");
                 return c;
               },
               Code::INVALID_ARGUMENT, "FIRST_SECRETARY_REQUIRED",
               "assignment.first_secretary.person_id"},
              {"replace: stationed cadres required", Stage::kAssisted, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_replace_assignment(), id, v);
                 *r->mutable_assignment() = GoodAssignment();
                 r->mutable_assignment()->clear_stationed_cadres();
                 r->set_reason("the cadres went home");
                 return c;
               },
               Code::INVALID_ARGUMENT, "STATIONED_CADRES_REQUIRED", "assignment.stationed_cadres"},
              {"visit: visitor not assigned", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_field_visit(), id, v);
                 r->add_visitors("stranger");
                 r->mutable_visit_time()->set_seconds(NowSeconds() - 60);
                 return c;
               },
               Code::INVALID_ARGUMENT, "VISITOR_NOT_ASSIGNED", "visitors[0]"},
              {"visit: in the future", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_field_visit(), id, v);
                 r->add_visitors("assister");
                 r->mutable_visit_time()->set_seconds(NowSeconds() + 86400);
                 return c;
               },
               Code::INVALID_ARGUMENT, "VISIT_TIME_INVALID", "visit_time"},
              {"visit: not in LISTED", Stage::kConfirmed, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_field_visit(), id, v);
                 r->add_visitors("assister");
                 r->mutable_visit_time()->set_seconds(NowSeconds() - 60);
                 return c;
               },
               Code::FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE", ""},
              {"measure: category not listed", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_measure(), id, v);
                 r->set_description("new road");
                 r->set_problem_category(v1::PROBLEM_CATEGORY_STABILITY);
                 return c;
               },
               Code::INVALID_ARGUMENT, "MEASURE_CATEGORY_NOT_LISTED", "problem_category"},
              {"funds: amount must be positive", Stage::kAssisted, "assister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_record_funds(), id, v)->set_amount_fen(-5);
                 return c;
               },
               Code::INVALID_ARGUMENT, "FUNDS_AMOUNT_OUT_OF_RANGE", "amount_fen"},
              {"inspect: inspector must not have assisted", Stage::kAssisted, "assister.inspector",
               [](const std::string& id, int64_t v) {
                 // assister.inspector records a measure first, which makes them an assister.
                 Command m;
                 auto* r = Common(m.mutable_record_measure(), id, v);
                 r->set_request_id("measure-" + id);
                 r->set_description("repaired the venue");
                 r->set_problem_category(v1::PROBLEM_CATEGORY_DEVELOPMENT);
                 CaseCommandResponse resp;
                 EXPECT_TRUE(Send("assister.inspector", m, &resp).ok());
                 Command c;
                 auto* i = Common(c.mutable_record_inspection(), id, resp.case_().version());
                 i->set_inspection_id("insp-x");
                 i->set_passed(true);
                 i->set_findings("fine");
                 return c;
               },
               Code::PERMISSION_DENIED, "INSPECTOR_MUST_NOT_HAVE_ASSISTED", ""},
              {"inspect: failed needs further measures", Stage::kAssisted, "inspector",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* i = Common(c.mutable_record_inspection(), id, v);
                 i->set_inspection_id("insp-f");
                 i->set_passed(false);
                 i->set_findings("not yet");
                 return c;
               },
               Code::INVALID_ARGUMENT, "FURTHER_MEASURES_REQUIRED", "further_measures"},
              {"inspect: passed takes no further measures", Stage::kAssisted, "inspector",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* i = Common(c.mutable_record_inspection(), id, v);
                 i->set_inspection_id("insp-p");
                 i->set_passed(true);
                 i->set_findings("solved");
                 i->set_further_measures("more");
                 return c;
               },
               Code::INVALID_ARGUMENT, "FURTHER_MEASURES_ONLY_WHEN_FAILED", "further_measures"},
              {"send back: reason required", Stage::kVerified, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_send_back(), id, v);
                 return c;
               },
               Code::INVALID_ARGUMENT, "SEND_BACK_REASON_REQUIRED", "reason"},
              {"send back: lacks role", Stage::kVerified, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_send_back(), id, v)->set_reason("weak evidence");
                 return c;
               },
               Code::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", ""},
              {"inspect: not while LISTED", Stage::kConfirmed, "inspector",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_record_inspection(), id, v);
                 r->set_inspection_id("insp-early");
                 r->set_passed(true);
                 r->set_findings("too early");
                 return c;
               },
               Code::FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE", ""},
              {"assign: not while ASSISTED (replace instead)", Stage::kAssisted, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 *Common(c.mutable_assign_assistance(), id, v)->mutable_assignment() =
                     GoodAssignment();
                 return c;
               },
               Code::FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE", ""},
              {"send back: not while ASSISTED", Stage::kAssisted, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_send_back(), id, v)->set_reason("not verified yet");
                 return c;
               },
               Code::FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE", ""},
              {"amend: not after confirmation", Stage::kConfirmed, "lister",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_amend_listing(), id, v);
                 r->set_case_type(v1::CASE_TYPE_POOR);
                 r->add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
                 r->set_findings("changed");
                 r->mutable_deadline()->set_seconds(NowSeconds() + 100 * 86400);
                 return c;
               },
               Code::FAILED_PRECONDITION, "LISTING_ALREADY_CONFIRMED", ""},
              {"follow-up: not closed", Stage::kVerified, "inspector",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_record_follow_up_review(), id, v)->set_findings("holds");
                 return c;
               },
               Code::FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE", ""},
              {"talk: subject required", Stage::kListed, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* t = Common(c.mutable_record_admonishment_talk(), id, v);
                 auto* p = t->add_talked_with();
                 p->set_person_id("secretary-1");
                 p->set_display_name("村支书");
                 return c;
               },
               Code::INVALID_ARGUMENT, "TALK_SUBJECT_REQUIRED", "subject"},
              {"talk: talked with required", Stage::kListed, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_record_admonishment_talk(), id, v)->set_subject("no change");
                 return c;
               },
               Code::INVALID_ARGUMENT, "TALKED_WITH_REQUIRED", "talked_with"},
              {"notice: content required", Stage::kListed, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_issue_rectification_notice(), id, v)->set_notice_id("N-1");
                 return c;
               },
               Code::INVALID_ARGUMENT, "NOTICE_CONTENT_REQUIRED", "content"},
              {"name with a case id out of [a-z0-9-]", Stage::kNone, "reviewer",
               [](const std::string&, int64_t) {
                 Command c;
                 auto* r = c.mutable_review_listing();
                 r->set_name("cases/Bad_ID");
                 r->set_request_id("r-name-2");
                 r->set_confirmed(true);
                 return c;
               },
               Code::INVALID_ARGUMENT, "CASE_NAME_INVALID", "name"},
              {"name malformed", Stage::kNone, "reviewer",
               [](const std::string&, int64_t) {
                 Command c;
                 auto* r = c.mutable_review_listing();
                 r->set_name("case/x");
                 r->set_request_id("r-name");
                 r->set_confirmed(true);
                 return c;
               },
               Code::INVALID_ARGUMENT, "CASE_NAME_INVALID", "name"},
              {"notice: id required", Stage::kListed, "approver",
               [](const std::string& id, int64_t v) {
                 Command c;
                 Common(c.mutable_issue_rectification_notice(), id, v)->set_content("rectify");
                 return c;
               },
               Code::INVALID_ARGUMENT, "NOTICE_ID_REQUIRED", "notice_id"},
              {"request id invalid", Stage::kListed, "reviewer",
               [](const std::string& id, int64_t v) {
                 Command c;
                 auto* r = Common(c.mutable_review_listing(), id, v);
                 r->set_confirmed(true);
                 r->set_request_id("tab\tin it");
                 return c;
               },
               Code::INVALID_ARGUMENT, "REQUEST_ID_INVALID", "request_id"},
          };

  int index = 0;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const std::string id = "rule-" + std::to_string(++index);
    const int64_t version = Prepare(id, row.stage);
    const Command command = row.command(id, version);
    CaseCommandResponse resp;
    const grpc::Status status = Send(row.identity, command, &resp);
    EXPECT_EQ(status.error_code(), row.code) << status.error_message();
    const auto details = client::DecodeError(status);
    EXPECT_EQ(details.reason, row.reason) << status.error_message();
    EXPECT_EQ(details.field, row.field) << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
    EXPECT_FALSE(details.message_zh.empty());
  }
}

}  // namespace
}  // namespace casework

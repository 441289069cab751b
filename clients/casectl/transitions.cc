#include "clients/casectl/transitions.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "clients/casectl/dates.h"
#include "clients/casectl/request_id.h"

namespace casework::client {
namespace {

constexpr int kExitUsage = 2;

struct State {
  KeyCommandHooks hooks;
  std::string case_id, request_id, type, findings, deadline, reason, dept_id, dept_name, dept_kind,
      secretary, plan, subject, notes, notice_id, content;
  int64_t expected_version = 0;
  std::vector<int> categories;
  std::vector<std::string> cadres, talked_with;
};

std::string RequestId(const State& s) { return CommandRequestId(s.request_id); }

// Sets `out` from a typed deadline; prints why and returns false when it is not one.
bool ReadDeadline(const std::string& text, google::protobuf::Timestamp* out) {
  auto parsed = ParseDeadline(text);
  if (!parsed.ok()) {
    std::cerr << parsed.status().message() << "\n";
    return false;
  }
  *out = *parsed;
  return true;
}

template <typename Req>
void Common(const State& s, Req* req) {
  req->set_name("cases/" + s.case_id);
  req->set_request_id(RequestId(s));
  req->set_expected_version(s.expected_version);
}

void AddCommon(CLI::App* sub, State* s) {
  sub->add_option("case_id", s->case_id, "case id")->required();
  sub->add_option("--request-id", s->request_id,
                  "idempotency key; a retry with the same id is safe (default: random)");
  sub->add_option("--expected-version", s->expected_version,
                  "the version you last saw (see `casectl get`)")
      ->required();
}

template <typename Req, typename Call>
void Submit(State& s, const Req& req, Call call) {
  auto client = s.hooks.client();
  casework::v1::CaseCommandResponse resp;
  auto ctx = client->NewContext();
  grpc::Status status = call(client->cases(), ctx.get(), req, &resp);
  *s.hooks.exit_code = s.hooks.print_result(status, resp);
}

}  // namespace

void AddTransitionCommands(CLI::App* app, KeyCommandHooks hooks) {
  auto s = std::make_shared<State>();
  s->hooks = std::move(hooks);

  auto* amend = app->add_subcommand("amend", "correct a returned listing 修改列入信息");
  AddCommon(amend, s.get());
  amend->add_option("--type", s->type, "weak 软村, poor 穷村, disorderly 乱村, industry 产业村")
      ->check(CLI::IsMember({"weak", "poor", "disorderly", "industry"}))
      ->required();
  amend->add_option("--categories", s->categories, "problem categories 1-6, e.g. 1,3")
      ->delimiter(',')
      ->check(CLI::Range(1, 6))
      ->required();
  amend->add_option("--findings", s->findings, "investigation findings 排查情况")->required();
  amend
      ->add_option("--deadline", s->deadline,
                   "deadline: YYYY-MM-DD (by the end of that day, local time) 整改期限")
      ->required();
  amend->callback([s] {
    casework::v1::AmendListingRequest req;
    Common(*s, &req);
    casework::v1::CaseType type = casework::v1::CASE_TYPE_UNSPECIFIED;
    casework::v1::CaseType_Parse("CASE_TYPE_" + absl::AsciiStrToUpper(s->type), &type);
    req.set_case_type(type);
    for (int p : s->categories) {
      req.add_problem_categories(static_cast<casework::v1::ProblemCategory>(p));
    }
    req.set_findings(s->findings);
    if (!ReadDeadline(s->deadline, req.mutable_deadline())) {
      *s->hooks.exit_code = kExitUsage;
      return;
    }
    Submit(*s, req, [](auto& stub, auto* ctx, const auto& r, auto* resp) {
      return stub.AmendListing(ctx, r, resp);
    });
  });

  auto* replace = app->add_subcommand("replace", "replace the assignment 更换帮扶力量");
  AddCommon(replace, s.get());
  replace->add_option("--dept-id", s->dept_id, "paired department id")->required();
  replace->add_option("--dept-name", s->dept_name, "paired department name 结对部门")->required();
  replace
      ->add_option("--dept-kind", s->dept_kind,
                   "party-government, economic, political-legal, agricultural-tech")
      ->check(
          CLI::IsMember({"party-government", "economic", "political-legal", "agricultural-tech"}))
      ->required();
  replace->add_option("--first-secretary", s->secretary, "person id of the first secretary")
      ->required();
  replace->add_option("--cadres", s->cadres, "person ids of stationed cadres")
      ->delimiter(',')
      ->required();
  replace->add_option("--plan", s->plan, "the per-case plan 一村一策")->required();
  replace->add_option("--reason", s->reason, "why the assignment is replaced 更换原因")->required();
  replace->callback([s] {
    casework::v1::ReplaceAssignmentRequest req;
    Common(*s, &req);
    auto* a = req.mutable_assignment();
    a->mutable_paired_department()->set_department_id(s->dept_id);
    a->mutable_paired_department()->set_display_name(s->dept_name);
    const char* kinds[] = {"", "party-government", "economic", "political-legal",
                           "agricultural-tech"};
    for (int k = 1; k <= 4; ++k) {
      if (s->dept_kind == kinds[k]) {
        a->mutable_paired_department()->set_kind(static_cast<casework::v1::DepartmentKind>(k));
      }
    }
    a->mutable_first_secretary()->set_person_id(s->secretary);
    a->mutable_first_secretary()->set_display_name(s->secretary);
    for (const auto& p : s->cadres) {
      auto* cadre = a->add_stationed_cadres();
      cadre->set_person_id(p);
      cadre->set_display_name(p);
    }
    a->set_plan(s->plan);
    req.set_reason(s->reason);
    Submit(*s, req, [](auto& stub, auto* ctx, const auto& r, auto* resp) {
      return stub.ReplaceAssignment(ctx, r, resp);
    });
  });

  auto* talk = app->add_subcommand("talk", "record an admonishment talk 记录约谈");
  AddCommon(talk, s.get());
  talk->add_option("--talked-with", s->talked_with, "person ids talked with 约谈对象")
      ->delimiter(',')
      ->required();
  talk->add_option("--subject", s->subject, "subject of the talk 约谈事由")->required();
  talk->add_option("--notes", s->notes, "record of the talk 约谈记录");
  talk->callback([s] {
    casework::v1::RecordAdmonishmentTalkRequest req;
    Common(*s, &req);
    for (const auto& p : s->talked_with) {
      auto* person = req.add_talked_with();
      person->set_person_id(p);
      person->set_display_name(p);
    }
    req.set_subject(s->subject);
    req.set_notes(s->notes);
    Submit(*s, req, [](auto& stub, auto* ctx, const auto& r, auto* resp) {
      return stub.RecordAdmonishmentTalk(ctx, r, resp);
    });
  });

  auto* notice = app->add_subcommand("notice", "issue a rectification notice 通报整改");
  AddCommon(notice, s.get());
  notice->add_option("--notice-id", s->notice_id, "document number 文号")->required();
  notice->add_option("--content", s->content, "content of the notice 通报内容")->required();
  notice->add_option("--deadline", s->deadline,
                     "deadline: YYYY-MM-DD (by the end of that day, local time) 整改期限");
  notice->callback([s] {
    casework::v1::IssueRectificationNoticeRequest req;
    Common(*s, &req);
    req.set_notice_id(s->notice_id);
    req.set_content(s->content);
    if (!s->deadline.empty() && !ReadDeadline(s->deadline, req.mutable_deadline())) {
      *s->hooks.exit_code = kExitUsage;
      return;
    }
    Submit(*s, req, [](auto& stub, auto* ctx, const auto& r, auto* resp) {
      return stub.IssueRectificationNotice(ctx, r, resp);
    });
  });
}

}  // namespace casework::client

// casectl: the command-line client of caseworkd, for people and scripts.
//
// Output: tables with Chinese labels beside English on a terminal; --json prints the
// response messages as JSON (one object per line) for scripts.
// Exit codes: 0 done; 1 the server refused (the reason is printed); 2 usage error;
// 3 the outcome is unknown: no answer (the server unreachable, the connection lost, the
// deadline passed) or the server unavailable (read-only, shutting down); 4 nothing could
// be checked (a proof not had, a file unreadable), or any other failure; 5 a check was
// made and failed (a signature, a proof, a verification, an export).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "clients/casectl/audit_commands.h"
#include "clients/casectl/dates.h"
#include "clients/casectl/keys.h"
#include "clients/casectl/labels.h"
#include "clients/casectl/oversight_commands.h"
#include "clients/casectl/request_id.h"
#include "clients/casectl/seed.h"
#include "clients/casectl/transitions.h"
#include "clients/casectl/validators.h"
#include "clients/client.h"
#include "clients/table.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"

namespace {

using casework::client::Client;
using casework::client::ParseDate;
using casework::client::ParseDeadline;
using casework::v1::Case;
using casework::v1::CaseCommandResponse;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitFailure = 4;

struct Globals {
  std::string server = "127.0.0.1:7070";
  std::string identity;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  bool json = false;
  int timeout_ms = 10000;
};

std::string Env(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Zero values too (position 0, a count of 0, state fields at their default): a script
  // reads a field without knowing proto3's rule that defaults are left out.
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

// Thrown by a command that cannot start (a TLS option that cannot be used): exit 2.
struct UsageFailure {};

int ReportError(const grpc::Status& status, const Globals& g) {
  auto details = casework::client::DecodeError(status);
  // No answer came (no connection, the connection lost, the deadline passed, the call
  // cancelled by a server going down), or the server said it is unavailable (read-only
  // after a failed write, shutting down): a command may or may not have been applied, and
  // a retry with the same request id is the safe way on.
  const bool unreachable =
      status.error_code() == grpc::StatusCode::UNAVAILABLE && details.reason.empty();
  const bool outcome_unknown = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                               status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                               status.error_code() == grpc::StatusCode::CANCELLED;
  const std::string& request_id = casework::client::SentRequestId();
  if (g.json) {
    nlohmann::json error = {{"code", static_cast<int>(status.error_code())},
                            {"reason", details.reason},
                            {"field", details.field},
                            {"message", status.error_message()},
                            {"message_zh", details.message_zh}};
    if (!request_id.empty()) error["request_id"] = request_id;
    // A request id typed in another encoding is not UTF-8: replaced, not thrown.
    std::cout << nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::cerr << "error 错误: " << status.error_message();
    if (!details.reason.empty()) std::cerr << " [" << details.reason << "]";
    if (!details.field.empty()) std::cerr << " (field 字段: " << details.field << ")";
    std::cerr << "\n";
    if (!details.message_zh.empty()) std::cerr << "  " << details.message_zh << "\n";
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "no answer from " << g.server << " within the deadline 未在时限内收到答复\n";
    } else if (unreachable) {
      std::cerr << "cannot reach caseworkd at " << g.server << ", or the connection was lost "
                << "无法连接服务器或连接中断\n";
    }
    if (outcome_unknown && !request_id.empty()) {
      // A retry with a new request id could do it twice; the same id is answered once.
      std::cerr << "the command may have been applied: read it back, or retry with --request-id "
                << request_id << " (a retry with the same id is applied at most once) "
                << "命令可能已执行；请先查询结果，或用 --request-id " << request_id << " 重试\n";
    }
  }
  if (outcome_unknown) return kExitUnreachable;
  switch (status.error_code()) {
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::UNIMPLEMENTED:
      return kExitFailure;
    default:
      return kExitRefused;
  }
}

// An amount in fen as yuan with two decimals: 99 -> "0.99".
std::string YuanText(int64_t fen) {
  const uint64_t magnitude = fen < 0 ? 0 - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  char cents[3];
  std::snprintf(cents, sizeof cents, "%02u", static_cast<unsigned>(magnitude % 100));
  return absl::StrCat(fen < 0 ? "-" : "", magnitude / 100, ".", cents);
}

void PrintCase(const Case& c) {
  std::vector<std::string> categories;
  for (int p : c.problem_categories()) {
    categories.push_back(
        casework::client::CategoryLabel(static_cast<casework::v1::ProblemCategory>(p)));
  }
  std::vector<std::pair<std::string, std::string>> rows = {
      {"Case 案件", c.case_id()},
      {"State 状态", casework::client::StateLabel(c.state())},
      {"Version 版本", absl::StrCat(c.version())},
      {"Organisation 组织", absl::StrCat(c.organisation().display_name(), " (",
                                         c.organisation().organisation_id(), ")")},
      {"Jurisdiction 辖区", c.organisation().jurisdiction()},
      {"Type 类型", casework::client::CaseTypeLabel(c.case_type())},
      {"Problems 问题", absl::StrJoin(categories, "; ")},
      {"Findings 排查情况", c.findings()},
      {"Deadline 整改期限", TimeText(c.deadline())},
      {"Listed by 列入人", absl::StrCat(c.listed_by(), " @ ", TimeText(c.listed_time()))},
  };
  if (!c.listing_review().reviewer().empty()) {
    rows.push_back({"Review 审核", absl::StrCat(c.listing_review().confirmed() ? "confirmed 通过"
                                                                               : "returned 退回",
                                                " by ", c.listing_review().reviewer())});
  }
  if (c.has_assignment()) {
    const auto& a = c.assignment();
    std::vector<std::string> cadres;
    for (const auto& p : a.stationed_cadres()) cadres.push_back(p.display_name());
    rows.push_back(
        {"Paired dept 结对部门",
         absl::StrCat(a.paired_department().display_name(), " (",
                      casework::client::DepartmentKindLabel(a.paired_department().kind()), ")")});
    rows.push_back({"First secretary 第一书记", a.first_secretary().display_name()});
    rows.push_back({"Cadres 驻村干部", absl::StrJoin(cadres, ", ")});
    rows.push_back({"Plan 一村一策", a.plan()});
  }
  rows.push_back({"Activities 帮扶活动",
                  absl::StrCat(c.field_visit_count(), " visits 走访, ", c.measure_count(),
                               " measures 措施, ", YuanText(c.funds_provided_fen()), " CNY 元")});
  if (c.inspections_size() > 0) {
    const auto& i = c.inspections(c.inspections_size() - 1);
    rows.push_back({"Inspection 验收", absl::StrCat(i.inspection_id(), " ",
                                                    i.passed() ? "passed 通过" : "failed 未通过",
                                                    " by ", i.inspector())});
  }
  if (c.sign_offs_size() > 0) {
    std::vector<std::string> who;
    for (const auto& s : c.sign_offs()) who.push_back(s.approver());
    rows.push_back({"Sign-offs 销号签字", absl::StrJoin(who, ", ")});
  }
  if (c.reopen_count() > 0) rows.push_back({"Reopened 反弹次数", absl::StrCat(c.reopen_count())});
  rows.push_back({"Updated 更新时间", TimeText(c.update_time())});
  if (!c.last_leaf_hash().empty()) {
    // What `casectl sign --latest` signs for this version.
    rows.push_back({"Latest leaf 最新事件叶哈希", absl::BytesToHexString(c.last_leaf_hash())});
  }
  casework::client::PrintRecord(std::cout, rows);
}

int PrintCommandResult(const grpc::Status& status, const CaseCommandResponse& resp,
                       const Globals& g) {
  if (!status.ok()) return ReportError(status, g);
  if (g.json) {
    std::cout << Json(resp) << "\n";
    return kExitOk;
  }
  if (resp.replayed()) std::cout << "(retry: first answer returned 重复请求，返回首次结果)\n";
  for (const auto& e : resp.events()) {
    std::cout << "event 事件 #" << e.position() << " v" << e.event().version() << " "
              << casework::client::EventKindLabel(e.event()) << "\n";
  }
  PrintCase(resp.case_());
  if (!resp.closure_outstanding().empty()) {
    std::cout << resp.closure_outstanding() << "\n" << resp.closure_outstanding_zh() << "\n";
  }
  return kExitOk;
}

std::string CaseName(const std::string& id) { return absl::StrCat("cases/", id); }

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  g.server = Env("CASEWORK_SERVER", g.server);
  g.identity = Env("CASEWORK_IDENTITY", "");
  g.tls_ca = Env("CASEWORK_TLS_CA", "");
  g.tls_cert = Env("CASEWORK_TLS_CERT", "");
  g.tls_key = Env("CASEWORK_TLS_KEY", "");
  const std::string default_config = Env("CASEWORK_CONFIG", "");

  CLI::App app{
      "casectl: command-line client of caseworkd (the rectification ledger 整顿台账).\n"
      "Server and identity come from flags, the environment (CASEWORK_SERVER, "
      "CASEWORK_IDENTITY, CASEWORK_CONFIG) or a config file.\n"
      "Exit codes: 0 done, 1 refused by the server, 2 usage error, 3 outcome unknown: server "
      "unreachable, connection lost, no answer in time, or the server unavailable (the "
      "command may have been applied: retry with the --request-id the error names), 4 "
      "could not be done or checked (any other failure), 5 not verified: a signature, proof, "
      "verification or export was checked and does not hold."};
  app.set_config(
      "--config", default_config,
      "TOML/INI file with server=, identity=, tls-ca=, tls-cert=, tls-key=, json=, timeout-ms=");
  app.add_option("--server", g.server, "caseworkd address host:port (env CASEWORK_SERVER)")
      ->capture_default_str();
  app.add_option("--identity", g.identity,
                 "identity to act as, from the principals file (env CASEWORK_IDENTITY)");
  app.add_option("--tls-ca", g.tls_ca,
                 "mutual TLS: CA certificate (PEM) of the server (env CASEWORK_TLS_CA); "
                 "without it the connection is plaintext");
  app.add_option("--tls-cert", g.tls_cert,
                 "mutual TLS: your client certificate (PEM) (env CASEWORK_TLS_CERT); the server "
                 "takes your identity from it");
  app.add_option("--tls-key", g.tls_key,
                 "mutual TLS: your client private key (PEM) (env CASEWORK_TLS_KEY)");
  app.add_option("--tls-server-name", g.tls_server_name,
                 "mutual TLS: the name to expect in the server's certificate (default: the host "
                 "of --server)");
  app.add_flag("--json", g.json, "print JSON (one object per line) instead of tables");
  CLI::Option* timeout_option =
      app.add_option("--timeout-ms", g.timeout_ms,
                     "deadline of each call in milliseconds; reports, verify, export, as-of "
                     "ledger, registry import, sample and backup wait as long as they take "
                     "unless it is given; watch follows until stopped")
          ->capture_default_str()
          ->check(CLI::Range(1, 3600000));
  app.require_subcommand(1);

  int exit_code = kExitOk;
  auto client = [&]() {
    auto c = std::make_unique<Client>(casework::client::ClientOptions{
        .server = g.server,
        .identity = g.identity,
        .tls_ca = g.tls_ca,
        .tls_cert = g.tls_cert,
        .tls_key = g.tls_key,
        .tls_server_name = g.tls_server_name,
        .timeout = std::chrono::milliseconds(g.timeout_ms),
        .long_call_timeout =
            std::chrono::milliseconds(timeout_option->count() > 0 ? g.timeout_ms : 0)});
    if (!c->credentials_error().empty()) {
      // Nothing is sent: the channel could only fail, and "unreachable" would mislead.
      std::cerr << "TLS: " << c->credentials_error() << " TLS 配置无法使用\n";
      throw UsageFailure{};
    }
    return c;
  };

  // get
  std::string get_id;
  auto* get = app.add_subcommand("get", "show one case 查看案件");
  get->add_option("case_id", get_id, "case id")->required();
  get->callback([&] {
    auto c = client();
    casework::v1::GetCaseRequest req;
    req.set_name(CaseName(get_id));
    Case resp;
    auto ctx = c->NewContext();
    auto status = c->cases().GetCase(ctx.get(), req, &resp);
    if (!status.ok()) {
      exit_code = ReportError(status, g);
    } else if (g.json) {
      std::cout << Json(resp) << "\n";
    } else {
      PrintCase(resp);
    }
  });

  // list
  std::string list_filter, list_order;
  int list_page_size = 50;
  bool list_all = false;
  auto* list = app.add_subcommand("list", "list cases on the ledger 台账列表");
  list->add_option("--filter", list_filter,
                   "e.g. 'state = ASSISTED AND jurisdiction = \"jiangcheng/dongshan\"'");
  list->add_option("--order-by", list_order, "case_id");
  list->add_option("--page-size", list_page_size, "cases per page")->capture_default_str();
  list->add_flag("--all", list_all, "follow page tokens to the end");
  std::string list_page_token;
  list->add_option("--page-token", list_page_token,
                   "go on from a page's next_page_token (same --filter and --order-by)");
  list->callback([&] {
    auto c = client();
    casework::v1::ListCasesRequest req;
    req.set_filter(list_filter);
    req.set_order_by(list_order);
    req.set_page_size(list_page_size);
    req.set_page_token(list_page_token);
    casework::client::Table table({"Case 案件", "State 状态", "Organisation 组织",
                                   "Jurisdiction 辖区", "Type 类型", "Deadline 期限"});
    size_t total = 0;
    for (;;) {
      casework::v1::ListCasesResponse resp;
      auto ctx = c->NewContext();
      auto status = c->cases().ListCases(ctx.get(), req, &resp);
      if (!status.ok()) {
        exit_code = ReportError(status, g);
        return;
      }
      for (const auto& cs : resp.cases()) {
        ++total;
        if (g.json) {
          std::cout << Json(cs) << "\n";
        } else {
          table.AddRow({cs.case_id(), casework::client::StateLabel(cs.state()),
                        cs.organisation().display_name(), cs.organisation().jurisdiction(),
                        casework::client::CaseTypeLabel(cs.case_type()), TimeText(cs.deadline())});
        }
      }
      if (resp.next_page_token().empty() || !list_all) {
        if (g.json) {
          // A script goes on with --page-token; without this line it could not tell a
          // last page from a first one.
          if (!resp.next_page_token().empty()) {
            std::cout << nlohmann::json{{"next_page_token", resp.next_page_token()}}.dump() << "\n";
          }
        } else {
          table.Print(std::cout);
          std::cout << total << " cases 个案件";
          if (!resp.next_page_token().empty()) {
            std::cout << " (more 还有更多: --all, or --page-token " << resp.next_page_token()
                      << ")";
          }
          std::cout << "\n";
        }
        return;
      }
      if (resp.next_page_token() == req.page_token()) {
        std::cerr << "the server returned the same page token again; stopping "
                     "服务器重复返回同一分页标记，已停止\n";
        exit_code = kExitFailure;
        return;
      }
      req.set_page_token(resp.next_page_token());
    }
  });

  // events
  std::string events_id;
  auto* events = app.add_subcommand("events", "show a case's history 案件事件记录");
  events->add_option("case_id", events_id, "case id")->required();
  events->callback([&] {
    auto c = client();
    casework::v1::ListCaseEventsRequest req;
    req.set_name(CaseName(events_id));
    req.set_page_size(1000);
    casework::client::Table table(
        {"Position 位置", "Version 版本", "Event 事件", "Actor 操作人", "Time 时间"});
    for (;;) {
      casework::v1::ListCaseEventsResponse resp;
      auto ctx = c->NewContext();
      auto status = c->cases().ListCaseEvents(ctx.get(), req, &resp);
      if (!status.ok()) {
        exit_code = ReportError(status, g);
        return;
      }
      for (const auto& r : resp.events()) {
        if (g.json) {
          std::cout << Json(r) << "\n";
          continue;
        }
        table.AddRow({absl::StrCat(r.position()), absl::StrCat(r.event().version()),
                      casework::client::EventKindLabel(r.event()), r.event().actor(),
                      TimeText(r.event().time())});
      }
      if (resp.next_page_token().empty()) break;
      if (resp.next_page_token() == req.page_token()) {
        std::cerr << "the server returned the same page token again; stopping "
                     "服务器重复返回同一分页标记，已停止\n";
        exit_code = kExitFailure;
        return;
      }
      req.set_page_token(resp.next_page_token());
    }
    if (!g.json) table.Print(std::cout);
  });

  // Transition commands share --request-id and --expected-version.
  std::string request_id;
  int64_t expected_version = 0;
  auto add_common = [&](CLI::App* sub) {
    sub->add_option("--request-id", request_id,
                    "idempotency key; a retry with the same id is safe (default: random)");
  };
  auto add_version = [&](CLI::App* sub) {
    sub->add_option("--expected-version", expected_version,
                    "the version you last saw (see `casectl get`)")
        ->required()
        ->transform(casework::client::Version());
  };
  auto rid = [&] { return casework::client::CommandRequestId(request_id); };

  // create
  struct {
    std::string case_id, org_id, org_name, jurisdiction, kind = "village", type, findings, deadline;
    std::vector<int> categories;
  } cr;
  auto* create = app.add_subcommand("create", "list an organisation: new case 列入台账");
  create->add_option("--case-id", cr.case_id, "new case id ([a-z0-9-])")->required();
  create->add_option("--org-id", cr.org_id, "organisation id")->required();
  create->add_option("--org-name", cr.org_name, "organisation name, e.g. 东山村党支部")->required();
  create->add_option("--jurisdiction", cr.jurisdiction, "city/county/township/org")->required();
  create->add_option("--kind", cr.kind, "village 村 or community 社区")
      ->check(CLI::IsMember({"village", "community"}))
      ->capture_default_str();
  create->add_option("--type", cr.type, "weak 软村, poor 穷村, disorderly 乱村, industry 产业村")
      ->check(CLI::IsMember({"weak", "poor", "disorderly", "industry"}))
      ->required();
  create->add_option("--categories", cr.categories, "problem categories 1-6, e.g. 1,3")
      ->delimiter(',')
      ->check(CLI::Range(1, 6))
      ->required();
  create->add_option("--findings", cr.findings, "investigation findings 排查情况")->required();
  create
      ->add_option("--deadline", cr.deadline,
                   "deadline: YYYY-MM-DD (by the end of that day, local time) 整改期限")
      ->required();
  add_common(create);
  create->callback([&] {
    casework::v1::CreateCaseRequest req;
    req.set_case_id(cr.case_id);
    req.set_request_id(rid());
    auto* org = req.mutable_organisation();
    org->set_organisation_id(cr.org_id);
    org->set_display_name(cr.org_name);
    org->set_jurisdiction(cr.jurisdiction);
    org->set_kind(cr.kind == "village" ? casework::v1::ORGANISATION_KIND_VILLAGE
                                       : casework::v1::ORGANISATION_KIND_COMMUNITY);
    casework::v1::CaseType type = casework::v1::CASE_TYPE_UNSPECIFIED;
    casework::v1::CaseType_Parse("CASE_TYPE_" + absl::AsciiStrToUpper(cr.type), &type);
    req.set_case_type(type);
    for (int p : cr.categories) {
      req.add_problem_categories(static_cast<casework::v1::ProblemCategory>(p));
    }
    req.set_findings(cr.findings);
    auto deadline = ParseDeadline(cr.deadline);
    if (!deadline.ok()) {
      std::cerr << deadline.status().message() << "\n";
      exit_code = kExitUsage;
      return;
    }
    *req.mutable_deadline() = *deadline;
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().CreateCase(ctx.get(), req, &resp), resp, g);
  });

  // review
  std::string rv_id, rv_comment;
  bool rv_return = false;
  auto* review = app.add_subcommand("review", "review a listing 审核列入");
  review->add_option("case_id", rv_id, "case id")->required();
  review->add_flag("--return", rv_return, "return for correction instead of confirming 退回");
  review->add_option("--comment", rv_comment, "comment 审核意见");
  add_common(review);
  add_version(review);
  review->callback([&] {
    casework::v1::ReviewListingRequest req;
    req.set_name(CaseName(rv_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_confirmed(!rv_return);
    req.set_comment(rv_comment);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().ReviewListing(ctx.get(), req, &resp), resp, g);
  });

  // assign
  struct {
    std::string id, dept_id, dept_name, dept_kind, secretary, plan;
    std::vector<std::string> cadres;
  } as;
  auto* assign = app.add_subcommand("assign", "assign assistance 安排帮扶");
  assign->add_option("case_id", as.id, "case id")->required();
  assign->add_option("--dept-id", as.dept_id, "paired department id")->required();
  assign->add_option("--dept-name", as.dept_name, "paired department name 结对部门")->required();
  assign
      ->add_option("--dept-kind", as.dept_kind,
                   "party-government, economic, political-legal, agricultural-tech")
      ->check(
          CLI::IsMember({"party-government", "economic", "political-legal", "agricultural-tech"}))
      ->required();
  assign->add_option("--first-secretary", as.secretary, "person id of the first secretary 第一书记")
      ->required();
  assign->add_option("--cadres", as.cadres, "person ids of stationed cadres 驻村干部")
      ->delimiter(',')
      ->required();
  assign->add_option("--plan", as.plan, "the per-case plan 一村一策")->required();
  add_common(assign);
  add_version(assign);
  assign->callback([&] {
    casework::v1::AssignAssistanceRequest req;
    req.set_name(CaseName(as.id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    auto* a = req.mutable_assignment();
    a->mutable_paired_department()->set_department_id(as.dept_id);
    a->mutable_paired_department()->set_display_name(as.dept_name);
    const std::vector<std::string> kinds = {"", "party-government", "economic", "political-legal",
                                            "agricultural-tech"};
    for (size_t k = 1; k < kinds.size(); ++k) {
      if (kinds[k] == as.dept_kind) {
        a->mutable_paired_department()->set_kind(static_cast<casework::v1::DepartmentKind>(k));
      }
    }
    a->mutable_first_secretary()->set_person_id(as.secretary);
    a->mutable_first_secretary()->set_display_name(as.secretary);
    for (const auto& p : as.cadres) {
      auto* cadre = a->add_stationed_cadres();
      cadre->set_person_id(p);
      cadre->set_display_name(p);
    }
    a->set_plan(as.plan);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().AssignAssistance(ctx.get(), req, &resp), resp, g);
  });

  // visit
  std::string vi_id, vi_notes, vi_time;
  std::vector<std::string> vi_visitors;
  auto* visit = app.add_subcommand("visit", "record a field visit 记录走访");
  visit->add_option("case_id", vi_id, "case id")->required();
  visit->add_option("--visitors", vi_visitors, "person ids of assigned people")
      ->delimiter(',')
      ->required();
  visit->add_option("--time", vi_time, "when (YYYY-MM-DD, local time, or RFC 3339; default now)");
  visit->add_option("--notes", vi_notes, "what was done");
  add_common(visit);
  add_version(visit);
  visit->callback([&] {
    casework::v1::RecordFieldVisitRequest req;
    req.set_name(CaseName(vi_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    for (const auto& v : vi_visitors) req.add_visitors(v);
    if (vi_time.empty()) {
      req.mutable_visit_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
    } else {
      auto t = ParseDate(vi_time);
      if (!t.ok()) {
        std::cerr << t.status().message() << "\n";
        exit_code = kExitUsage;
        return;
      }
      *req.mutable_visit_time() = *t;
    }
    req.set_notes(vi_notes);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().RecordFieldVisit(ctx.get(), req, &resp), resp, g);
  });

  // measure
  std::string me_id, me_desc;
  int me_category = 0;
  auto* measure = app.add_subcommand("measure", "record a completed measure 记录整改措施");
  measure->add_option("case_id", me_id, "case id")->required();
  measure->add_option("--description", me_desc, "the measure")->required();
  measure->add_option("--category", me_category, "problem category 1-6 it addresses")
      ->check(CLI::Range(1, 6))
      ->required();
  add_common(measure);
  add_version(measure);
  measure->callback([&] {
    casework::v1::RecordMeasureRequest req;
    req.set_name(CaseName(me_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_description(me_desc);
    req.set_problem_category(static_cast<casework::v1::ProblemCategory>(me_category));
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().RecordMeasure(ctx.get(), req, &resp), resp, g);
  });

  // funds
  std::string fu_id, fu_source, fu_purpose;
  int64_t fu_fen = 0;
  auto* funds = app.add_subcommand("funds", "record funds provided 记录帮扶资金");
  funds->add_option("case_id", fu_id, "case id")->required();
  funds->add_option("--amount-fen", fu_fen, "amount in fen (0.01 CNY), more than 0")
      ->required()
      ->transform(casework::client::PositiveAmount());
  funds->add_option("--source", fu_source, "source of the funds");
  funds->add_option("--purpose", fu_purpose, "purpose");
  add_common(funds);
  add_version(funds);
  funds->callback([&] {
    casework::v1::RecordFundsRequest req;
    req.set_name(CaseName(fu_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_amount_fen(fu_fen);
    req.set_source(fu_source);
    req.set_purpose(fu_purpose);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().RecordFunds(ctx.get(), req, &resp), resp, g);
  });

  // inspect
  std::string in_id, in_inspection, in_findings, in_measures;
  bool in_fail = false;
  auto* inspect = app.add_subcommand("inspect", "record an acceptance inspection 记录验收");
  inspect->add_option("case_id", in_id, "case id")->required();
  inspect->add_option("--inspection-id", in_inspection, "inspection id")->required();
  auto* failed_flag = inspect->add_flag("--fail", in_fail, "the inspection failed 未通过");
  inspect->add_option("--findings", in_findings, "what was found")->required();
  // A failed inspection prescribes stronger measures, and only a failed one does.
  auto* measures_option = inspect->add_option("--further-measures", in_measures,
                                              "stronger measures (with --fail, required there)");
  failed_flag->needs(measures_option);
  measures_option->needs(failed_flag);
  add_common(inspect);
  add_version(inspect);
  inspect->callback([&] {
    casework::v1::RecordInspectionRequest req;
    req.set_name(CaseName(in_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_inspection_id(in_inspection);
    req.set_passed(!in_fail);
    req.set_findings(in_findings);
    req.set_further_measures(in_measures);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().RecordInspection(ctx.get(), req, &resp), resp, g);
  });

  // send-back
  std::string sb_id, sb_reason;
  auto* send_back = app.add_subcommand("send-back", "send a verified case back 退回整改");
  send_back->add_option("case_id", sb_id, "case id")->required();
  send_back->add_option("--reason", sb_reason, "why")->required();
  add_common(send_back);
  add_version(send_back);
  send_back->callback([&] {
    casework::v1::SendBackRequest req;
    req.set_name(CaseName(sb_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_reason(sb_reason);
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().SendBack(ctx.get(), req, &resp), resp, g);
  });

  // follow-up
  std::string fr_id, fr_findings, fr_deadline;
  bool fr_relapsed = false;
  std::vector<int> fr_categories;
  auto* follow_up = app.add_subcommand("follow-up", "record a follow-up review 回头看");
  follow_up->add_option("case_id", fr_id, "case id")->required();
  auto* relapsed_flag =
      follow_up->add_flag("--relapsed", fr_relapsed, "a relapse was found 反弹回潮");
  follow_up->add_option("--findings", fr_findings, "what the review found")->required();
  // The categories and the new deadline are of a relapse only.
  follow_up->add_option("--categories", fr_categories, "relapsed categories 1-6 (with --relapsed)")
      ->delimiter(',')
      ->check(CLI::Range(1, 6))
      ->needs(relapsed_flag);
  follow_up
      ->add_option("--deadline", fr_deadline,
                   "new deadline YYYY-MM-DD, by the end of that day (with --relapsed)")
      ->needs(relapsed_flag);
  add_common(follow_up);
  add_version(follow_up);
  follow_up->callback([&] {
    casework::v1::RecordFollowUpReviewRequest req;
    req.set_name(CaseName(fr_id));
    req.set_request_id(rid());
    req.set_expected_version(expected_version);
    req.set_relapsed(fr_relapsed);
    req.set_findings(fr_findings);
    for (int p : fr_categories) {
      req.add_problem_categories(static_cast<casework::v1::ProblemCategory>(p));
    }
    if (!fr_deadline.empty()) {
      auto t = ParseDeadline(fr_deadline);
      if (!t.ok()) {
        std::cerr << t.status().message() << "\n";
        exit_code = kExitUsage;
        return;
      }
      *req.mutable_deadline() = *t;
    }
    auto c = client();
    CaseCommandResponse resp;
    auto ctx = c->NewContext();
    exit_code = PrintCommandResult(c->cases().RecordFollowUpReview(ctx.get(), req, &resp), resp, g);
  });

  // seed
  casework::client::SeedOptions seed_options;
  auto* seed =
      app.add_subcommand("seed",
                         "load deterministic sample data through the API, acting as the sample "
                         "identities (plaintext servers only; --identity is refused, "
                         "--timeout-ms applies to each call) 载入示例数据");
  seed->add_option("--seed", seed_options.seed, "generator seed")->capture_default_str();
  seed->add_option("--cases", seed_options.cases,
                   "number of cases, at most 3,000 (one per organisation of the sample city)")
      ->capture_default_str();
  seed->add_option("--concurrency", seed_options.concurrency, "requests in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  seed->callback([&] {
    // The sample data is made by several sample identities, which only a plaintext
    // server takes from the identity header; with TLS each connection is one certificate.
    if (!g.tls_ca.empty() || !g.tls_cert.empty() || !g.tls_key.empty() ||
        !g.tls_server_name.empty()) {
      std::cerr << "seed acts as the sample identities of deploy/principals.sample.json and "
                   "runs only against a plaintext (--insecure-plaintext) server; drop the "
                   "--tls-* options 示例数据仅可载入明文测试服务器\n";
      exit_code = kExitUsage;
      return;
    }
    if (app.get_option("--identity")->count() > 0) {
      std::cerr << "seed acts as the sample identities of deploy/principals.sample.json, not as "
                   "--identity; drop it 示例数据以示例身份载入，请去掉 --identity\n";
      exit_code = kExitUsage;
      return;
    }
    seed_options.server = g.server;
    seed_options.timeout = std::chrono::milliseconds(g.timeout_ms);
    exit_code = casework::client::RunSeed(seed_options, g.json);
  });

  // The commands kept in their own files reach the client, the output mode and the
  // error reporting through these hooks.
  const casework::client::KeyCommandHooks hooks{
      .client = client,
      .json = &g.json,
      .exit_code = &exit_code,
      .report_error = [&g](const grpc::Status& status) { return ReportError(status, g); },
      .print_result =
          [&g](const grpc::Status& status, const CaseCommandResponse& resp) {
            return PrintCommandResult(status, resp, g);
          }};
  // amend, replace, talk, notice
  casework::client::AddTransitionCommands(&app, hooks);
  // keygen, sign, sign-off, admin register-key / revoke-key
  casework::client::AddKeyCommands(&app, hooks);

  // watch, verify, as-of, proof, export, verify-export
  casework::client::AddAuditCommands(
      &app, {.client = client,
             .json = &g.json,
             .exit_code = &exit_code,
             .report_error = [&g](const grpc::Status& status) { return ReportError(status, g); }});

  // registry import, report, flags, accountability, sample, county-talk, county-notice
  casework::client::AddOversightCommands(
      &app, {.client = client,
             .json = &g.json,
             .exit_code = &exit_code,
             .report_error = [&g](const grpc::Status& status) { return ReportError(status, g); }});

  // Options are parsed and the command runs inside parse(); every usage error exits 2
  // (CLI11's own codes, 105-114, are not casectl's), --help exits 0.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const UsageFailure&) {
    return kExitUsage;
  } catch (const nlohmann::json::exception& e) {
    // --json output of a value typed in another encoding than UTF-8 (a path, a name).
    std::cerr << "cannot print the result as JSON: " << e.what()
              << " (a value that is not UTF-8) 结果含非 UTF-8 文本，无法输出 JSON\n";
    return kExitFailure;
  }
  return exit_code;
}

#include "clients/casectl/oversight_commands.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "clients/casectl/dates.h"
#include "clients/casectl/request_id.h"
#include "clients/table.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "nlohmann/json.hpp"
#include "services/oversight/oversight.h"
#include "services/oversight/registry_csv.h"

namespace casework::client {
namespace {

namespace v1 = ::casework::v1;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitFailure = 4;  // as casectl.cc: the work could not be done
// Bytes of CSV per ImportRegistry request: well below the server's 256 KiB message limit.
constexpr size_t kImportChunkBytes = 192 * 1024;

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

std::string Percent(int64_t bp) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f%%", static_cast<double>(bp) / 100.0);
  return text;
}

std::string Day(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(t.seconds()), absl::LocalTimeZone());
}

std::string RuleLabel(const std::string& rule) {
  static const std::map<std::string, std::string> labels = {
      {oversight::kStationedButAbsent, "Stationed but absent 驻村不在村"},
      {oversight::kThreeYearsWithoutChange, "Three years without change 三年无明显变化"},
      {oversight::kFollowUpReviewDue, "Follow-up review due 回头看到期"},
      {oversight::kOverdue, "Overdue 逾期未整改"},
      {oversight::kListedRatioBelow10Percent, "Listed ratio below 10% 倒排比例不足"},
      {oversight::kLowerRankedSkipped, "Lower-ranked skipped 未按倒排列入"},
  };
  auto it = labels.find(rule);
  return it == labels.end() ? rule : it->second;
}

std::string SectionLabel(const std::string& section) {
  static const std::map<std::string, std::string> labels = {
      {"OPEN_CASE", "Open case 在册案件"},
      {"CONVERSION", "Conversion 转化销号"},
      {"RELAPSE", "Relapse 反弹"},
      {"FLAG", "Flag 预警"},
      {"TALK", "Talk 约谈"},
      {"NOTICE", "Notice 通报整改"},
  };
  auto it = labels.find(section);
  return it == labels.end() ? section : it->second;
}

std::string Positions(const google::protobuf::RepeatedField<int64_t>& positions) {
  std::vector<std::string> out;
  for (int i = 0; i < positions.size() && i < 6; ++i)
    out.push_back(absl::StrCat("#", positions[i]));
  if (positions.size() > 6) out.push_back(absl::StrCat("+", positions.size() - 6));
  return absl::StrJoin(out, " ");
}

// At most `columns` terminal columns of `text`, cut at a character boundary, "…" marking
// a cut. The whole text is in --json output.
std::string Clip(const std::string& text, size_t columns) {
  if (DisplayWidth(text) <= columns) return text;
  size_t end = 0;
  while (end < text.size()) {
    size_t next = end + 1;
    while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
    if (DisplayWidth(std::string_view(text).substr(0, next)) > columns - 1) break;
    end = next;
  }
  return text.substr(0, end) + "…";
}

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream data;
  data << in.rdbuf();
  *out = data.str();
  return true;
}

// A refusal of request `index` (of `count`) in the terms of the file: "line N" (and
// "第 N 行") of the request become the file's line, and a note says what earlier requests
// imported, so that the message matches what the user holds.
grpc::Status InFileTerms(const grpc::Status& status, const std::vector<int64_t>& file_lines,
                         size_t index, size_t count, const RegistryImportTotals& before) {
  // "line N..." / "第 N 行...": the number right after the prefix.
  auto to_file_line = [&](std::string text, const std::string& prefix) {
    if (text.rfind(prefix, 0) != 0) return text;
    size_t digits_end = prefix.size();
    while (digits_end < text.size() && absl::ascii_isdigit(text[digits_end])) ++digits_end;
    int64_t line = 0;
    if (!absl::SimpleAtoi(text.substr(prefix.size(), digits_end - prefix.size()), &line) ||
        line < 2 || line - 2 >= static_cast<int64_t>(file_lines.size())) {
      return text;
    }
    return absl::StrCat(prefix, file_lines[line - 2], text.substr(digits_end));
  };
  std::string message = to_file_line(status.error_message(), "line ");
  std::string earlier;
  if (index > 0) {
    earlier = absl::StrCat(" (request ", index + 1, " of ", count, "; the ", index,
                           " before it were imported: ", before.imported, " new, ", before.updated,
                           " updated, ", before.unchanged, " unchanged)");
  } else if (count > 1) {
    earlier = absl::StrCat(" (request 1 of ", count, ")");
  }
  std::string details = status.error_details();
  google::rpc::Status rich;
  if (!details.empty() && rich.ParseFromString(details)) {
    for (auto& any : *rich.mutable_details()) {
      google::rpc::LocalizedMessage localized;
      if (any.UnpackTo(&localized) && localized.locale() == "zh-CN") {
        std::string zh = to_file_line(localized.message(), "第 ");
        if (index > 0) absl::StrAppend(&zh, "（此前 ", index, " 个请求已导入）");
        localized.set_message(zh);
        any.PackFrom(localized);
      }
    }
    rich.set_message(message + earlier);
    details = rich.SerializeAsString();
  }
  return grpc::Status(status.error_code(), message + earlier, details);
}

}  // namespace

grpc::Status ImportRegistryFile(Client& admin, std::string_view csv, const std::string& request_id,
                                RegistryImportTotals* totals, std::string* error) {
  auto rows = oversight::ParseRegistryCsv(csv);
  if (!rows.ok()) {
    // English, then Chinese on a line of its own.
    *error = std::string(rows.status().message()) + "\n  " +
             oversight::RegistryCsvMessageZh(rows.status());
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, *error);
  }
  totals->rows = static_cast<int64_t>(rows->size());
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> by_county;
  for (const oversight::RegistryRow& row : *rows) {
    by_county[oversight::CountyOf(row.organisation.jurisdiction())].emplace_back(
        row.line, oversight::RegistryCsvLine(row));
  }
  std::vector<std::string> chunks;
  // For each request, the file's line number of each of its physical lines (its own line
  // 2, 3, ...; line 1 is the header).
  std::vector<std::vector<int64_t>> chunk_lines(1);
  std::string chunk;
  auto flush = [&] {
    if (!chunk.empty()) {
      chunks.push_back(std::string(oversight::kRegistryCsvHeader) + "\n" + chunk);
      chunk_lines.emplace_back();
    }
    chunk.clear();
  };
  for (const auto& [county, county_rows] : by_county) {
    size_t county_bytes = 0;
    for (const auto& [line, text] : county_rows) county_bytes += text.size() + 1;
    // A county goes whole into one request when it fits.
    if (chunk.size() + county_bytes > kImportChunkBytes) flush();
    for (const auto& [line, text] : county_rows) {
      if (chunk.size() + text.size() + 1 > kImportChunkBytes) flush();
      absl::StrAppend(&chunk, text, "\n");
      // A quoted field may hold line breaks: each physical line of the request maps to
      // the file's.
      const auto breaks = std::count(text.begin(), text.end(), '\n');
      for (int64_t k = 0; k <= breaks; ++k) chunk_lines.back().push_back(line + k);
    }
  }
  flush();
  auto stub = v1::OversightService::NewStub(admin.channel());
  // Remembered for an unknown outcome: the same file with this id splits into the same
  // requests, so a retry with it records each at most once.
  (void)CommandRequestId(request_id);
  std::set<std::string> recorded;  // counties some request recorded rows in now
  for (size_t i = 0; i < chunks.size(); ++i) {
    v1::ImportRegistryRequest req;
    req.set_request_id(absl::StrCat(request_id, "/", i + 1));
    req.set_csv(chunks[i]);
    v1::ImportRegistryResponse resp;
    grpc::Status status;
    // Another import being recorded (the server runs one at a time), or a race lost to
    // one: the same request again, a few times (the request id makes that safe).
    for (int attempt = 0; attempt < 10; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
      auto ctx = admin.NewLongContext();
      resp.Clear();
      status = stub->ImportRegistry(ctx.get(), req, &resp);
      const std::string reason = status.ok() ? "" : DecodeError(status).reason;
      if (status.error_code() != grpc::StatusCode::ABORTED ||
          (reason != "IMPORT_IN_PROGRESS" && reason != "STALE_EXPECTED_VERSION")) {
        break;
      }
    }
    if (!status.ok()) {
      // The server names a line of this request, which regrouped the file by county: the
      // line is put back to the file's own, and earlier requests are said to be in.
      return InFileTerms(status, chunk_lines[i], i, chunks.size(), *totals);
    }
    ++totals->requests;
    if (resp.replayed()) ++totals->replayed_requests;
    totals->imported += resp.imported();
    totals->updated += resp.updated();
    totals->unchanged += resp.unchanged();
    // A county split over two requests may be answered from an earlier import in one and
    // recorded now in the other (an interrupted import run again): recorded, then.
    const std::set<std::string> replayed(resp.replayed_counties().begin(),
                                         resp.replayed_counties().end());
    for (const std::string& county : resp.counties()) {
      totals->counties.insert(county);
      if (!replayed.contains(county)) recorded.insert(county);
    }
    totals->replayed_counties.insert(replayed.begin(), replayed.end());
  }
  for (const std::string& county : recorded) totals->replayed_counties.erase(county);
  totals->recorded_counties = static_cast<int64_t>(recorded.size());
  return grpc::Status::OK;
}

void AddOversightCommands(CLI::App* app, AuditCommandContext context) {
  auto shared = std::make_shared<AuditCommandContext>(std::move(context));
  struct Args {
    std::string file, request_id, jurisdiction, at, since, until, county, scope, subject, notes,
        notice_id, content, deadline;
    int size = 0;
    std::vector<std::string> talked_with;
  };
  auto a = std::make_shared<Args>();
  const bool* json = shared->json;
  auto usage = [shared](const std::string& message) {
    std::cerr << message << "\n";
    *shared->exit_code = kExitUsage;
  };
  // Sets `out` from a typed date; false (usage printed) when it is not one.
  auto date = [usage](const std::string& text, const char* flag, google::protobuf::Timestamp* out) {
    auto parsed = std::string_view(flag) == "--deadline" ? ParseDeadline(text) : ParseDate(text);
    if (!parsed.ok()) {
      usage(absl::StrCat(flag, ": ", parsed.status().message()));
      return false;
    }
    *out = *parsed;
    return true;
  };

  // --- registry import ---
  auto* registry = app->add_subcommand("registry", "the organisation registry 组织登记");
  registry->require_subcommand(1);
  auto* import = registry->add_subcommand(
      "import", "import a registry CSV file (docs/oversight.md) 导入分类定级、评星定级名册");
  import->add_option("file", a->file, "the CSV file")->required()->check(CLI::ExistingFile);
  import->add_option("--request-id", a->request_id,
                     "idempotency key (default: derived from the file's content, so importing "
                     "the same file twice records nothing new)");
  import->callback([shared, a, json] {
    std::string csv;
  if (!ReadFile(a->file, &csv)) {
    std::cerr << "cannot read " << a->file << " 无法读取文件\n";
    *shared->exit_code = kExitUsage;
    return;
  }
  auto c = shared->client();
  std::string rid = a->request_id;
  if (rid.empty()) {
    // From the file and who imports it (the identity header, or the client certificate):
    // the same person importing the same file again records nothing new; another person's
    // import of it is their own request (the server refuses a request id from someone
    // else as REQUEST_ID_REUSED).
    std::string who = c->options().identity;
    if (!c->options().tls_cert.empty()) {
      std::string cert;
      if (ReadFile(c->options().tls_cert, &cert)) who += "\n" + cert;
    }
    const std::string keyed = who + "\n" + csv;
    unsigned char digest[32];
    EVP_Digest(keyed.data(), keyed.size(), digest, nullptr, EVP_sha256(), nullptr);
    rid = "registry-" + Hex(std::string_view(reinterpret_cast<char*>(digest), 8));
  }
  RegistryImportTotals totals;
  std::string local_error;
  grpc::Status status = ImportRegistryFile(*c, csv, rid, &totals, &local_error);
  if (!local_error.empty()) {
    std::cerr << a->file << ": " << local_error << "\n";
    *shared->exit_code = kExitUsage;
    return;
  }
  if (!status.ok()) {
    *shared->exit_code = shared->report_error(status);
    return;
  }
  if (*json) {
    std::cout << nlohmann::json{{"rows", totals.rows},
                                {"requests", totals.requests},
                                {"imported", totals.imported},
                                {"updated", totals.updated},
                                {"unchanged", totals.unchanged},
                                {"request_id", rid},
                                {"replayed_counties", totals.replayed_counties},
                                {"replayed_requests", totals.replayed_requests}}
                     .dump()
              << "\n";
    return;
  }
  PrintRecord(std::cout, {{"Rows 行数", std::to_string(totals.rows)},
                          {"Imported 新登记", std::to_string(totals.imported)},
                          {"Updated 变更", std::to_string(totals.updated)},
                          {"Unchanged 未变", std::to_string(totals.unchanged)},
                          {"Requests 请求数", std::to_string(totals.requests)},
                          {"Request id 请求标识", rid}});
  if (!totals.replayed_counties.empty()) {
    // The counts above are the earlier import's: say so, or a file imported again to go
    // back to it would look recorded while the registry still holds the later file.
    std::cout << "\nImported before with this request id: " << totals.replayed_counties.size()
              << " of " << totals.counties.size()
              << " counties were answered from that import and nothing was recorded there now. "
                 "To record this file again (to go back to it after a later file), give "
                 "--request-id a new value.\n"
              << "此文件已用同一请求标识导入过：" << totals.replayed_counties.size() << " / "
              << totals.counties.size()
              << " 个县按当时的导入作答，本次未重新登记。如需重新登记（例如恢复为较早的名册），"
                 "请用 --request-id 指定新的请求标识。\n";
  } else if (totals.replayed_requests > 0 && totals.recorded_counties == 0) {
    // Every row of those requests was unchanged when they were first imported: no county
    // was recorded then, and none is now.
    std::cout << "\nImported before with this request id: " << totals.replayed_requests << " of "
              << totals.requests
              << " requests were answered from that import (every row unchanged then) and "
                 "nothing was recorded now. To compare this file with the registry again, give "
                 "--request-id a new value.\n"
              << "此文件已用同一请求标识导入过：" << totals.replayed_requests << " / "
              << totals.requests
              << " 个请求按当时的导入作答（当时各行均未变），本次未重新登记。如需重新比对，"
                 "请用 --request-id 指定新的请求标识。\n";
  }
});

// --- report ---
auto* report = app->add_subcommand(
    "report", "the county table: listed, assisted, closed, ratio, flags 县级整顿情况表");
report->add_option("--jurisdiction", a->jurisdiction, "subtree (default: yours)");
report->add_option("--at", a->at, "as of this date or time (default: now)");
report->add_option("--since", a->since,
                   "start of the period for conversions, relapses, talks and notices");
report->callback([shared, a, json, date] {
  v1::GetCountyReportRequest req;
  req.set_jurisdiction(a->jurisdiction);
  if (!a->at.empty() && !date(a->at, "--at", req.mutable_as_of_time())) return;
  if (!a->since.empty() && !date(a->since, "--since", req.mutable_period_start_time())) return;
  auto c = shared->client();
  v1::GetCountyReportResponse resp;
  auto ctx = c->NewLongContext();
  auto status = v1::OversightService::NewStub(c->channel())->GetCountyReport(ctx.get(), req, &resp);
  if (!status.ok()) {
    *shared->exit_code = shared->report_error(status);
    return;
  }
  if (*json) {
    std::cout << Json(resp) << "\n";
    return;
  }
  std::vector<std::string> header = {"County 县市区",   "Orgs 组织数",     "Listed 列入",
                                     "Ratio 列入比例",  "Awaiting 待帮扶", "Assisted 帮扶中",
                                     "Verified 已验收", "Closed 已销号",   "Reopened 反弹",
                                     "Rate 转化率",     "Flags 预警"};
  const bool period = !a->since.empty();
  if (period) {
    for (const char* h : {"Converted 期内销号", "Relapsed 期内反弹", "Period rate 期内转化率",
                          "Talks 约谈", "Notices 通报"}) {
      header.push_back(h);
    }
  }
  Table table(header);
  v1::CountyLine total;
  for (const v1::CountyLine& l : resp.lines()) {
    std::vector<std::string> row = {l.jurisdiction(),
                                    std::to_string(l.organisations()),
                                    std::to_string(l.listed()),
                                    l.organisations() == 0 ? "-" : Percent(l.listed_ratio_bp()),
                                    std::to_string(l.awaiting_assistance()),
                                    std::to_string(l.assisted()),
                                    std::to_string(l.verified()),
                                    std::to_string(l.closed()),
                                    std::to_string(l.reopened()),
                                    Percent(l.conversion_rate_bp()),
                                    std::to_string(l.flags())};
    if (period) {
      row.push_back(std::to_string(l.conversions_in_period()));
      row.push_back(std::to_string(l.relapses_in_period()));
      row.push_back(Percent(l.period_conversion_rate_bp()));
      row.push_back(std::to_string(l.talks_in_period()));
      row.push_back(std::to_string(l.notices_in_period()));
    }
    table.AddRow(std::move(row));
  }
  std::cout << "through position 截至位置 " << resp.through_position() << "\n";
  table.Print(std::cout);
});

// --- flags ---
auto* flags = app->add_subcommand("flags", "rules broken as of a time 预警（问责线索）");
flags->add_option("--jurisdiction", a->jurisdiction, "subtree (default: yours)");
flags->add_option("--at", a->at, "as of this date or time (default: now)");
flags->callback([shared, a, json, date] {
  v1::ListFlagsRequest req;
  req.set_jurisdiction(a->jurisdiction);
  if (!a->at.empty() && !date(a->at, "--at", req.mutable_as_of_time())) return;
  auto c = shared->client();
  auto stub = v1::OversightService::NewStub(c->channel());
  // In one answer (one fold of the log); a listing too large for one comes in pages, each
  // computed from the same log positions and time, and is put together here.
  v1::ListFlagsResponse resp;
  std::string last_token;
  for (int busy = 0;;) {
    v1::ListFlagsResponse page;
    auto ctx = c->NewLongContext();
    auto status = stub->ListFlags(ctx.get(), req, &page);
    const std::string reason = status.ok() ? "" : DecodeError(status).reason;
    if (reason == "FLAGS_TOO_MANY" && req.page_size() == 0) {
      req.set_page_size(5000);
      continue;
    }
    if (reason == "OVERSIGHT_JOBS_BUSY" && ++busy <= 10) {  // the same page again
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    busy = 0;
    resp.set_through_position(page.through_position());
    for (v1::Flag& f : *page.mutable_flags()) *resp.add_flags() = std::move(f);
    if (page.next_page_token().empty()) break;
    if (page.next_page_token() == last_token || page.flags_size() == 0) {
      std::cerr << "the server's pages of flags do not advance; stopped\n"
                   "服务器返回的预警分页没有推进，已停止\n";
      *shared->exit_code = kExitFailure;
      return;
    }
    last_token = page.next_page_token();
    req.set_page_token(last_token);
  }
  if (*json) {
    std::cout << Json(resp) << "\n";
    return;
  }
  Table table({"Rule 规则", "Subject 对象", "Since 起始", "Responsible 责任人", "Detail 说明",
               "Events 事件"});
  for (const v1::Flag& f : resp.flags()) {
    table.AddRow({RuleLabel(f.rule()), f.subject(), Day(f.since_time()),
                  Clip(absl::StrJoin(f.responsible(), ", "), 40), Clip(f.detail_zh(), 90),
                  Positions(f.evidence_positions())});
  }
  std::cout << resp.flags_size() << " flags 条预警, through position 截至位置 "
            << resp.through_position() << "\n";
  if (resp.flags_size() > 0) table.Print(std::cout);
});

// --- accountability ---
auto* acc = app->add_subcommand("accountability",
                                "a county's accountability report for a period 述职评议考核材料");
acc->add_option("--county", a->county, "the county, city/county")->required();
acc->add_option("--since", a->since, "period start, e.g. 2026-01-01")->required();
acc->add_option("--until", a->until, "period end, exclusive (default: now)");
acc->callback([shared, a, json, date] {
  v1::GetAccountabilityReportRequest req;
  req.set_county(a->county);
  if (!date(a->since, "--since", req.mutable_period_start_time())) return;
  if (!a->until.empty() && !date(a->until, "--until", req.mutable_period_end_time())) return;
  auto c = shared->client();
  v1::GetAccountabilityReportResponse resp;
  auto ctx = c->NewLongContext();
  auto status =
      v1::OversightService::NewStub(c->channel())->GetAccountabilityReport(ctx.get(), req, &resp);
  if (!status.ok()) {
    *shared->exit_code = shared->report_error(status);
    return;
  }
  if (*json) {
    std::cout << Json(resp) << "\n";
    return;
  }
  const v1::CountyLine& s = resp.summary();
  std::cout << "Accountability report 述职评议考核材料: " << resp.county() << " (" << a->since
            << " .. " << (a->until.empty() ? "now 至今" : a->until)
            << "), through position 截至位置 " << resp.through_position() << "\n";
  PrintRecord(std::cout,
              {{"Organisations 组织数", std::to_string(s.organisations())},
               {"Listed 列入", absl::StrCat(s.listed(), " (", Percent(s.listed_ratio_bp()), ")")},
               {"Open now 在册", std::to_string(s.awaiting_assistance() + s.assisted() +
                                                s.verified() + s.reopened())},
               {"Converted 期内销号", std::to_string(s.conversions_in_period())},
               {"Period rate 期内转化率", Percent(s.period_conversion_rate_bp())},
               {"Relapses 期内反弹", std::to_string(s.relapses_in_period())},
               {"Flags 预警", std::to_string(s.flags())},
               {"Talks 约谈", std::to_string(s.talks_in_period())},
               {"Notices 通报", std::to_string(s.notices_in_period())}});
  Table table(
      {"Section 部分", "Subject 对象", "Date 日期", "People 人员", "Detail 说明", "Events 事件"});
  for (const v1::AccountabilityLine& l : resp.lines()) {
    // Chinese for the departments that read it; English from a server that sends none.
    std::string detail = Clip(l.detail_zh().empty() ? l.detail() : l.detail_zh(), 120);
    table.AddRow({SectionLabel(l.section()), l.subject(), Day(l.time()),
                  absl::StrJoin(l.people(), ", "), detail, Positions(l.positions())});
  }
  table.Print(std::cout);
});

// --- sample ---
auto* sample = app->add_subcommand(
    "sample", "draw cases for an unannounced inspection, recorded 随机抽取（明察暗访）");
sample->add_option("--scope", a->scope, "jurisdiction subtree (default: yours)");
sample->add_option("--size", a->size, "how many cases")->required()->check(CLI::Range(1, 1000));
sample->add_option("--request-id", a->request_id,
                   "idempotency key; part of the seed (default: random)");
sample->callback([shared, a, json] {
  v1::DrawInspectionSampleRequest req;
  req.set_request_id(CommandRequestId(a->request_id));
  req.set_scope(a->scope);
  req.set_sample_size(a->size);
  auto c = shared->client();
  v1::DrawInspectionSampleResponse resp;
  auto ctx = c->NewLongContext();
  auto status =
      v1::OversightService::NewStub(c->channel())->DrawInspectionSample(ctx.get(), req, &resp);
  if (!status.ok()) {
    *shared->exit_code = shared->report_error(status);
    return;
  }
  if (*json) {
    std::cout << Json(resp) << "\n";
    return;
  }
  PrintRecord(std::cout,
              {{"Draw 抽取记录", resp.sample()},
               {"Recorded at 记录位置", absl::StrCat("#", resp.position())},
               {"Request id 请求标识", req.request_id()},
               {"Population 总体", std::to_string(resp.population())},
               {"Seed 种子", Hex(resp.seed())},
               {"Checkpoint 检查点", resp.checkpoint().substr(0, resp.checkpoint().find('\n'))}});
  Table table({"# 序号", "Case 案件"});
  for (int i = 0; i < resp.case_ids_size(); ++i) {
    table.AddRow({std::to_string(i + 1), resp.case_ids(i)});
  }
  table.Print(std::cout);
});

// --- county-talk, county-notice ---
auto print_recorded = [shared, json](const grpc::Status& status,
                                     const v1::CountyAccountabilityResponse& resp) {
  if (!status.ok()) {
    *shared->exit_code = shared->report_error(status);
    return;
  }
  if (*json) {
    std::cout << Json(resp) << "\n";
    return;
  }
  std::cout << "recorded 已记录: " << resp.stream() << " v" << resp.version() << " at position #"
            << resp.position() << "\n";
};
auto* talk = app->add_subcommand("county-talk", "record an admonishment talk with a county 约谈");
talk->add_option("--county", a->county, "the county, city/county")->required();
talk->add_option("--talked-with", a->talked_with, "person ids talked with 约谈对象")
    ->required()
    ->delimiter(',');
talk->add_option("--subject", a->subject, "subject 事由")->required();
talk->add_option("--notes", a->notes, "record of the talk 记录");
talk->add_option("--request-id", a->request_id, "idempotency key (default: random)");
talk->callback([shared, a, print_recorded] {
  v1::RecordCountyTalkRequest req;
  req.set_request_id(CommandRequestId(a->request_id));
  req.set_county(a->county);
  for (const std::string& p : a->talked_with) req.add_talked_with()->set_person_id(p);
  req.set_subject(a->subject);
  req.set_notes(a->notes);
  auto c = shared->client();
  v1::CountyAccountabilityResponse resp;
  auto ctx = c->NewContext();
  print_recorded(
      v1::OversightService::NewStub(c->channel())->RecordCountyTalk(ctx.get(), req, &resp), resp);
});
auto* notice =
    app->add_subcommand("county-notice", "issue a rectification notice to a county 通报整改");
notice->add_option("--county", a->county, "the county, city/county")->required();
notice->add_option("--notice-id", a->notice_id, "document number 文号")->required();
notice->add_option("--content", a->content, "content 内容")->required();
notice->add_option("--deadline", a->deadline, "rectification deadline 整改期限");
notice->add_option("--request-id", a->request_id, "idempotency key (default: random)");
notice->callback([shared, a, print_recorded, date] {
  v1::IssueCountyNoticeRequest req;
  req.set_request_id(CommandRequestId(a->request_id));
  req.set_county(a->county);
  req.set_notice_id(a->notice_id);
  req.set_content(a->content);
  if (!a->deadline.empty() && !date(a->deadline, "--deadline", req.mutable_deadline())) return;
  auto c = shared->client();
  v1::CountyAccountabilityResponse resp;
  auto ctx = c->NewContext();
  print_recorded(
      v1::OversightService::NewStub(c->channel())->IssueCountyNotice(ctx.get(), req, &resp), resp);
});
}  // namespace casework::client

}  // namespace casework::client

#include "services/shell/oversight_service.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "services/oversight/oversight.h"
#include "services/oversight/registry_csv.h"
#include "services/oversight/sample.h"
#include "services/shell/page_token.h"
#include "services/shell/projections.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/decider.h"
#include "services/workflow/limits.h"
#include "services/workflow/names.h"
#include "services/workflow/text.h"
#include "store/checkpoint.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using workflow::Role;

// New or changed organisations one import may record per county: one append, which the
// store bounds (RocksEventLog::Options::append_events_max, 4096 by default).
constexpr size_t kRegistryEventsPerCountyMax = 4096;

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, grpc::Status status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

std::string Sha256(std::string_view bytes) {
  unsigned char digest[32];
  EVP_Digest(bytes.data(), bytes.size(), digest, nullptr, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::string Fingerprint(const google::protobuf::Message& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return Sha256(bytes);
}

v1::Event Envelope(const std::string& stream, int64_t version, const workflow::Principal& actor,
                   int64_t now_micros, const std::string& request_id) {
  v1::Event event;
  event.set_stream(stream);
  event.set_version(version);
  event.set_actor(actor.id);
  if (!actor.principals_version.empty()) event.set_principals_version(actor.principals_version);
  *event.mutable_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(now_micros);
  event.set_request_id(request_id);
  event.set_rules_version(workflow::kRulesVersion);
  return event;
}

grpc::Status Invalid(std::string_view reason, std::string_view field, std::string en,
                     std::string zh) {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, reason, field, std::move(en),
                     std::move(zh));
}

grpc::Status Busy() {
  return ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "OVERSIGHT_JOBS_BUSY", "",
                     "the server is already computing its maximum of oversight reports; retry "
                     "when one has finished",
                     "监督报表任务数已达上限，请稍后重试");
}

// Whether the first event of the request answered by `first` was recorded by `actor_id`.
// The same request from someone else is another request (REQUEST_ID_REUSED): a retry
// comes from whoever made the first, and the log credits the first's actor.
absl::StatusOr<bool> RecordedBy(store::RocksEventLog* log, const store::AppendResult& first,
                                const std::string& actor_id) {
  auto stored = log->ReadRange(first.first_position, 1);
  if (!stored.ok()) return stored.status();
  v1::Event event;
  if (stored->empty() || !event.ParseFromString(stored->front().bytes)) {
    return absl::DataLossError(
        workflow::Cat("the event at position ", first.first_position, " does not parse"));
  }
  return event.actor() == actor_id;
}

grpc::Status RequestIdReused() {
  return Invalid("REQUEST_ID_REUSED", "request_id",
                 "this request_id was already used for a different request; use a new "
                 "request_id for a new request",
                 "该 request_id 已用于另一请求；新请求请使用新的 request_id");
}

// Whether `first`, the recorded answer to a request id, answers this request: the same
// content (`fingerprint`) from the same person. Otherwise the refusal to send:
// REQUEST_ID_REUSED, or the store's error when the first event cannot be read.
std::optional<grpc::Status> NotThisRequest(store::RocksEventLog* log,
                                           const store::AppendResult& first,
                                           const std::string& fingerprint,
                                           const std::string& actor_id) {
  if (first.request_fingerprint != fingerprint) return RequestIdReused();
  absl::StatusOr<bool> same_actor = RecordedBy(log, first, actor_id);
  if (!same_actor.ok()) return FromStoreStatus(same_actor.status());
  if (!*same_actor) return RequestIdReused();
  return std::nullopt;
}

std::string RoleList(const std::vector<Role>& roles, bool zh) {
  std::string out;
  for (size_t i = 0; i < roles.size(); ++i) {
    if (i > 0) out += zh ? "、" : (i + 1 == roles.size() ? " or " : ", ");
    out +=
        zh ? workflow::Cat(workflow::RoleNameZh(roles[i]), "（", workflow::RoleName(roles[i]), "）")
           : std::string(workflow::RoleName(roles[i]));
  }
  return out;
}

// Authenticates and checks that the caller holds one of `roles`.
grpc::Status Require(const Authenticator* auth, grpc::CallbackServerContext* ctx,
                     const std::vector<Role>& roles, std::string_view what,
                     workflow::Principal* caller) {
  if (auto status = auth->Authenticate(ctx, caller); !status.ok()) return status;
  for (Role role : roles) {
    if (caller->HasRole(role)) return grpc::Status::OK;
  }
  return ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "ACTOR_LACKS_ROLE", "",
                     workflow::Cat(what, " needs the role ", RoleList(roles, false), "; ",
                                   caller->id, " has none of them; ask an administrator"),
                     workflow::Cat("该操作需要以下角色之一：", RoleList(roles, true), "；",
                                   caller->id, " 不具备，请联系管理员"));
}

grpc::Status Outside(const workflow::Principal& caller, std::string_view field,
                     std::string_view path) {
  return ErrorStatus(
      grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", field,
      workflow::Cat("\"", workflow::Shown(path, 200), "\" is outside the jurisdiction \"",
                    caller.jurisdiction, "\" of ", caller.id),
      workflow::Cat("“", workflow::Shown(path, 200), "”不在 ", caller.id, " 的管辖范围“",
                    caller.jurisdiction, "”内"));
}

// The scope a report is asked for: the request's, else the caller's own.
std::string ScopeOf(const std::string& requested, const workflow::Principal& caller) {
  std::string scope = requested.empty() ? caller.jurisdiction : requested;
  while (!scope.empty() && scope.back() == '/') scope.pop_back();
  return scope;
}

// True for "city/county": two segments, each a valid id.
bool IsCountyPath(std::string_view path) {
  const size_t slash = path.find('/');
  if (slash == std::string_view::npos || path.find('/', slash + 1) != std::string_view::npos) {
    return false;
  }
  return workflow::IsValidId(path.substr(0, slash)) && workflow::IsValidId(path.substr(slash + 1));
}

grpc::Status CountyInvalid(std::string_view county) {
  return Invalid(
      "COUNTY_INVALID", "county",
      workflow::Cat("county \"", workflow::Shown(county, 80),
                    "\" is not a county's jurisdiction path \"city/county\""),
      workflow::Cat("county“", workflow::Shown(county, 80), "”不是县级辖区路径（市/县）"));
}

grpc::Status CountyUnknown(std::string_view county) {
  return ErrorStatus(
      grpc::StatusCode::NOT_FOUND, "COUNTY_UNKNOWN", "county",
      workflow::Cat("county \"", workflow::Shown(county, 80),
                    "\" has no registered organisation and no case; check the path (a county is "
                    "known once its registry is imported or a case is listed in it)"),
      workflow::Cat(
          "县级辖区“", workflow::Shown(county, 80),
          "”既无登记组织也无案件，请核对路径（导入其组织名册或在其中列入案件后方可记录）"));
}

// Whether anything is known of `county` ("city/county"): its registry imported, or a case
// listed in it.
absl::StatusOr<bool> CountyKnown(store::RocksEventLog* log, const std::string& county) {
  auto registered = log->StreamVersion(workflow::Cat(oversight::kRegistryStreamPrefix, county));
  if (!registered.ok()) return registered.status();
  if (*registered > 0) return true;
  // The jurisdiction index's keys begin with the case's organisation path.
  const std::string prefix = county + "/";
  bool found = false;
  absl::Status scanned = log->ScanProjection(kByJurisdictionTable, prefix, 1,
                                             [&](std::string_view key, std::string_view) {
                                               found = key.substr(0, prefix.size()) == prefix;
                                               return false;
                                             });
  if (!scanned.ok()) return scanned;
  return found;
}

// Cut of an as-of time: unset means now.
absl::StatusOr<int64_t> CutOf(const google::protobuf::Timestamp* as_of, int64_t now) {
  if (as_of == nullptr) return now;
  const std::optional<int64_t> micros = oversight::RequestTimeMicros(*as_of);
  if (!micros.has_value()) return absl::InvalidArgumentError("invalid timestamp");
  return *micros;
}

grpc::Status TimeInvalid(std::string_view field) {
  return Invalid("TIME_INVALID", field,
                 workflow::Cat(field, " is not a valid time (1970-01-01 to 9999-12-31)"),
                 workflow::Cat(field, " 不是有效的时间（1970-01-01 至 9999-12-31）"));
}

// Flags per page at most.
constexpr int32_t kFlagsPageMax = 5000;

// "15 MiB", or "600 bytes" below a MiB.
std::string BytesText(size_t bytes) {
  return bytes >= (size_t{1} << 20) ? workflow::Cat(bytes >> 20, " MiB")
                                    : workflow::Cat(bytes, " bytes");
}

// Where a page of flags starts: the listing's time and log positions, and its offset.
struct FlagsPage {
  int64_t cut = 0;
  int64_t end = 0;
  int64_t offset = 0;
};

std::string EncodeFlagsPageToken(const FlagsPage& page, const std::string& scope) {
  return EncodePageToken(workflow::Cat(page.cut, " ", page.end, " ", page.offset),
                         workflow::Cat("flags\n", scope));
}

std::optional<FlagsPage> DecodeFlagsPageToken(const std::string& token, const std::string& scope) {
  std::optional<std::string> key = DecodePageToken(token, workflow::Cat("flags\n", scope));
  if (!key.has_value()) return std::nullopt;
  std::vector<absl::string_view> parts = absl::StrSplit(*key, ' ');
  FlagsPage page;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &page.cut) ||
      !absl::SimpleAtoi(parts[1], &page.end) || !absl::SimpleAtoi(parts[2], &page.offset) ||
      page.end < 0 || page.offset < 0) {
    return std::nullopt;
  }
  return page;
}

}  // namespace

OversightServiceImpl::OversightServiceImpl(store::RocksEventLog* log, const Authenticator* auth,
                                           workflow::Policy policy, Clock clock,
                                           OversightOptions options)
    : log_(log),
      auth_(auth),
      policy_(std::move(policy)),
      clock_(std::move(clock)),
      options_(options),
      jobs_(options_.jobs_max) {}

grpc::Status OversightServiceImpl::Fold(grpc::CallbackServerContext* ctx, JobCaller* caller,
                                        int64_t cut_micros, int64_t size_max,
                                        oversight::Ledger* ledger) {
  if (options_.job_started_for_testing) options_.job_started_for_testing();
  int64_t position = 0;
  const int64_t end = size_max >= 0 ? std::min(size_max, log_->Size()) : log_->Size();
  v1::Event event;
  oversight::AsOfCut cut(cut_micros);
  while (position < end) {
    if (ctx->IsCancelled()) return FromStoreStatus(absl::CancelledError("the call was cancelled"));
    if (grpc::Status stands = caller->CheckWhileRunning(); !stands.ok()) return stands;
    auto events = log_->ReadRange(
        position,
        std::min<int64_t>(static_cast<int64_t>(options_.read_chunk_events), end - position));
    if (!events.ok()) return FromStoreStatus(events.status());
    if (events->empty()) return FromStoreStatus(absl::DataLossError("the log ended early"));
    for (const store::StoredEvent& e : *events) {
      position = e.position + 1;
      // One message reused: parsing into it keeps its allocations (the fold is
      // allocation-bound otherwise).
      if (!event.ParseFromString(e.bytes)) {
        return FromStoreStatus(absl::DataLossError(
            workflow::Cat("the event at position ", e.position, " does not parse")));
      }
      switch (cut.Judge(e.stream, MicrosOf(event.time()))) {
        case oversight::AsOfCut::Verdict::kEnd:
          return caller->Check();
        case oversight::AsOfCut::Verdict::kSkip:
          continue;
        case oversight::AsOfCut::Verdict::kTake:
          ledger->Add(e.position, event);
          break;
      }
    }
  }
  return caller->Check();
}

// ---------------------------------------------------------------------------------------
// Reports.

grpc::ServerUnaryReactor* OversightServiceImpl::GetCountyReport(
    grpc::CallbackServerContext* ctx, const v1::GetCountyReportRequest* req,
    v1::GetCountyReportResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kAuditor, Role::kAdmin, Role::kApprover},
                       "the county report", &caller);
      !s.ok()) {
    return Finish(ctx, s);
  }
  const std::string scope = ScopeOf(req->jurisdiction(), caller);
  if (!caller.Covers(scope)) return Finish(ctx, Outside(caller, "jurisdiction", scope));
  auto cut = CutOf(req->has_as_of_time() ? &req->as_of_time() : nullptr, clock_());
  if (!cut.ok()) return Finish(ctx, TimeInvalid("as_of_time"));
  auto start = CutOf(req->has_period_start_time() ? &req->period_start_time() : nullptr, 0);
  if (!start.ok()) return Finish(ctx, TimeInvalid("period_start_time"));
  if (*start > *cut) {
    return Finish(
        ctx, Invalid("PERIOD_INVALID", "period_start_time", "period_start_time is after as_of_time",
                     "period_start_time 晚于 as_of_time"));
  }
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the county report", "县级整顿情况表查询");
  const bool started = jobs_.Start([this, reactor, ctx, resp, scope, cut = *cut, start = *start,
                                    job_caller = std::move(job_caller)]() mutable {
    oversight::Ledger ledger;
    if (grpc::Status s = Fold(ctx, &job_caller, cut, -1, &ledger); !s.ok()) {
      JobRunner::FinishJob(reactor, s);
      return;
    }
    for (v1::CountyLine& line : oversight::CountyReport(ledger, policy_, cut, start, scope)) {
      *resp->add_lines() = std::move(line);
    }
    resp->set_through_position(ledger.through_position());
    JobRunner::FinishJob(reactor, job_caller.Check());
  });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

grpc::ServerUnaryReactor* OversightServiceImpl::ListFlags(grpc::CallbackServerContext* ctx,
                                                          const v1::ListFlagsRequest* req,
                                                          v1::ListFlagsResponse* resp) {
  workflow::Principal caller;
  if (auto s =
          Require(auth_, ctx, {Role::kAuditor, Role::kAdmin, Role::kApprover}, "flags", &caller);
      !s.ok()) {
    return Finish(ctx, s);
  }
  const std::string scope = ScopeOf(req->jurisdiction(), caller);
  if (!caller.Covers(scope)) return Finish(ctx, Outside(caller, "jurisdiction", scope));
  auto cut = CutOf(req->has_as_of_time() ? &req->as_of_time() : nullptr, clock_());
  if (!cut.ok()) return Finish(ctx, TimeInvalid("as_of_time"));
  if (req->page_size() < 0) return Finish(ctx, PageSizeNegative());
  // A listing is computed from the log's first `end` positions as of `cut`: the first
  // page fixes both, and its token carries them (with where the next page starts), so
  // that every page is cut from the same list.
  FlagsPage page{.cut = *cut, .end = log_->Size()};
  if (!req->page_token().empty()) {
    std::optional<FlagsPage> from = DecodeFlagsPageToken(req->page_token(), scope);
    if (!from.has_value() || (req->has_as_of_time() && from->cut != *cut)) {
      return Finish(ctx, PageTokenInvalid());
    }
    page = *from;
  }
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the flag listing", "预警查询");
  const bool started =
      jobs_.Start([this, reactor, ctx, resp, scope, page, page_size = req->page_size(),
                   job_caller = std::move(job_caller)]() mutable {
        oversight::Ledger ledger;
        if (grpc::Status s = Fold(ctx, &job_caller, page.cut, page.end, &ledger); !s.ok()) {
          JobRunner::FinishJob(reactor, s);
          return;
        }
        std::vector<v1::Flag> flags = oversight::ComputeFlags(ledger, policy_, page.cut, scope);
        resp->set_through_position(ledger.through_position());
        // Unpaged (page_size 0): every flag, or a refusal past what one answer should hold.
        const size_t limit =
            page_size == 0 ? flags.size() : static_cast<size_t>(std::min(page_size, kFlagsPageMax));
        const size_t bytes_max =
            page_size == 0 ? options_.flags_answer_bytes_max : options_.flags_page_bytes_max;
        size_t bytes = 0;
        size_t next = static_cast<size_t>(std::min<int64_t>(page.offset, flags.size()));
        for (size_t taken = 0; next < flags.size() && taken < limit; ++next, ++taken) {
          bytes += flags[next].ByteSizeLong();
          if (bytes > bytes_max && taken > 0) break;  // a page holds at least one flag
          *resp->add_flags() = std::move(flags[next]);
        }
        if (next < flags.size()) {
          if (page_size == 0) {
            resp->Clear();
            JobRunner::FinishJob(
                reactor,
                ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "FLAGS_TOO_MANY", "page_size",
                            workflow::Cat(flags.size(), " flags are more than one answer holds (",
                                          BytesText(bytes_max),
                                          "); ask for them in pages (page_size, up to ",
                                          kFlagsPageMax, ")"),
                            workflow::Cat("共 ", flags.size(), " 条预警，超出单次应答上限（",
                                          BytesText(bytes_max), "）；请分页查询（page_size，最多 ",
                                          kFlagsPageMax, "）")));
            return;
          }
          FlagsPage following = page;
          following.offset = static_cast<int64_t>(next);
          resp->set_next_page_token(EncodeFlagsPageToken(following, scope));
        }
        JobRunner::FinishJob(reactor, job_caller.Check());
      });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

grpc::ServerUnaryReactor* OversightServiceImpl::GetAccountabilityReport(
    grpc::CallbackServerContext* ctx, const v1::GetAccountabilityReportRequest* req,
    v1::GetAccountabilityReportResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kAuditor, Role::kAdmin, Role::kApprover},
                       "the accountability report", &caller);
      !s.ok()) {
    return Finish(ctx, s);
  }
  if (!IsCountyPath(req->county())) return Finish(ctx, CountyInvalid(req->county()));
  if (!caller.Covers(req->county())) return Finish(ctx, Outside(caller, "county", req->county()));
  if (!req->has_period_start_time()) {
    return Finish(ctx, Invalid("PERIOD_INVALID", "period_start_time",
                               "give period_start_time (e.g. the first day of the year)",
                               "请填写 period_start_time（如当年第一天）"));
  }
  auto start = CutOf(&req->period_start_time(), 0);
  if (!start.ok()) return Finish(ctx, TimeInvalid("period_start_time"));
  auto end = CutOf(req->has_period_end_time() ? &req->period_end_time() : nullptr, clock_());
  if (!end.ok()) return Finish(ctx, TimeInvalid("period_end_time"));
  if (*start >= *end) {
    return Finish(ctx, Invalid("PERIOD_INVALID", "period_end_time",
                               "period_end_time must be after period_start_time",
                               "period_end_time 须晚于 period_start_time"));
  }
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the accountability report",
                       "述职评议考核材料生成");
  const bool started =
      jobs_.Start([this, reactor, ctx, resp, county = req->county(), start = *start, end = *end,
                   job_caller = std::move(job_caller)]() mutable {
        oversight::Ledger ledger;
        if (grpc::Status s = Fold(ctx, &job_caller, end - 1, -1, &ledger); !s.ok()) {
          JobRunner::FinishJob(reactor, s);
          return;
        }
        *resp = oversight::AccountabilityReport(ledger, policy_, county, start, end);
        JobRunner::FinishJob(reactor, job_caller.Check());
      });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

// ---------------------------------------------------------------------------------------
// County talks and notices.

grpc::ServerUnaryReactor* OversightServiceImpl::RecordCountyTalk(
    grpc::CallbackServerContext* ctx, const v1::RecordCountyTalkRequest* req,
    v1::CountyAccountabilityResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kApprover, Role::kAuditor, Role::kAdmin},
                       "an admonishment talk", &caller);
      !s.ok()) {
    return Finish(ctx, s);
  }
  if (!workflow::IsValidRequestId(req->request_id())) {
    return Finish(ctx, RequestIdInvalid(req->request_id()));
  }
  if (!IsCountyPath(req->county())) return Finish(ctx, CountyInvalid(req->county()));
  if (!caller.Covers(req->county())) return Finish(ctx, Outside(caller, "county", req->county()));
  // The rules of a case's talk (workflow::CheckTalkContent): one mistake, one reason.
  if (auto refused = workflow::CheckTalkContent(req->talked_with(), req->subject(), req->notes())) {
    return Finish(ctx, ToGrpcStatus(*refused));
  }
  v1::Event event;
  auto* body = event.mutable_admonishment_talk_recorded();
  *body->mutable_talked_with() = req->talked_with();
  body->set_subject(req->subject());
  body->set_notes(req->notes());
  return RecordCounty(ctx, caller, req->county(), req->request_id(), Fingerprint(*req),
                      std::move(event), resp);
}

grpc::ServerUnaryReactor* OversightServiceImpl::IssueCountyNotice(
    grpc::CallbackServerContext* ctx, const v1::IssueCountyNoticeRequest* req,
    v1::CountyAccountabilityResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kApprover, Role::kAuditor, Role::kAdmin},
                       "a rectification notice", &caller);
      !s.ok()) {
    return Finish(ctx, s);
  }
  if (!workflow::IsValidRequestId(req->request_id())) {
    return Finish(ctx, RequestIdInvalid(req->request_id()));
  }
  if (!IsCountyPath(req->county())) return Finish(ctx, CountyInvalid(req->county()));
  if (!caller.Covers(req->county())) return Finish(ctx, Outside(caller, "county", req->county()));
  v1::Event event;
  auto* body = event.mutable_rectification_notice_issued();
  body->set_notice_id(req->notice_id());
  body->set_content(req->content());
  if (req->has_deadline()) *body->mutable_deadline() = req->deadline();
  // The rules of a case's notice (workflow::CheckNoticeContent), once the request is
  // known not to be a retry: its deadline must be after now, which a retry sent after
  // the deadline no longer is.
  auto check = [this, req]() -> std::optional<grpc::Status> {
    if (auto refused = workflow::CheckNoticeContent(
            req->notice_id(), req->content(), req->has_deadline() ? &req->deadline() : nullptr,
            clock_())) {
      return ToGrpcStatus(*refused);
    }
    return std::nullopt;
  };
  return RecordCounty(ctx, caller, req->county(), req->request_id(), Fingerprint(*req),
                      std::move(event), resp, std::move(check));
}

grpc::ServerUnaryReactor* OversightServiceImpl::RecordCounty(
    grpc::CallbackServerContext* ctx, const workflow::Principal& actor, const std::string& county,
    const std::string& request_id, const std::string& fingerprint, v1::Event event,
    v1::CountyAccountabilityResponse* resp, std::function<std::optional<grpc::Status>()> check) {
  const std::string stream = workflow::Cat(oversight::kCountyStreamPrefix, county);
  resp->set_stream(stream);
  auto first = log_->FindRequest(stream, request_id);
  if (!first.ok()) return Finish(ctx, FromStoreStatus(first.status()));
  if (first->has_value()) {
    if (auto refused = NotThisRequest(log_, **first, fingerprint, actor.id)) {
      return Finish(ctx, *std::move(refused));
    }
    resp->set_version((*first)->version);
    resp->set_position((*first)->first_position);
    return Finish(ctx, grpc::Status::OK);
  }
  if (check) {
    if (std::optional<grpc::Status> refused = check()) return Finish(ctx, *std::move(refused));
  }
  auto version = log_->StreamVersion(stream);
  if (!version.ok()) return Finish(ctx, FromStoreStatus(version.status()));
  if (*version == 0) {
    // The county's first record: a mistyped path would start a county of its own for
    // good, empty in every report, with the record missing from the real county's.
    auto known = CountyKnown(log_, county);
    if (!known.ok()) return Finish(ctx, FromStoreStatus(known.status()));
    if (!*known) return Finish(ctx, CountyUnknown(county));
  }
  // The caller still stands as authenticated (a reload since that removed or changed them
  // records nothing in their name), and no reload's record comes between this check and
  // the append (PrincipalsHolder::append_gate).
  const AppendGateHold gate(auth_->AppendGate());
  if (auto changed = CallerStanding(auth_, actor, nullptr)
                         .Revoked("the record", "记录", "was not made", "未进行")) {
    return Finish(ctx, *changed);
  }
  v1::Event envelope = Envelope(stream, *version + 1, actor, clock_(), request_id);
  envelope.MergeFrom(event);
  store::AppendRequest append;
  append.stream = stream;
  append.expected_version = *version;
  append.request_id = request_id;
  append.request_fingerprint = fingerprint;
  append.events.push_back(envelope.SerializeAsString());
  auto* reactor = ctx->DefaultReactor();
  log_->AppendAsync(std::move(append), [this, reactor, resp, fingerprint, actor_id = actor.id](
                                           absl::StatusOr<store::AppendResult> result) {
    if (result.ok() && result->replayed) {
      // Another call appended this request id first: the same request from the same
      // person is a retry; anything else is another request.
      if (auto refused = NotThisRequest(log_, *result, fingerprint, actor_id)) {
        reactor->Finish(*std::move(refused));
        return;
      }
    }
    if (!result.ok()) {
      reactor->Finish(result.status().code() == absl::StatusCode::kAborted
                          ? ErrorStatus(grpc::StatusCode::ABORTED, "STALE_EXPECTED_VERSION", "",
                                        "another record was written to this county "
                                        "meanwhile; retry with the same request_id",
                                        "该县同时有其他记录写入；请用同一 request_id 重试")
                          : FromStoreStatus(result.status()));
      return;
    }
    resp->set_version(result->version);
    resp->set_position(result->first_position);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

// ---------------------------------------------------------------------------------------
// The registry.

grpc::ServerUnaryReactor* OversightServiceImpl::ImportRegistry(grpc::CallbackServerContext* ctx,
                                                               const v1::ImportRegistryRequest* req,
                                                               v1::ImportRegistryResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kAdmin}, "importing the registry", &caller); !s.ok()) {
    return Finish(ctx, s);
  }
  if (!workflow::IsValidRequestId(req->request_id())) {
    return Finish(ctx, RequestIdInvalid(req->request_id()));
  }
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the registry import", "名册导入",
                       /*writes=*/true);
  const bool started =
      jobs_.Start([this, reactor, job_caller = std::move(job_caller), req = *req, resp]() mutable {
        Import(reactor, std::move(job_caller), std::move(req), resp);
      });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

void OversightServiceImpl::Import(grpc::ServerUnaryReactor* reactor, JobCaller job_caller,
                                  v1::ImportRegistryRequest req, v1::ImportRegistryResponse* resp) {
  if (options_.job_started_for_testing) options_.job_started_for_testing();
  const workflow::Principal& caller = job_caller.principal();
  auto rows = oversight::ParseRegistryCsv(req.csv());
  if (!rows.ok()) {
    JobRunner::FinishJob(
        reactor, Invalid("REGISTRY_CSV_INVALID", "csv", std::string(rows.status().message()),
                         oversight::RegistryCsvMessageZh(rows.status())));
    return;
  }
  RowsByCounty by_county;
  for (const oversight::RegistryRow& row : *rows) {
    const std::string& path = row.organisation.jurisdiction();
    if (!caller.Covers(path)) {
      JobRunner::FinishJob(
          reactor,
          ErrorStatus(
              grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "csv",
              workflow::Cat("line ", row.line, ": ", path, " is outside the jurisdiction \"",
                            caller.jurisdiction, "\" of ", caller.id, "; nothing was imported"),
              workflow::Cat("第 ", row.line, " 行：", path, " 不在 ", caller.id, " 的管辖范围“",
                            caller.jurisdiction, "”内；未导入任何数据")));
      return;
    }
    by_county[oversight::CountyOf(path)].push_back(&row);
  }
  for (auto& [county, list] : by_county) {
    std::sort(list.begin(), list.end(), [](const auto* a, const auto* b) {
      return a->organisation.organisation_id() < b->organisation.organisation_id();
    });
  }
  // One import at a time from here to its last append (importing_). A wait is bounded:
  // it holds one of the service's job places, which reports and draws share, and it
  // would hold up a shutdown. (The flag, not the mutex itself: a timed wait of
  // absl::Mutex bounds the wait for its condition, not for the mutex.)
  bool claimed = false;
  {
    const auto idle = [](bool* importing) { return !*importing; };
    claimed = import_mu_.LockWhenWithTimeout(absl::Condition(+idle, &importing_),
                                             options_.import_wait_max);
    if (claimed) importing_ = true;
    import_mu_.Unlock();
  }
  if (!claimed) {
    JobRunner::FinishJob(
        reactor,
        ErrorStatus(grpc::StatusCode::ABORTED, "IMPORT_IN_PROGRESS", "",
                    workflow::Cat("another registry import is being recorded; retry with the "
                                  "same request_id in a moment"),
                    "另一份名册正在导入；请稍后用同一 request_id 重试"));
    return;
  }
  grpc::Status status = RecordImport(job_caller, req, by_county, resp);
  {
    absl::MutexLock lock(&import_mu_);
    importing_ = false;
  }
  // After the claim is let go: the caller's next import never finds it still held.
  JobRunner::FinishJob(reactor, status);
}

grpc::Status OversightServiceImpl::RecordImport(JobCaller& job_caller,
                                                const v1::ImportRegistryRequest& req,
                                                const RowsByCounty& by_county,
                                                v1::ImportRegistryResponse* resp) {
  const workflow::Principal& caller = job_caller.principal();
  // The wait may have outlasted a reload that removed or changed the caller, or the
  // server may be about to stop.
  if (grpc::Status stands = job_caller.CheckWhileRunning(); !stands.ok()) {
    return stands;
  }
  // The import as a whole: its rows in county and organisation order, and the stream of
  // its record. A retry is answered from that record, whatever was recorded since, also in
  // counties where it recorded nothing because every row there was unchanged.
  std::string whole;
  std::vector<std::string> row_counties;
  for (const auto& [county, list] : by_county) {
    row_counties.push_back(county);
    for (const oversight::RegistryRow* row : list) {
      workflow::Append(&whole, oversight::RegistryCsvLine(*row), "\n");
    }
  }
  const std::string import_fingerprint = Sha256(whole);
  const std::string record_stream = oversight::ImportStream(req.request_id());
  // The answer from the recorded import `first`: a refusal when it is another request, or
  // its record cannot be read.
  auto answer_recorded = [&](const store::AppendResult& first, bool check_caller) -> grpc::Status {
    if (auto refused = NotThisRequest(log_, first, import_fingerprint, caller.id)) {
      return *std::move(refused);
    }
    auto stored = log_->ReadStream(record_stream, first.version, 1);
    v1::Event event;
    if (!stored.ok() || stored->empty() || !event.ParseFromString(stored->front().bytes) ||
        !event.has_registry_imported()) {
      return FromStoreStatus(stored.ok() ? absl::DataLossError(workflow::Cat(
                                               "the import recorded on ", record_stream,
                                               " at version ", first.version, " is missing"))
                                         : stored.status());
    }
    const v1::RegistryImported& recorded = event.registry_imported();
    resp->Clear();
    resp->set_imported(recorded.imported());
    resp->set_updated(recorded.updated());
    resp->set_unchanged(recorded.unchanged());
    *resp->mutable_counties() = recorded.counties();
    *resp->mutable_replayed_counties() = recorded.counties();
    resp->set_replayed(true);
    // A retry's caller must still stand; after this call's own appends it is answered.
    return check_caller ? job_caller.Check() : grpc::Status::OK;
  };
  auto recorded = log_->FindRequest(record_stream, req.request_id());
  if (!recorded.ok()) {
    return FromStoreStatus(recorded.status());
  }
  if (recorded->has_value()) {
    return answer_recorded(**recorded, true);
  }
  const int64_t now = clock_();
  // First every county is read and its append built, then the appends are made: a county
  // refused (too many rows) refuses the import before any county is written. (A retry
  // after an import stopped between its county appends and its record, which has none,
  // is answered county by county from those appends, as before records were kept.)
  struct Pending {
    std::string county;
    store::AppendRequest append;
    std::string fingerprint;
    int64_t imported = 0;
  };
  std::vector<Pending> pending;
  for (const auto& [county, list] : by_county) {
    const std::string stream = workflow::Cat(oversight::kRegistryStreamPrefix, county);
    // The county's rows as a canonical text: the request's content for this stream.
    std::string canonical;
    for (const oversight::RegistryRow* row : list) {
      workflow::Append(&canonical, oversight::RegistryCsvLine(*row), "\n");
    }
    const std::string fingerprint = Sha256(canonical);
    // The registry of the county as recorded: organisation -> (latest event, first version),
    // read up to `read_to`.
    std::map<std::string, std::pair<v1::OrganisationRegistered, int64_t>> current;
    int64_t read_to = 0;
    auto read_until = [&](int64_t until) -> absl::Status {
      for (int64_t from = read_to + 1; from <= until;) {
        auto events = log_->ReadStream(stream, from, options_.read_chunk_events);
        if (!events.ok()) return events.status();
        if (events->empty()) return absl::DataLossError("registry stream ended");
        for (const store::StoredEvent& e : *events) {
          if (e.version > until) break;
          from = e.version + 1;
          v1::Event event;
          if (!event.ParseFromString(e.bytes) || !event.has_organisation_registered()) {
            return absl::DataLossError(workflow::Cat("the event at position ", e.position, " of ",
                                                     stream, " is not an OrganisationRegistered"));
          }
          const std::string id = event.organisation_registered().organisation().organisation_id();
          auto it = current.find(id);
          const int64_t first_version = it == current.end() ? e.version : it->second.second;
          current[id] = {event.organisation_registered(), first_version};
        }
      }
      read_to = std::max(read_to, until);
      return absl::OkStatus();
    };
    auto version = log_->StreamVersion(stream);
    if (!version.ok()) {
      return FromStoreStatus(version.status());
    }
    if (absl::Status read = read_until(*version); !read.ok()) {
      return FromStoreStatus(read);
    }
    // Looked up after the registry was read: an identical import that committed before the
    // read is answered as its retry (below), not counted again as all unchanged; one that
    // commits later makes this append a replay of the same rows, or stale.
    auto first = log_->FindRequest(stream, req.request_id());
    if (!first.ok()) {
      return FromStoreStatus(first.status());
    }
    if (first->has_value()) {
      // A retry: answer what the first import did in this county (its events read too,
      // should it have committed between the two reads above).
      if (auto refused = NotThisRequest(log_, **first, fingerprint, caller.id)) {
        return *std::move(refused);
      }
      if (absl::Status read = read_until((*first)->version); !read.ok()) {
        return FromStoreStatus(read);
      }
      const int64_t appended_from = (*first)->version - (*first)->event_count + 1;
      int64_t imported = 0;
      for (const auto& [id, entry] : current) {
        if (entry.second >= appended_from && entry.second <= (*first)->version) ++imported;
      }
      resp->set_imported(resp->imported() + imported);
      resp->set_updated(resp->updated() + (*first)->event_count - imported);
      resp->set_unchanged(resp->unchanged() + static_cast<int64_t>(list.size()) -
                          (*first)->event_count);
      resp->add_counties(county);
      resp->add_replayed_counties(county);
      continue;
    }
    std::vector<std::string> events;
    std::vector<store::ProjectionWrite> projections;
    int64_t imported = 0;
    for (const oversight::RegistryRow* row : list) {
      const std::string& id = row->organisation.organisation_id();
      // Where the organisation is registered now: a row that places it elsewhere takes it
      // out of there, so the caller must cover that place too (the county it is
      // registered in now, and within this county its place as registered).
      auto latest = log_->GetProjection(kRegistryCountyTable, id);
      if (!latest.ok()) {
        return FromStoreStatus(latest.status());
      }
      auto it = current.find(id);
      const std::string& now_at = latest->has_value() && **latest != county ? **latest
                                  : it != current.end()
                                      ? it->second.first.organisation().jurisdiction()
                                      : row->organisation.jurisdiction();
      if (!caller.Covers(now_at)) {
        return ErrorStatus(
            grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "csv",
            workflow::Cat("line ", row->line, ": organisation ", id, " is registered in ", now_at,
                          ", outside the jurisdiction \"", caller.jurisdiction, "\" of ", caller.id,
                          "; only who covers it may move it; nothing was imported"),
            workflow::Cat("第 ", row->line, " 行：组织 ", id, " 登记在 ", now_at, "，不在 ",
                          caller.id, " 的管辖范围“", caller.jurisdiction,
                          "”内，只有其管辖者可以迁移；未导入任何数据"));
      }
      if (it != current.end()) {
        const v1::OrganisationRegistered& was = it->second.first;
        // Unchanged only where its latest registration is: one that moved to another
        // county and comes back is registered here again.
        const bool here = !latest->has_value() || **latest == county;
        if (here && was.grade() == row->grade && was.stars() == row->stars &&
            was.organisation().SerializeAsString() == row->organisation.SerializeAsString()) {
          resp->set_unchanged(resp->unchanged() + 1);
          continue;
        }
      } else {
        ++imported;
      }
      ProjectRegistration(id, county, &projections);
      v1::Event event = Envelope(stream, *version + static_cast<int64_t>(events.size()) + 1, caller,
                                 now, req.request_id());
      auto* body = event.mutable_organisation_registered();
      *body->mutable_organisation() = row->organisation;
      body->set_grade(row->grade);
      body->set_stars(row->stars);
      events.push_back(event.SerializeAsString());
    }
    if (events.empty()) continue;
    if (events.size() > kRegistryEventsPerCountyMax) {
      return Invalid(
          "REGISTRY_TOO_LARGE", "csv",
          workflow::Cat(county, " has ", events.size(), " new or changed organisations; at most ",
                        kRegistryEventsPerCountyMax,
                        " per county and import; nothing was imported: split the file"),
          workflow::Cat(county, " 新增或变更的组织有 ", events.size(), " 个；每县每次最多 ",
                        kRegistryEventsPerCountyMax, " 个；未导入任何数据，请拆分文件"));
    }
    Pending& next = pending.emplace_back();
    next.county = county;
    next.fingerprint = fingerprint;
    next.imported = imported;
    next.append.stream = stream;
    next.append.expected_version = *version;
    next.append.request_id = req.request_id();
    next.append.request_fingerprint = fingerprint;
    next.append.events = std::move(events);
    next.append.projections = std::move(projections);
  }
  // Reading the counties may have outlasted a reload too: nothing is written in the name
  // of a caller who no longer stands (nor once the server is about to stop). No reload's
  // record comes between this check and the last append (PrincipalsHolder::append_gate).
  const AppendGateHold gate(auth_->AppendGate());
  if (grpc::Status stands = job_caller.CheckWhileRunning(); !stands.ok()) {
    return stands;
  }
  for (Pending& next : pending) {
    const std::string& county = next.county;
    const int64_t appended = static_cast<int64_t>(next.append.events.size());
    auto result = log_->Append(std::move(next.append));
    if (!result.ok()) {
      return result.status().code() == absl::StatusCode::kAborted
                 ? ErrorStatus(grpc::StatusCode::ABORTED, "STALE_EXPECTED_VERSION", "",
                               workflow::Cat("the registry of ", county,
                                             " changed meanwhile; retry with the same "
                                             "request_id"),
                               workflow::Cat(county,
                                             " 的登记数据同时被修改；请用同一 "
                                             "request_id 重试"))
                 : FromStoreStatus(result.status());
    }
    if (result->replayed) {
      // Another import appended this request id first: with other rows, or by someone
      // else, it is another request.
      if (auto refused = NotThisRequest(log_, *result, next.fingerprint, caller.id)) {
        return *std::move(refused);
      }
      resp->add_replayed_counties(county);
    }
    resp->set_imported(resp->imported() + next.imported);
    resp->set_updated(resp->updated() + appended - next.imported);
    resp->add_counties(county);
  }
  if (by_county.empty()) {
    return grpc::Status::OK;
  }
  // The record of the import as a whole, after its counties: a retry finds it and is
  // answered from it.
  auto record_version = log_->StreamVersion(record_stream);
  if (!record_version.ok()) {
    return FromStoreStatus(record_version.status());
  }
  v1::Event record = Envelope(record_stream, *record_version + 1, caller, now, req.request_id());
  auto* body = record.mutable_registry_imported();
  body->set_scope(oversight::CommonScope(row_counties));
  *body->mutable_counties() = resp->counties();
  body->set_imported(resp->imported());
  body->set_updated(resp->updated());
  body->set_unchanged(resp->unchanged());
  for (const std::string& county : row_counties) body->add_row_counties(county);
  store::AppendRequest append;
  append.stream = record_stream;
  append.expected_version = *record_version;
  append.request_id = req.request_id();
  append.request_fingerprint = import_fingerprint;
  append.events.push_back(record.SerializeAsString());
  auto result = log_->Append(std::move(append));
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kAborted) {
      // The same request raced this one and recorded first: answer as it did.
      auto again = log_->FindRequest(record_stream, req.request_id());
      if (again.ok() && again->has_value()) {
        return answer_recorded(**again, false);
      }
    }
    return result.status().code() == absl::StatusCode::kAborted
               ? ErrorStatus(grpc::StatusCode::ABORTED, "STALE_EXPECTED_VERSION", "",
                             "another import's record was written meanwhile; retry with "
                             "the same request_id",
                             "其他导入记录同时写入；请用同一 request_id 重试")
               : FromStoreStatus(result.status());
  }
  if (result->replayed) {
    return answer_recorded(*result, false);
  }
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------
// The inspection draw.

grpc::ServerUnaryReactor* OversightServiceImpl::DrawInspectionSample(
    grpc::CallbackServerContext* ctx, const v1::DrawInspectionSampleRequest* req,
    v1::DrawInspectionSampleResponse* resp) {
  workflow::Principal caller;
  if (auto s = Require(auth_, ctx, {Role::kAuditor}, "an inspection draw", &caller); !s.ok()) {
    return Finish(ctx, s);
  }
  if (!workflow::IsValidRequestId(req->request_id())) {
    return Finish(ctx, RequestIdInvalid(req->request_id()));
  }
  const std::string scope = ScopeOf(req->scope(), caller);
  if (!caller.Covers(scope)) return Finish(ctx, Outside(caller, "scope", scope));
  if (req->sample_size() < 1 || req->sample_size() > oversight::kSampleSizeMax) {
    return Finish(ctx,
                  Invalid("SAMPLE_SIZE_INVALID", "sample_size",
                          workflow::Cat("sample_size must be 1 to ", oversight::kSampleSizeMax),
                          workflow::Cat("抽取数量须为 1 至 ", oversight::kSampleSizeMax)));
  }
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the inspection draw", "抽查抽样",
                       /*writes=*/true);
  const bool started = jobs_.Start(
      [this, reactor, ctx, job_caller = std::move(job_caller), req = *req, resp]() mutable {
        Draw(reactor, ctx, std::move(job_caller), std::move(req), resp);
      });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

void OversightServiceImpl::Draw(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* ctx,
                                JobCaller job_caller, v1::DrawInspectionSampleRequest req,
                                v1::DrawInspectionSampleResponse* resp) {
  const workflow::Principal& caller = job_caller.principal();
  const std::string scope = ScopeOf(req.scope(), caller);
  v1::DrawInspectionSampleRequest canonical = req;
  canonical.set_scope(scope);
  const std::string fingerprint = Fingerprint(canonical);
  const std::string stream = oversight::SampleStream(req.request_id());
  auto answer_recorded = [&](const store::AppendResult& first) {
    if (first.request_fingerprint != fingerprint) {
      JobRunner::FinishJob(reactor, RequestIdReused());
      return;
    }
    auto stored = log_->ReadStream(stream, first.version, 1);
    v1::Event event;
    if (!stored.ok() || stored->empty() || !event.ParseFromString(stored->front().bytes) ||
        !event.has_inspection_sample_drawn()) {
      JobRunner::FinishJob(
          reactor,
          FromStoreStatus(stored.ok() ? absl::DataLossError(workflow::Cat("the draw recorded on ",
                                                                          stream, " is missing"))
                                      : stored.status()));
      return;
    }
    // A retry comes from whoever drew first; the same request from someone else is
    // another request, not a way to be handed their draw as one's own.
    if (event.actor() != caller.id) {
      JobRunner::FinishJob(reactor, RequestIdReused());
      return;
    }
    const v1::InspectionSampleDrawn& d = event.inspection_sample_drawn();
    resp->set_sample(stream);
    resp->set_seed(d.seed());
    resp->set_checkpoint(d.checkpoint());
    *resp->mutable_case_ids() = d.case_ids();
    resp->set_population(d.population());
    resp->set_position(stored->front().position);
    JobRunner::FinishJob(reactor, job_caller.Check());
  };
  auto first = log_->FindRequest(stream, req.request_id());
  if (!first.ok()) {
    JobRunner::FinishJob(reactor, FromStoreStatus(first.status()));
    return;
  }
  if (first->has_value()) {
    answer_recorded(**first);
    return;
  }
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) {
    JobRunner::FinishJob(reactor, FromStoreStatus(note.status()));
    return;
  }
  auto checkpoint =
      store::OpenCheckpoint(*note, log_->CheckpointVerifier(), log_->CheckpointVerifier().name());
  if (!checkpoint.ok()) {
    JobRunner::FinishJob(reactor, FromStoreStatus(OwnCheckpointUnreadable(checkpoint.status())));
    return;
  }
  oversight::Ledger ledger;
  if (grpc::Status s = Fold(ctx, &job_caller, INT64_MAX, checkpoint->size, &ledger); !s.ok()) {
    JobRunner::FinishJob(reactor, s);
    return;
  }
  std::vector<std::string> population;
  for (const auto& [name, record] : ledger.cases()) {
    if (oversight::InSubtree(scope, record.state.organisation().jurisdiction())) {
      population.push_back(record.state.case_id());
    }
  }
  std::sort(population.begin(), population.end());
  const int64_t now = clock_();
  const oversight::Seed seed =
      oversight::SampleSeed(*note, scope, req.sample_size(), req.request_id(), now);
  v1::Event event = Envelope(stream, 1, caller, now, req.request_id());
  auto* body = event.mutable_inspection_sample_drawn();
  body->set_scope(scope);
  body->set_checkpoint(*note);
  body->set_seed(std::string(seed.begin(), seed.end()));
  body->set_sample_size(req.sample_size());
  body->set_population(static_cast<int64_t>(population.size()));
  for (std::string& id : oversight::DrawSample(seed, population, req.sample_size())) {
    body->add_case_ids(std::move(id));
  }
  store::AppendRequest append;
  append.stream = stream;
  append.expected_version = 0;
  append.request_id = req.request_id();
  append.request_fingerprint = fingerprint;
  append.events.push_back(event.SerializeAsString());
  // Recorded in the caller's name only while the caller stands, and no reload's record
  // comes between this check and the append (PrincipalsHolder::append_gate). The gate is
  // let go before the answer: finishing a call from this thread may run another call's
  // handler inline, which may take the gate again.
  absl::StatusOr<store::AppendResult> result;
  grpc::Status stands;
  {
    const AppendGateHold gate(auth_->AppendGate());
    stands = job_caller.Check();
    if (stands.ok()) result = log_->Append(std::move(append));
  }
  if (!stands.ok()) {
    JobRunner::FinishJob(reactor, stands);
    return;
  }
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kAborted) {
      // The same request id raced this one and won: answer its draw.
      auto again = log_->FindRequest(stream, req.request_id());
      if (again.ok() && again->has_value()) {
        answer_recorded(**again);
        return;
      }
    }
    JobRunner::FinishJob(reactor, FromStoreStatus(result.status()));
    return;
  }
  if (result->replayed) {
    answer_recorded(*result);
    return;
  }
  resp->set_sample(stream);
  resp->set_seed(body->seed());
  resp->set_checkpoint(*note);
  *resp->mutable_case_ids() = body->case_ids();
  resp->set_population(body->population());
  resp->set_position(result->first_position);
  JobRunner::FinishJob(reactor, grpc::Status::OK);
}

}  // namespace casework::shell

#include "services/shell/case_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "services/shell/list_filter.h"
#include "services/shell/page_token.h"
#include "services/shell/principals.h"
#include "services/shell/projections.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/names.h"
#include "services/workflow/text.h"

namespace casework::shell {
namespace {

using casework::v1::Case;
using casework::v1::CaseCommandResponse;
using casework::v1::Command;

constexpr int kPageSizeDefault = 50;
constexpr int kPageSizeMax = 1000;
constexpr int kEventsPageSizeDefault = 100;
constexpr int kEventsPageSizeMax = 1000;

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, grpc::Status status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

grpc::Status CaseNotFound(const std::string& case_id) {
  return ErrorStatus(grpc::StatusCode::NOT_FOUND, "CASE_NOT_FOUND", "name",
                     absl::StrCat("case ", case_id, " does not exist; check the case id"),
                     absl::StrCat("案件 ", case_id, " 不存在；请核对案件编号"));
}

grpc::Status OutsideJurisdiction(const workflow::Principal& p, const std::string& case_id) {
  return ErrorStatus(
      grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "name",
      absl::StrCat("case ", case_id, " is outside your jurisdiction ", p.jurisdiction),
      absl::StrCat("案件 ", case_id, " 不在您的管辖范围 ", p.jurisdiction, " 内"));
}

// A person named in an assignment by an id that differs from an identity only in letter
// case or punctuation: refused, since the separation of duties compares ids as written
// ("Zhang.Wei" named as first secretary would let the identity "zhang.wei" inspect the
// case it assists).
std::optional<grpc::Status> ResemblingPerson(const Principals& principals,
                                             const casework::v1::Assignment& assignment) {
  auto check = [&](const std::string& id, std::string field) -> std::optional<grpc::Status> {
    const workflow::Principal* like = principals.Resembling(id);
    if (like == nullptr) return std::nullopt;
    return ErrorStatus(
        grpc::StatusCode::INVALID_ARGUMENT, "PERSON_ID_RESEMBLES_IDENTITY", field,
        absl::StrCat("person_id \"", workflow::Shown(id, 64), "\" differs from the identity \"",
                     like->id,
                     "\" only in letter case or punctuation; name the person by their identity "
                     "exactly (the separation of duties compares ids as written)"),
        absl::StrCat("person_id“", workflow::Shown(id, 64), "”与身份“", like->id,
                     "”仅大小写或标点不同；请按身份标识原样填写（职责分离按标识逐字比对）"));
  };
  if (auto refused =
          check(assignment.first_secretary().person_id(), "assignment.first_secretary.person_id")) {
    return refused;
  }
  for (int i = 0; i < assignment.stationed_cadres_size(); ++i) {
    if (auto refused = check(assignment.stationed_cadres(i).person_id(),
                             absl::StrCat("assignment.stationed_cadres[", i, "].person_id"))) {
      return refused;
    }
  }
  return std::nullopt;
}

// The command that carries `req`. On the call's arena it wraps the request, which is on
// the same arena, instead of copying it; a copy only without an arena.
template <typename Request>
const Command& Wrap(const Request* req, CaseCommandResponse* resp, Command* local,
                    void (Command::*wrap)(Request*), Request* (Command::*field)()) {
  if (google::protobuf::Arena* arena = resp->GetArena(); arena != nullptr) {
    auto* command = google::protobuf::Arena::CreateMessage<Command>(arena);
    (command->*wrap)(const_cast<Request*>(req));
    return *command;
  }
  *(local->*field)() = *req;
  return *local;
}

}  // namespace

CaseServiceImpl::CaseServiceImpl(CommandProcessor* processor, const Authenticator* auth)
    : processor_(processor), auth_(auth) {
  // After the rules accepted a command (role, jurisdiction, fields), just before it is
  // appended: the caller still stands as authenticated (a reload since that removed or
  // changed them applies nothing more in their name), and an assignment's people.
  processor_->SetAcceptedCheck(
      [auth](const workflow::Principal& actor,
             const Command& command) -> std::optional<grpc::Status> {
        const std::shared_ptr<const Principals> now = auth->CurrentPrincipals();
        // The usual case costs a lookup: the actor is the entry of the set in force.
        if (now->Find(actor.id) != &actor) {
          if (auto changed = CallerStanding(auth, actor, nullptr)
                                 .Revoked("the command", "命令", "was not applied", "未执行")) {
            return changed;
          }
        }
        if (!command.has_assign_assistance() && !command.has_replace_assignment()) {
          return std::nullopt;
        }
        const casework::v1::Assignment& assignment =
            command.has_assign_assistance() ? command.assign_assistance().assignment()
                                            : command.replace_assignment().assignment();
        return ResemblingPerson(*now, assignment);
      },
      auth->AppendGate());
  SetMessageAllocatorFor_CreateCase(&create_case_messages_);
  SetMessageAllocatorFor_GetCase(&get_case_messages_);
#define CW_SET_MESSAGES(Method, Request, field) SetMessageAllocatorFor_##Method(&field##_messages_);
  CW_CASE_COMMANDS(CW_SET_MESSAGES)
#undef CW_SET_MESSAGES
}

grpc::ServerUnaryReactor* CaseServiceImpl::Run(grpc::CallbackServerContext* ctx,
                                               std::string case_id, const Command& command,
                                               CaseCommandResponse* resp) {
  std::shared_ptr<const workflow::Principal> actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  auto* reactor = ctx->DefaultReactor();
  processor_->Execute(*actor, case_id, command, resp,
                      [reactor](grpc::Status status) { reactor->Finish(std::move(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* CaseServiceImpl::CreateCase(grpc::CallbackServerContext* ctx,
                                                      const casework::v1::CreateCaseRequest* req,
                                                      CaseCommandResponse* resp) {
  Command local;
  return Run(ctx, req->case_id(),
             Wrap(req, resp, &local, &Command::unsafe_arena_set_allocated_create_case,
                  &Command::mutable_create_case),
             resp);
}

#define CW_COMMAND_RPC(Method, Request, field)                                        \
  grpc::ServerUnaryReactor* CaseServiceImpl::Method(grpc::CallbackServerContext* ctx, \
                                                    const casework::v1::Request* req, \
                                                    CaseCommandResponse* resp) {      \
    std::string case_id = CaseIdFromName(req->name());                                \
    if (case_id.empty()) {                                                            \
      workflow::Principal actor;                                                      \
      if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) {             \
        return Finish(ctx, status);                                                   \
      }                                                                               \
      if (!workflow::IsValidRequestId(req->request_id())) {                           \
        return Finish(ctx, RequestIdInvalid(req->request_id()));                      \
      }                                                                               \
      return Finish(ctx, CaseNameInvalid(req->name()));                               \
    }                                                                                 \
    Command local;                                                                    \
    return Run(ctx, std::move(case_id),                                               \
               Wrap(req, resp, &local, &Command::unsafe_arena_set_allocated_##field,  \
                    &Command::mutable_##field),                                       \
               resp);                                                                 \
  }
CW_CASE_COMMANDS(CW_COMMAND_RPC)
#undef CW_COMMAND_RPC

grpc::ServerUnaryReactor* CaseServiceImpl::GetCase(grpc::CallbackServerContext* ctx,
                                                   const casework::v1::GetCaseRequest* req,
                                                   Case* resp) {
  std::shared_ptr<const workflow::Principal> actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  const std::string case_id = CaseIdFromName(req->name());
  if (case_id.empty()) return Finish(ctx, CaseNameInvalid(req->name()));
  // Read straight into the answer, on the call's arena; a refusal sends none of it.
  if (absl::Status loaded = processor_->LoadCaseInto(case_id, resp); !loaded.ok()) {
    return Finish(ctx, FromStoreStatus(loaded));
  }
  if (resp->version() == 0) return Finish(ctx, CaseNotFound(case_id));
  if (!actor->Covers(resp->organisation().jurisdiction())) {
    return Finish(ctx, OutsideJurisdiction(*actor, case_id));
  }
  if (absl::Status placed = processor_->SetLastEvent(resp); !placed.ok()) {
    return Finish(ctx, FromStoreStatus(placed));
  }
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* CaseServiceImpl::ListCases(grpc::CallbackServerContext* ctx,
                                                     const casework::v1::ListCasesRequest* req,
                                                     casework::v1::ListCasesResponse* resp) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  if (req->page_size() < 0) {
    return Finish(ctx, PageSizeNegative());
  }
  const int page_size =
      req->page_size() == 0 ? kPageSizeDefault : std::min(req->page_size(), kPageSizeMax);
  auto filter = ParseCaseFilter(req->filter());
  if (!filter.ok()) {
    return Finish(ctx, ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "FILTER_INVALID", "filter",
                                   std::string(filter.status().message()),
                                   absl::StrCat("filter 语法错误：", filter.status().message())));
  }
  if (!req->order_by().empty() && req->order_by() != "case_id" && req->order_by() != "deadline" &&
      req->order_by() != "jurisdiction") {
    return Finish(ctx,
                  ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "ORDER_BY_INVALID", "order_by",
                              "order_by must be \"case_id\", \"deadline\" or \"jurisdiction\"",
                              "order_by 须为 \"case_id\"、\"deadline\" 或 \"jurisdiction\""));
  }

  // Pick the index for the order: deadline order reads the deadline index; jurisdiction
  // order reads the jurisdiction index from the filter's (or the caller's) subtree; case
  // id order reads the state index when the filter names a state, else the case table.
  // Other terms are checked on each case; a page examines at most kScanMax entries and
  // returns a token to go on from there.
  const char* table = kCaseTable;
  std::string prefix;
  if (req->order_by() == "deadline") {
    table = kByDeadlineTable;
  } else if (req->order_by() == "jurisdiction") {
    table = kByJurisdictionTable;
    prefix = filter->jurisdiction.value_or("");
    if (PathWithin(actor.jurisdiction, prefix)) prefix = actor.jurisdiction;
  } else if (filter->state) {
    table = kByStateTable;
    prefix = StateKey(*filter->state, "");
  }
  const bool is_index = table != kCaseTable;
  const size_t id_offset = table == kByDeadlineTable ? 8 : prefix.size();

  // The token binds the position to the query, so a token cannot be replayed against
  // another filter or order.
  const std::string query_tag = ListCasesQueryTag(req->filter(), req->order_by());
  std::string start_key = prefix;
  if (!req->page_token().empty()) {
    auto key = DecodePageToken(req->page_token(), query_tag);
    if (!key || key->compare(0, prefix.size(), prefix) != 0) return Finish(ctx, PageTokenInvalid());
    start_key = std::move(*key);
  }

  constexpr size_t kScanMax = 20000;  // entries examined for one page, at most
  // The cases of one page in bytes, at most (well below the send limit): a case grows with
  // its replaced assignments and failed inspections, so a count alone does not bound it.
  constexpr size_t kPageBytesMax = 4u << 20;
  std::string next_key;
  bool more = false;
  size_t examined = 0;
  size_t page_bytes = 0;
  absl::Status lookup_status;
  absl::Status scan_status = processor_->log()->ScanProjection(
      table, start_key, kScanMax + 1, [&](std::string_view key, std::string_view value) {
        if (key.substr(0, prefix.size()) != prefix) return false;
        if (resp->cases_size() >= page_size || page_bytes >= kPageBytesMax ||
            ++examined > kScanMax) {
          next_key = std::string(key);
          more = true;
          return false;
        }
        Case c;
        if (is_index) {
          // by_jur keys are jurisdiction 0x00 case_id; the others a fixed-size prefix.
          size_t at = id_offset;
          if (table == kByJurisdictionTable) {
            const size_t nul = key.rfind('\0');
            if (nul == std::string_view::npos) return true;
            at = nul + 1;
          }
          if (key.size() < at) return true;
          auto loaded = processor_->LoadCase(std::string(key.substr(at)));
          if (!loaded.ok()) {
            lookup_status = loaded.status();
            return false;
          }
          c = std::move(*loaded);
        } else if (!c.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          lookup_status = absl::DataLossError(
              absl::StrCat("the projection of case ", std::string(key), " does not parse"));
          return false;
        }
        if (c.version() == 0) return true;
        if (!actor.Covers(c.organisation().jurisdiction())) return true;
        if (!filter->Matches(c)) return true;
        // Its latest event's position and leaf hash, as GetCase gives them: a row is enough
        // to sign the case from.
        if (absl::Status placed = processor_->SetLastEvent(&c); !placed.ok()) {
          lookup_status = placed;
          return false;
        }
        page_bytes += c.ByteSizeLong();
        *resp->add_cases() = std::move(c);
        return true;
      });
  if (!scan_status.ok()) return Finish(ctx, FromStoreStatus(scan_status));
  if (!lookup_status.ok()) return Finish(ctx, FromStoreStatus(lookup_status));
  if (more) {
    resp->set_next_page_token(EncodePageToken(next_key, query_tag));
  }
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* CaseServiceImpl::ListCaseEvents(
    grpc::CallbackServerContext* ctx, const casework::v1::ListCaseEventsRequest* req,
    casework::v1::ListCaseEventsResponse* resp) {
  workflow::Principal actor;
  if (auto status = auth_->Authenticate(ctx, &actor); !status.ok()) return Finish(ctx, status);
  const std::string case_id = CaseIdFromName(req->name());
  if (case_id.empty()) return Finish(ctx, CaseNameInvalid(req->name()));
  auto loaded = processor_->LoadCase(case_id);
  if (!loaded.ok()) return Finish(ctx, FromStoreStatus(loaded.status()));
  if (loaded->version() == 0) return Finish(ctx, CaseNotFound(case_id));
  if (!actor.Covers(loaded->organisation().jurisdiction())) {
    return Finish(ctx, OutsideJurisdiction(actor, case_id));
  }
  if (req->page_size() < 0) {
    return Finish(ctx, PageSizeNegative());
  }
  const int page_size = req->page_size() == 0 ? kEventsPageSizeDefault
                                              : std::min(req->page_size(), kEventsPageSizeMax);
  int64_t from_version = 1;
  if (!req->page_token().empty()) {
    std::optional<int64_t> version = DecodeEventsPageToken(req->page_token(), case_id);
    if (!version.has_value()) return Finish(ctx, PageTokenInvalid());
    from_version = *version;
  }
  auto records = processor_->ReadCaseEvents(case_id, from_version, page_size);
  if (!records.ok()) return Finish(ctx, FromStoreStatus(records.status()));
  // A page ends at the case's version when it was read: events appended since are not on
  // it (the next listing, or the next page of a later one, has them), so that the page and
  // its token agree on where the listing ends.
  int64_t returned = 0;
  for (auto& r : *records) {
    if (r.event().version() > loaded->version()) break;
    *resp->add_events() = std::move(r);
    ++returned;
  }
  const int64_t next = from_version + returned;
  if (next <= loaded->version()) {
    resp->set_next_page_token(EncodeEventsPageToken(case_id, next));
  }
  return Finish(ctx, grpc::Status::OK);
}

}  // namespace casework::shell

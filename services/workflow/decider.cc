#include "services/workflow/decider.h"

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/time/time.h"
#include "services/workflow/check.h"
#include "services/workflow/limits.h"
#include "services/workflow/names.h"
#include "services/workflow/statement.h"
#include "services/workflow/text.h"

namespace casework::workflow {
namespace {

namespace v1 = ::casework::v1;
using ::google::protobuf::Timestamp;
using Kind = v1::Command::KindCase;

// --- Time -----------------------------------------------------------------------------

// The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
constexpr int64_t kTimestampSecondsMin = -62135596800;
constexpr int64_t kTimestampSecondsMax = 253402300799;
constexpr int64_t kMicrosPerSecond = 1'000'000;

bool IsValidTimestamp(const Timestamp& t) {
  return t.seconds() >= kTimestampSecondsMin && t.seconds() <= kTimestampSecondsMax &&
         t.nanos() >= 0 && t.nanos() < 1'000'000'000;
}

// Only for valid timestamps; the range above cannot overflow.
int64_t ToMicros(const Timestamp& t) { return t.seconds() * kMicrosPerSecond + t.nanos() / 1000; }

Timestamp FromMicros(int64_t micros) {
  int64_t seconds = micros / kMicrosPerSecond;
  int64_t rest = micros % kMicrosPerSecond;
  if (rest < 0) {
    rest += kMicrosPerSecond;
    --seconds;
  }
  Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(static_cast<int32_t>(rest * 1000));
  return t;
}

std::string FormatMicros(int64_t micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

std::string FormatTimestamp(const Timestamp& t) {
  if (!IsValidTimestamp(t)) {
    return Cat("(invalid: seconds=", t.seconds(), " nanos=", t.nanos(), ")");
  }
  return FormatMicros(ToMicros(t));
}

// --- Names for messages ---------------------------------------------------------------

std::string_view StateName(v1::CaseState state) {
  switch (state) {
    case v1::CASE_STATE_LISTED:
      return "LISTED";
    case v1::CASE_STATE_ASSISTED:
      return "ASSISTED";
    case v1::CASE_STATE_VERIFIED:
      return "VERIFIED";
    case v1::CASE_STATE_CLOSED:
      return "CLOSED";
    case v1::CASE_STATE_REOPENED:
      return "REOPENED";
    default:
      return "NONE";
  }
}

std::string_view StateNameZh(v1::CaseState state) {
  switch (state) {
    case v1::CASE_STATE_LISTED:
      return "列入台账";
    case v1::CASE_STATE_ASSISTED:
      return "帮扶整顿中";
    case v1::CASE_STATE_VERIFIED:
      return "已验收";
    case v1::CASE_STATE_CLOSED:
      return "已销号";
    case v1::CASE_STATE_REOPENED:
      return "反弹重整";
    default:
      return "不存在";
  }
}

std::string_view CaseTypeName(v1::CaseType type) {
  switch (type) {
    case v1::CASE_TYPE_WEAK:
      return "WEAK";
    case v1::CASE_TYPE_POOR:
      return "POOR";
    case v1::CASE_TYPE_DISORDERLY:
      return "DISORDERLY";
    case v1::CASE_TYPE_INDUSTRY:
      return "INDUSTRY";
    default:
      return "UNSPECIFIED";
  }
}

std::string_view CaseTypeNameZh(v1::CaseType type) {
  switch (type) {
    case v1::CASE_TYPE_WEAK:
      return "软村";
    case v1::CASE_TYPE_POOR:
      return "穷村";
    case v1::CASE_TYPE_DISORDERLY:
      return "乱村";
    case v1::CASE_TYPE_INDUSTRY:
      return "产业村";
    default:
      return "未指定类型";
  }
}

std::string_view DepartmentKindName(v1::DepartmentKind kind) {
  switch (kind) {
    case v1::DEPARTMENT_KIND_PARTY_GOVERNMENT:
      return "PARTY_GOVERNMENT";
    case v1::DEPARTMENT_KIND_ECONOMIC:
      return "ECONOMIC";
    case v1::DEPARTMENT_KIND_POLITICAL_LEGAL:
      return "POLITICAL_LEGAL";
    case v1::DEPARTMENT_KIND_AGRICULTURAL_TECH:
      return "AGRICULTURAL_TECH";
    default:
      return "UNSPECIFIED";
  }
}

std::string_view DepartmentKindNameZh(v1::DepartmentKind kind) {
  switch (kind) {
    case v1::DEPARTMENT_KIND_PARTY_GOVERNMENT:
      return "党政部门";
    case v1::DEPARTMENT_KIND_ECONOMIC:
      return "经济部门";
    case v1::DEPARTMENT_KIND_POLITICAL_LEGAL:
      return "政法部门";
    case v1::DEPARTMENT_KIND_AGRICULTURAL_TECH:
      return "涉农科技部门";
    default:
      return "未指定";
  }
}

// 分类施治: the department kind paired with each case type (docs/rules.md).
v1::DepartmentKind PairedKindFor(v1::CaseType type) {
  switch (type) {
    case v1::CASE_TYPE_WEAK:
      return v1::DEPARTMENT_KIND_PARTY_GOVERNMENT;
    case v1::CASE_TYPE_POOR:
      return v1::DEPARTMENT_KIND_ECONOMIC;
    case v1::CASE_TYPE_DISORDERLY:
      return v1::DEPARTMENT_KIND_POLITICAL_LEGAL;
    case v1::CASE_TYPE_INDUSTRY:
      return v1::DEPARTMENT_KIND_AGRICULTURAL_TECH;
    default:
      return v1::DEPARTMENT_KIND_UNSPECIFIED;
  }
}

// --- The command table: who may issue each command and in which states ----------------

constexpr uint32_t RoleBit(Role role) { return uint32_t{1} << static_cast<int>(role); }
constexpr uint32_t StateBit(v1::CaseState state) { return uint32_t{1} << static_cast<int>(state); }

constexpr uint32_t kAnyExistingState =
    StateBit(v1::CASE_STATE_LISTED) | StateBit(v1::CASE_STATE_ASSISTED) |
    StateBit(v1::CASE_STATE_VERIFIED) | StateBit(v1::CASE_STATE_CLOSED) |
    StateBit(v1::CASE_STATE_REOPENED);

struct CommandInfo {
  Kind kind;
  std::string_view name;  // the Command oneof field, as used in messages
  std::string_view name_zh;
  uint32_t roles;   // RoleBit of every role that may issue it
  uint32_t states;  // StateBit of every state it is allowed in (0: only a new case)
};

// The permission table and the state table of docs/rules.md, in one place.
constexpr std::array<CommandInfo, 14> kCommands = {{
    {Kind::kCreateCase, "create_case", "列入台账", RoleBit(Role::kLister), 0},
    {Kind::kReviewListing, "review_listing", "审核列入", RoleBit(Role::kReviewer),
     StateBit(v1::CASE_STATE_LISTED)},
    {Kind::kAmendListing, "amend_listing", "更正列入", RoleBit(Role::kLister),
     StateBit(v1::CASE_STATE_LISTED)},
    {Kind::kAssignAssistance, "assign_assistance", "安排帮扶", RoleBit(Role::kLister),
     StateBit(v1::CASE_STATE_LISTED) | StateBit(v1::CASE_STATE_REOPENED)},
    {Kind::kReplaceAssignment, "replace_assignment", "调整帮扶", RoleBit(Role::kLister),
     StateBit(v1::CASE_STATE_ASSISTED)},
    {Kind::kRecordFieldVisit, "record_field_visit", "记录入村走访", RoleBit(Role::kAssister),
     StateBit(v1::CASE_STATE_ASSISTED)},
    {Kind::kRecordMeasure, "record_measure", "记录措施完成", RoleBit(Role::kAssister),
     StateBit(v1::CASE_STATE_ASSISTED)},
    {Kind::kRecordFunds, "record_funds", "记录资金投入", RoleBit(Role::kAssister),
     StateBit(v1::CASE_STATE_ASSISTED)},
    {Kind::kRecordInspection, "record_inspection", "记录验收", RoleBit(Role::kInspector),
     StateBit(v1::CASE_STATE_ASSISTED)},
    {Kind::kSignOffClosure, "sign_off_closure", "销号签批", RoleBit(Role::kApprover),
     StateBit(v1::CASE_STATE_VERIFIED)},
    {Kind::kSendBack, "send_back", "退回整改", RoleBit(Role::kApprover),
     StateBit(v1::CASE_STATE_VERIFIED)},
    {Kind::kRecordFollowUpReview, "record_follow_up_review", "记录回头看",
     RoleBit(Role::kInspector), StateBit(v1::CASE_STATE_CLOSED)},
    {Kind::kRecordAdmonishmentTalk, "record_admonishment_talk", "记录约谈",
     RoleBit(Role::kApprover) | RoleBit(Role::kAuditor) | RoleBit(Role::kAdmin), kAnyExistingState},
    {Kind::kIssueRectificationNotice, "issue_rectification_notice", "通报整改",
     RoleBit(Role::kApprover) | RoleBit(Role::kAuditor) | RoleBit(Role::kAdmin), kAnyExistingState},
}};

const CommandInfo& InfoFor(Kind kind) {
  const int index = static_cast<int>(kind) - 1;
  CW_CHECK_MSG(index >= 0 && index < static_cast<int>(kCommands.size()), "unknown command kind");
  const CommandInfo& info = kCommands[index];
  CW_CHECK_MSG(info.kind == kind, "command table out of order");
  return info;
}

constexpr std::array<Role, 7> kAllRoles = {Role::kLister,    Role::kReviewer, Role::kAssister,
                                           Role::kInspector, Role::kApprover, Role::kAuditor,
                                           Role::kAdmin};

std::string RolesText(uint32_t roles, bool zh) {
  std::string out;
  for (Role role : kAllRoles) {
    if ((roles & RoleBit(role)) == 0) continue;
    if (!out.empty()) out += zh ? "、" : " or ";
    Append(&out, zh ? RoleNameZh(role) : RoleName(role));
  }
  return out;
}

std::string StatesText(uint32_t states, bool zh) {
  std::string out;
  for (v1::CaseState s : {v1::CASE_STATE_LISTED, v1::CASE_STATE_ASSISTED, v1::CASE_STATE_VERIFIED,
                          v1::CASE_STATE_CLOSED, v1::CASE_STATE_REOPENED}) {
    if ((states & StateBit(s)) == 0) continue;
    if (!out.empty()) out += zh ? "、" : " or ";
    Append(&out, zh ? StateNameZh(s) : StateName(s));
  }
  return out;
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list, std::string_view value) {
  for (const std::string& item : list) {
    if (item == value) return true;
  }
  return false;
}

void AddAssister(v1::Case& state, const std::string& person) {
  if (!Contains(state.assisters(), person)) state.add_assisters(person);
}

// The latest passed inspection since the latest (re)opening; nullptr when none.
const v1::Inspection* LatestPassedInspection(const v1::Case& state) {
  for (int i = state.inspections_size() - 1; i >= 0; --i) {
    if (state.inspections(i).passed()) return &state.inspections(i);
  }
  return nullptr;
}

// Who may not be the only signers of a closure resting on `passed`: its inspector
// (rules/2026.1), or everyone who inspected the case in any round (rules/2026.2).
std::vector<std::string> ClosureInspectors(const v1::Case& state, const v1::Inspection& passed,
                                           bool across_rounds) {
  std::vector<std::string> inspectors = {passed.inspector()};
  if (across_rounds) {
    for (const v1::Inspection& i : state.inspections()) inspectors.push_back(i.inspector());
    for (const std::string& who : state.earlier_inspectors()) inspectors.push_back(who);
  }
  return inspectors;
}

bool IsAssigned(const v1::Assignment& assignment, std::string_view person) {
  if (assignment.first_secretary().person_id() == person) return true;
  for (const v1::Person& cadre : assignment.stationed_cadres()) {
    if (cadre.person_id() == person) return true;
  }
  return false;
}

// --- The decider ----------------------------------------------------------------------

struct LengthRule {
  std::string_view field;
  const std::string& value;
  size_t max;
};

class Decider {
 public:
  Decider(const v1::Case& state, const v1::Command& command, const Context& context)
      : state_(state), command_(command), context_(context) {}

  Decision Run() {
    const Kind kind = command_.kind_case();
    if (kind == Kind::KIND_NOT_SET) {
      return Refuse(Reason::kCommandEmpty, "kind",
                    "the command carries no request; set exactly one",
                    "命令中没有请求，请设置且只设置一个请求");
    }
    info_ = &InfoFor(kind);
    switch (kind) {
      case Kind::kCreateCase:
        return CreateCase(command_.create_case());
      case Kind::kReviewListing:
        return ReviewListing(command_.review_listing());
      case Kind::kAmendListing:
        return AmendListing(command_.amend_listing());
      case Kind::kAssignAssistance:
        return AssignAssistance(command_.assign_assistance());
      case Kind::kReplaceAssignment:
        return ReplaceAssignment(command_.replace_assignment());
      case Kind::kRecordFieldVisit:
        return RecordFieldVisit(command_.record_field_visit());
      case Kind::kRecordMeasure:
        return RecordMeasure(command_.record_measure());
      case Kind::kRecordFunds:
        return RecordFunds(command_.record_funds());
      case Kind::kRecordInspection:
        return RecordInspection(command_.record_inspection());
      case Kind::kSignOffClosure:
        return SignOffClosure(command_.sign_off_closure());
      case Kind::kSendBack:
        return SendBack(command_.send_back());
      case Kind::kRecordFollowUpReview:
        return RecordFollowUpReview(command_.record_follow_up_review());
      case Kind::kRecordAdmonishmentTalk:
        return RecordAdmonishmentTalk(command_.record_admonishment_talk());
      case Kind::kIssueRectificationNotice:
        return IssueRectificationNotice(command_.issue_rectification_notice());
      case Kind::KIND_NOT_SET:
        break;
    }
    CW_CHECK_MSG(false, "unreachable");
  }

 private:
  static Refusal Refuse(Reason reason, std::string_view field, std::string en, std::string zh) {
    return Refusal{.reason = reason,
                   .category = CategoryOf(reason),
                   .field = std::string(field),
                   .message_en = std::move(en),
                   .message_zh = std::move(zh)};
  }

  const std::string& actor() const { return context_.actor.id; }
  const std::string& case_id() const { return state_.case_id(); }

  // --- Envelope ---

  v1::Event& Emit(Events& events, const std::string& stream, const std::string& request_id) {
    v1::Event& event = events.emplace_back();
    event.set_stream(stream);
    event.set_version(state_.version() + static_cast<int64_t>(events.size()));
    event.set_actor(actor());
    *event.mutable_time() = FromMicros(context_.now_micros);
    event.set_request_id(request_id);
    event.set_rules_version(std::string(context_.rules));
    if (!context_.actor.principals_version.empty()) {
      event.set_principals_version(context_.actor.principals_version);
    }
    return event;
  }

  // --- Checks shared by several commands ---

  std::optional<Refusal> CheckActorAndRequestId(const std::string& request_id) const {
    if (actor().empty()) {
      return Refuse(Reason::kActorUnidentified, "",
                    "the caller has no identity; authenticate before issuing commands",
                    "调用方身份未知，请先完成身份认证");
    }
    if (!IsValidRequestId(request_id)) {
      return Refuse(Reason::kRequestIdInvalid, "request_id",
                    Cat("request_id of ", request_id.size(),
                        " bytes is invalid; use 1-128 printable ascii characters, unique "
                        "per request"),
                    Cat("request_id（", request_id.size(),
                        " 字节）无效，请使用 1-128 个可打印 ASCII 字符，每个请求唯一"));
    }
    return std::nullopt;
  }

  std::optional<Refusal> CheckRole() const {
    for (Role role : context_.actor.roles) {
      if ((info_->roles & RoleBit(role)) != 0) return std::nullopt;
    }
    std::string has_en;
    std::string has_zh;
    for (Role role : context_.actor.roles) {
      Append(&has_en, has_en.empty() ? "" : ", ", RoleName(role));
      Append(&has_zh, has_zh.empty() ? "" : "、", RoleNameZh(role));
    }
    return Refuse(
        Reason::kActorLacksRole, "",
        Cat(info_->name, " needs the role ", RolesText(info_->roles, false), "; ", actor(),
            " has [", has_en, "]; ask an administrator for the role or have a ",
            RolesText(info_->roles, false), " do it"),
        Cat(info_->name_zh, "需要", RolesText(info_->roles, true), "角色；", actor(), " 的角色为 [",
            has_zh, "]，请申请相应角色或由", RolesText(info_->roles, true), "办理"));
  }

  // Whether the actor could read the loaded case (GetCase): its jurisdiction covers it.
  bool MayReadCase() const { return context_.actor.Covers(state_.organisation().jurisdiction()); }

  std::optional<Refusal> CheckCovers(const std::string& jurisdiction,
                                     std::string_view field) const {
    if (context_.actor.Covers(jurisdiction)) return std::nullopt;
    return Refuse(
        Reason::kJurisdictionNotCovered, field,
        Cat(actor(), " acts in \"", context_.actor.jurisdiction, "\", which does not cover \"",
            jurisdiction, "\"; a person of that jurisdiction or above must do it"),
        Cat(actor(), " 的管辖范围为“", context_.actor.jurisdiction, "”，不包括“", jurisdiction,
            "”，请由该辖区或上级人员办理"));
  }

  // Everything every command on an existing case checks first, in order of precedence:
  // actor, request id, name, existence, version, role, jurisdiction.
  template <typename Request>
  std::optional<Refusal> CheckExistingCase(const Request& request) const {
    if (auto r = CheckActorAndRequestId(request.request_id())) return r;
    const std::optional<std::string_view> id = CaseIdFromName(request.name());
    if (!id.has_value()) {
      return Refuse(Reason::kCaseNameInvalid, "name",
                    Cat("name \"", Shown(request.name(), kCaseIdBytesMax + 8),
                        "\" is not a case name; use \"cases/{case_id}\" with 1-64 "
                        "characters of [a-z0-9-]"),
                    Cat("name“", Shown(request.name(), kCaseIdBytesMax + 8),
                        "”不是案件名称，请使用“cases/{case_id}”格式"));
    }
    if (state_.version() == 0) {
      return Refuse(Reason::kCaseNotFound, "name",
                    Cat("case ", *id, " does not exist; create it first"),
                    Cat("案件 ", *id, " 不存在，请先列入台账"));
    }
    if (state_.name() != request.name()) {
      return Refuse(Reason::kCaseNameInvalid, "name",
                    Cat("name \"", request.name(), "\" does not name the loaded case \"",
                        state_.name(), "\"; retry the call"),
                    Cat("name“", request.name(), "”与加载的案件“", state_.name(), "”不符，请重试"));
    }
    if (request.expected_version() != state_.version()) {
      // The current version only to someone who may read the case (the version check comes
      // before the role and the jurisdiction).
      if (!MayReadCase()) {
        return Refuse(Reason::kStaleExpectedVersion, "expected_version",
                      Cat("expected_version ", request.expected_version(), " of case ", case_id(),
                          " is stale; read the case again and retry with its current version"),
                      Cat("案件 ", case_id(), " 的 expected_version ", request.expected_version(),
                          " 已过期，请重新读取案件后重试"));
      }
      return Refuse(Reason::kStaleExpectedVersion, "expected_version",
                    Cat("expected_version ", request.expected_version(), " of case ", case_id(),
                        " is stale: the case is at version ", state_.version(),
                        "; read the case again and retry with its current version"),
                    Cat("案件 ", case_id(), " 的 expected_version ", request.expected_version(),
                        " 已过期，当前版本为 ", state_.version(), "，请重新读取案件后重试"));
    }
    if (auto r = CheckRole()) return r;
    if (auto r = CheckCovers(state_.organisation().jurisdiction(), "")) return r;
    return std::nullopt;
  }

  std::optional<Refusal> CheckState() const {
    if ((info_->states & StateBit(state_.state())) != 0) return std::nullopt;
    return Refuse(Reason::kCommandNotAllowedInState, "",
                  Cat(info_->name, " is not allowed on case ", case_id(), " in state ",
                      StateName(state_.state()), "; it is allowed only in ",
                      StatesText(info_->states, false)),
                  Cat("案件 ", case_id(), " 当前状态为", StateNameZh(state_.state()), "，不能",
                      info_->name_zh, "；仅在", StatesText(info_->states, true), "状态下可以办理"));
  }

  // rules/2026.1 kept separation of duties within the latest round.
  bool AcrossRounds() const { return context_.rules != kRulesVersion2026_1; }
  // Whether a sign-off records the closure policy it is judged by (rules/2026.4 on).
  bool RecordsClosurePolicy() const {
    return context_.rules != kRulesVersion2026_1 && context_.rules != kRulesVersion2026_2 &&
           context_.rules != kRulesVersion2026_3;
  }

  std::optional<Refusal> CheckInspectorDidNotAssist() const {
    if (Contains(state_.assisters(), actor())) {
      return Refuse(Reason::kInspectorMustNotHaveAssisted, "",
                    Cat(actor(), " assisted case ", case_id(),
                        " since its latest opening and may not inspect or review it; "
                        "an inspector who did not assist must do it"),
                    Cat(actor(), " 自本轮列入或重整以来参与了案件 ", case_id(),
                        " 的帮扶，不能对其验收或回头看，请由未参与帮扶的验收人员办理"));
    }
    if (!AcrossRounds() || !Contains(state_.earlier_assisters(), actor())) return std::nullopt;
    return Refuse(Reason::kInspectorMustNotHaveAssisted, "",
                  Cat(actor(), " assisted case ", case_id(),
                      " in an earlier round (before its latest reopening) and may not inspect "
                      "or review it; an inspector who never assisted it must do it"),
                  Cat(actor(), " 曾在案件 ", case_id(),
                      " 此前的整顿轮次中参与帮扶，不能对其验收或回头看，请由从未参与帮扶的验收人员"
                      "办理"));
  }

  static std::optional<Refusal> CheckLengths(std::initializer_list<LengthRule> rules) {
    for (const LengthRule& rule : rules) {
      if (rule.value.size() <= rule.max) continue;
      return Refuse(Reason::kTextTooLong, rule.field,
                    Cat(rule.field, " is ", rule.value.size(), " bytes; at most ", rule.max,
                        " are allowed, shorten it"),
                    Cat(rule.field, " 长度为 ", rule.value.size(), " 字节，最多允许 ", rule.max,
                        " 字节，请缩短"));
    }
    return std::nullopt;
  }

  static std::optional<Refusal> CheckCount(std::string_view field, int count, int max) {
    if (count <= max) return std::nullopt;
    return Refuse(Reason::kTooManyItems, field,
                  Cat(field, " has ", count, " items; at most ", max, " are allowed"),
                  Cat(field, " 有 ", count, " 项，最多允许 ", max, " 项"));
  }

  static std::optional<Refusal> CheckRequired(Reason reason, std::string_view field,
                                              const std::string& value, std::string_view what_en,
                                              std::string_view what_zh) {
    if (!IsBlank(value)) return std::nullopt;
    return Refuse(reason, field, Cat(field, " is empty; ", what_en),
                  Cat(field, " 为空，", what_zh));
  }

  static std::optional<Refusal> CheckCaseType(v1::CaseType type) {
    if (type != v1::CASE_TYPE_UNSPECIFIED && v1::CaseType_IsValid(type)) return std::nullopt;
    return Refuse(
        Reason::kCaseTypeRequired, "case_type",
        Cat("case_type ", static_cast<int>(type),
            " is not a case type; use WEAK, POOR, DISORDERLY or INDUSTRY"),
        Cat("case_type ", static_cast<int>(type), " 无效，请选择软村、穷村、乱村或产业村"));
  }

  static std::optional<Refusal> CheckCategory(std::string_view field, int value) {
    if (value >= v1::PROBLEM_CATEGORY_LEADERSHIP && value <= v1::PROBLEM_CATEGORY_MARGINALISATION) {
      return std::nullopt;
    }
    return Refuse(Reason::kProblemCategoryInvalid, field,
                  Cat(field, " ", value, " is not a problem category; use 1 to 6"),
                  Cat(field, " ", value, " 不是有效的问题类别，请使用 1 至 6"));
  }

  static std::optional<Refusal> CheckCategories(
      const google::protobuf::RepeatedField<int>& categories) {
    if (categories.empty()) {
      return Refuse(Reason::kProblemCategoriesRequired, "problem_categories",
                    "problem_categories is empty; name at least one of the problem categories 1-6",
                    "problem_categories 为空，请至少选择一个问题类别（1 至 6）");
    }
    for (int i = 0; i < categories.size(); ++i) {
      if (auto r = CheckCategory(Cat("problem_categories[", i, "]"), categories[i])) {
        return r;
      }
    }
    for (int i = 0; i < categories.size(); ++i) {
      for (int j = 0; j < i; ++j) {
        if (categories[i] != categories[j]) continue;
        return Refuse(
            Reason::kProblemCategoryRepeated, Cat("problem_categories[", i, "]"),
            Cat("problem category ", categories[i], " is named twice; name each category once"),
            Cat("问题类别 ", categories[i], " 重复，请每个类别只填写一次"));
      }
    }
    return std::nullopt;
  }

  std::optional<Refusal> CheckFutureDeadline(bool has, const Timestamp& deadline) const {
    return CheckFutureDeadlineAt(has, deadline, context_.now_micros);
  }
  static std::optional<Refusal> CheckFutureDeadlineAt(bool has, const Timestamp& deadline,
                                                      int64_t now_micros) {
    if (has && IsValidTimestamp(deadline) && ToMicros(deadline) > now_micros) {
      return std::nullopt;
    }
    const std::string given = has ? FormatTimestamp(deadline) : std::string("(unset)");
    return Refuse(Reason::kDeadlineNotAfterNow, "deadline",
                  Cat("deadline ", given, " is not after now (", FormatMicros(now_micros),
                      "); set a deadline in the future"),
                  Cat("deadline ", given, " 不晚于当前时间（", FormatMicros(now_micros),
                      "），请设置未来的期限"));
  }

  // The listing fields shared by CreateCase and AmendListing, in order of precedence.
  template <typename Request>
  std::optional<Refusal> CheckListingFields(const Request& request) const {
    if (auto r = CheckCaseType(request.case_type())) return r;
    if (auto r = CheckCategories(request.problem_categories())) return r;
    if (auto r = CheckRequired(Reason::kFindingsRequired, "findings", request.findings(),
                               "record the investigation findings", "请填写摸底排查发现的问题")) {
      return r;
    }
    return CheckFutureDeadline(request.has_deadline(), request.deadline());
  }

  static std::optional<Refusal> CheckPerson(std::string_view field, const std::string& id) {
    if (IsValidId(id)) return std::nullopt;
    return Refuse(Reason::kPersonIdInvalid, field,
                  Cat(field, " \"", Shown(id, kIdBytesMax),
                      "\" is not a person id; use 1-64 bytes without spaces or '/'"),
                  Cat(field, "“", Shown(id, kIdBytesMax),
                      "”不是有效的人员标识，请使用 1-64 字节且不含空格或“/”"));
  }

  // The assignment of AssignAssistance and ReplaceAssignment, in order of precedence.
  std::optional<Refusal> CheckAssignment(const v1::Assignment& a) const {
    const v1::Department& dept = a.paired_department();
    if (auto r = CheckLengths({{"assignment.paired_department.display_name", dept.display_name(),
                                kDisplayNameBytesMax},
                               {"assignment.first_secretary.display_name",
                                a.first_secretary().display_name(), kDisplayNameBytesMax},
                               {"assignment.plan", a.plan(), kTextBytesMax}})) {
      return r;
    }
    for (int i = 0; i < a.stationed_cadres_size() && i < kPeopleMax; ++i) {
      if (auto r = CheckLengths({{Cat("assignment.stationed_cadres[", i, "].display_name"),
                                  a.stationed_cadres(i).display_name(), kDisplayNameBytesMax}})) {
        return r;
      }
    }
    if (auto r = CheckCount("assignment.stationed_cadres", a.stationed_cadres_size(), kPeopleMax)) {
      return r;
    }
    if (!IsValidId(dept.department_id())) {
      return Refuse(Reason::kPairedDepartmentRequired, "assignment.paired_department.department_id",
                    "assignment.paired_department.department_id is empty or invalid; name the "
                    "paired department with an id of 1-64 bytes without spaces or '/'",
                    "assignment.paired_department.department_id 为空或无效，请填写结对部门标识");
    }
    const v1::DepartmentKind want = PairedKindFor(state_.case_type());
    if (dept.kind() != want) {
      return Refuse(Reason::kPairedDepartmentKindMismatch, "assignment.paired_department.kind",
                    Cat("case ", case_id(), " is of type ", CaseTypeName(state_.case_type()),
                        ", which is paired with a department of kind ", DepartmentKindName(want),
                        ", not ", DepartmentKindName(dept.kind()), "; pair a ",
                        DepartmentKindName(want), " department"),
                    Cat("案件 ", case_id(), " 为", CaseTypeNameZh(state_.case_type()), "，应结对",
                        DepartmentKindNameZh(want), "，而不是", DepartmentKindNameZh(dept.kind()),
                        "，请改派", DepartmentKindNameZh(want)));
    }
    if (IsBlank(a.first_secretary().person_id())) {
      return Refuse(Reason::kFirstSecretaryRequired, "assignment.first_secretary.person_id",
                    "assignment.first_secretary.person_id is empty; name the first secretary",
                    "assignment.first_secretary.person_id 为空，请指定第一书记");
    }
    if (a.stationed_cadres().empty()) {
      return Refuse(Reason::kStationedCadresRequired, "assignment.stationed_cadres",
                    "assignment.stationed_cadres is empty; name at least one stationed cadre",
                    "assignment.stationed_cadres 为空，请至少指定一名驻村干部");
    }
    if (auto r =
            CheckPerson("assignment.first_secretary.person_id", a.first_secretary().person_id())) {
      return r;
    }
    for (int i = 0; i < a.stationed_cadres_size(); ++i) {
      if (auto r = CheckPerson(Cat("assignment.stationed_cadres[", i, "].person_id"),
                               a.stationed_cadres(i).person_id())) {
        return r;
      }
    }
    for (int i = 0; i < a.stationed_cadres_size(); ++i) {
      const std::string& id = a.stationed_cadres(i).person_id();
      bool repeated = id == a.first_secretary().person_id();
      for (int j = 0; j < i && !repeated; ++j) repeated = a.stationed_cadres(j).person_id() == id;
      if (!repeated) continue;
      return Refuse(Reason::kAssignedPersonRepeated,
                    Cat("assignment.stationed_cadres[", i, "].person_id"),
                    Cat(id,
                        " is named more than once in the assignment; name each "
                        "person once (the first secretary is not also a cadre)"),
                    Cat(id, " 在帮扶安排中重复出现，每人只能出现一次（第一书记不再列为驻村干部）"));
    }
    return CheckRequired(Reason::kPlanRequired, "assignment.plan", a.plan(),
                         "write the per-case plan", "请填写一村一策方案");
  }

  v1::Assignment Stamped(const v1::Assignment& a) const {
    v1::Assignment out = a;
    *out.mutable_assigned_time() = FromMicros(context_.now_micros);
    out.set_assigned_by(actor());
    return out;
  }

  // --- Commands, each checking in the order of Reason ---

  Decision CreateCase(const v1::CreateCaseRequest& request) {
    if (auto r = CheckActorAndRequestId(request.request_id())) return *r;
    if (!IsValidCaseId(request.case_id())) {
      return Refuse(Reason::kCaseIdInvalid, "case_id",
                    Cat("case_id \"", Shown(request.case_id(), kCaseIdBytesMax + 1),
                        "\" is invalid; use 1-64 characters of [a-z0-9-], not starting "
                        "with '-'"),
                    Cat("case_id“", Shown(request.case_id(), kCaseIdBytesMax + 1),
                        "”无效，请使用 1-64 个 [a-z0-9-] 字符，且不以“-”开头"));
    }
    if (state_.version() != 0 && !MayReadCase()) {
      // Case ids are one namespace, so the existence shows; its state only to those who
      // may read the case.
      return Refuse(Reason::kCaseAlreadyExists, "case_id",
                    Cat("case ", request.case_id(), " already exists; choose another case_id"),
                    Cat("案件 ", request.case_id(), " 已存在，请使用其他 case_id"));
    }
    if (state_.version() != 0) {
      return Refuse(Reason::kCaseAlreadyExists, "case_id",
                    Cat("case ", request.case_id(), " already exists (state ",
                        StateName(state_.state()), ", version ", state_.version(),
                        "); choose another case_id or act on the existing case"),
                    Cat("案件 ", request.case_id(), " 已存在（", StateNameZh(state_.state()),
                        "），请使用其他 case_id 或直接办理该案件"));
    }
    if (auto r = CheckRole()) return *r;
    const v1::Organisation& org = request.organisation();
    if (!IsValidOrganisationJurisdiction(org.jurisdiction())) {
      return Refuse(Reason::kOrganisationJurisdictionInvalid, "organisation.jurisdiction",
                    Cat("organisation.jurisdiction \"", org.jurisdiction().substr(0, 300),
                        "\" is not a path \"city/county/township/org\" of four segments"),
                    Cat("organisation.jurisdiction“", org.jurisdiction().substr(0, 300),
                        "”不是“市/县/乡镇/组织”四级路径"));
    }
    if (auto r = CheckCovers(org.jurisdiction(), "organisation.jurisdiction")) return *r;
    if (auto r =
            CheckLengths({{"organisation.display_name", org.display_name(), kDisplayNameBytesMax},
                          {"findings", request.findings(), kTextBytesMax}})) {
      return *r;
    }
    if (!IsValidId(org.organisation_id())) {
      return Refuse(
          Reason::kOrganisationIdInvalid, "organisation.organisation_id",
          Cat("organisation.organisation_id \"", Shown(org.organisation_id(), kIdBytesMax + 1),
              "\" is invalid; use 1-64 bytes without spaces or '/'"),
          "organisation.organisation_id 无效，请使用 1-64 字节且不含空格或“/”");
    }
    if (auto r =
            CheckRequired(Reason::kOrganisationNameRequired, "organisation.display_name",
                          org.display_name(), "give the organisation's name", "请填写组织名称")) {
      return *r;
    }
    if (org.kind() != v1::ORGANISATION_KIND_VILLAGE &&
        org.kind() != v1::ORGANISATION_KIND_COMMUNITY) {
      return Refuse(Reason::kOrganisationKindRequired, "organisation.kind",
                    Cat("organisation.kind ", static_cast<int>(org.kind()),
                        " is not VILLAGE or COMMUNITY; choose one"),
                    "organisation.kind 无效，请选择村或社区");
    }
    if (auto r = CheckListingFields(request)) return *r;

    Events events;
    v1::Event& event = Emit(events, CaseName(request.case_id()), request.request_id());
    v1::OrganisationListed* body = event.mutable_organisation_listed();
    *body->mutable_organisation() = org;
    body->set_case_type(request.case_type());
    *body->mutable_problem_categories() = request.problem_categories();
    body->set_findings(request.findings());
    *body->mutable_deadline() = request.deadline();
    return events;
  }

  Decision ReviewListing(const v1::ReviewListingRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (JurisdictionDepth(context_.actor.jurisdiction) > 2) {
      return Refuse(Reason::kReviewerMustBeCityOrCountyDepartment, "",
                    Cat(actor(), " acts in \"", context_.actor.jurisdiction,
                        "\", below county level; a reviewer of the city or county "
                        "department must review listings"),
                    Cat(actor(), " 的管辖范围“", context_.actor.jurisdiction,
                        "”低于县级，列入审核须由市、县组织部门的审核人员办理"));
    }
    if (actor() == state_.listed_by()) {
      return Refuse(
          Reason::kListerMustNotReviewOwnListing, "",
          Cat(actor(), " listed case ", case_id(),
              " and may not review the listing; a second person must review it"),
          Cat(actor(), " 是案件 ", case_id(), " 的列入人，不能审核自己的列入，请由另一人审核"));
    }
    if (auto r = CheckState()) return *r;
    if (auto r = CheckConfirmable()) return *r;
    if (state_.has_listing_review() && !state_.listing_review().confirmed()) {
      return Refuse(Reason::kListingAwaitsAmendment, "",
                    Cat("the listing of case ", case_id(), " was returned for correction by ",
                        state_.listing_review().reviewer(),
                        "; the lister must amend it before it is reviewed again"),
                    Cat("案件 ", case_id(), " 的列入已被 ", state_.listing_review().reviewer(),
                        " 退回更正，须由列入人更正后再审核"));
    }
    if (auto r = CheckLengths({{"comment", request.comment(), kTextBytesMax}})) return *r;
    if (!request.confirmed()) {
      if (auto r = CheckRequired(Reason::kReviewCommentRequired, "comment", request.comment(),
                                 "say what must be corrected when returning a listing",
                                 "退回更正时请说明需要更正的内容")) {
        return *r;
      }
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::ListingReviewed* body = event.mutable_listing_reviewed();
    body->set_confirmed(request.confirmed());
    body->set_comment(request.comment());
    return events;
  }

  std::optional<Refusal> CheckConfirmable() const {
    if (!state_.listing_review().confirmed()) return std::nullopt;
    return Refuse(Reason::kListingAlreadyConfirmed, "",
                  Cat("the listing of case ", case_id(), " was already confirmed by ",
                      state_.listing_review().reviewer(),
                      "; it can no longer be reviewed or amended, assign assistance next"),
                  Cat("案件 ", case_id(), " 的列入已由 ", state_.listing_review().reviewer(),
                      " 审核确认，不能再审核或更正，下一步请安排帮扶"));
  }

  Decision AmendListing(const v1::AmendListingRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (actor() != state_.listed_by()) {
      return Refuse(
          Reason::kOnlyListerMayAmendListing, "",
          Cat("case ", case_id(), " was listed by ", state_.listed_by(),
              "; only the lister may amend the listing"),
          Cat("案件 ", case_id(), " 由 ", state_.listed_by(), " 列入，只有列入人可以更正"));
    }
    if (auto r = CheckState()) return *r;
    if (auto r = CheckConfirmable()) return *r;
    if (auto r = CheckLengths({{"findings", request.findings(), kTextBytesMax}})) return *r;
    if (auto r = CheckListingFields(request)) return *r;
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::ListingAmended* body = event.mutable_listing_amended();
    body->set_case_type(request.case_type());
    *body->mutable_problem_categories() = request.problem_categories();
    body->set_findings(request.findings());
    *body->mutable_deadline() = request.deadline();
    return events;
  }

  Decision AssignAssistance(const v1::AssignAssistanceRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (state_.state() == v1::CASE_STATE_LISTED && !state_.listing_review().confirmed()) {
      if (state_.has_listing_review()) {  // returned for correction
        return Refuse(
            Reason::kListingNotConfirmed, "",
            Cat("the listing of case ", case_id(), " was returned for correction by ",
                state_.listing_review().reviewer(), "; its lister (", state_.listed_by(),
                ") amends it, then a reviewer confirms it, before assistance is "
                "assigned"),
            Cat("案件 ", case_id(), " 的列入已被 ", state_.listing_review().reviewer(),
                " 退回修改；请列入人（", state_.listed_by(), "）修改后经审核确认，再安排帮扶"));
      }
      return Refuse(Reason::kListingNotConfirmed, "",
                    Cat("the listing of case ", case_id(),
                        " is not confirmed yet; a reviewer of the city or county "
                        "department must confirm it before assistance is assigned"),
                    Cat("案件 ", case_id(),
                        " 的列入尚未经审核确认，请先由市、县组织部门审核确认后再安排帮扶"));
    }
    if (auto r = CheckAssignment(request.assignment())) return *r;
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    *event.mutable_assistance_assigned()->mutable_assignment() = Stamped(request.assignment());
    return events;
  }

  Decision ReplaceAssignment(const v1::ReplaceAssignmentRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"reason", request.reason(), kTextBytesMax}})) return *r;
    if (auto r = CheckRequired(Reason::kReplacementReasonRequired, "reason", request.reason(),
                               "say why the assignment is replaced (it is never withdrawn)",
                               "请说明调整帮扶的原因（帮扶不得撤销，只能调整）")) {
      return *r;
    }
    if (auto r = CheckAssignment(request.assignment())) return *r;
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::AssignmentReplaced* body = event.mutable_assignment_replaced();
    *body->mutable_assignment() = Stamped(request.assignment());
    body->set_reason(request.reason());
    return events;
  }

  Decision RecordFieldVisit(const v1::RecordFieldVisitRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"notes", request.notes(), kTextBytesMax}})) return *r;
    if (auto r = CheckCount("visitors", request.visitors_size(), kPeopleMax)) return *r;
    if (request.visitors().empty()) {
      return Refuse(Reason::kVisitorsRequired, "visitors",
                    "visitors is empty; name the assigned people who visited",
                    "visitors 为空，请填写走访的帮扶人员");
    }
    for (int i = 0; i < request.visitors_size(); ++i) {
      for (int j = 0; j < i; ++j) {
        if (request.visitors(i) != request.visitors(j)) continue;
        return Refuse(Reason::kVisitorRepeated, Cat("visitors[", i, "]"),
                      Cat(Shown(request.visitors(i), kIdBytesMax),
                          " is named twice among the visitors; name each visitor once"),
                      Cat(Shown(request.visitors(i), kIdBytesMax),
                          " 在走访人员中重复出现，请每人只填写一次"));
      }
    }
    for (int i = 0; i < request.visitors_size(); ++i) {
      if (IsAssigned(state_.assignment(), request.visitors(i))) continue;
      return Refuse(Reason::kVisitorNotAssigned, Cat("visitors[", i, "]"),
                    Cat(Shown(request.visitors(i), kIdBytesMax), " is not assigned to case ",
                        case_id(), "; only its first secretary and stationed cadres record visits"),
                    Cat(Shown(request.visitors(i), kIdBytesMax), " 不是案件 ", case_id(),
                        " 的第一书记或驻村干部，不能记录走访"));
    }
    if (!request.has_visit_time() || !IsValidTimestamp(request.visit_time()) ||
        ToMicros(request.visit_time()) > context_.now_micros) {
      const std::string given =
          request.has_visit_time() ? FormatTimestamp(request.visit_time()) : std::string("(unset)");
      return Refuse(
          Reason::kVisitTimeInvalid, "visit_time",
          Cat("visit_time ", given, " is unset or after now (", FormatMicros(context_.now_micros),
              "); record visits that took place, with their time"),
          Cat("visit_time ", given, " 未填写或晚于当前时间（", FormatMicros(context_.now_micros),
              "），请填写已发生的走访时间"));
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::FieldVisitRecorded* body = event.mutable_field_visit_recorded();
    *body->mutable_visitors() = request.visitors();
    *body->mutable_visit_time() = request.visit_time();
    body->set_notes(request.notes());
    return events;
  }

  Decision RecordMeasure(const v1::RecordMeasureRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"description", request.description(), kTextBytesMax}})) return *r;
    if (auto r = CheckCategory("problem_category", request.problem_category())) return *r;
    if (auto r =
            CheckRequired(Reason::kMeasureDescriptionRequired, "description", request.description(),
                          "describe the measure completed", "请描述完成的措施")) {
      return *r;
    }
    bool listed = false;
    std::string categories;
    for (int c : state_.problem_categories()) {
      listed = listed || c == request.problem_category();
      Append(&categories, categories.empty() ? "" : ", ", c);
    }
    if (!listed) {
      return Refuse(
          Reason::kMeasureCategoryNotListed, "problem_category",
          Cat("problem category ", static_cast<int>(request.problem_category()),
              " is not among the categories of case ", case_id(), " (", categories,
              "); record measures against a listed problem"),
          Cat("问题类别 ", static_cast<int>(request.problem_category()), " 不在案件 ", case_id(),
              " 列入的问题类别（", categories, "）中，请针对列入的问题记录措施"));
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::MeasureCompleted* body = event.mutable_measure_completed();
    body->set_description(request.description());
    body->set_problem_category(request.problem_category());
    return events;
  }

  Decision RecordFunds(const v1::RecordFundsRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"source", request.source(), kTextBytesMax},
                               {"purpose", request.purpose(), kTextBytesMax}})) {
      return *r;
    }
    if (request.amount_fen() <= 0 || request.amount_fen() > kFundsAmountFenMax) {
      return Refuse(Reason::kFundsAmountOutOfRange, "amount_fen",
                    Cat("amount_fen ", request.amount_fen(),
                        " is out of range; record a "
                        "positive amount in fen of at most ",
                        kFundsAmountFenMax),
                    Cat("amount_fen ", request.amount_fen(), " 超出范围，请填写大于 0 且不超过 ",
                        kFundsAmountFenMax, " 的金额（单位：分）"));
    }
    // The case's running total must stay representable. No such command was ever admitted
    // (folding it aborted before its append), so this decides nothing differently under
    // any rule set.
    if (request.amount_fen() > INT64_MAX - state_.funds_provided_fen()) {
      return Refuse(
          Reason::kFundsAmountOutOfRange, "amount_fen",
          Cat("amount_fen ", request.amount_fen(), " would take the case's funds (",
              state_.funds_provided_fen(), " fen) past the largest total it can record (",
              INT64_MAX, " fen)"),
          Cat("amount_fen ", request.amount_fen(), " 将使本案资金合计（",
              state_.funds_provided_fen(), " 分）超过可记录的上限（", INT64_MAX, " 分）"));
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::FundsProvided* body = event.mutable_funds_provided();
    body->set_amount_fen(request.amount_fen());
    body->set_source(request.source());
    body->set_purpose(request.purpose());
    return events;
  }

  Decision RecordInspection(const v1::RecordInspectionRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckInspectorDidNotAssist()) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"findings", request.findings(), kTextBytesMax},
                               {"further_measures", request.further_measures(), kTextBytesMax}})) {
      return *r;
    }
    if (!IsValidId(request.inspection_id())) {
      return Refuse(Reason::kInspectionIdInvalid, "inspection_id",
                    Cat("inspection_id \"", Shown(request.inspection_id(), kIdBytesMax + 1),
                        "\" is invalid; use 1-64 bytes without spaces or '/'"),
                    "inspection_id 无效，请使用 1-64 字节且不含空格或“/”");
    }
    if (auto r = CheckRequired(Reason::kFindingsRequired, "findings", request.findings(),
                               "record what the inspection found", "请填写验收发现的情况")) {
      return *r;
    }
    if (!request.passed()) {
      if (auto r = CheckRequired(Reason::kFurtherMeasuresRequired, "further_measures",
                                 request.further_measures(),
                                 "a failed inspection prescribes stronger measures",
                                 "验收未通过时须提出进一步整改措施（再行会诊）")) {
        return *r;
      }
    } else if (!request.further_measures().empty()) {
      return Refuse(Reason::kFurtherMeasuresOnlyWhenFailed, "further_measures",
                    "further_measures is set on a passed inspection; leave it empty, or record "
                    "the inspection as failed",
                    "验收通过时不应填写 further_measures，请清空或将验收记录为未通过");
    }
    for (const v1::Inspection& earlier : state_.inspections()) {
      if (earlier.inspection_id() != request.inspection_id()) continue;
      return Refuse(
          Reason::kInspectionIdReused, "inspection_id",
          Cat("inspection ", request.inspection_id(), " of case ", case_id(),
              " was already recorded by ", earlier.inspector(), "; use a new inspection_id"),
          Cat("案件 ", case_id(), " 的验收 ", request.inspection_id(), " 已由 ",
              earlier.inspector(), " 记录，请使用新的 inspection_id"));
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    if (request.passed()) {
      v1::InspectionPassed* body = event.mutable_inspection_passed();
      body->set_inspection_id(request.inspection_id());
      body->set_findings(request.findings());
    } else {
      v1::InspectionFailed* body = event.mutable_inspection_failed();
      body->set_inspection_id(request.inspection_id());
      body->set_findings(request.findings());
      body->set_further_measures(request.further_measures());
    }
    return events;
  }

  Decision SignOffClosure(const v1::SignOffClosureRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    const bool names_latest = SignOffNamesLatestLeaf(context_.rules);
    if (context_.verified_key_id.empty() || context_.verified_key_id != request.key_id() ||
        request.signature().empty() ||
        (names_latest && context_.verified_latest_leaf_hash.size() != kLeafHashBytes)) {
      return Refuse(Reason::kSignOffSignatureNotVerified, "signature",
                    Cat("the signature of ", actor(), " with key \"",
                        Shown(request.key_id(), kIdBytesMax + 1),
                        "\" was not verified; sign the canonical sign-off statement with "
                        "your registered key and send its key_id and signature"),
                    Cat(actor(), " 使用密钥“", Shown(request.key_id(), kIdBytesMax + 1),
                        "”的签名未通过验证，请用已登记的密钥对标准销号声明签名后提交"));
    }
    const v1::ApprovalLevel level = SignOffLevel();
    if (level != v1::APPROVAL_LEVEL_COUNTY && level != v1::APPROVAL_LEVEL_CITY) {
      return Refuse(
          Reason::kApproverLevelUnknown, "",
          Cat(actor(), " signs at no known level (county or city); an administrator gives ",
              actor(), " an approval_level in the principals file"),
          Cat(actor(), " 的审批层级未知（县级或市级）；请管理员在人员名册中为其设定审批层级"));
    }
    const v1::Inspection* passed = LatestPassedInspection(state_);
    CW_CHECK_MSG(passed != nullptr, "a VERIFIED case has a passed inspection");
    if (request.inspection_id() != passed->inspection_id()) {
      return Refuse(Reason::kSignOffInspectionNotLatestPassed, "inspection_id",
                    Cat("inspection_id \"", Shown(request.inspection_id(), kIdBytesMax + 1),
                        "\" is not the latest passed inspection of case ", case_id(), " (",
                        passed->inspection_id(), "); sign off on ", passed->inspection_id()),
                    Cat("inspection_id“", Shown(request.inspection_id(), kIdBytesMax + 1),
                        "”不是案件 ", case_id(), " 最近一次通过的验收（", passed->inspection_id(),
                        "），请针对 ", passed->inspection_id(), " 签批"));
    }
    for (const v1::SignOff& s : state_.sign_offs()) {
      if (s.approver() != actor()) continue;
      return Refuse(Reason::kApproverAlreadySignedOff, "",
                    Cat(actor(), " already signed off the closure of case ", case_id(),
                        "; another approver must sign"),
                    Cat(actor(), " 已对案件 ", case_id(), " 的销号签批，须由其他审批人签批"));
    }
    v1::SignOff sign_off;
    sign_off.set_approver(actor());
    sign_off.set_level(level);
    sign_off.set_key_id(context_.verified_key_id);
    sign_off.set_signature(request.signature());
    sign_off.set_inspection_id(passed->inspection_id());
    *sign_off.mutable_sign_time() = FromMicros(context_.now_micros);
    if (names_latest) sign_off.set_latest_leaf_hash(context_.verified_latest_leaf_hash);

    google::protobuf::RepeatedPtrField<v1::SignOff> after = state_.sign_offs();
    *after.Add() = sign_off;
    const bool closes = ClosurePolicySatisfied(context_.policy->closure, after,
                                               ClosureInspectors(state_, *passed, AcrossRounds()));

    Events events;
    events.reserve(2);
    v1::ClosureSignedOff* signed_off =
        Emit(events, state_.name(), request.request_id()).mutable_closure_signed_off();
    *signed_off->mutable_sign_off() = std::move(sign_off);
    if (RecordsClosurePolicy()) {
      const ClosurePolicy& policy = context_.policy->closure;
      v1::ClosurePolicyApplied* applied = signed_off->mutable_policy();
      applied->set_approvers_min(policy.approvers_min);
      applied->set_city_approvers_min(policy.city_approvers_min);
      applied->set_county_approvers_min(policy.county_approvers_min);
    }
    if (closes) {
      v1::CaseClosed* body =
          Emit(events, state_.name(), request.request_id()).mutable_case_closed();
      body->set_inspection_id(passed->inspection_id());
      for (const v1::SignOff& s : after) body->add_approvers(s.approver());
    }
    return events;
  }

  // The level a sign-off is made at: the level of the verified key, else the actor's.
  v1::ApprovalLevel SignOffLevel() const {
    if (context_.verified_level != v1::APPROVAL_LEVEL_UNSPECIFIED) return context_.verified_level;
    return context_.actor.approval_level;
  }

  Decision SendBack(const v1::SendBackRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"reason", request.reason(), kTextBytesMax}})) return *r;
    if (auto r =
            CheckRequired(Reason::kSendBackReasonRequired, "reason", request.reason(),
                          "say why the case goes back to assistance", "请说明退回整改的原因")) {
      return *r;
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    event.mutable_case_sent_back()->set_reason(request.reason());
    return events;
  }

  Decision RecordFollowUpReview(const v1::RecordFollowUpReviewRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckInspectorDidNotAssist()) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckLengths({{"findings", request.findings(), kTextBytesMax}})) return *r;
    if (request.relapsed()) {
      if (auto r = CheckCategories(request.problem_categories())) return *r;
    }
    if (auto r =
            CheckRequired(Reason::kFindingsRequired, "findings", request.findings(),
                          "record what the follow-up review found", "请填写回头看发现的情况")) {
      return *r;
    }
    if (request.relapsed()) {
      if (auto r = CheckFutureDeadline(request.has_deadline(), request.deadline())) return *r;
    } else if (!request.problem_categories().empty() || request.has_deadline()) {
      const std::string_view field =
          request.problem_categories().empty() ? "deadline" : "problem_categories";
      return Refuse(Reason::kRelapseFieldsOnlyWhenRelapsed, field,
                    Cat(field,
                        " is set but the review found no relapse; leave it empty, "
                        "or set relapsed"),
                    Cat("回头看未发现反弹，但填写了 ", field, "，请清空或将 relapsed 设为真"));
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    if (request.relapsed()) {
      v1::RelapseFound* body = event.mutable_relapse_found();
      body->set_findings(request.findings());
      *body->mutable_problem_categories() = request.problem_categories();
      *body->mutable_deadline() = request.deadline();
    } else {
      event.mutable_follow_up_review_held()->set_findings(request.findings());
    }
    return events;
  }

  Decision RecordAdmonishmentTalk(const v1::RecordAdmonishmentTalkRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckTalk(request.talked_with(), request.subject(), request.notes())) return *r;
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::AdmonishmentTalkRecorded* body = event.mutable_admonishment_talk_recorded();
    *body->mutable_talked_with() = request.talked_with();
    body->set_subject(request.subject());
    body->set_notes(request.notes());
    return events;
  }

  Decision IssueRectificationNotice(const v1::IssueRectificationNoticeRequest& request) {
    if (auto r = CheckExistingCase(request)) return *r;
    if (auto r = CheckState()) return *r;
    if (auto r = CheckNotice(request.notice_id(), request.content(),
                             request.has_deadline() ? &request.deadline() : nullptr,
                             context_.now_micros)) {
      return *r;
    }
    Events events;
    v1::Event& event = Emit(events, state_.name(), request.request_id());
    v1::RectificationNoticeIssued* body = event.mutable_rectification_notice_issued();
    body->set_notice_id(request.notice_id());
    body->set_content(request.content());
    if (request.has_deadline()) *body->mutable_deadline() = request.deadline();
    return events;
  }

 public:
  // The content of an admonishment talk: the first refusal, in order of precedence.
  static std::optional<Refusal> CheckTalk(
      const google::protobuf::RepeatedPtrField<v1::Person>& talked_with, const std::string& subject,
      const std::string& notes) {
    if (auto r =
            CheckLengths({{"subject", subject, kTextBytesMax}, {"notes", notes, kTextBytesMax}})) {
      return r;
    }
    for (int i = 0; i < talked_with.size() && i < kPeopleMax; ++i) {
      if (auto r = CheckLengths({{Cat("talked_with[", i, "].display_name"),
                                  talked_with[i].display_name(), kDisplayNameBytesMax}})) {
        return r;
      }
    }
    if (auto r = CheckCount("talked_with", talked_with.size(), kPeopleMax)) return r;
    if (talked_with.empty()) {
      return Refuse(Reason::kTalkedWithRequired, "talked_with",
                    "talked_with is empty; name the people talked with",
                    "talked_with 为空，请填写约谈对象");
    }
    for (int i = 0; i < talked_with.size(); ++i) {
      if (auto r = CheckPerson(Cat("talked_with[", i, "].person_id"), talked_with[i].person_id())) {
        return r;
      }
    }
    return CheckRequired(Reason::kTalkSubjectRequired, "subject", subject,
                         "give the subject of the talk", "请填写约谈事由");
  }

  // The content of a rectification notice: the first refusal, in order of precedence.
  static std::optional<Refusal> CheckNotice(const std::string& notice_id,
                                            const std::string& content, const Timestamp* deadline,
                                            int64_t now_micros) {
    if (auto r = CheckLengths(
            {{"notice_id", notice_id, kIdBytesMax}, {"content", content, kTextBytesMax}})) {
      return r;
    }
    if (auto r = CheckRequired(Reason::kNoticeIdRequired, "notice_id", notice_id,
                               "give the notice's document number", "请填写通报文号")) {
      return r;
    }
    if (auto r = CheckRequired(Reason::kNoticeContentRequired, "content", content,
                               "give the content of the notice", "请填写通报内容")) {
      return r;
    }
    if (deadline != nullptr) return CheckFutureDeadlineAt(true, *deadline, now_micros);
    return std::nullopt;
  }

 private:
  const v1::Case& state_;
  const v1::Command& command_;
  const Context& context_;
  const CommandInfo* info_ = nullptr;
};

// --- Evolve ---------------------------------------------------------------------------

void RequireState(const v1::Case& state, v1::CaseState want, const char* message) {
  CW_CHECK_MSG(state.state() == want, message);
}

void AddAssignedPeople(v1::Case& state, const v1::Assignment& assignment) {
  AddAssister(state, assignment.first_secretary().person_id());
  for (const v1::Person& cadre : assignment.stationed_cadres())
    AddAssister(state, cadre.person_id());
}

v1::Inspection* AppendInspection(v1::Case& state, const v1::Event& event, const std::string& id,
                                 const std::string& findings, bool passed) {
  v1::Inspection* inspection = state.add_inspections();
  inspection->set_inspection_id(id);
  inspection->set_inspector(event.actor());
  inspection->set_passed(passed);
  inspection->set_findings(findings);
  *inspection->mutable_inspection_time() = event.time();
  // The findings of the latest inspections only (limits.h); the events hold the others'.
  for (int i = 0; i < state.inspections_size() - kInspectionFindingsKept; ++i) {
    state.mutable_inspections(i)->clear_findings();
  }
  return inspection;
}

// The current assignment, replaced by `next`, joins the replaced ones, of which the row
// keeps the latest (limits.h); the events hold the others.
void ReplaceAssignmentWith(v1::Case& state, const v1::Assignment& next) {
  *state.add_replaced_assignments() = std::move(*state.mutable_assignment());
  const int excess = state.replaced_assignments_size() - kReplacedAssignmentsKept;
  if (excess > 0) state.mutable_replaced_assignments()->DeleteSubrange(0, excess);
  *state.mutable_assignment() = next;
}

}  // namespace

std::string_view CaseStateNameZh(v1::CaseState state) { return StateNameZh(state); }

bool KnownRulesVersion(std::string_view version) {
  return version == kRulesVersion || version == kRulesVersion2026_3 ||
         version == kRulesVersion2026_2 || version == kRulesVersion2026_1;
}

std::optional<Refusal> CheckTalkContent(
    const google::protobuf::RepeatedPtrField<v1::Person>& talked_with, const std::string& subject,
    const std::string& notes) {
  return Decider::CheckTalk(talked_with, subject, notes);
}

std::optional<Refusal> CheckNoticeContent(const std::string& notice_id, const std::string& content,
                                          const google::protobuf::Timestamp* deadline,
                                          int64_t now_micros) {
  return Decider::CheckNotice(notice_id, content, deadline, now_micros);
}

Decision Decide(const v1::Case& state, const v1::Command& command, const Context& context) {
  CW_CHECK_MSG(context.policy != nullptr, "Decide needs a policy");
  return Decider(state, command, context).Run();
}

ClosureOutstanding DescribeClosureOutstanding(const v1::Case& state, const Policy& policy) {
  ClosureOutstanding out;
  if (state.state() != v1::CASE_STATE_VERIFIED) return out;
  const v1::Inspection* passed = LatestPassedInspection(state);
  if (passed == nullptr) return out;
  // The current rules count every inspector of the case, in every round.
  const ClosureTally tally =
      TallyClosure(state.sign_offs(), ClosureInspectors(state, *passed, /*across_rounds=*/true));
  const ClosurePolicy& closure = policy.closure;
  const int approvers = tally.approvers, city = tally.city, county = tally.county;
  const bool someone_else = tally.someone_else;
  std::vector<std::string> en, zh;
  const int in_all = std::max(1, closure.approvers_min);
  if (approvers < in_all) {
    en.push_back(Cat(in_all - approvers, " more approver(s) (", in_all, " in all)"));
    zh.push_back(Cat("还需 ", in_all - approvers, " 名审批人（共 ", in_all, " 名）"));
  }
  if (city < closure.city_approvers_min) {
    en.push_back(Cat(closure.city_approvers_min - city, " more at city level"));
    zh.push_back(Cat("其中市级还需 ", closure.city_approvers_min - city, " 名"));
  }
  if (county < closure.county_approvers_min) {
    en.push_back(Cat(closure.county_approvers_min - county, " more at county level"));
    zh.push_back(Cat("其中县级还需 ", closure.county_approvers_min - county, " 名"));
  }
  if (!someone_else) {
    en.push_back("a sign-off by someone who never inspected the case");
    zh.push_back("须有未参与验收的审批人签字");
  }
  if (en.empty()) return out;  // the sign-offs close it (ClosurePolicySatisfied)
  std::string en_text, zh_text;
  for (size_t i = 0; i < en.size(); ++i) Append(&en_text, i == 0 ? "" : "; ", en[i]);
  for (size_t i = 0; i < zh.size(); ++i) Append(&zh_text, i == 0 ? "" : "；", zh[i]);
  out.en = Cat("the closure of case ", state.case_id(), " still needs ", en_text);
  out.zh = Cat("案件 ", state.case_id(), " 销号尚需：", zh_text);
  return out;
}

void Evolve(v1::Case& state, const v1::Event& event) {
  CW_CHECK_MSG(event.version() == state.version() + 1, "event version is not the case's next");
  if (state.version() == 0) {
    CW_CHECK_MSG(event.has_organisation_listed(), "the first event of a case lists it");
  } else {
    CW_CHECK_MSG(event.stream() == state.name(), "event of another stream");
  }
  switch (event.body_case()) {
    case v1::Event::kOrganisationListed: {
      const std::optional<std::string_view> id = CaseIdFromName(event.stream());
      CW_CHECK_MSG(id.has_value(), "OrganisationListed on a stream that is not a case");
      const v1::OrganisationListed& e = event.organisation_listed();
      state.set_name(event.stream());
      state.set_case_id(std::string(*id));
      state.set_state(v1::CASE_STATE_LISTED);
      *state.mutable_organisation() = e.organisation();
      state.set_case_type(e.case_type());
      *state.mutable_problem_categories() = e.problem_categories();
      state.set_findings(e.findings());
      *state.mutable_deadline() = e.deadline();
      state.set_listed_by(event.actor());
      *state.mutable_listed_time() = event.time();
      *state.mutable_opened_time() = event.time();
      break;
    }
    case v1::Event::kListingReviewed: {
      RequireState(state, v1::CASE_STATE_LISTED, "ListingReviewed outside LISTED");
      CW_CHECK_MSG(!state.listing_review().confirmed(), "ListingReviewed after confirmation");
      v1::ListingReview* review = state.mutable_listing_review();
      review->set_reviewer(event.actor());
      review->set_confirmed(event.listing_reviewed().confirmed());
      review->set_comment(event.listing_reviewed().comment());
      *review->mutable_review_time() = event.time();
      break;
    }
    case v1::Event::kListingAmended: {
      RequireState(state, v1::CASE_STATE_LISTED, "ListingAmended outside LISTED");
      CW_CHECK_MSG(!state.listing_review().confirmed(), "ListingAmended after confirmation");
      const v1::ListingAmended& e = event.listing_amended();
      state.set_case_type(e.case_type());
      *state.mutable_problem_categories() = e.problem_categories();
      state.set_findings(e.findings());
      *state.mutable_deadline() = e.deadline();
      state.clear_listing_review();
      break;
    }
    case v1::Event::kAssistanceAssigned: {
      const bool from_listed =
          state.state() == v1::CASE_STATE_LISTED && state.listing_review().confirmed();
      CW_CHECK_MSG(from_listed || state.state() == v1::CASE_STATE_REOPENED,
                   "AssistanceAssigned outside confirmed LISTED or REOPENED");
      if (state.has_assignment()) {
        ReplaceAssignmentWith(state, event.assistance_assigned().assignment());
      } else {
        *state.mutable_assignment() = event.assistance_assigned().assignment();
      }
      AddAssignedPeople(state, state.assignment());
      state.set_state(v1::CASE_STATE_ASSISTED);
      break;
    }
    case v1::Event::kAssignmentReplaced: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "AssignmentReplaced outside ASSISTED");
      CW_CHECK_MSG(state.has_assignment(), "AssignmentReplaced without an assignment");
      ReplaceAssignmentWith(state, event.assignment_replaced().assignment());
      AddAssignedPeople(state, state.assignment());
      break;
    }
    case v1::Event::kFieldVisitRecorded: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "FieldVisitRecorded outside ASSISTED");
      const v1::FieldVisitRecorded& e = event.field_visit_recorded();
      state.set_field_visit_count(state.field_visit_count() + 1);
      if (!state.has_last_field_visit_time() ||
          ToMicros(e.visit_time()) > ToMicros(state.last_field_visit_time())) {
        *state.mutable_last_field_visit_time() = e.visit_time();
      }
      AddAssister(state, event.actor());
      for (const std::string& visitor : e.visitors()) AddAssister(state, visitor);
      break;
    }
    case v1::Event::kMeasureCompleted: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "MeasureCompleted outside ASSISTED");
      state.set_measure_count(state.measure_count() + 1);
      AddAssister(state, event.actor());
      break;
    }
    case v1::Event::kFundsProvided: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "FundsProvided outside ASSISTED");
      const int64_t amount = event.funds_provided().amount_fen();
      CW_CHECK_MSG(amount > 0 && amount <= INT64_MAX - state.funds_provided_fen(),
                   "FundsProvided with an impossible amount");
      state.set_funds_provided_fen(state.funds_provided_fen() + amount);
      AddAssister(state, event.actor());
      break;
    }
    case v1::Event::kInspectionPassed: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "InspectionPassed outside ASSISTED");
      const v1::InspectionPassed& e = event.inspection_passed();
      AppendInspection(state, event, e.inspection_id(), e.findings(), true);
      state.clear_sign_offs();
      state.set_state(v1::CASE_STATE_VERIFIED);
      break;
    }
    case v1::Event::kInspectionFailed: {
      RequireState(state, v1::CASE_STATE_ASSISTED, "InspectionFailed outside ASSISTED");
      const v1::InspectionFailed& e = event.inspection_failed();
      AppendInspection(state, event, e.inspection_id(), e.findings(), false);
      break;
    }
    case v1::Event::kClosureSignedOff: {
      RequireState(state, v1::CASE_STATE_VERIFIED, "ClosureSignedOff outside VERIFIED");
      *state.add_sign_offs() = event.closure_signed_off().sign_off();
      break;
    }
    case v1::Event::kCaseClosed: {
      RequireState(state, v1::CASE_STATE_VERIFIED, "CaseClosed outside VERIFIED");
      CW_CHECK_MSG(!state.sign_offs().empty(), "CaseClosed without sign-offs");
      state.set_state(v1::CASE_STATE_CLOSED);
      *state.mutable_closed_time() = event.time();
      break;
    }
    case v1::Event::kCaseSentBack: {
      RequireState(state, v1::CASE_STATE_VERIFIED, "CaseSentBack outside VERIFIED");
      state.clear_sign_offs();
      state.set_state(v1::CASE_STATE_ASSISTED);
      break;
    }
    case v1::Event::kFollowUpReviewHeld: {
      RequireState(state, v1::CASE_STATE_CLOSED, "FollowUpReviewHeld outside CLOSED");
      break;
    }
    case v1::Event::kRelapseFound: {
      RequireState(state, v1::CASE_STATE_CLOSED, "RelapseFound outside CLOSED");
      const v1::RelapseFound& e = event.relapse_found();
      state.set_state(v1::CASE_STATE_REOPENED);
      *state.mutable_problem_categories() = e.problem_categories();
      state.set_findings(e.findings());
      *state.mutable_deadline() = e.deadline();
      *state.mutable_opened_time() = event.time();
      state.set_reopen_count(state.reopen_count() + 1);
      // A new round: who assisted, what was inspected and who signed belong to the last one;
      // who assisted and who inspected are kept as earlier rounds' (separation of duties).
      for (const std::string& who : state.assisters()) {
        if (!Contains(state.earlier_assisters(), who)) state.add_earlier_assisters(who);
      }
      for (const v1::Inspection& i : state.inspections()) {
        if (!Contains(state.earlier_inspectors(), i.inspector())) {
          state.add_earlier_inspectors(i.inspector());
        }
      }
      state.clear_assisters();
      state.clear_inspections();
      state.clear_sign_offs();
      break;
    }
    case v1::Event::kAdmonishmentTalkRecorded:
    case v1::Event::kRectificationNoticeIssued: {
      CW_CHECK_MSG(state.state() != v1::CASE_STATE_UNSPECIFIED, "accountability event on no case");
      state.set_accountability_event_count(state.accountability_event_count() + 1);
      break;
    }
    default:
      CW_CHECK_MSG(false, "not an event of a case stream");
  }
  state.set_version(event.version());
  *state.mutable_update_time() = event.time();
}

v1::Case Replay(const std::vector<v1::Event>& events) {
  v1::Case state;
  for (const v1::Event& event : events) Evolve(state, event);
  return state;
}

}  // namespace casework::workflow

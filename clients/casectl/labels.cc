#include "clients/casectl/labels.h"

namespace casework::client {

std::string StateLabel(casework::v1::CaseState s) {
  switch (s) {
    case casework::v1::CASE_STATE_LISTED:
      return "LISTED 列入台账";
    case casework::v1::CASE_STATE_ASSISTED:
      return "ASSISTED 帮扶整顿中";
    case casework::v1::CASE_STATE_VERIFIED:
      return "VERIFIED 已验收";
    case casework::v1::CASE_STATE_CLOSED:
      return "CLOSED 已销号";
    case casework::v1::CASE_STATE_REOPENED:
      return "REOPENED 反弹重整";
    default:
      return "UNSPECIFIED 未知";
  }
}

std::string CaseTypeLabel(casework::v1::CaseType t) {
  switch (t) {
    case casework::v1::CASE_TYPE_WEAK:
      return "weak 软村";
    case casework::v1::CASE_TYPE_POOR:
      return "poor 穷村";
    case casework::v1::CASE_TYPE_DISORDERLY:
      return "disorderly 乱村";
    case casework::v1::CASE_TYPE_INDUSTRY:
      return "industry 产业村";
    default:
      return "unspecified 未知";
  }
}

std::string CategoryLabel(casework::v1::ProblemCategory c) {
  switch (c) {
    case casework::v1::PROBLEM_CATEGORY_LEADERSHIP:
      return "1 leadership 带头人不胜任/书记空岗";
    case casework::v1::PROBLEM_CATEGORY_STABILITY:
      return "2 stability 影响和谐稳定/信访积案";
    case casework::v1::PROBLEM_CATEGORY_DEVELOPMENT:
      return "3 development 发展思路不清/无集体收入";
    case casework::v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE:
      return "4 organisational life 组织生活不严格不规范";
    case casework::v1::PROBLEM_CATEGORY_DEMOCRATIC_MANAGEMENT:
      return "5 democratic management 管理不民主/村务财务不公开";
    case casework::v1::PROBLEM_CATEGORY_MARGINALISATION:
      return "6 marginalisation 场所空置/队伍老龄化/作用边缘化";
    default:
      return "unspecified 未知";
  }
}

std::string DepartmentKindLabel(casework::v1::DepartmentKind k) {
  switch (k) {
    case casework::v1::DEPARTMENT_KIND_PARTY_GOVERNMENT:
      return "party-government 党政部门";
    case casework::v1::DEPARTMENT_KIND_ECONOMIC:
      return "economic 经济部门";
    case casework::v1::DEPARTMENT_KIND_POLITICAL_LEGAL:
      return "political-legal 政法部门";
    case casework::v1::DEPARTMENT_KIND_AGRICULTURAL_TECH:
      return "agricultural-tech 涉农科技部门";
    default:
      return "unspecified 未知";
  }
}

}  // namespace casework::client

namespace casework::client {

std::string EventKindLabel(const casework::v1::Event& e) {
  const auto* field = e.GetDescriptor()->FindFieldByNumber(e.body_case());
  // An event kind newer than this casectl: its number, not a crash.
  if (field == nullptr) return "event " + std::to_string(e.body_case()) + " 未知事件";
  static const char* const kChinese[][2] = {
      {"organisation_listed", "列入台账"},
      {"listing_reviewed", "审核列入"},
      {"listing_amended", "修改列入"},
      {"assistance_assigned", "安排帮扶"},
      {"assignment_replaced", "更换帮扶力量"},
      {"field_visit_recorded", "走访"},
      {"measure_completed", "整改措施"},
      {"funds_provided", "帮扶资金"},
      {"inspection_passed", "验收通过"},
      {"inspection_failed", "验收未通过"},
      {"closure_signed_off", "销号签字"},
      {"case_closed", "销号"},
      {"case_sent_back", "退回整改"},
      {"follow_up_review_held", "回头看：巩固"},
      {"relapse_found", "回头看：反弹"},
      {"admonishment_talk_recorded", "约谈"},
      {"rectification_notice_issued", "通报整改"},
      {"approver_key_registered", "登记签字密钥"},
      {"approver_key_revoked", "吊销签字密钥"},
      {"organisation_registered", "组织登记"},
      {"registry_imported", "名册导入"},
      {"inspection_sample_drawn", "随机抽取"},
      {"principals_recorded", "人员名册"},
  };
  for (const auto& [name, chinese] : kChinese) {
    if (field->name() == name) return field->name() + " " + chinese;
  }
  return field->name();
}

}  // namespace casework::client

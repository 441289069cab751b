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

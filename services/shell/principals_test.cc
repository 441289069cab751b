// The principals file parses into roles and jurisdictions and refuses mistakes with a
// message naming the entry and field.
#include "services/shell/principals.h"

#include "gtest/gtest.h"

namespace casework::shell {
namespace {

TEST(Principals, ParsesRolesJurisdictionAndLevel) {
  auto p = Principals::Parse(R"({"principals": [
      {"id": "li.na", "roles": ["lister", "reviewer"], "jurisdiction": "city/a"},
      {"id": "wang", "roles": ["approver"], "jurisdiction": "city", "approval_level": "city"}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ((*p)->size(), 2u);
  const workflow::Principal* li = (*p)->Find("li.na");
  ASSERT_NE(li, nullptr);
  EXPECT_EQ(li->jurisdiction, "city/a");
  ASSERT_EQ(li->roles.size(), 2u);
  EXPECT_EQ(li->roles[0], workflow::Role::kLister);
  EXPECT_EQ((*p)->Find("wang")->approval_level, casework::v1::APPROVAL_LEVEL_CITY);
  EXPECT_EQ((*p)->Find("nobody"), nullptr);
}

TEST(Principals, RefusesMistakesNamingTheEntry) {
  struct Row {
    const char* json;
    const char* needle;
  } rows[] = {
      {"[]", "not a JSON object"},
      {R"({"principals": 1})", "array"},
      {R"({"principals": [{"roles": ["lister"], "jurisdiction": "c"}]})", "principals[0].id"},
      {R"({"principals": [{"id": "a", "roles": ["boss"], "jurisdiction": "c"}]})", "boss"},
      {R"({"principals": [{"id": "a", "roles": ["lister"]}]})", "jurisdiction"},
      {R"({"principals": [{"id": "a", "roles": ["lister"], "jurisdiction": "c"},
                          {"id": "a", "roles": ["lister"], "jurisdiction": "c"}]})",
       "twice"},
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c",
                           "approval_level": "province"}]})",
       "approval_level"},
      // A level belongs to the city's department, or a county's (or the city's).
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c/x",
                           "approval_level": "city"}]})",
       "whole city"},
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c/x/t",
                           "approval_level": "county"}]})",
       "one or two segments"},
      // Jurisdictions: a path of one to four segments, all under one city.
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "/"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/x/"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c//x"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/x y"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/a/b/c/d"}]})",
       "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/a"},
                          {"id": "b", "roles": ["auditor"], "jurisdiction": "xihe"}]})",
       "one city"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.json);
    auto p = Principals::Parse(row.json);
    ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(row.needle), std::string::npos) << p.status();
  }
}

}  // namespace
}  // namespace casework::shell

// The registry file: what it accepts, and a clear refusal naming line and column for
// each kind of bad input.
#include "services/oversight/registry_csv.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casework::oversight {
namespace {

using ::testing::HasSubstr;

TEST(RegistryCsvTest, ParsesQuotedFieldsBomCrlfAndChineseKinds) {
  const std::string csv =
      "\xEF\xBB\xBForganisation_id,display_name,jurisdiction,kind,grade,stars\r\n"
      "o1,\"东山村, 党支部\",c/k/t/o1,village,3,1\r\n"
      "\r\n"
      "o2,\"say \"\"hi\"\"\",c/k/t/o2,社区,4,0\n"
      "o3,\"two\nlines\",c/k/t/o3,村,1,5";
  auto rows = ParseRegistryCsv(csv);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].organisation.display_name(), "东山村, 党支部");
  EXPECT_EQ((*rows)[0].line, 2);
  EXPECT_EQ((*rows)[0].grade, 3);
  EXPECT_EQ((*rows)[1].organisation.display_name(), "say \"hi\"");
  EXPECT_EQ((*rows)[1].organisation.kind(), casework::v1::ORGANISATION_KIND_COMMUNITY);
  EXPECT_EQ((*rows)[1].line, 4);
  EXPECT_EQ((*rows)[2].organisation.display_name(), "two\nlines");
  EXPECT_EQ((*rows)[2].stars, 5);
  // The canonical line parses back to the same row.
  auto again = ParseRegistryCsv(std::string(kRegistryCsvHeader) + "\n" +
                                RegistryCsvLine((*rows)[1]) + "\n" + RegistryCsvLine((*rows)[2]));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].organisation.display_name(), "say \"hi\"");
  EXPECT_EQ((*again)[1].organisation.display_name(), "two\nlines");
}

// A file past the bound is refused whole before it is read (the bound keeps its line
// numbers within an int).
TEST(RegistryCsvTest, AFilePastTheBoundIsRefused) {
  const std::string csv = std::string(kRegistryCsvHeader) + "\n";
  EXPECT_TRUE(ParseRegistryCsv(csv, csv.size()).ok());
  auto refused = ParseRegistryCsv(csv, csv.size() - 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("split it"), std::string::npos)
      << refused.status().message();
}

TEST(RegistryCsvTest, ColumnsInAnyOrder) {
  auto rows = ParseRegistryCsv(
      "stars,grade,kind,jurisdiction,display_name,organisation_id\n"
      "2,4,community,c/k/t/x,X,x\n");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ((*rows)[0].organisation.organisation_id(), "x");
  EXPECT_EQ((*rows)[0].stars, 2);
}

struct BadCase {
  std::string csv;
  std::string message;
};

TEST(RegistryCsvTest, RefusesBadInputNamingLineAndColumn) {
  const std::string h = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  const std::vector<BadCase> cases = {
      {"", "empty"},
      {"organisation_id,display_name\n", "column jurisdiction: missing from the header"},
      {h.substr(0, h.size() - 1) + ",extra\n", "column extra: unknown column"},
      {"grade,grade\n", "column grade: column named twice"},
      {h + "o1,N,c/k/t/o1,village,3\n", "line 2: the row has 5 fields"},
      {h + "o1,N,c/k/t/o1,village,5,1\n", "line 2, column grade"},
      {h + "o1,N,c/k/t/o1,village,0,1\n", "line 2, column grade"},
      {h + "o1,N,c/k/t/o1,village,x,1\n", "line 2, column grade"},
      {h + "o1,N,c/k/t/o1,village,3,6\n", "line 2, column stars"},
      {h + "o1,N,c/k/t/o1,town,3,1\n", "line 2, column kind"},
      {h + "o1,N,c/k/o1,village,3,1\n", "line 2, column jurisdiction"},
      {h + "o 1,N,c/k/t/o1,village,3,1\n", "line 2, column organisation_id"},
      {h + "o1, ,c/k/t/o1,village,3,1\n", "line 2, column display_name"},
      {h + "o1,N,c/k/t/o1,village,3,1\no1,M,c/k/t/o1,village,3,1\n",
       "line 3, column organisation_id: \"o1\" appears twice"},
      {h + "o1,\"N,c/k/t/o1,village,3,1\n", "line 2: a quoted field is not closed"},
      {h + "o1,N\"x\",c/k/t/o1,village,3,1\n", "line 2: a quote inside an unquoted field"},
      {h + "o1,\"N\"x,c/k/t/o1,village,3,1\n", "line 2: text after a closing quote"},
      {h + "o1,\xff,c/k/t/o1,village,3,1\n", "not valid UTF-8"},
  };
  for (const BadCase& c : cases) {
    auto rows = ParseRegistryCsv(c.csv);
    ASSERT_FALSE(rows.ok()) << c.csv;
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(rows.status().message()), HasSubstr(c.message)) << c.csv;
    const std::string zh = RegistryCsvMessageZh(rows.status());
    EXPECT_NE(zh, std::string(rows.status().message())) << "no Chinese text: " << c.csv;
    EXPECT_TRUE(zh.starts_with("第 ") || zh.starts_with("登记文件")) << zh;
  }
}

// A bilingual column name holds " / ", which once split the English message from the
// Chinese one: the two are kept apart now, each whole.
TEST(RegistryCsvTest, AColumnNameWithASlashStaysInItsMessage) {
  auto rows =
      ParseRegistryCsv("organisation_id,display_name,jurisdiction,kind,grade / 分类定级,stars\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_THAT(std::string(rows.status().message()),
              ::testing::StartsWith("line 1, column grade / 分类定级: unknown column; "));
  EXPECT_THAT(RegistryCsvMessageZh(rows.status()),
              ::testing::StartsWith("第 1 行“grade / 分类定级”列："));
}

}  // namespace
}  // namespace casework::oversight

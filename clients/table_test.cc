// Tables count wide Chinese characters as two columns, so bilingual labels align.
#include "clients/table.h"

#include <sstream>

#include "gtest/gtest.h"

namespace casework::client {
namespace {

TEST(Table, DisplayWidthCountsWideCharactersTwice) {
  EXPECT_EQ(DisplayWidth("abc"), 3u);
  EXPECT_EQ(DisplayWidth("状态"), 4u);
  EXPECT_EQ(DisplayWidth("State 状态"), 10u);
}

TEST(Table, ColumnsAlignUnderMixedScripts) {
  Table t({"Case 案件", "State 状态"});
  t.AddRow({"c-1", "LISTED 列入台账"});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(),
            "Case 案件  State 状态\n"
            "---------  ---------------\n"
            "c-1        LISTED 列入台账\n");
}

}  // namespace
}  // namespace casework::client

// The error details every refusal carries: parseable whatever the message quotes.
#include "services/shell/status_mapping.h"

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace casework::shell {
namespace {

TEST(ValidUtf8, KeepsWellFormedTextAndReplacesBrokenBytes) {
  EXPECT_EQ(ValidUtf8("case c-1"), "case c-1");
  EXPECT_EQ(ValidUtf8("东山村 𠀀"), "东山村 𠀀");
  const std::string dong = "东";                         // 3 bytes
  EXPECT_EQ(ValidUtf8("a" + dong.substr(0, 2)), "a??");  // cut in the middle
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), "??");                // overlong '/'
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), "???");           // a surrogate
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80"), "????");      // past U+10FFFF
  EXPECT_EQ(ValidUtf8(std::string("x\xFFy", 3)), "x?y");
}

// A name of Chinese characters cut at a byte count in the message: the details must
// still parse, with the reason and the field.
TEST(ErrorStatus, DetailsParseWhenAMessageQuotesACutName) {
  std::string name = "cases/a";
  for (int i = 0; i < 30; ++i) name += "村";
  const grpc::Status status = CaseNameInvalid(name);
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(status.error_details()));
  google::rpc::ErrorInfo info;
  ASSERT_GE(rich.details_size(), 1);
  ASSERT_TRUE(rich.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "CASE_NAME_INVALID");
  EXPECT_EQ(info.metadata().at("field"), "name");
  EXPECT_EQ(ValidUtf8(rich.message()), rich.message());
}

}  // namespace
}  // namespace casework::shell

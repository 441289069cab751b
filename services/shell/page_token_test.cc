// ListCases page tokens are sealed: a client can neither read the index key inside (which
// may belong to a case it may not see) nor make up or alter a token, nor use one for
// another query.
#include "services/shell/page_token.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace casework::shell {
namespace {

TEST(PageToken, SealedBoundToItsQueryAndTamperEvident) {
  const std::string key = std::string("by_due") + '\0' + "case-of-another-county-0042";
  const std::string tag = ListCasesQueryTag("state = LISTED", "deadline");
  const std::string token = EncodePageToken(key, tag);
  std::string raw;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(token, &raw));
  EXPECT_EQ(raw.find("case-of-another-county"), std::string::npos);
  EXPECT_EQ(DecodePageToken(token, tag), key);
  EXPECT_NE(EncodePageToken(key, tag), token);  // a fresh nonce each time
  EXPECT_FALSE(DecodePageToken(token, ListCasesQueryTag("state = CLOSED", "deadline")));
  for (size_t i = 0; i < raw.size(); ++i) {
    std::string altered = raw;
    altered[i] = static_cast<char>(altered[i] ^ 0x01);
    EXPECT_FALSE(DecodePageToken(absl::WebSafeBase64Escape(altered), tag)) << "byte " << i;
  }
  EXPECT_FALSE(DecodePageToken(absl::WebSafeBase64Escape(raw.substr(0, 20)), tag));
  EXPECT_FALSE(DecodePageToken("not-a-token!", tag));
}

// ListCaseEvents: a token names the next version of the case it was issued for, and is
// refused for any other case (also one whose id extends it) or when garbled.
TEST(PageToken, EventsTokenIsBoundToItsCase) {
  const std::string token = EncodeEventsPageToken("c-1", 21);
  EXPECT_EQ(DecodeEventsPageToken(token, "c-1"), 21);
  EXPECT_FALSE(DecodeEventsPageToken(token, "c-2").has_value());
  EXPECT_FALSE(DecodeEventsPageToken(token, "c-10").has_value());
  EXPECT_FALSE(DecodeEventsPageToken(token, "c").has_value());
  EXPECT_FALSE(DecodeEventsPageToken(EncodeEventsPageToken("c-1", 0), "c-1").has_value());
  EXPECT_FALSE(DecodeEventsPageToken("MjE", "c-1").has_value());  // "21", the old form
  EXPECT_FALSE(DecodeEventsPageToken("not-a-token!", "c-1").has_value());
}

}  // namespace
}  // namespace casework::shell

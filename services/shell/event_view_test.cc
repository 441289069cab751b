// The cheap views of stored event bytes, against what a full parse finds.
#include "services/shell/event_view.h"

#include <gtest/gtest.h>

#include "casework/v1/events.pb.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;

v1::Event Listed(const std::string& request_id) {
  v1::Event event;
  event.set_stream("cases/c1");
  event.set_version(3);
  event.set_actor("li.na");
  event.mutable_time()->set_seconds(1'700'000'000);
  event.set_request_id(request_id);
  event.set_rules_version("rules/2026.2");
  event.mutable_organisation_listed()->mutable_organisation()->set_organisation_id("org-1");
  return event;
}

TEST(EventView, TheRequestIdIsReadWithoutParsing) {
  const std::string bytes = Listed("r-1").SerializeAsString();
  EXPECT_EQ(EventRequestId(bytes), "r-1");
  EXPECT_EQ(EventBodyField(bytes), v1::Event::kOrganisationListedFieldNumber);
  EXPECT_EQ(EventRequestId(Listed("").SerializeAsString()), "") << "none: empty, as parsed";
}

TEST(EventView, TheLastRequestIdWinsAsInAParse) {
  // Serialized messages concatenated merge: a parser keeps the last value of a field.
  const std::string bytes = Listed("r-1").SerializeAsString() + Listed("r-2").SerializeAsString();
  v1::Event parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(EventRequestId(bytes), parsed.request_id());
  EXPECT_EQ(EventRequestId(bytes), "r-2");
}

TEST(EventView, MalformedBytesHaveNoRequestId) {
  const std::string bytes = Listed("r-1").SerializeAsString();
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    v1::Event parsed;
    if (parsed.ParseFromString(bytes.substr(0, cut))) continue;  // a cut at a field's end
    EXPECT_EQ(EventRequestId(bytes.substr(0, cut)), std::nullopt) << "cut at " << cut;
  }
  EXPECT_EQ(EventRequestId(std::string("\x2a\x05r-", 4)), std::nullopt) << "a length past the end";
  EXPECT_EQ(EventRequestId(std::string("\x00\x01", 2)), std::nullopt) << "field number 0";
}

}  // namespace
}  // namespace casework::shell

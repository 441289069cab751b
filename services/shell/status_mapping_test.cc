// The error details every refusal carries: parseable whatever the message quotes.
#include "services/shell/status_mapping.h"

#include <string>

#include "absl/strings/cord.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "store/event_log.h"

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
  // The field also as a BadRequest field violation (AIP-193), with the English message.
  google::rpc::BadRequest bad;
  bool found = false;
  for (const auto& any : rich.details()) found = found || any.UnpackTo(&bad);
  ASSERT_TRUE(found);
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "name");
  EXPECT_EQ(bad.field_violations(0).description(), rich.message());
}

// A message quoting a long value is cut to 1,000 bytes (valid UTF-8, marked "..."), so
// that the refusal fits the 8 KiB of trailers a client takes by default.
TEST(ErrorStatus, LongMessagesAreCutShort) {
  std::string value;
  for (int i = 0; i < 600; ++i) value += "村";
  const grpc::Status status =
      ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "FILTER_INVALID", "filter",
                  "unknown state \"" + value + "\"", "未知状态“" + value + "”");
  EXPECT_LE(status.error_message().size(), 1000u);
  EXPECT_EQ(status.error_message().substr(status.error_message().size() - 3), "...");
  EXPECT_EQ(ValidUtf8(status.error_message()), status.error_message());
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(status.error_details()));
  EXPECT_LT(status.error_details().size(), 2600u);
  for (const auto& any : rich.details()) {
    google::rpc::LocalizedMessage zh;
    if (any.UnpackTo(&zh)) {
      EXPECT_LE(zh.message().size(), 1000u);
    }
  }
}

// Only a field the caller got wrong is a BadRequest: another code, or no field, has none.
TEST(ErrorStatus, ABadRequestOnlyForAnInvalidArgumentWithAField) {
  const auto has_bad_request = [](const grpc::Status& status) {
    google::rpc::Status rich;
    EXPECT_TRUE(rich.ParseFromString(status.error_details()));
    google::rpc::BadRequest bad;
    for (const auto& any : rich.details()) {
      if (any.UnpackTo(&bad)) return true;
    }
    return false;
  };
  EXPECT_TRUE(has_bad_request(
      ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "R", "page_size", "wrong", "错")));
  EXPECT_FALSE(
      has_bad_request(ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "R", "", "wrong", "错")));
  EXPECT_FALSE(has_bad_request(
      ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "R", "name", "outside", "不在")));
  // A message quoting a long value is cut shorter there than in the status.
  std::string quoted = "filter \"";
  for (int i = 0; i < 700; ++i) quoted += "村";
  const grpc::Status long_one =
      ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "R", "filter", quoted + "\" is bad", "错");
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(long_one.error_details()));
  google::rpc::BadRequest bad;
  for (const auto& any : rich.details()) (void)any.UnpackTo(&bad);
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_LE(bad.field_violations(0).description().size(), 200u);
  EXPECT_EQ(ValidUtf8(bad.field_violations(0).description()),
            bad.field_violations(0).description());
  EXPECT_GT(long_one.error_message().size(), 200u);
}

// The store's refusals keep their code and message and carry the store's reason, with a
// Chinese message that says what to do; an error without a reason is STORE_ERROR.
TEST(FromStoreStatus, KeepsTheCodeAndNamesTheStoresReason) {
  auto with_reason = [](absl::Status status, std::string_view reason) {
    status.SetPayload(
        absl::string_view(store::kRefusalPayloadUrl.data(), store::kRefusalPayloadUrl.size()),
        absl::Cord(absl::string_view(reason.data(), reason.size())));
    return status;
  };
  struct Row {
    absl::Status in;
    grpc::StatusCode code;
    std::string reason;
    std::string zh;  // a part of the Chinese message
  };
  const Row rows[] = {
      {with_reason(absl::ResourceExhaustedError("the append queue is full"),
                   store::kRefusalQueueFull),
       grpc::StatusCode::RESOURCE_EXHAUSTED, "QUEUE_FULL", "写入队列已满"},
      {with_reason(absl::ResourceExhaustedError("the disk is full"), store::kRefusalDiskFull),
       grpc::StatusCode::RESOURCE_EXHAUSTED, "DISK_FULL", "磁盘已满"},
      {with_reason(absl::UnavailableError("read-only"), store::kRefusalReadOnly),
       grpc::StatusCode::UNAVAILABLE, "READ_ONLY", "只读"},
      {with_reason(absl::UnavailableError("shutting down"), store::kRefusalShuttingDown),
       grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", "服务正在关闭"},
      {absl::InternalError("something else"), grpc::StatusCode::INTERNAL, "STORE_ERROR",
       "存储层错误"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.reason);
    const grpc::Status status = FromStoreStatus(row.in);
    EXPECT_EQ(status.error_code(), row.code);
    EXPECT_EQ(status.error_message(), std::string(row.in.message()));
    google::rpc::Status rich;
    ASSERT_TRUE(rich.ParseFromString(status.error_details()));
    google::rpc::ErrorInfo info;
    ASSERT_GE(rich.details_size(), 1);
    ASSERT_TRUE(rich.details(0).UnpackTo(&info));
    EXPECT_EQ(info.reason(), row.reason);
    std::string zh;
    for (const auto& any : rich.details()) {
      google::rpc::LocalizedMessage localized;
      if (any.UnpackTo(&localized) && localized.locale() == "zh-CN") zh = localized.message();
    }
    EXPECT_NE(zh.find(row.zh), std::string::npos) << zh;
  }
}

}  // namespace
}  // namespace casework::shell

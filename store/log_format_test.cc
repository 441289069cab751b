// Proves that every record of log_format.h round-trips and that malformed bytes are
// refused, one case per edge.
#include "store/log_format.h"

#include <string>

#include "gtest/gtest.h"

namespace casework::store::format {
namespace {

TEST(LogFormat, PositionKeysSortNumerically) {
  EXPECT_LT(PositionKey(1), PositionKey(2));
  EXPECT_LT(PositionKey(255), PositionKey(256));
  EXPECT_LT(PositionKey(0xffffffff), PositionKey(0x100000000));
  int64_t position = -1;
  ASSERT_TRUE(DecodePositionKey(PositionKey(1234567890123), &position));
  EXPECT_EQ(position, 1234567890123);
  EXPECT_FALSE(DecodePositionKey("1234567", &position));
  EXPECT_FALSE(DecodePositionKey(std::string(8, '\xff'), &position));
}

TEST(LogFormat, EventRecordExactBytes) {
  std::string record;
  AppendEventRecord(&record, "s", 2, "ev");
  EXPECT_EQ(record, std::string("\x01\0\0\0\0\0\0\0\x02\0\0\0\x01sev", 16));
  EventRecord decoded;
  ASSERT_TRUE(DecodeEventRecord(record, &decoded));
  EXPECT_EQ(decoded.stream, "s");
  EXPECT_EQ(decoded.version, 2);
  EXPECT_EQ(decoded.event, "ev");
}

TEST(LogFormat, EventRecordWithEmptyEvent) {
  std::string record;
  AppendEventRecord(&record, "cases/c-1", 1, "");
  EventRecord decoded;
  ASSERT_TRUE(DecodeEventRecord(record, &decoded));
  EXPECT_EQ(decoded.stream, "cases/c-1");
  EXPECT_EQ(decoded.event, "");
}

TEST(LogFormat, EventRecordRefusesMalformed) {
  std::string record;
  AppendEventRecord(&record, "stream", 7, "payload");
  EventRecord decoded;
  EXPECT_FALSE(DecodeEventRecord("", &decoded));
  EXPECT_FALSE(DecodeEventRecord(record.substr(0, 12), &decoded));
  std::string wrong_tag = record;
  wrong_tag[0] = 2;
  EXPECT_FALSE(DecodeEventRecord(wrong_tag, &decoded));
  std::string long_stream = record;
  long_stream[12] = 100;  // stream length beyond the value
  EXPECT_FALSE(DecodeEventRecord(long_stream, &decoded));
  std::string version_zero;
  AppendEventRecord(&version_zero, "stream", 0, "payload");
  EXPECT_FALSE(DecodeEventRecord(version_zero, &decoded));
  std::string empty_stream;
  AppendEventRecord(&empty_stream, "", 1, "payload");
  EXPECT_FALSE(DecodeEventRecord(empty_stream, &decoded));
}

TEST(LogFormat, StreamKeysOfOneStreamAreContiguous) {
  EXPECT_LT(StreamKey("a", 9), StreamKey("a", 10));
  EXPECT_LT(StreamKey("a", INT64_MAX), StreamKeyEnd("a"));
  EXPECT_LT(StreamKeyEnd("a"), StreamKey("a\x01", 1));
  EXPECT_LT(StreamKeyEnd("a"), StreamKey("ab", 1));
  EXPECT_LE(StreamKeyBegin("a"), StreamKey("a", 0));
  std::string_view stream;
  int64_t version = 0;
  const std::string key = StreamKey("cases/x", 42);
  ASSERT_TRUE(DecodeStreamKey(key, &stream, &version));
  EXPECT_EQ(stream, "cases/x");
  EXPECT_EQ(version, 42);
  EXPECT_FALSE(DecodeStreamKey("short", &stream, &version));
}

TEST(LogFormat, StreamExtentRoundTrip) {
  StreamExtent extent;
  ASSERT_TRUE(
      DecodeStreamExtent(EncodeStreamExtent({.first_version = 3, .first_position = 99}), &extent));
  EXPECT_EQ(extent.first_version, 3);
  EXPECT_EQ(extent.first_position, 99);
  EXPECT_FALSE(DecodeStreamExtent(EncodeStreamExtent({.first_version = 0}), &extent));
  EXPECT_FALSE(DecodeStreamExtent("x", &extent));
}

TEST(LogFormat, RequestRecordRoundTrip) {
  RequestRecord record;
  ASSERT_TRUE(DecodeRequestRecord(EncodeRequestRecord({.first_position = 5,
                                                       .event_count = 2,
                                                       .version = 7,
                                                       .fingerprint = std::string("f\0p", 3)}),
                                  &record));
  EXPECT_EQ(record.first_position, 5);
  EXPECT_EQ(record.event_count, 2);
  EXPECT_EQ(record.version, 7);
  EXPECT_EQ(record.fingerprint, std::string("f\0p", 3));
  EXPECT_FALSE(DecodeRequestRecord(std::string(24, '\x01'), &record));
}

TEST(LogFormat, CountersAreSignedBigEndian) {
  EXPECT_EQ(EncodeInt64(1), std::string("\0\0\0\0\0\0\0\x01", 8));
  EXPECT_EQ(EncodeInt64(-1), std::string(8, '\xff'));
  int64_t value = 0;
  ASSERT_TRUE(DecodeInt64(EncodeInt64(INT64_MIN), &value));
  EXPECT_EQ(value, INT64_MIN);
  EXPECT_FALSE(DecodeInt64("1234", &value));
}

TEST(LogFormat, ProjectionKeysOfOneTableAreContiguous) {
  EXPECT_LT(ProjectionKey("t", "\xff\xff"), ProjectionTableEnd("t"));
  EXPECT_LT(ProjectionTableEnd("t"), ProjectionKey("t2", ""));
}

TEST(LogFormat, NodeKeyRoundTrip) {
  int level = 0;
  int64_t index = 0;
  ASSERT_TRUE(DecodeNodeKey(NodeKey(5, 77), &level, &index));
  EXPECT_EQ(level, 5);
  EXPECT_EQ(index, 77);
  EXPECT_FALSE(DecodeNodeKey(NodeKey(64, 0), &level, &index));
}

}  // namespace
}  // namespace casework::store::format

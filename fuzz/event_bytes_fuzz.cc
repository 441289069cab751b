// Fuzz target: event bytes and the byte formats of the log (store/log_format.h).
//
// Feeds the whole input to each decoder of stored bytes:
//   - DecodeEventRecord (a value of the "events" column family), then the event bytes it
//     holds to casework.v1.Event and EventBodyField (the stream's cheap kind filter);
//   - the input itself as casework.v1.Event bytes (what an export or a client hands in);
//   - DecodePositionKey, DecodeStreamKey, DecodeStreamExtent, DecodeRequestRecord,
//     DecodeInt64 (projection counters) and DecodeNodeKey.
// Asserts: no crash and no sanitizer report; every accepted key or value re-encodes to
// exactly the input (the formats have one encoding); an Event that parses re-serializes
// to bytes that parse to the same message, and EventBodyField names its body on them.
// The fold (workflow::Evolve) is not fed here: it aborts by design on an event
// impossible in its state, and the server only folds events its own core decided
// (decide_fuzz checks that those always fold).
#include "casework/v1/events.pb.h"
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "services/shell/event_view.h"
#include "store/log_format.h"

namespace {

namespace format = casework::store::format;
using casework::fuzz::DeterministicBytes;

void FeedEvent(std::string_view bytes) {
  // The stream filter walks the tags of raw bytes before anything parses them.
  const int body = casework::shell::EventBodyField(bytes);
  FUZZ_CHECK(body == 0 || body >= 20, "EventBodyField names a body field or none");

  casework::v1::Event event;
  if (!event.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  const std::string canonical = DeterministicBytes(event);
  casework::v1::Event again;
  FUZZ_CHECK(again.ParseFromString(canonical), "a parsed event re-serializes to bytes that parse");
  FUZZ_CHECK(DeterministicBytes(again) == canonical, "re-parsing gives the same event");
  if (event.body_case() != casework::v1::Event::BODY_NOT_SET) {
    FUZZ_CHECK(casework::shell::EventBodyField(canonical) == event.body_case(),
               "EventBodyField names the body of a serialized event");
  } else if (event.GetReflection()->GetUnknownFields(event).empty()) {
    FUZZ_CHECK(casework::shell::EventBodyField(canonical) == 0,
               "EventBodyField is 0 for an event without a body");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = casework::fuzz::AsText(data, size);

  format::EventRecord record;
  if (format::DecodeEventRecord(input, &record)) {
    FUZZ_CHECK(record.version >= 1 && !record.stream.empty(), "a record has a stream and version");
    std::string encoded;
    format::AppendEventRecord(&encoded, record.stream, record.version, record.event);
    FUZZ_CHECK(encoded == input, "an event record re-encodes to its bytes");
    FeedEvent(record.event);
  }
  FeedEvent(input);

  int64_t position = 0;
  if (format::DecodePositionKey(input, &position)) {
    FUZZ_CHECK(position >= 0 && format::PositionKey(position) == input, "position key");
  }
  std::string_view stream;
  int64_t last_version = 0;
  if (format::DecodeStreamKey(input, &stream, &last_version)) {
    FUZZ_CHECK(last_version >= 0 && format::StreamKey(stream, last_version) == input, "stream key");
    FUZZ_CHECK(format::StreamKeyBegin(stream) <= input && input < format::StreamKeyEnd(stream),
               "a stream key lies within its stream's key range");
  }
  format::StreamExtent extent;
  if (format::DecodeStreamExtent(input, &extent)) {
    FUZZ_CHECK(extent.first_version >= 1 && extent.first_position >= 0, "extent ranges");
    FUZZ_CHECK(format::EncodeStreamExtent(extent) == input, "stream extent");
  }
  format::RequestRecord request;
  if (format::DecodeRequestRecord(input, &request)) {
    FUZZ_CHECK(request.first_position >= 0 && request.event_count >= 0 && request.version >= 0,
               "request record ranges");
    FUZZ_CHECK(format::EncodeRequestRecord(request) == input, "request record");
  }
  int64_t counter = 0;
  if (format::DecodeInt64(input, &counter)) {
    FUZZ_CHECK(format::EncodeInt64(counter) == input, "counter");
  }
  int level = 0;
  int64_t index = 0;
  if (format::DecodeNodeKey(input, &level, &index)) {
    FUZZ_CHECK(level >= 0 && level < 64 && index >= 0 && format::NodeKey(level, index) == input,
               "tree node key");
  }
  return 0;
}

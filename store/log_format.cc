// The on-disk format of the event log, one RocksDB column family per concern.
// DO NOT CHANGE any of it: it is on disk, and the event record is what the Merkle tree
// hashes, so auditors recompute it with their own tools (docs/storage.md).
//
//   uint64be := 8 bytes, most significant first        uint32be := 4 bytes, likewise
//
// Column family "events" (one key per event):
//   key          := position:uint64be                     0, 1, 2, ... without gaps
//   value        := event_record
//   event_record := 0x01                                  format
//                   version:uint64be                      1, 2, 3, ... per stream
//                   stream_length:uint32be stream:byte[stream_length]
//                   event:byte[*]                         the rest of the value
//   The Merkle leaf of `position` is event_record: leaf hash = SHA-256(0x00 || value).
//
// Column family "streams" (one key per append, not per event):
//   key   := stream:byte[*] 0x00 last_version:uint64be
//   value := 0x01 first_version:uint64be first_position:uint64be
//   Versions first_version..last_version sit at consecutive positions from
//   first_position. The last key of a stream holds its current version.
//
// Column family "requests" (one key per append that carries a request id):
//   key   := stream:byte[*] 0x00 request_id:byte[*]
//   value := 0x01 first_position:uint64be event_count:uint64be version:uint64be
//            fingerprint:byte[*]                           the rest of the value
//
// Column family "projections":
//   key   := table:byte[*] 0x00 key:byte[*]
//   value := byte[*]      counters: int64 two's complement, uint64be; summed by the
//                         merge operator "casework.AddInt64"
//
// Column family "tree" (stored interior nodes, see merkle.h):
//   key   := level:uint8 index:uint64be
//   value := hash:byte[32]    the perfect subtree of leaves [index*2^level, (index+1)*2^level)
//
// Column family "meta": small named values. "projection_layout" -> uint32be, the layout
// of the stored projections (RocksEventLog::Options::projection_layout).
//
// Stream and table names never contain 0x00, so the first 0x00 of a key ends the name.
#include "store/log_format.h"

namespace casework::store::format {

void PutFixed64BE(std::string* out, uint64_t value) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out->append(buf, 8);
}

void PutFixed32BE(std::string* out, uint32_t value) {
  char buf[4];
  for (int i = 3; i >= 0; --i) {
    buf[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
  out->append(buf, 4);
}

uint64_t DecodeFixed64BE(const char* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(p[i]);
  return value;
}

uint32_t DecodeFixed32BE(const char* p) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value = (value << 8) | static_cast<uint8_t>(p[i]);
  return value;
}

namespace {

bool DecodeNonNegative64(const char* p, int64_t* out) {
  uint64_t value = DecodeFixed64BE(p);
  if (value > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = static_cast<int64_t>(value);
  return true;
}

}  // namespace

std::string PositionKey(int64_t position) {
  std::string key;
  PutFixed64BE(&key, static_cast<uint64_t>(position));
  return key;
}

bool DecodePositionKey(std::string_view key, int64_t* position) {
  return key.size() == 8 && DecodeNonNegative64(key.data(), position);
}

void AppendEventRecord(std::string* out, std::string_view stream, int64_t version,
                       std::string_view event) {
  out->reserve(out->size() + 1 + 8 + 4 + stream.size() + event.size());
  out->push_back(static_cast<char>(kEventRecordV1));
  PutFixed64BE(out, static_cast<uint64_t>(version));
  PutFixed32BE(out, static_cast<uint32_t>(stream.size()));
  out->append(stream);
  out->append(event);
}

bool DecodeEventRecord(std::string_view value, EventRecord* out) {
  if (value.size() < 13 || static_cast<uint8_t>(value[0]) != kEventRecordV1) return false;
  if (!DecodeNonNegative64(value.data() + 1, &out->version) || out->version < 1) return false;
  uint32_t stream_length = DecodeFixed32BE(value.data() + 9);
  if (stream_length == 0 || stream_length > value.size() - 13) return false;
  out->stream = value.substr(13, stream_length);
  out->event = value.substr(13 + stream_length);
  return true;
}

std::string StreamKey(std::string_view stream, int64_t last_version) {
  std::string key;
  key.reserve(stream.size() + 9);
  key.append(stream);
  key.push_back(kSeparator);
  PutFixed64BE(&key, static_cast<uint64_t>(last_version));
  return key;
}

std::string StreamKeyBegin(std::string_view stream) {
  std::string key(stream);
  key.push_back(kSeparator);
  return key;
}

std::string StreamKeyEnd(std::string_view stream) {
  std::string key(stream);
  key.push_back(kSeparator + 1);
  return key;
}

bool DecodeStreamKey(std::string_view key, std::string_view* stream, int64_t* last_version) {
  if (key.size() < 10 || key[key.size() - 9] != kSeparator) return false;
  *stream = key.substr(0, key.size() - 9);
  if (stream->find(kSeparator) != std::string_view::npos) return false;
  return DecodeNonNegative64(key.data() + key.size() - 8, last_version);
}

std::string EncodeStreamExtent(const StreamExtent& extent) {
  std::string value;
  value.push_back(static_cast<char>(kStreamExtentV1));
  PutFixed64BE(&value, static_cast<uint64_t>(extent.first_version));
  PutFixed64BE(&value, static_cast<uint64_t>(extent.first_position));
  return value;
}

bool DecodeStreamExtent(std::string_view value, StreamExtent* out) {
  return value.size() == 17 && static_cast<uint8_t>(value[0]) == kStreamExtentV1 &&
         DecodeNonNegative64(value.data() + 1, &out->first_version) &&
         DecodeNonNegative64(value.data() + 9, &out->first_position) && out->first_version >= 1;
}

std::string RequestKey(std::string_view stream, std::string_view request_id) {
  std::string key;
  key.reserve(stream.size() + 1 + request_id.size());
  key.append(stream);
  key.push_back(kSeparator);
  key.append(request_id);
  return key;
}

std::string EncodeRequestRecord(const RequestRecord& record) {
  std::string value;
  value.reserve(25 + record.fingerprint.size());
  value.push_back(static_cast<char>(kRequestRecordV1));
  PutFixed64BE(&value, static_cast<uint64_t>(record.first_position));
  PutFixed64BE(&value, static_cast<uint64_t>(record.event_count));
  PutFixed64BE(&value, static_cast<uint64_t>(record.version));
  value.append(record.fingerprint);
  return value;
}

bool DecodeRequestRecord(std::string_view value, RequestRecord* out) {
  if (value.size() < 25 || static_cast<uint8_t>(value[0]) != kRequestRecordV1) return false;
  if (!DecodeNonNegative64(value.data() + 1, &out->first_position) ||
      !DecodeNonNegative64(value.data() + 9, &out->event_count) ||
      !DecodeNonNegative64(value.data() + 17, &out->version)) {
    return false;
  }
  out->fingerprint.assign(value.substr(25));
  return true;
}

std::string ProjectionKey(std::string_view table, std::string_view key) {
  std::string out;
  out.reserve(table.size() + 1 + key.size());
  out.append(table);
  out.push_back(kSeparator);
  out.append(key);
  return out;
}

std::string ProjectionTableEnd(std::string_view table) {
  std::string out(table);
  out.push_back(kSeparator + 1);
  return out;
}

std::string EncodeInt64(int64_t value) {
  std::string out;
  PutFixed64BE(&out, static_cast<uint64_t>(value));
  return out;
}

bool DecodeInt64(std::string_view value, int64_t* out) {
  if (value.size() != 8) return false;
  *out = static_cast<int64_t>(DecodeFixed64BE(value.data()));
  return true;
}

std::string NodeKey(int level, int64_t index) {
  std::string key;
  key.push_back(static_cast<char>(level));
  PutFixed64BE(&key, static_cast<uint64_t>(index));
  return key;
}

bool DecodeNodeKey(std::string_view key, int* level, int64_t* index) {
  if (key.size() != 9) return false;
  *level = static_cast<uint8_t>(key[0]);
  return *level < 64 && DecodeNonNegative64(key.data() + 1, index);
}

}  // namespace casework::store::format

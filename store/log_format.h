// The byte formats of the RocksDB event log: keys and values of each column family.
// The grammar is at the top of log_format.cc and in prose in docs/storage.md.
// Integers in keys are fixed-width big-endian so that byte order is numeric order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace casework::store::format {

// Column family names. DO NOT CHANGE: on disk.
inline constexpr char kEventsFamily[] = "events";
inline constexpr char kStreamsFamily[] = "streams";
inline constexpr char kRequestsFamily[] = "requests";
inline constexpr char kProjectionsFamily[] = "projections";
inline constexpr char kTreeFamily[] = "tree";
inline constexpr char kMetaFamily[] = "meta";

// meta keys. DO NOT CHANGE: on disk.
// The layout of the stored projections (RocksEventLog::Options::projection_layout):
// uint32be.
inline constexpr char kProjectionLayoutKey[] = "projection_layout";

// Record format tags. DO NOT CHANGE: on disk.
inline constexpr uint8_t kEventRecordV1 = 0x01;
inline constexpr uint8_t kStreamExtentV1 = 0x01;
inline constexpr uint8_t kRequestRecordV1 = 0x01;

// The separator between a stream (or table) name and what follows it in a key.
// Stream and table names never contain it.
inline constexpr char kSeparator = '\0';

void PutFixed64BE(std::string* out, uint64_t value);
void PutFixed32BE(std::string* out, uint32_t value);
uint64_t DecodeFixed64BE(const char* p);
uint32_t DecodeFixed32BE(const char* p);

// events: position -> event record.
std::string PositionKey(int64_t position);
// False when `key` is not 8 bytes or the position is negative.
bool DecodePositionKey(std::string_view key, int64_t* position);

struct EventRecord {
  std::string_view stream;
  int64_t version = 0;
  std::string_view event;
};
void AppendEventRecord(std::string* out, std::string_view stream, int64_t version,
                       std::string_view event);
// False when `value` is not a well-formed event record. `out` views `value`.
bool DecodeEventRecord(std::string_view value, EventRecord* out);

// streams: (stream, last version) -> extent of one append.
std::string StreamKey(std::string_view stream, int64_t last_version);
// The key after every key of `stream` (an exclusive upper bound).
std::string StreamKeyEnd(std::string_view stream);
// The smallest key of `stream`.
std::string StreamKeyBegin(std::string_view stream);
bool DecodeStreamKey(std::string_view key, std::string_view* stream, int64_t* last_version);

struct StreamExtent {
  int64_t first_version = 0;
  int64_t first_position = 0;
};
std::string EncodeStreamExtent(const StreamExtent& extent);
bool DecodeStreamExtent(std::string_view value, StreamExtent* out);

// requests: (stream, request id) -> the first result.
std::string RequestKey(std::string_view stream, std::string_view request_id);

struct RequestRecord {
  int64_t first_position = 0;
  int64_t event_count = 0;
  int64_t version = 0;
  std::string fingerprint;
};
std::string EncodeRequestRecord(const RequestRecord& record);
bool DecodeRequestRecord(std::string_view value, RequestRecord* out);

// projections: (table, key) -> value.
std::string ProjectionKey(std::string_view table, std::string_view key);
// The exclusive upper bound of every key of `table`.
std::string ProjectionTableEnd(std::string_view table);

// A counter value: int64, two's complement, big-endian, 8 bytes.
std::string EncodeInt64(int64_t value);
bool DecodeInt64(std::string_view value, int64_t* out);

// The lowest level of the tree whose nodes are stored: nodes of 2^4 = 16 leaves and up
// (about one key per 8 events). Lower nodes are recomputed from at most 16 events.
// DO NOT CHANGE: on disk.
inline constexpr int kStoredLevelMin = 4;

// tree: (level, index) -> the hash of the perfect subtree of 2^level leaves that starts
// at leaf index * 2^level.
std::string NodeKey(int level, int64_t index);
bool DecodeNodeKey(std::string_view key, int* level, int64_t* index);

}  // namespace casework::store::format

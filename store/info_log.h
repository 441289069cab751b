// RocksDB's informational log (the LOG file), written without RocksDB's file writers.
//
// RocksDB's own logger writes the LOG file through a WritableFileWriter; once an append to
// it fails (a full disk), the next log line trips an assertion in Debian's librocksdb 7.8
// (built with assertions on) and the process aborts, taking the event log down exactly
// when it should turn read-only and wait for space. This logger writes with plain POSIX
// calls and drops what it cannot write: the LOG is diagnostics, never data.
//
// The file is `path` (created 0644, appended to); when it grows beyond `bytes_max` it is
// renamed to `path + ".old"` (replacing the previous one) and a new file is started, so
// the two never hold more than about 2 * bytes_max. Lines below `level` are dropped.
// Thread-safe.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace rocksdb {
class Logger;
}  // namespace rocksdb

namespace casework::store {

// Never fails: when the file cannot be opened, lines are dropped until a rotation
// succeeds in opening it. An empty `path` keeps nothing.
std::shared_ptr<rocksdb::Logger> NewInfoLog(std::string path, size_t bytes_max);

}  // namespace casework::store

// Shared pieces of the end-to-end campaigns against the real server (kill -9, disk full,
// abuse): a channel of its own, the clock in seconds, and the checks that close a
// campaign: the log verifies over the wire, and the read models equal a rebuild.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "grpcpp/grpcpp.h"

namespace casework::testing {

// A channel with a connection of its own (gRPC otherwise shares one connection between
// channels to the same address).
[[nodiscard]] std::shared_ptr<grpc::Channel> OwnChannel(const std::string& address);

// Seconds since the Unix epoch.
[[nodiscard]] int64_t NowSeconds();

// Runs VerifyLog over the whole log on the server at `address` as `identity`, the tree
// pass and then the deep one (rules, principals, signatures); a failure of either is a
// test failure naming the problem.
void ExpectLogVerifies(const std::string& address, const std::string& identity = "auditor");

// Opens the log at `log_path` (the server stopped), and checks that its read models, as
// maintained, equal key for key and byte for byte a rebuild from the log. Returns the
// number of entries, and the log's size in `events`.
size_t ExpectProjectionsEqualRebuild(const std::string& log_path, int64_t* events);

}  // namespace casework::testing

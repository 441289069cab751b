// Deterministic sample data for one city, loaded through the public API (so it exercises
// the real write path): ~10 counties, ~150 townships, organisations and cases whose
// histories run through every state of the workflow: listed, assisted, verified, closed
// by two approvers' real Ed25519 sign-offs, reviewed after closure, and reopened.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace casework::client {

struct SeedOptions {
  std::string server = "127.0.0.1:7070";
  uint64_t seed = 20261124;
  int cases = 400;
  int concurrency = 8;
  // Per-call deadline (casectl --timeout-ms).
  std::chrono::milliseconds timeout{10000};
};

// The identities the generator acts as; deploy/principals.sample.json defines them.
inline constexpr char kSeedLister[] = "li.na";
inline constexpr char kSeedReviewer[] = "zhao.min";
inline constexpr char kSeedAssigner[] = "li.na";
inline constexpr char kSeedAssister[] = "wang.qiang";
inline constexpr char kSeedInspector[] = "chen.jing";
inline constexpr char kSeedCityApprover[] = "sun.li";
inline constexpr char kSeedAdmin[] = "admin";
// County approvers are "approver.<county>", one per county of the sample city.

// Loads the data; prints progress on a terminal (quiet with json or when not a tty).
// Returns a casectl exit code.
int RunSeed(const SeedOptions& options, bool json);

}  // namespace casework::client

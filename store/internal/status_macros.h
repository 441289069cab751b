// Small local helpers: Abseil 20220623 has no status macros and no absl/log.
// Internal to store/: never include from a public header.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define STORE_INTERNAL_CONCAT_INNER_(a, b) a##b
#define STORE_INTERNAL_CONCAT_(a, b) STORE_INTERNAL_CONCAT_INNER_(a, b)

// Returns the absl::Status of `expr` from the enclosing function when it is not OK.
#define STORE_RETURN_IF_ERROR(expr)                                   \
  do {                                                                \
    if (::absl::Status store_status_ = (expr); !store_status_.ok()) { \
      return store_status_;                                           \
    }                                                                 \
  } while (0)

// `lhs = *rexpr` for an absl::StatusOr, or returns its status when it is not OK.
#define STORE_ASSIGN_OR_RETURN(lhs, rexpr) \
  STORE_INTERNAL_ASSIGN_OR_RETURN_(STORE_INTERNAL_CONCAT_(store_statusor_, __LINE__), lhs, rexpr)
#define STORE_INTERNAL_ASSIGN_OR_RETURN_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = *std::move(statusor)

namespace casework::store::internal {
[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition) {
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, condition);
  std::abort();
}
}  // namespace casework::store::internal

// Always on: for what could corrupt the log if it were false.
#define STORE_CHECK(condition)                                                  \
  do {                                                                          \
    if (!(condition)) {                                                         \
      ::casework::store::internal::CheckFailed(__FILE__, __LINE__, #condition); \
    }                                                                           \
  } while (0)

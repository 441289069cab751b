// CW_CHECK: an always-on assertion for bugs and corruption, never for input.
//
// Input is validated and refused (refusal.h). A failed check means the program holds a
// fact it cannot explain (an event impossible in its state, a broken invariant): it
// prints the condition, the place and a message to stderr and aborts, so that nothing
// built on the corrupt state is ever written.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace casework::workflow::internal {

[[noreturn]] inline void CheckFailed(const char* file, int line, const char* condition,
                                     const char* message) {
  std::fprintf(stderr, "%s:%d: CW_CHECK failed: %s: %s\n", file, line, condition, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace casework::workflow::internal

// Aborts with `message` (a C string) when `condition` is false.
#define CW_CHECK_MSG(condition, message)                                                    \
  do {                                                                                      \
    if (!(condition)) [[unlikely]] {                                                        \
      ::casework::workflow::internal::CheckFailed(__FILE__, __LINE__, #condition, message); \
    }                                                                                       \
  } while (false)

// Aborts when `condition` is false.
#define CW_CHECK(condition) CW_CHECK_MSG(condition, "invariant violated")

// Shared by the libFuzzer targets of fuzz/ (docs/reliability.md, "Hostile input").
//
// FUZZ_CHECK states a property of a decoder; when it fails, the input is a finding:
// the message goes to stderr and the process aborts, so libFuzzer saves the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#define FUZZ_CHECK(condition, property)                                                       \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property failed: %s (%s)\n", __FILE__, __LINE__, property, \
                   #condition);                                                               \
      std::fflush(stderr);                                                                    \
      std::abort();                                                                           \
    }                                                                                         \
  } while (false)

namespace casework::fuzz {

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace casework::fuzz

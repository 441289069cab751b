// The unannounced inspection draw (随机调研、明察暗访): a sample of cases anyone can
// reproduce from the log. docs/oversight.md specifies it byte for byte:
//
//   seed  = SHA-256("casework/v1 inspection-sample\n" || field(checkpoint note)
//                   || field(scope) || field(decimal sample size) || field(request id)
//                   || field(decimal draw time in microseconds since the epoch))
//           where field(x) = uint32 big-endian byte length of x || x
//   population = the case ids listed at a position below the checkpoint's tree size
//                whose organisation lies in the scope, sorted by byte value
//   draw  = a partial Fisher-Yates shuffle: for i in 0 .. k-1, j = i + Uniform(n - i),
//           swap(population[i], population[j]); the sample is population[0 .. k)
//   Uniform(m) takes the next 64-bit big-endian word w of the stream
//           SHA-256(seed || uint64_be(0)) || SHA-256(seed || uint64_be(1)) || ...
//           and returns w mod m unless w >= 2^64 - (2^64 mod m), when it takes the next.
//
// The draw time is the server's clock when it records the draw (the event's time), so a
// caller cannot search for a request id that gives the sample they want before asking.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace casework::oversight {

using Seed = std::array<uint8_t, 32>;

inline constexpr char kSampleSeedContext[] = "casework/v1 inspection-sample\n";
// The most cases one draw may ask for.
inline constexpr int kSampleSizeMax = 1000;

[[nodiscard]] Seed SampleSeed(std::string_view checkpoint_note, std::string_view scope,
                              int sample_size, std::string_view request_id, int64_t draw_micros);

// Draws min(k, population.size()) ids from `population` (which must be sorted and
// distinct) as specified above.
[[nodiscard]] std::vector<std::string> DrawSample(const Seed& seed,
                                                  std::vector<std::string> population, int k);

// "samples/" followed by the lowercase hex of the first 8 bytes of SHA-256(request id):
// the same request id always names the same draw, so a retry finds it.
[[nodiscard]] std::string SampleStream(std::string_view request_id);

}  // namespace casework::oversight

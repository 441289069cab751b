// The inspection draw: reproducible from its inputs, sensitive to each of them, uniform
// enough, and pinned to a known answer so that an independent implementation of
// docs/oversight.md can check itself against it.
#include "services/oversight/sample.h"

#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace casework::oversight {
namespace {

std::vector<std::string> Population(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("c" + std::to_string(1000 + i));
  return out;
}

std::string Hex(const Seed& seed) {
  return absl::BytesToHexString(std::string(seed.begin(), seed.end()));
}

TEST(SampleTest, TheSameInputsGiveTheSameDraw) {
  const Seed seed = SampleSeed("note\n", "city/east", 5, "draw-1", 1767225600000000);
  EXPECT_EQ(Hex(seed), Hex(SampleSeed("note\n", "city/east", 5, "draw-1", 1767225600000000)));
  const auto a = DrawSample(seed, Population(100), 5);
  EXPECT_EQ(a, DrawSample(seed, Population(100), 5));
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(std::set<std::string>(a.begin(), a.end()).size(), 5u);
}

TEST(SampleTest, EveryInputChangesTheSeed) {
  const std::string base = Hex(SampleSeed("note\n", "city/east", 5, "draw-1", 1));
  EXPECT_NE(base, Hex(SampleSeed("note!\n", "city/east", 5, "draw-1", 1)));
  EXPECT_NE(base, Hex(SampleSeed("note\n", "city/west", 5, "draw-1", 1)));
  EXPECT_NE(base, Hex(SampleSeed("note\n", "city/east", 6, "draw-1", 1)));
  EXPECT_NE(base, Hex(SampleSeed("note\n", "city/east", 5, "draw-2", 1)));
  EXPECT_NE(base, Hex(SampleSeed("note\n", "city/east", 5, "draw-1", 2)));
  // Fields are length-prefixed: moving bytes between fields changes the seed.
  EXPECT_NE(Hex(SampleSeed("ab", "c", 5, "d", 1)), Hex(SampleSeed("a", "bc", 5, "d", 1)));
}

TEST(SampleTest, AskingForMoreThanThePopulationReturnsAllOfItShuffled) {
  const Seed seed = SampleSeed("n", "s", 50, "r", 1);
  auto all = DrawSample(seed, Population(7), 50);
  ASSERT_EQ(all.size(), 7u);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, Population(7));
  EXPECT_TRUE(DrawSample(seed, {}, 5).empty());
  EXPECT_TRUE(DrawSample(seed, Population(3), 0).empty());
}

TEST(SampleTest, EachCaseIsDrawnAboutEquallyOften) {
  std::map<std::string, int> counts;
  constexpr int kDraws = 4000;
  for (int i = 0; i < kDraws; ++i) {
    for (const std::string& id :
         DrawSample(SampleSeed("n", "s", 3, "r" + std::to_string(i), 1), Population(10), 3)) {
      ++counts[id];
    }
  }
  ASSERT_EQ(counts.size(), 10u);
  // Expected 1200 each; a fair draw stays within 1200 +- 150 with overwhelming odds.
  for (const auto& [id, n] : counts) {
    EXPECT_GT(n, 1050) << id;
    EXPECT_LT(n, 1350) << id;
  }
}

// A fixed answer, recomputed independently with Python's hashlib from the algorithm in
// docs/oversight.md (the script in docs/oversight.md).
TEST(SampleTest, KnownAnswer) {
  const Seed seed =
      SampleSeed("casework.example/log\n4\nAAAA\n", "city/east", 3, "draw-1", 1767225600000000);
  EXPECT_EQ(Hex(seed), "d286ad0060cca3347624673ab51018104bf67aaa64d510d36eee324d960cb594");
  EXPECT_THAT(DrawSample(seed, Population(10), 3),
              ::testing::ElementsAre("c1006", "c1005", "c1008"));
}

TEST(SampleTest, StreamNamesFollowTheRequestId) {
  EXPECT_EQ(SampleStream("draw-1"), SampleStream("draw-1"));
  EXPECT_NE(SampleStream("draw-1"), SampleStream("draw-2"));
  EXPECT_EQ(SampleStream("draw-1").size(), std::string("samples/").size() + 16);
}

}  // namespace
}  // namespace casework::oversight

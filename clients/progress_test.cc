// casectl's progress line: the bar, the percentage, the rate and the time left, and
// figures out of range (a server's) clamped rather than trusted.
#include "clients/casectl/progress.h"

#include <string>

#include "gtest/gtest.h"

namespace casework::client {
namespace {

TEST(ProgressLine, ShowsTheBarThePercentageTheRateAndTheTimeLeft) {
  EXPECT_EQ(ProgressLine("verify", "tree", 25, 100, 5),
            "verify tree [#######-----------------------]  25% 25/100  5/s  0:15 left");
  EXPECT_EQ(ProgressLine("export", "", 2'500'000, 10'000'000, 250'000),
            "export [#######-----------------------]  25% 2.5M/10.0M  250k/s  0:30 left");
}

TEST(ProgressLine, WithoutATotalShowsTheCountAndTheRateOnly) {
  EXPECT_EQ(ProgressLine("verify", "", 1234, 0, 10), "verify 1234  10/s");
  EXPECT_EQ(ProgressLine("verify", "", 1234, -7, 10), "verify 1234  10/s");
}

TEST(ProgressLine, FiguresOutOfRangeAreClamped) {
  // More done than the total: a full bar at 100%, no time left.
  EXPECT_EQ(ProgressLine("verify", "", 150, 100, 10),
            "verify [##############################] 100% 150/100  10/s");
  // Negative done: an empty bar at 0%; a negative rate gives no time left.
  EXPECT_EQ(ProgressLine("verify", "", -5, 100, -1),
            "verify [------------------------------]   0% -5/100  -1/s");
  // A rate of zero: no time left either.
  EXPECT_EQ(ProgressLine("verify", "", 10, 100, 0),
            "verify [###---------------------------]  10% 10/100  0/s");
}

}  // namespace
}  // namespace casework::client

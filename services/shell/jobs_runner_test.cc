// JobRunner: at most `max` jobs at once, a place freed when its job ends, and a runner that
// outlives its jobs (its destructor waits for them, after their captures are gone).
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "services/shell/jobs.h"

namespace casework::shell {
namespace {

// Opens once, from any thread; waiters block until then.
class Gate {
 public:
  void Open() { opened_.set_value(); }
  void Wait() { future_.wait(); }

 private:
  std::promise<void> opened_;
  std::shared_future<void> future_ = opened_.get_future().share();
};

// Polls `done` for up to 10 s.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 10000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

TEST(JobRunner, RunsAtMostMaxJobsAndAnEndedJobFreesItsPlace) {
  JobRunner runner(2);
  Gate release;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  const auto job = [&] {
    ++started;
    release.Wait();
    ++finished;
  };
  ASSERT_TRUE(runner.Start(job));
  ASSERT_TRUE(runner.Start(job));
  EXPECT_FALSE(runner.Start([] { ADD_FAILURE() << "a third job ran beside two"; }));
  EXPECT_EQ(runner.Running(), 2);
  ASSERT_TRUE(Eventually([&] { return started == 2; }));
  release.Open();
  ASSERT_TRUE(Eventually([&] { return runner.Running() == 0; }));
  EXPECT_EQ(finished, 2);
  Gate ran;
  EXPECT_TRUE(runner.Start([&] { ran.Open(); }));
  ran.Wait();
}

TEST(JobRunner, TheDestructorWaitsForJobsAndTheirCaptures) {
  std::atomic<bool> job_ended{false};
  std::atomic<bool> capture_released{false};
  Gate started;
  {
    JobRunner runner(1);
    // Released with the job's function, which the runner drops before it frees the place;
    // slowly, so that a release after that would be seen.
    std::shared_ptr<void> witness(nullptr, [&](void*) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      capture_released = true;
    });
    ASSERT_TRUE(runner.Start([&, witness] {
      started.Open();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      job_ended = true;
    }));
    witness.reset();
    started.Wait();
    EXPECT_FALSE(job_ended);
  }
  EXPECT_TRUE(job_ended) << "the runner was destroyed while its job ran";
  EXPECT_TRUE(capture_released) << "the job's captures outlived the runner";
}

TEST(JobRunner, ManyShortJobsFromManyThreadsNeverExceedTheBound) {
  constexpr int kMax = 3;
  JobRunner runner(kMax);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::atomic<int> ran{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        runner.Start([&] {
          const int now = ++inside;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          --inside;
          ++ran;
        });
      }
    });
  }
  for (std::thread& c : callers) c.join();
  ASSERT_TRUE(Eventually([&] { return runner.Running() == 0; }));
  EXPECT_LE(most, kMax);
  EXPECT_GT(ran, 0);
}

}  // namespace
}  // namespace casework::shell

// JobRunner: at most `max` jobs at once, a place freed when its job ends, and a runner that
// outlives its jobs (its destructor waits for them, after their captures are gone).
// SerialWorker: tasks in order on a thread other than the poster's, on the poster's thread
// beyond the queue's bound and after Stop, and every queued task run by Stop.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "services/shell/gate_testing.h"
#include "services/shell/jobs.h"
#include "services/shell/serial_worker.h"

namespace casework::shell {
namespace {

using testing::Gate;

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
  Gate release;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  Gate ran;
  JobRunner runner(2);  // declared last: destroyed first, while the above are alive
  const auto job = [&] {
    ++started;
    release.Wait();
    ++finished;
  };
  ASSERT_TRUE(runner.Start(job));
  ASSERT_TRUE(runner.Start(job));
  ASSERT_TRUE(Eventually([&] { return started == 2; }));
  // Two held: every other start, from several threads at once, is refused.
  std::atomic<int> refused{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (!runner.Start([] { ADD_FAILURE() << "a job ran beside two held ones"; })) ++refused;
      }
    });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_EQ(refused, 200);
  EXPECT_EQ(runner.Running(), 2);
  release.Open();
  ASSERT_TRUE(Eventually([&] { return runner.Running() == 0; }));
  EXPECT_EQ(finished, 2);
  EXPECT_TRUE(runner.Start([&] { ran.Open(); }));
  ran.Wait();
}

TEST(JobRunner, TheDestructorWaitsForJobsAndTheirCaptures) {
  std::atomic<bool> job_ended{false};
  std::atomic<bool> capture_released{false};
  Gate started;
  Gate go_on;
  std::thread opener;
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
      go_on.Wait();
      job_ended = true;
    }));
    witness.reset();
    started.Wait();
    EXPECT_FALSE(job_ended);
    // The job goes on only once the destructor below is (about to be) waiting.
    opener = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      go_on.Open();
    });
  }
  EXPECT_TRUE(job_ended) << "the runner was destroyed while its job ran";
  EXPECT_TRUE(capture_released) << "the job's captures outlived the runner";
  opener.join();
}

// A job frees its place as it answers (ReleaseCurrentPlace), before its function returns:
// a job started then finds the place free, and the runner still waits for both threads.
TEST(JobRunner, AJobFreesItsPlaceWhenItAnswers) {
  Gate answered;
  Gate first_may_end;
  Gate second_ran;
  std::atomic<bool> first_ended{false};
  std::thread opener;
  Gate held;  // before the runner: its jobs may use them until it is gone
  Gate let_go;
  {
    JobRunner runner(1);
    ASSERT_TRUE(runner.Start([&] {
      JobRunner::ReleaseCurrentPlace();
      JobRunner::ReleaseCurrentPlace();  // once only
      answered.Open();
      first_may_end.Wait();
      first_ended = true;
    }));
    answered.Wait();
    EXPECT_EQ(runner.Running(), 0);
    ASSERT_TRUE(runner.Start([&] { second_ran.Open(); })) << "the answered job still held it";
    second_ran.Wait();
    ASSERT_TRUE(Eventually([&] { return runner.Running() == 0; }));
    // Off a job's thread it frees nothing, nor inside a gRPC call of the job.
    ASSERT_TRUE(runner.Start([&] {
      {
        JobRunner::InGrpcCall in_grpc;
        JobRunner::ReleaseCurrentPlace();
      }
      held.Open();
      let_go.Wait();
    }));
    held.Wait();
    JobRunner::ReleaseCurrentPlace();
    EXPECT_EQ(runner.Running(), 1);
    EXPECT_FALSE(runner.Start([] { ADD_FAILURE() << "ran beside a held place"; }));
    let_go.Open();
    opener = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      first_may_end.Open();
    });
  }  // waits for the first job's thread too
  EXPECT_TRUE(first_ended) << "the runner was destroyed while an answered job ran";
  opener.join();
}

TEST(SerialWorker, RunsTasksInOrderOffThePostersThread) {
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  {
    SerialWorker worker;
    for (int i = 0; i < 100; ++i) {
      worker.Post([&order, &threads, i] {
        order.push_back(i);  // one thread at a time: no lock needed
        threads.push_back(std::this_thread::get_id());
      });
    }
  }  // runs what is queued
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  for (const std::thread::id& id : threads) EXPECT_NE(id, std::this_thread::get_id());
}

TEST(SerialWorker, BeyondItsBoundAndAfterStopATaskRunsOnThePostersThread) {
  Gate release;
  Gate running;
  std::promise<std::thread::id> queued_on;
  std::atomic<bool> queued_ran{false};
  SerialWorker worker(/*queue_max=*/1);  // declared last: stopped first
  worker.Post([&] {
    running.Open();
    release.Wait();
  });
  running.Wait();  // taken off the queue: one place free again
  worker.Post([&] {
    queued_on.set_value(std::this_thread::get_id());
    queued_ran = true;
  });
  std::thread::id inline_on;
  worker.Post([&] { inline_on = std::this_thread::get_id(); });
  EXPECT_EQ(inline_on, std::this_thread::get_id()) << "a full queue did not run the task inline";
  release.Open();
  EXPECT_NE(queued_on.get_future().get(), std::this_thread::get_id());

  worker.Stop();
  EXPECT_TRUE(queued_ran);
  std::thread::id after_stop_on;
  worker.Post([&] { after_stop_on = std::this_thread::get_id(); });
  EXPECT_EQ(after_stop_on, std::this_thread::get_id()) << "a task posted after Stop was lost";
  worker.Stop();  // again: nothing to do
}

}  // namespace
}  // namespace casework::shell

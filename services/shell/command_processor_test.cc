// CommandProcessor on a real RocksEventLog, retries: a request id sent twice before the
// first is durable. Both calls look the id up, find nothing stored, and decide; the log finds the
// first among the appends not yet durable and appends nothing for the second. The second
// must then be answered as a retry (the first answer), or refused as REQUEST_ID_REUSED
// when its request differs, never with its own decision, which was not appended.
#include "services/shell/command_processor.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "services/shell/projections.h"
#include "services/shell/status_testing.h"
#include "services/shell/stepped_log_testing.h"
#include "services/workflow/workflow_testing.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using store::testing::TempDir;
using workflow::testing::Cast;
using workflow::testing::kCaseId;
using workflow::testing::kHourMicros;
using workflow::testing::kStartMicros;

// One command's answer, waited for.
struct Answer {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  grpc::Status status ABSL_GUARDED_BY(mu);
  v1::CaseCommandResponse response;

  CommandProcessor::Done Callback() {
    return [this](grpc::Status s) {
      absl::MutexLock lock(&mu);
      status = std::move(s);
      done = true;
    };
  }
  grpc::Status Wait() {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
    return status;
  }
  // True when answered within `timeout`.
  bool WaitFor(absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
};

class Retries : public ::testing::Test {
 protected:
  void SetUp() override {
    store::RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    // Every call reads a later time, so a decision made anew shows in its events.
    processor_ = std::make_unique<CommandProcessor>(log_.get(), workflow::Policy{},
                                                    [this] { return now_ += kHourMicros; });
    Answer created;
    processor_->Execute(cast_.lister, kCaseId, workflow::testing::CreateCase(kStartMicros),
                        &created.response, created.Callback());
    ASSERT_TRUE(created.Wait().ok());
  }

  // Executes `first` and `second` while the log holds its commits, then lets them go.
  void Race(const v1::Command& first, const v1::Command& second, Answer* a, Answer* b) {
    log_->PauseCommitsForTesting(true);
    processor_->Execute(cast_.reviewer, kCaseId, first, &a->response, a->Callback());
    processor_->Execute(cast_.reviewer, kCaseId, second, &b->response, b->Callback());
    log_->PauseCommitsForTesting(false);
  }

  TempDir dir_;
  Cast cast_;
  int64_t now_ = kStartMicros;
  std::unique_ptr<store::RocksEventLog> log_;
  std::unique_ptr<CommandProcessor> processor_;
};

TEST_F(Retries, TheSameRequestIsAnsweredWithTheFirstAnswer) {
  Answer a;
  Answer b;
  const v1::Command review = workflow::testing::ReviewListing(1);
  Race(review, review, &a, &b);
  ASSERT_TRUE(a.Wait().ok());
  ASSERT_TRUE(b.Wait().ok());
  EXPECT_FALSE(a.response.replayed());
  EXPECT_TRUE(b.response.replayed());
  ASSERT_EQ(a.response.events_size(), 1);
  ASSERT_EQ(b.response.events_size(), 1);
  // The recorded event, not the second decision (which read a later clock).
  EXPECT_EQ(b.response.events(0).position(), a.response.events(0).position());
  EXPECT_EQ(b.response.events(0).event().time().seconds(),
            a.response.events(0).event().time().seconds());
  EXPECT_EQ(b.response.events(0).event().SerializeAsString(),
            a.response.events(0).event().SerializeAsString());
  EXPECT_EQ(b.response.case_().version(), 2);
  EXPECT_EQ(b.response.case_().last_position(), a.response.events(0).position());
  EXPECT_EQ(log_->Size(), 2);
}

TEST_F(Retries, ADifferentRequestWithTheSameIdIsRefused) {
  Answer a;
  Answer b;
  Race(workflow::testing::ReviewListing(1, /*confirmed=*/true),
       workflow::testing::ReviewListing(1, /*confirmed=*/false), &a, &b);
  ASSERT_TRUE(a.Wait().ok());
  const grpc::Status refused = b.Wait();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("request_id was already used"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(b.response.events_size(), 0);
  EXPECT_EQ(log_->Size(), 2);
  auto state = processor_->LoadCase(kCaseId);
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->listing_review().confirmed());
}

// A retry comes from whoever made the first request. Someone else sending the same
// request with the same id (here an outsider, who could not act on the case at all) is
// refused, not handed the first answer and with it the case.
TEST_F(Retries, AnotherPersonsRequestIdIsNotAnswered) {
  Answer again;
  processor_->Execute(cast_.outsider, kCaseId, workflow::testing::CreateCase(kStartMicros),
                      &again.response, again.Callback());
  const grpc::Status refused = again.Wait();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
  EXPECT_FALSE(again.response.has_case_());
  // The lister's own retry is answered.
  Answer retry;
  processor_->Execute(cast_.lister, kCaseId, workflow::testing::CreateCase(kStartMicros),
                      &retry.response, retry.Callback());
  ASSERT_TRUE(retry.Wait().ok());
  EXPECT_TRUE(retry.response.replayed());
}

// One case per organisation (DOMAIN: one case = one organisation on the ledger), by its
// place (city/county/township/org): a second listing there is refused naming the case
// that lists it; while the first is still being written, the second is told to retry
// (that creation may yet fail); a retry of the first, racing it, is answered as a retry.
// The same organisation id at another place (moved) is another listing.
TEST_F(Retries, AnOrganisationIsListedOnce) {
  const auto create = [](const std::string& case_id, const std::string& place,
                         const std::string& request_id) {
    v1::Command c = workflow::testing::CreateCase(kStartMicros, case_id);
    c.mutable_create_case()->mutable_organisation()->set_jurisdiction(place);
    c.mutable_create_case()->set_request_id(request_id);
    return c;
  };
  const std::string here = workflow::testing::kOrgJurisdiction;
  Answer again;
  processor_->Execute(cast_.lister, "c2", create("c2", here, "r-c2"), &again.response,
                      again.Callback());
  grpc::Status refused = again.Wait();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS) << refused.error_message();
  EXPECT_EQ(testing::ReasonOf(refused), "ORGANISATION_ALREADY_LISTED");
  EXPECT_EQ(testing::FieldOf(refused), "organisation.jurisdiction");
  EXPECT_NE(refused.error_message().find("as case c1"), std::string::npos)
      << refused.error_message();
  EXPECT_EQ(log_->Size(), 1);

  // Two cases for a new place at once: the second is told to retry.
  const std::string there = "city/east/hill/another";
  Answer a, b, retry;
  log_->PauseCommitsForTesting(true);
  processor_->Execute(cast_.lister, "c3", create("c3", there, "r-c3"), &a.response, a.Callback());
  processor_->Execute(cast_.lister, "c3", create("c3", there, "r-c3"), &retry.response,
                      retry.Callback());
  processor_->Execute(cast_.lister, "c4", create("c4", there, "r-c4"), &b.response, b.Callback());
  refused = b.Wait();
  log_->PauseCommitsForTesting(false);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED) << refused.error_message();
  EXPECT_EQ(testing::ReasonOf(refused), "ORGANISATION_BEING_LISTED");
  EXPECT_EQ(testing::FieldOf(refused), "organisation.jurisdiction");
  EXPECT_NE(refused.error_message().find("retry"), std::string::npos) << refused.error_message();
  ASSERT_TRUE(a.Wait().ok());
  ASSERT_TRUE(retry.Wait().ok()) << "a retry racing its first attempt is answered as one";
  EXPECT_TRUE(retry.response.replayed());
  EXPECT_EQ(log_->Size(), 2);
  // Once it is written, by the read model.
  Answer later;
  processor_->Execute(cast_.lister, "c5", create("c5", there, "r-c5"), &later.response,
                      later.Callback());
  refused = later.Wait();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS) << refused.error_message();
  EXPECT_NE(refused.error_message().find("as case c3"), std::string::npos)
      << refused.error_message();
  // The organisation id of c1 at another place: another organisation's listing.
  Answer moved;
  processor_->Execute(cast_.lister, "c6", create("c6", "city/east/hill/third", "r-c6"),
                      &moved.response, moved.Callback());
  EXPECT_TRUE(moved.Wait().ok());
}

// A retry whose first attempt becomes durable while the retry reads (after its request-id
// lookup found nothing) is answered with the first answer: not refused as stale, nor
// decided again on the state the first attempt left.
TEST_F(Retries, AFirstAttemptThatLandsWhileItsRetryReadsIsFound) {
  testing::SteppedLog stepped(log_.get());
  CommandProcessor retrying(&stepped, workflow::Policy{}, [this] { return now_ += kHourMicros; });
  const v1::Command review = workflow::testing::ReviewListing(1);
  Answer a;
  Answer b;
  log_->PauseCommitsForTesting(true);
  processor_->Execute(cast_.reviewer, kCaseId, review, &a.response, a.Callback());
  stepped.after_find_request = [&] {
    log_->PauseCommitsForTesting(false);
    ASSERT_TRUE(a.Wait().ok());
  };
  retrying.Execute(cast_.reviewer, kCaseId, review, &b.response, b.Callback());
  const grpc::Status status = b.Wait();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(a.response.replayed());
  EXPECT_TRUE(b.response.replayed());
  ASSERT_EQ(b.response.events_size(), 1);
  EXPECT_EQ(b.response.events(0).position(), a.response.events(0).position());
  EXPECT_EQ(b.response.events(0).event().SerializeAsString(),
            a.response.events(0).event().SerializeAsString());
  EXPECT_EQ(b.response.case_().version(), 2);
  EXPECT_EQ(log_->Size(), 2);
}

// A retry that raced its first attempt is answered from the case's history, which is read
// off the log's commit thread (where the log finds the race): while that read is held up,
// another case's command is written and answered.
TEST_F(Retries, ARacingRetrysHistoryIsReadOffTheCommitThread) {
  v1::Command create_other = workflow::testing::CreateCase(kStartMicros, "c2");
  create_other.mutable_create_case()->mutable_organisation()->set_jurisdiction(
      "city/east/hill/another");
  create_other.mutable_create_case()->set_request_id("r-c2");
  Answer other_created;
  processor_->Execute(cast_.lister, "c2", create_other, &other_created.response,
                      other_created.Callback());
  ASSERT_TRUE(other_created.Wait().ok());

  testing::SteppedLog stepped(log_.get());
  CommandProcessor racing(&stepped, workflow::Policy{}, [this] { return now_ += kHourMicros; });
  Answer other;  // outlives the step, which waits for it a bounded time
  bool other_answered_meanwhile = false;
  v1::Command review_other = workflow::testing::ReviewListing(1);
  review_other.mutable_review_listing()->set_name("cases/c2");
  stepped.after_read_stream = [&] {
    processor_->Execute(cast_.reviewer, "c2", review_other, &other.response, other.Callback());
    // On the commit thread, this command could not be written before the step returns.
    other_answered_meanwhile = other.WaitFor(absl::Seconds(5));
  };
  const v1::Command review = workflow::testing::ReviewListing(1);
  Answer a;
  Answer b;
  log_->PauseCommitsForTesting(true);
  racing.Execute(cast_.reviewer, kCaseId, review, &a.response, a.Callback());
  racing.Execute(cast_.reviewer, kCaseId, review, &b.response, b.Callback());
  log_->PauseCommitsForTesting(false);
  ASSERT_TRUE(a.Wait().ok());
  const grpc::Status retried = b.Wait();
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_TRUE(b.response.replayed());
  EXPECT_EQ(b.response.events(0).position(), a.response.events(0).position());
  EXPECT_EQ(stepped.after_read_stream, nullptr) << "the retry did not read the case's history";
  EXPECT_TRUE(other_answered_meanwhile)
      << "another command waited for the racing retry's history read";
  const grpc::Status other_status = other.Wait();
  EXPECT_TRUE(other_status.ok()) << other_status.error_message();
}

// A retry's first answer is read in pages when the case holds more events than the log
// returns in one read: all of the first answer's events, the case as of them, and the
// check that the retry comes from whoever made the first request.
TEST(RetriesOfLongCases, AreAnsweredWholeWhateverTheLogsReadBound) {
  TempDir dir;
  Cast cast;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  options.read_events_max = 1;
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  int64_t now = kStartMicros;
  CommandProcessor processor(log->get(), workflow::Policy{}, [&now] { return now += kHourMicros; });
  const auto run = [&](const workflow::Principal& who, const v1::Command& command, Answer* answer) {
    processor.Execute(who, kCaseId, command, &answer->response, answer->Callback());
    return answer->Wait();
  };
  Answer created, reviewed, assigned;
  ASSERT_TRUE(run(cast.lister, workflow::testing::CreateCase(kStartMicros), &created).ok());
  ASSERT_TRUE(run(cast.reviewer, workflow::testing::ReviewListing(1), &reviewed).ok());
  const v1::Command assign = workflow::testing::AssignAssistance(2);
  ASSERT_TRUE(run(cast.lister, assign, &assigned).ok());
  ASSERT_EQ(assigned.response.events_size(), 1);

  Answer retry;
  ASSERT_TRUE(run(cast.lister, assign, &retry).ok());
  EXPECT_TRUE(retry.response.replayed());
  ASSERT_EQ(retry.response.events_size(), 1);
  EXPECT_EQ(retry.response.events(0).position(), assigned.response.events(0).position());
  EXPECT_EQ(retry.response.events(0).event().SerializeAsString(),
            assigned.response.events(0).event().SerializeAsString());
  EXPECT_EQ(retry.response.case_().SerializeAsString(),
            assigned.response.case_().SerializeAsString());
  // Someone else's request with that id: the first event's actor is checked on its page.
  Answer other;
  const grpc::Status refused = run(cast.reviewer, assign, &other);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
  EXPECT_FALSE(other.response.has_case_());
  EXPECT_EQ((*log)->Size(), 3);
}

// A case id that is not one (CreateCase names its case by a bare id) is refused by the
// core's rule, naming the field, before it reaches the log as a stream name.
TEST_F(Retries, AnInvalidCaseIdIsRefusedByItsRuleNotByTheStore) {
  for (const std::string& bad : {std::string("a\0b", 3), std::string("UPPER"), std::string()}) {
    Answer answer;
    processor_->Execute(cast_.lister, bad, workflow::testing::CreateCase(kStartMicros, bad),
                        &answer.response, answer.Callback());
    const grpc::Status refused = answer.Wait();
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << refused.error_message();
    EXPECT_NE(refused.error_message().find("case_id"), std::string::npos)
        << refused.error_message();
    EXPECT_EQ(refused.error_message().find("stream"), std::string::npos) << refused.error_message();
  }
  EXPECT_EQ(log_->Size(), 1);
}

// A command whose case row would outgrow what one row may hold (here a bound of 4 KiB
// instead of the log's 1 MiB) is refused with its own reason, and nothing is appended.
TEST(CaseRecord, ACommandThatWouldOutgrowTheCaseRecordIsRefusedWithAReason) {
  TempDir dir;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  const Cast cast;
  int64_t now = kStartMicros;
  CommandProcessor processor(log->get(), workflow::Policy{}, [&now] { return now += kHourMicros; });
  processor.set_case_row_bytes_max(4096);
  const auto run = [&](const workflow::Principal& who, const v1::Command& command) {
    Answer answer;
    processor.Execute(who, kCaseId, command, &answer.response, answer.Callback());
    return answer.Wait();
  };
  ASSERT_TRUE(run(cast.lister, workflow::testing::CreateCase(kStartMicros)).ok());
  ASSERT_TRUE(run(cast.reviewer, workflow::testing::ReviewListing(1)).ok());
  v1::Command large = workflow::testing::AssignAssistance(2);
  large.mutable_assign_assistance()->mutable_assignment()->set_plan(std::string(5000, 'p'));
  const grpc::Status refused = run(cast.lister, large);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find("beyond the 4096 one case's record may hold"),
            std::string::npos)
      << refused.error_message();
  EXPECT_EQ(testing::ReasonOf(refused), "CASE_RECORD_FULL");
  EXPECT_EQ((*log)->Size(), 2) << "nothing appended";
  auto loaded = processor.LoadCase(kCaseId);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version(), 2);
  EXPECT_TRUE(run(cast.lister, workflow::testing::AssignAssistance(2)).ok());
}

// A log whose read models an earlier build wrote in another layout is rebuilt from its
// events before it is served (caseworkd does this at start): here the case row is gone
// (as if an earlier layout had kept it elsewhere), and the rebuild restores it.
TEST(ProjectionLayout, ALogOfAnotherLayoutIsRebuiltBeforeItIsServed) {
  TempDir dir;
  Cast cast;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  options.projection_layout = 0;  // an earlier build's
  {
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    int64_t now = kStartMicros;
    CommandProcessor processor(log->get(), workflow::Policy{},
                               [&now] { return now += kHourMicros; });
    Answer created;
    processor.Execute(cast.lister, kCaseId, workflow::testing::CreateCase(kStartMicros),
                      &created.response, created.Callback());
    ASSERT_TRUE(created.Wait().ok());
    ASSERT_TRUE(processor.LoadCase(kCaseId).ok());
    v1::Event unrelated;
    unrelated.set_stream("misc/other");
    unrelated.set_version(1);
    store::AppendRequest other{
        .stream = "misc/other", .expected_version = 0, .events = {unrelated.SerializeAsString()}};
    other.projections.push_back(
        {.op = store::ProjectionWrite::Op::kDelete, .table = kCaseTable, .key = kCaseId});
    ASSERT_TRUE((*log)->Append(other).ok());
  }
  options.projection_layout = kProjectionLayout;
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ((*log)->ProjectionLayout(), 0u);
  CommandProcessor processor(log->get(), workflow::Policy{}, [] { return kStartMicros; });
  auto missing = processor.LoadCase(kCaseId);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->version(), 0) << "the case row should be gone before the rebuild";

  auto rebuilt = BringProjectionsUpToDate(**log, /*force=*/false);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(*rebuilt);
  EXPECT_EQ((*log)->ProjectionLayout(), kProjectionLayout);
  auto state = processor.LoadCase(kCaseId);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->version(), 1);
  EXPECT_EQ(state->state(), v1::CASE_STATE_LISTED);

  // Up to date now: nothing to do.
  rebuilt = BringProjectionsUpToDate(**log, /*force=*/false);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_FALSE(*rebuilt);
}

}  // namespace
}  // namespace casework::shell

// CaseStates keeps a fold's case states within a byte budget by dropping them and
// refolding from the log: a fold with a budget of almost nothing must end with exactly the
// states of a fold that keeps everything, and deep verification with such a budget must
// reach the same verdict (no problem on a good log, the same problem on a tampered one).
#include "services/shell/case_states.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/shell/deep_verify.h"
#include "services/workflow/decider.h"
#include "services/workflow/workflow_testing.h"
#include "store/hasher.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using workflow::testing::Scenario;
using workflow::testing::Stage;

// An in-memory log: what was fed, and the loader CaseStates needs.
class MemoryLog {
 public:
  const store::StoredEvent& Add(const v1::Event& e) {
    events_.push_back(
        store::StoredEvent{.position = static_cast<int64_t>(events_.size()),
                           .stream = e.stream(),
                           .version = e.version(),
                           .bytes = e.SerializeAsString(),
                           .leaf_hash = store::rfc9162::HashLeaf(e.SerializeAsString())});
    return events_.back();
  }
  CaseStates::Loader Loader() const {
    return [this](std::string_view stream,
                  int64_t through) -> absl::StatusOr<std::vector<store::StoredEvent>> {
      std::vector<store::StoredEvent> out;
      for (const store::StoredEvent& e : events_) {
        if (e.stream == stream && e.version <= through) out.push_back(e);
      }
      return out;
    };
  }
  const std::vector<store::StoredEvent>& events() const { return events_; }

 private:
  std::vector<store::StoredEvent> events_;
};

// The logs of `n` scenarios driven to assorted stages, interleaved at random (seeded), each
// on its own stream.
std::vector<v1::Event> Interleaved(int n, uint64_t seed) {
  const Stage stages[] = {Stage::kListedConfirmed, Stage::kAssisted, Stage::kVerified,
                          Stage::kClosed, Stage::kReopened};
  std::vector<std::vector<v1::Event>> logs;
  for (int i = 0; i < n; ++i) {
    Scenario scenario(stages[i % 5]);
    std::vector<v1::Event> log = scenario.log();
    for (v1::Event& e : log) e.set_stream("cases/c" + std::to_string(i));
    logs.push_back(std::move(log));
  }
  std::mt19937_64 rng(seed);
  std::vector<size_t> next(logs.size(), 0);
  std::vector<v1::Event> out;
  for (;;) {
    std::vector<size_t> open;
    for (size_t i = 0; i < logs.size(); ++i) {
      if (next[i] < logs[i].size()) open.push_back(i);
    }
    if (open.empty()) return out;
    const size_t pick = open[rng() % open.size()];
    out.push_back(logs[pick][next[pick]++]);
  }
}

TEST(CaseStates, ATinyBudgetEndsWithTheStatesOfAFoldThatKeepsEverything) {
  MemoryLog log;
  CaseStates all(0, nullptr);           // no loader: keeps everything
  CaseStates kept(0, nullptr, 4);       // four parsed, the others serialized
  CaseStates tiny(1, log.Loader(), 1);  // one parsed, the others dropped
  for (const v1::Event& e : Interleaved(40, 7)) {
    const store::StoredEvent& stored = log.Add(e);
    for (CaseStates* states : {&all, &kept, &tiny}) {
      ASSERT_EQ(states->Version(e.stream()), e.version() - 1);
      absl::StatusOr<v1::Case*> state = states->Open(e.stream());
      ASSERT_TRUE(state.ok()) << state.status();
      workflow::Evolve(**state, e);
      (*state)->set_last_position(stored.position);
      (*state)->set_last_leaf_hash(std::string(store::rfc9162::AsBytes(stored.leaf_hash)));
      states->Updated(e.stream());
    }
  }
  EXPECT_EQ(all.drops(), 0);
  EXPECT_EQ(all.refolds(), 0);
  EXPECT_EQ(all.parses(), 0);
  EXPECT_EQ(kept.refolds(), 0);
  EXPECT_GT(kept.parses(), 100);
  EXPECT_GT(tiny.refolds(), 100);
  EXPECT_EQ(tiny.size(), 40u);
  std::map<std::string, std::string> expected;
  ASSERT_TRUE(all.ForEach([&](const std::string& s, const v1::Case& c) {
                   expected[s] = c.SerializeAsString();
                 })
                  .ok());
  EXPECT_EQ(expected.size(), 40u);
  for (CaseStates* states : {&kept, &tiny}) {
    std::map<std::string, std::string> got;
    ASSERT_TRUE(states
                    ->ForEach([&](const std::string& s, const v1::Case& c) {
                      got[s] = c.SerializeAsString();
                    })
                    .ok());
    EXPECT_TRUE(expected == got);
  }
}

TEST(CaseStates, ARefoldThatDoesNotReachTheVersionIsDataLoss) {
  // The loader finds nothing: the log lost the events the fold had seen.
  CaseStates states(
      1,
      [](std::string_view, int64_t) {
        return absl::StatusOr<std::vector<store::StoredEvent>>(std::vector<store::StoredEvent>{});
      },
      1);
  const Scenario scenario(Stage::kAssisted);
  const v1::Event& created = scenario.log().front();
  absl::StatusOr<v1::Case*> state = states.Open(created.stream());
  ASSERT_TRUE(state.ok());
  workflow::Evolve(**state, created);
  states.Updated(created.stream());
  // Another case pushes it out of the one parsed slot, beyond the budget of 1 byte.
  ASSERT_TRUE(states.Open("cases/other").ok());
  EXPECT_EQ(states.drops(), 1);
  absl::StatusOr<v1::Case*> again = states.Open(created.stream());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kDataLoss) << again.status();
}

// Deep verification over scenario logs (no sign-offs: their signatures are the
// scenarios' stand-ins), with a budget of one byte and with everything kept.
std::optional<DeepVerifier::Problem> Verify(const std::vector<v1::Event>& events, size_t budget,
                                            int64_t* refolds) {
  MemoryLog log;
  DeepVerifier verifier(DeepVerifyOptions{
      .state_bytes_max = budget, .loader = log.Loader(), .parsed_max = budget > 1 ? 4096u : 1u});
  for (const v1::Event& e : events) {
    if (auto p = verifier.Add(log.Add(e))) return p;
  }
  auto p = verifier.Finish();
  *refolds = verifier.cases().refolds();
  return p;
}

std::vector<v1::Event> Unsigned(int n, uint64_t seed) {
  std::vector<v1::Event> out;
  for (v1::Event& e : Interleaved(n, seed)) {
    if (e.has_closure_signed_off()) continue;
    out.push_back(std::move(e));
  }
  // Keep each stream's versions contiguous: drop what followed a removed sign-off.
  std::map<std::string, int64_t> at;
  std::vector<v1::Event> contiguous;
  for (v1::Event& e : out) {
    if (e.version() != at[e.stream()] + 1) continue;
    at[e.stream()] = e.version();
    contiguous.push_back(std::move(e));
  }
  return contiguous;
}

TEST(CaseStates, DeepVerificationWithATinyBudgetReachesTheSameVerdict) {
  const std::vector<v1::Event> good = Unsigned(30, 11);
  int64_t refolds_all = 0, refolds_tiny = 0;
  auto all = Verify(good, 128u << 20, &refolds_all);
  auto tiny = Verify(good, 1, &refolds_tiny);
  EXPECT_FALSE(all.has_value()) << all->detail;
  EXPECT_FALSE(tiny.has_value()) << tiny->detail;
  EXPECT_EQ(refolds_all, 0);
  EXPECT_GT(refolds_tiny, 50);

  // The inspector of one case becomes its first secretary, who assisted it.
  std::vector<v1::Event> tampered = good;
  bool changed = false;
  for (v1::Event& e : tampered) {
    if (e.has_inspection_passed() && e.stream() == "cases/c2") {
      e.set_actor(workflow::testing::Cast().secretary.id);
      changed = true;
      break;
    }
  }
  ASSERT_TRUE(changed);
  all = Verify(tampered, 128u << 20, &refolds_all);
  tiny = Verify(tampered, 1, &refolds_tiny);
  ASSERT_TRUE(all.has_value());
  ASSERT_TRUE(tiny.has_value());
  EXPECT_EQ(all->position, tiny->position);
  EXPECT_EQ(all->detail, tiny->detail);
}

}  // namespace
}  // namespace casework::shell

// Deep verification re-checks every sign-off's Ed25519 signature over the canonical
// statement against the key its approver had registered before it, and names the first
// problem of the log in position order, a signature's or a rule's.
#include <sodium.h>

#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/shell/deep_verify.h"
#include "services/workflow/statement.h"
#include "services/workflow/workflow_testing.h"
#include "store/hasher.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using ::testing::HasSubstr;
using workflow::testing::Scenario;
using workflow::testing::Stage;

struct KeyPair {
  std::string public_key;
  std::string secret_key;
};

KeyPair NewKey() {
  KeyPair key{std::string(crypto_sign_PUBLICKEYBYTES, '\0'),
              std::string(crypto_sign_SECRETKEYBYTES, '\0')};
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(key.public_key.data()),
                      reinterpret_cast<unsigned char*>(key.secret_key.data()));
  return key;
}

// The leaf hash the test log gives an event (any function of its bytes would do).
store::Hash LeafOf(const v1::Event& e) { return store::rfc9162::HashLeaf(e.SerializeAsString()); }

std::string Sign(const KeyPair& key, const std::string& message) {
  std::string signature(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       reinterpret_cast<const unsigned char*>(key.secret_key.data()));
  return signature;
}

class DeepVerifySignaturesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }

  // An event on "approvers/{person}", as the server writes it.
  v1::Event ApproverEvent(const workflow::Principal& approver, const std::string& request_id) {
    v1::Event e;
    e.set_stream("approvers/" + approver.id);
    e.set_version(++approver_versions_[approver.id]);
    e.set_actor(cast_.admin.id);
    e.set_request_id(request_id);
    e.set_rules_version(workflow::kRulesVersion);
    return e;
  }

  v1::Event Registered(const workflow::Principal& approver, const std::string& key_id,
                       const KeyPair& key) {
    v1::Event e = ApproverEvent(approver, "register-" + key_id);
    v1::ApproverKeyRegistered* r = e.mutable_approver_key_registered();
    r->set_key_id(key_id);
    r->set_public_key(key.public_key);
    r->set_level(approver.approval_level);
    return e;
  }

  v1::Event Revoked(const workflow::Principal& approver, const std::string& key_id) {
    v1::Event e = ApproverEvent(approver, "revoke-" + key_id);
    e.mutable_approver_key_revoked()->set_key_id(key_id);
    return e;
  }

  // Both approvers' keys registered, then `n` cases closed by both (each on stream
  // cases/c<i>, its sign-offs signed for real), interleaved at random (seeded).
  std::vector<v1::Event> ClosedCases(int n, uint64_t seed) {
    std::vector<v1::Event> out = {
        Registered(cast_.county_approver, workflow::testing::KeyIdOf(cast_.county_approver),
                   county_key_),
        Registered(cast_.city_approver, workflow::testing::KeyIdOf(cast_.city_approver),
                   city_key_)};
    // Each case's commands (its consecutive events with one request id), interleaved.
    std::vector<std::vector<std::vector<v1::Event>>> cases;
    for (int i = 0; i < n; ++i) {
      Scenario scenario(Stage::kClosed);
      const std::string case_id = "c" + std::to_string(i);
      std::vector<std::vector<v1::Event>> commands;
      for (v1::Event e : scenario.log()) {
        e.set_stream("cases/" + case_id);
        // The scenarios' two sign-offs share a request id; each starts a command.
        if (commands.empty() || commands.back().front().request_id() != e.request_id() ||
            e.has_closure_signed_off()) {
          commands.emplace_back();
        }
        commands.back().push_back(std::move(e));
      }
      store::Hash latest{};  // of the case's previous event
      for (size_t c = 0; c < commands.size(); ++c) {
        for (v1::Event& e : commands[c]) {
          e.set_request_id(absl::StrCat(e.request_id(), "#", c));
          if (e.has_closure_signed_off()) {
            v1::SignOff* s = e.mutable_closure_signed_off()->mutable_sign_off();
            s->set_latest_leaf_hash(std::string(store::rfc9162::AsBytes(latest)));
            s->set_signature(Sign(e.actor() == cast_.county_approver.id ? county_key_ : city_key_,
                                  StatementOf(e)));
          }
          latest = LeafOf(e);
        }
      }
      cases.push_back(std::move(commands));
    }
    std::mt19937_64 rng(seed);
    std::vector<size_t> next(cases.size(), 0);
    for (;;) {
      std::vector<size_t> open;
      for (size_t i = 0; i < cases.size(); ++i) {
        if (next[i] < cases[i].size()) open.push_back(i);
      }
      if (open.empty()) return out;
      const size_t pick = open[rng() % open.size()];
      for (v1::Event& e : cases[pick][next[pick]++]) out.push_back(std::move(e));
    }
  }

  // The statement a sign-off event says was signed.
  static std::string StatementOf(const v1::Event& e) {
    const v1::SignOff& s = e.closure_signed_off().sign_off();
    return workflow::SignOffStatement(e.stream().substr(6), e.version() - 1, s.inspection_id(),
                                      s.latest_leaf_hash());
  }

  // The events of `stream` (every event when empty) as rules/2026.2 admitted them: that
  // rule set stamped, sign-offs without a leaf hash or a closure policy and signed over
  // the first form.
  void ToFirstForm(std::vector<v1::Event>& log, const std::string& stream = "") const {
    for (v1::Event& e : log) {
      if (!stream.empty() && e.stream() != stream) continue;
      e.set_rules_version(workflow::kRulesVersion2026_2);
      if (!e.has_closure_signed_off()) continue;
      e.mutable_closure_signed_off()->clear_policy();
      v1::SignOff* s = e.mutable_closure_signed_off()->mutable_sign_off();
      s->clear_latest_leaf_hash();
      s->set_signature(Sign(
          e.actor() == cast_.county_approver.id ? county_key_ : city_key_,
          workflow::SignOffStatementV1(e.stream().substr(6), e.version() - 1, s->inspection_id())));
    }
  }

  // The position of the sign-off by `who` on `stream`.
  static int64_t SignOffOf(const std::vector<v1::Event>& log, const std::string& stream,
                           const std::string& who) {
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].stream() == stream && log[i].has_closure_signed_off() && log[i].actor() == who) {
        return static_cast<int64_t>(i);
      }
    }
    ADD_FAILURE() << "no sign-off by " << who << " on " << stream;
    return -1;
  }

  // The verdict with signatures checked in the background, which must be the one with
  // signatures checked inline.
  static std::optional<DeepVerifier::Problem> Verify(const std::vector<v1::Event>& log,
                                                     int64_t* signatures = nullptr,
                                                     const workflow::Policy& policy = {}) {
    auto run = [&](bool background) {
      DeepVerifier verifier{
          DeepVerifyOptions{.policy = policy, .signatures_in_background = background}};
      std::optional<DeepVerifier::Problem> problem;
      for (size_t i = 0; i < log.size() && !problem.has_value(); ++i) {
        problem = verifier.Add(store::StoredEvent{.position = static_cast<int64_t>(i),
                                                  .stream = log[i].stream(),
                                                  .version = log[i].version(),
                                                  .bytes = log[i].SerializeAsString(),
                                                  .leaf_hash = LeafOf(log[i])});
      }
      if (!problem.has_value()) problem = verifier.Finish();
      if (signatures != nullptr) *signatures = verifier.signatures_checked();
      return problem;
    };
    const std::optional<DeepVerifier::Problem> inline_verdict = run(false);
    std::optional<DeepVerifier::Problem> verdict = run(true);
    EXPECT_EQ(verdict.has_value(), inline_verdict.has_value());
    if (verdict.has_value() && inline_verdict.has_value()) {
      EXPECT_EQ(verdict->position, inline_verdict->position);
      EXPECT_EQ(verdict->detail, inline_verdict->detail);
    }
    return verdict;
  }

  static void FlipSignatureBit(v1::Event& e) {
    std::string* signature =
        e.mutable_closure_signed_off()->mutable_sign_off()->mutable_signature();
    (*signature)[5] = static_cast<char>((*signature)[5] ^ 0x10);
  }

  workflow::testing::Cast cast_;
  KeyPair county_key_ = NewKey();
  KeyPair city_key_ = NewKey();
  std::map<std::string, int64_t> approver_versions_;
};

TEST_F(DeepVerifySignaturesTest, SignedClosuresVerify) {
  const std::vector<v1::Event> log = ClosedCases(40, 1);
  int64_t signatures = 0;
  auto problem = Verify(log, &signatures);
  EXPECT_FALSE(problem.has_value()) << problem->position << ": " << problem->detail;
  EXPECT_EQ(signatures, 80);
}

// The server's closure policy changed after the closures (three approvers now, two when
// they were admitted): each sign-off is re-decided under the policy it records, so the
// closures verify. Sign-offs of the rules before 2026.4 record none and are re-decided
// under the current policy, under which two approvers did not close the case.
TEST_F(DeepVerifySignaturesTest, ClosuresAreJudgedByThePolicyTheyRecord) {
  std::vector<v1::Event> log = ClosedCases(10, 3);
  workflow::Policy stricter;
  stricter.closure.approvers_min = 3;
  auto problem = Verify(log, nullptr, stricter);
  EXPECT_FALSE(problem.has_value()) << problem->position << ": " << problem->detail;
  // Each was admitted under a weaker policy than the verifier's: counted for the auditor,
  // the first named; under the policy of their time, none is.
  auto weaker = [&log](const workflow::Policy& policy) {
    DeepVerifier verifier{DeepVerifyOptions{.policy = policy}};
    for (size_t i = 0; i < log.size(); ++i) {
      EXPECT_FALSE(verifier
                       .Add(store::StoredEvent{.position = static_cast<int64_t>(i),
                                               .stream = log[i].stream(),
                                               .version = log[i].version(),
                                               .bytes = log[i].SerializeAsString(),
                                               .leaf_hash = LeafOf(log[i])})
                       .has_value());
    }
    EXPECT_FALSE(verifier.Finish().has_value());
    return std::make_pair(verifier.closures_under_weaker_policy(),
                          verifier.first_closure_under_weaker_policy());
  };
  int64_t first_closure = -1;
  for (size_t i = 0; i + 1 < log.size() && first_closure < 0; ++i) {
    if (log[i].has_closure_signed_off() && log[i + 1].has_case_closed()) {
      first_closure = static_cast<int64_t>(i);
    }
  }
  EXPECT_EQ(weaker(stricter), std::make_pair(int64_t{10}, first_closure));
  EXPECT_EQ(weaker(workflow::Policy()), std::make_pair(int64_t{0}, int64_t{-1}));
  // Case c4 as admitted under rules/2026.3: its sign-offs re-signed over the leaf hashes
  // of its events as they now are.
  store::Hash latest{};
  for (v1::Event& e : log) {
    if (e.stream() != "cases/c4") continue;
    e.set_rules_version(workflow::kRulesVersion2026_3);
    if (e.has_closure_signed_off()) {
      e.mutable_closure_signed_off()->clear_policy();
      v1::SignOff* s = e.mutable_closure_signed_off()->mutable_sign_off();
      s->set_latest_leaf_hash(std::string(store::rfc9162::AsBytes(latest)));
      s->set_signature(
          Sign(e.actor() == cast_.county_approver.id ? county_key_ : city_key_, StatementOf(e)));
    }
    latest = LeafOf(e);
  }
  EXPECT_FALSE(Verify(log).has_value()) << "2026.3 under the policy of its time";
  problem = Verify(log, nullptr, stricter);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, SignOffOf(log, "cases/c4", cast_.city_approver.id));
  EXPECT_THAT(problem->detail, HasSubstr("the rules emit 1 events")) << problem->detail;
}

TEST_F(DeepVerifySignaturesTest, AnAlteredSignatureIsNamed) {
  std::vector<v1::Event> log = ClosedCases(40, 2);
  const int64_t at = SignOffOf(log, "cases/c17", cast_.city_approver.id);
  FlipSignatureBit(log[static_cast<size_t>(at)]);
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
  EXPECT_THAT(problem->detail, HasSubstr("does not verify over the canonical statement"));
}

// A sign-off that names another inspection than the one signed: its signature does not
// verify over the statement it now makes, and the rules refuse it too, in the same
// command. The signature is named, as inline (the fold waits for the check it submitted).
TEST_F(DeepVerifySignaturesTest, ASignatureAndARuleFailingInOneCommandNameTheSignature) {
  std::vector<v1::Event> log = ClosedCases(20, 8);
  const int64_t at = SignOffOf(log, "cases/c11", cast_.county_approver.id);
  log[static_cast<size_t>(at)].mutable_closure_signed_off()->mutable_sign_off()->set_inspection_id(
      "insp-9");
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
  EXPECT_THAT(problem->detail, HasSubstr("does not verify over the canonical statement"));
  // With the signature made over the altered statement, the rules' refusal is what is left.
  v1::SignOff* s = log[static_cast<size_t>(at)].mutable_closure_signed_off()->mutable_sign_off();
  s->set_signature(Sign(county_key_, StatementOf(log[static_cast<size_t>(at)])));
  auto ruled = Verify(log);
  ASSERT_TRUE(ruled.has_value());
  EXPECT_EQ(ruled->position, at);
  EXPECT_THAT(ruled->detail, ::testing::Not(HasSubstr("does not verify")));
}

// A sign-off signed, validly, over another leaf hash than that of the case's event before
// it: the history the approver saw is not the one in the log.
TEST_F(DeepVerifySignaturesTest, ASignOffNamingAnotherLatestLeafIsNamed) {
  std::vector<v1::Event> log = ClosedCases(20, 9);
  const int64_t at = SignOffOf(log, "cases/c5", cast_.county_approver.id);
  v1::Event& e = log[static_cast<size_t>(at)];
  v1::SignOff* s = e.mutable_closure_signed_off()->mutable_sign_off();
  std::string other = s->latest_leaf_hash();
  other[0] = static_cast<char>(other[0] ^ 0x01);
  s->set_latest_leaf_hash(other);
  s->set_signature(Sign(county_key_, StatementOf(e)));
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
  EXPECT_THAT(problem->detail, HasSubstr("names the latest leaf"));
  EXPECT_THAT(problem->detail, HasSubstr("of cases/c5 has leaf"));
}

// Sign-offs admitted under rules/2026.2 signed the statement without the leaf hash, and
// verify over it; a signature over the current statement does not pass for one of them.
TEST_F(DeepVerifySignaturesTest, SignOffsOfTheEarlierRulesVerifyOverTheFirstStatement) {
  std::vector<v1::Event> log = ClosedCases(10, 4);
  ToFirstForm(log);
  int64_t signatures = 0;
  auto good = Verify(log, &signatures);
  EXPECT_FALSE(good.has_value()) << good->position << ": " << good->detail;
  EXPECT_EQ(signatures, 20);
  const int64_t at = SignOffOf(log, "cases/c7", cast_.city_approver.id);
  v1::Event& e = log[static_cast<size_t>(at)];
  e.mutable_closure_signed_off()->mutable_sign_off()->set_signature(
      Sign(city_key_, workflow::SignOffStatement(e.stream().substr(6), e.version() - 1,
                                                 e.closure_signed_off().sign_off().inspection_id(),
                                                 std::string(32, '\0'))));
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
  EXPECT_THAT(problem->detail, HasSubstr("does not verify over the canonical statement"));
}

// Rules only move forward: a sign-off of the first form (no leaf hash) after an event
// admitted under rules that require the hash is named, though its signature verifies.
TEST_F(DeepVerifySignaturesTest, ASignOffOfTheFirstFormAfterNewerRulesIsNamed) {
  std::vector<v1::Event> log = ClosedCases(10, 5);
  const int64_t at = SignOffOf(log, "cases/c2", cast_.county_approver.id);
  ToFirstForm(log, "cases/c2");
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
  EXPECT_THAT(problem->detail, HasSubstr("whose statement names no leaf hash, after position 0"));
}

// More sign-offs than the background queue holds (SignatureChecks::kQueued), one of them
// altered: the fold waits for room and the verdict is the same as inline.
TEST_F(DeepVerifySignaturesTest, MoreSignaturesThanTheQueueHolds) {
  std::vector<v1::Event> log = ClosedCases(600, 7);
  int64_t signatures = 0;
  auto good = Verify(log, &signatures);
  EXPECT_FALSE(good.has_value()) << good->position << ": " << good->detail;
  EXPECT_EQ(signatures, 1200);
  ASSERT_GT(static_cast<size_t>(signatures), SignatureChecks::kQueued);
  const int64_t at = SignOffOf(log, "cases/c550", cast_.county_approver.id);
  FlipSignatureBit(log[static_cast<size_t>(at)]);
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, at);
}

// A signature made for another case (the same approver, a valid signature of another
// statement) does not carry over.
TEST_F(DeepVerifySignaturesTest, ASignatureOfAnotherCaseIsNamed) {
  std::vector<v1::Event> log = ClosedCases(10, 3);
  const int64_t from = SignOffOf(log, "cases/c3", cast_.county_approver.id);
  const int64_t to = SignOffOf(log, "cases/c4", cast_.county_approver.id);
  *log[static_cast<size_t>(to)]
       .mutable_closure_signed_off()
       ->mutable_sign_off()
       ->mutable_signature() =
      log[static_cast<size_t>(from)].closure_signed_off().sign_off().signature();
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, to);
  EXPECT_THAT(problem->detail, HasSubstr("does not verify"));
}

TEST_F(DeepVerifySignaturesTest, AKeyNotRegisteredOrRevokedBeforeTheSignOffIsNamed) {
  // The first sign-off by `who` in the log.
  auto first_by = [](const std::vector<v1::Event>& log, const std::string& who) {
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].has_closure_signed_off() && log[i].actor() == who) return static_cast<int64_t>(i);
    }
    return int64_t{-1};
  };
  {
    std::vector<v1::Event> log = ClosedCases(5, 4);
    log.erase(log.begin() + 1);  // the city approver's key was never registered
    auto problem = Verify(log);
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(problem->position, first_by(log, cast_.city_approver.id));
    EXPECT_THAT(problem->detail, HasSubstr("had not registered before it"));
  }
  {
    std::vector<v1::Event> log = ClosedCases(5, 5);
    log.insert(log.begin() + 2,
               Revoked(cast_.county_approver, workflow::testing::KeyIdOf(cast_.county_approver)));
    auto problem = Verify(log);
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(problem->position, first_by(log, cast_.county_approver.id));
    EXPECT_THAT(problem->detail, HasSubstr("revoked before it"));
  }
}

// The verdict names the first problem in position order, whichever kind comes first:
// a bad signature before a broken rule, and a broken rule before a bad signature.
TEST_F(DeepVerifySignaturesTest, TheFirstProblemIsNamedWhateverItsKind) {
  const std::vector<v1::Event> good = ClosedCases(60, 6);
  const int64_t signature_at = SignOffOf(good, "cases/c30", cast_.county_approver.id);
  // The passed inspections of the other cases, by position.
  std::vector<int64_t> inspections;
  for (size_t i = 0; i < good.size(); ++i) {
    if (good[i].has_inspection_passed() && good[i].stream() != "cases/c30") {
      inspections.push_back(static_cast<int64_t>(i));
    }
  }
  ASSERT_LT(inspections.front(), signature_at);
  ASSERT_GT(inspections.back(), signature_at);
  for (const bool signature_first : {true, false}) {
    SCOPED_TRACE(signature_first ? "signature first" : "rule first");
    std::vector<v1::Event> log = good;
    FlipSignatureBit(log[static_cast<size_t>(signature_at)]);
    // A rule broken: an inspection recorded by the case's first secretary, who assisted
    // it and may not inspect it.
    const int64_t rule_at = signature_first ? inspections.back() : inspections.front();
    log[static_cast<size_t>(rule_at)].set_actor(cast_.secretary.id);
    auto problem = Verify(log);
    ASSERT_TRUE(problem.has_value());
    if (signature_first) {
      EXPECT_EQ(problem->position, signature_at);
      EXPECT_THAT(problem->detail, HasSubstr("does not verify over the canonical statement"));
    } else {
      EXPECT_EQ(problem->position, rule_at);
      EXPECT_THAT(problem->detail, ::testing::Not(HasSubstr("signature")));
    }
  }
}

}  // namespace
}  // namespace casework::shell

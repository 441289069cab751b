// Deep verification of roles and jurisdictions from the principals the log recorded: an
// event names the principals version its actor was authorised under, and the audit
// re-decides it with exactly that actor's roles and jurisdiction.
#include "services/shell/deep_verify.h"

#include <optional>
#include <string>
#include <tuple>
#include <variant>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/shell/principals.h"
#include "services/workflow/decider.h"
#include "services/workflow/workflow_testing.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using ::testing::HasSubstr;
using workflow::testing::kStartMicros;

constexpr char kPrincipalsJson[] = R"({"principals": [
  {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"},
  {"id": "zhao.lei", "roles": ["inspector"], "jurisdiction": "city/east"},
  {"id": "wu.gang", "roles": ["lister", "admin"], "jurisdiction": "city/west"},
  {"id": "sun.mei", "roles": ["admin"], "jurisdiction": "city"}
]})";

class DeepVerifyPrincipalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = Principals::Parse(kPrincipalsJson);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    set_ = (*parsed)->Stamped();
  }

  // The principals record as the server writes it.
  v1::Event Record(const v1::PrincipalsRecorded& record) const {
    v1::Event e;
    e.set_stream(kPrincipalsStream);
    e.set_version(++principal_records_);
    e.set_actor(kServerActor);
    e.set_request_id("principals-" + record.principals_version());
    e.set_rules_version(workflow::kRulesVersion);
    *e.mutable_principals_recorded() = record;
    return e;
  }

  // The events of creating case `id` by `who` (from the stamped set), decided by the core
  // with an all-powerful actor so that only the audit judges the roles.
  std::vector<v1::Event> Create(const std::string& who, const std::string& id) const {
    workflow::Principal actor = *set_->Find(who);
    const std::string version = actor.principals_version;
    actor.roles = {workflow::Role::kLister};
    actor.jurisdiction = "city";
    workflow::Policy policy;
    workflow::Context ctx{.actor = actor, .now_micros = kStartMicros, .policy = &policy};
    auto decision =
        workflow::Decide(v1::Case(), workflow::testing::CreateCase(kStartMicros, id), ctx);
    EXPECT_TRUE(std::holds_alternative<workflow::Events>(decision));
    auto events = std::get<workflow::Events>(decision);
    for (auto& e : events) EXPECT_EQ(e.principals_version(), version);
    return events;
  }

  std::optional<DeepVerifier::Problem> Feed(const std::vector<v1::Event>& events) {
    for (const v1::Event& e : events) {
      store::StoredEvent stored{.position = position_++,
                                .stream = e.stream(),
                                .version = e.version(),
                                .bytes = e.SerializeAsString()};
      if (auto p = verifier_.Add(stored)) return p;
    }
    return verifier_.Finish();
  }

  std::shared_ptr<const Principals> set_;
  DeepVerifier verifier_{DeepVerifyOptions{}};
  int64_t position_ = 0;
  mutable int64_t principal_records_ = 0;
};

TEST_F(DeepVerifyPrincipalsTest, AnActorActingWithinTheRecordedRoleVerifies) {
  std::vector<v1::Event> log = {Record(set_->record())};
  for (auto& e : Create("li.na", "c1")) log.push_back(e);
  auto problem = Feed(log);
  EXPECT_FALSE(problem.has_value()) << problem->detail;
  EXPECT_EQ(verifier_.commands_checked(), 1);
}

TEST_F(DeepVerifyPrincipalsTest, AnActorWithoutTheRoleIsNamed) {
  std::vector<v1::Event> log = {Record(set_->record())};
  for (auto& e : Create("zhao.lei", "c1")) log.push_back(e);  // an inspector lists a case
  auto problem = Feed(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("lister")) << problem->detail;
}

TEST_F(DeepVerifyPrincipalsTest, AnActorOutsideTheRecordedJurisdictionIsNamed) {
  std::vector<v1::Event> log = {Record(set_->record())};
  for (auto& e : Create("wu.gang", "c1")) log.push_back(e);  // city/west lists in city/east
  auto problem = Feed(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("city/west")) << problem->detail;
}

TEST_F(DeepVerifyPrincipalsTest, AVersionNotRecordedBeforeTheEventIsNamed) {
  std::vector<v1::Event> log = Create("li.na", "c1");  // no record first
  log.push_back(Record(set_->record()));
  auto problem = Feed(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 0);
  EXPECT_THAT(problem->detail, HasSubstr("did not record before it"));
}

TEST_F(DeepVerifyPrincipalsTest, ARecordWhoseVersionIsNotItsHashIsNamed) {
  v1::PrincipalsRecorded forged = set_->record();
  forged.mutable_principals(1)->add_roles("lister");  // give the inspector a role
  std::vector<v1::Event> log = {Record(forged)};
  auto problem = Feed(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 0);
  EXPECT_THAT(problem->detail, HasSubstr("hash to"));
}

// A set reloaded on an administrator's request (AdminService.ReloadPrincipals) names them:
// an administrator of the whole city under the set recorded before it, or it is named.
TEST_F(DeepVerifyPrincipalsTest, ARecordByAPersonNeedsAnAdministratorOfTheWholeCity) {
  // The set recorded at start, then recorded again by `who` (stamped with the set's
  // version, or not): each log on a fresh verifier.
  auto verify = [&](const std::string& who, bool stamped) {
    v1::Event again = Record(set_->record());
    again.set_actor(who);
    if (stamped) again.set_principals_version(set_->version());
    DeepVerifier verifier{DeepVerifyOptions{}};
    int64_t position = 0;
    for (const v1::Event& e : {Record(set_->record()), again}) {
      if (auto p = verifier.Add(store::StoredEvent{.position = position++,
                                                   .stream = e.stream(),
                                                   .version = e.version(),
                                                   .bytes = e.SerializeAsString()})) {
        return std::optional<DeepVerifier::Problem>(p);
      }
    }
    return verifier.Finish();
  };
  auto fine = verify("sun.mei", true);
  EXPECT_FALSE(fine.has_value()) << fine->detail;
  for (const auto& [who, stamped, why] :
       {std::tuple{"wu.gang", true, "administrator of city/west"},
        std::tuple{"li.na", true, "not by the server or an administrator of the whole city"},
        std::tuple{"sun.mei", false, "under no recorded set"}}) {
    SCOPED_TRACE(who);
    auto problem = verify(who, stamped);
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(problem->position, 1);
    EXPECT_THAT(problem->detail, HasSubstr(why));
  }
}

TEST_F(DeepVerifyPrincipalsTest, ServiceEventsNeedTheirRole) {
  v1::Event registered;
  registered.set_stream("registry/city/east");
  registered.set_version(1);
  registered.set_actor("li.na");  // a lister, not an admin
  registered.set_request_id("reg-1");
  registered.set_principals_version(set_->version());
  registered.mutable_organisation_registered()->mutable_organisation()->set_jurisdiction(
      "city/east/hill/o1");
  auto problem = Feed({Record(set_->record()), registered});
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("without the role"));
}

// Once records claim to stand alone (PrincipalsRecorded.exclusive, as a server that orders
// each record before what the next set authorises writes them), an event authorised under
// an earlier set holds only if its actor stands in the set in force as in that one.
class DeepVerifyInForceTest : public DeepVerifyPrincipalsTest {
 protected:
  static constexpr char kLiNa[] =
      R"({"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"})";
  // The set of kPrincipalsJson with the entry `from` replaced by `to` ("" removes it).
  static std::shared_ptr<const Principals> SetWith(const std::string& from, const std::string& to) {
    std::string json = kPrincipalsJson;
    const size_t at = json.find(from + ",");
    EXPECT_NE(at, std::string::npos) << from;
    json.replace(at, from.size() + 1, to.empty() ? "" : to + ",");
    auto parsed = Principals::Parse(json);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return (*parsed)->Stamped();
  }
  v1::Event Exclusive(const Principals& set) const {
    v1::PrincipalsRecorded record = set.record();
    record.set_exclusive(true);
    return Record(record);
  }
  v1::Event Reinstated(const std::string& version) const {
    v1::PrincipalsRecorded record;
    record.set_principals_version(version);
    record.set_exclusive(true);
    record.set_reinstated(true);
    v1::Event e = Record(record);
    e.set_request_id(absl::StrCat("principals-", version, "-again-", e.version()));
    return e;
  }
  // `log`, then li.na's case under set_ (the first set), on a fresh verifier.
  std::optional<DeepVerifier::Problem> VerifyThenCreate(std::vector<v1::Event> log) const {
    for (auto& e : Create("li.na", "c1")) log.push_back(e);
    return Verify(log);
  }
  static std::optional<DeepVerifier::Problem> Verify(const std::vector<v1::Event>& log) {
    DeepVerifier verifier{DeepVerifyOptions{}};
    int64_t position = 0;
    for (const v1::Event& e : log) {
      if (auto p = verifier.Add(store::StoredEvent{.position = position++,
                                                   .stream = e.stream(),
                                                   .version = e.version(),
                                                   .bytes = e.SerializeAsString()})) {
        return p;
      }
    }
    return verifier.Finish();
  }
};

TEST_F(DeepVerifyInForceTest, AnEventUnderAnEarlierSetWhoseActorALaterRecordRemovedIsNamed) {
  auto problem = VerifyThenCreate({Exclusive(*set_), Exclusive(*SetWith(kLiNa, ""))});
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 2);
  EXPECT_THAT(problem->detail, HasSubstr("recorded at position 1, had removed them"));
}

TEST_F(DeepVerifyInForceTest, AnEventUnderAnEarlierSetWhoseActorALaterRecordChangedIsNamed) {
  for (const char* changed :
       {R"({"id": "li.na", "roles": ["lister"], "jurisdiction": "city/west"})",
        R"({"id": "li.na", "roles": ["lister", "inspector"], "jurisdiction": "city/east"})"}) {
    SCOPED_TRACE(changed);
    auto problem = VerifyThenCreate({Exclusive(*set_), Exclusive(*SetWith(kLiNa, changed))});
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(problem->position, 2);
    EXPECT_THAT(problem->detail, HasSubstr("had changed their roles or jurisdiction"));
  }
}

// A later record that moves someone else, or adds someone: li.na
// stands as before, and a command authorised under the earlier set verifies (one checked
// just before a reload and appended after it, as the server allows).
TEST_F(DeepVerifyInForceTest, AnEventUnderAnEarlierSetWhoseActorStandsAsBeforeVerifies) {
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{
            R"({"id": "zhao.lei", "roles": ["inspector"], "jurisdiction": "city/east"})",
            R"({"id": "zhao.lei", "roles": ["inspector"], "jurisdiction": "city/west"})"},
        std::pair<std::string, std::string>{
            kLiNa, std::string(kLiNa) +
                       R"(, {"id": "qian.hui", "roles": ["auditor"], "jurisdiction": "city"})"}}) {
    SCOPED_TRACE(to);
    auto problem = VerifyThenCreate({Exclusive(*set_), Exclusive(*SetWith(from, to))});
    EXPECT_FALSE(problem.has_value()) << problem->detail;
  }
}

// Once records claim to stand alone, the approver of a key registration is looked up in
// the set in force, as the server looks them up just before the append: an approver whom a
// later set added verifies under an administrator's event naming the earlier set (in a log
// without the claim, as before, the set the event names decides).
TEST_F(DeepVerifyInForceTest, AKeysApproverIsLookedUpInTheSetInForce) {
  const auto with_approver =
      SetWith(kLiNa, std::string(kLiNa) + R"(, {"id": "zhou.min", "roles": ["approver"], )" +
                         R"("jurisdiction": "city/east", "approval_level": "county"})");
  v1::Event registered;
  registered.set_stream("approvers/zhou.min");
  registered.set_version(1);
  registered.set_actor("sun.mei");
  registered.set_request_id("register-1");
  registered.set_principals_version(set_->version());
  auto* body = registered.mutable_approver_key_registered();
  body->set_key_id("ed25519:0011223344556677");
  body->set_public_key(std::string(32, 'k'));
  body->set_level(v1::APPROVAL_LEVEL_COUNTY);

  auto fine = Verify({Exclusive(*set_), Exclusive(*with_approver), registered});
  EXPECT_FALSE(fine.has_value()) << fine->detail;
  auto old = Verify({Record(set_->record()), Record(with_approver->record()), registered});
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->position, 2);
  EXPECT_THAT(old->detail, HasSubstr("who was not an approver then"));
}

// A return to the first set, recorded as such: what it authorises verifies again. A return
// to a set the log never recorded is named.
TEST_F(DeepVerifyInForceTest, AReturnToAnEarlierSetIsRecordedAndHoldsWhatFollows) {
  auto fine = VerifyThenCreate(
      {Exclusive(*set_), Exclusive(*SetWith(kLiNa, "")), Reinstated(set_->version())});
  EXPECT_FALSE(fine.has_value()) << fine->detail;

  auto problem = Verify({Exclusive(*set_), Reinstated("00112233445566ff")});
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("did not record it before"));
}

// A log written before records claimed to stand alone is judged as it was: an event may
// name any set recorded before it. A record without the claim after one with it is named.
TEST_F(DeepVerifyInForceTest, RecordsWithoutTheClaimAreJudgedAsBeforeButNotAfterIt) {
  auto old = VerifyThenCreate({Record(set_->record()), Record(SetWith(kLiNa, "")->record())});
  EXPECT_FALSE(old.has_value()) << old->detail;

  auto problem = Verify({Exclusive(*set_), Record(SetWith(kLiNa, "")->record())});
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("without claiming to stand alone"));
}

// A set too large for one event is recorded in parts of one append; the verifier takes
// it whole once its last part came, and names parts out of order or cut short.
class DeepVerifyPrincipalsInPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string json = R"({"principals": [)";
    for (int i = 0; i < 6000; ++i) {
      absl::StrAppend(&json, i == 0 ? "" : ",", R"({"id": "person-with-a-longer-identity-)", i,
                      R"(", "roles": ["lister"], "jurisdiction": "city/east/t01"})");
    }
    json += "]}";
    auto parsed = Principals::Parse(json);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    set_ = (*parsed)->Stamped();
    store::RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    ASSERT_TRUE(RecordPrincipals(log_.get(), *set_, kStartMicros).ok());
    ASSERT_TRUE(RecordPrincipals(log_.get(), *set_, kStartMicros).ok()) << "recorded once";
    auto events = log_->ReadRange(0, 100);
    ASSERT_TRUE(events.ok()) << events.status();
    parts_ = *std::move(events);
  }

  std::optional<DeepVerifier::Problem> Verify(std::vector<store::StoredEvent> events) {
    DeepVerifier verifier{DeepVerifyOptions{}};
    int64_t position = 0;
    for (store::StoredEvent& e : events) {
      e.position = position++;
      if (auto p = verifier.Add(e)) return p;
    }
    return verifier.Finish();
  }

  // A listing by one of the set, stamped with its version, as the log's next event.
  store::StoredEvent Listing() const {
    v1::Event e;
    e.set_stream("registry/city/east");
    e.set_version(1);
    e.set_actor("person-with-a-longer-identity-5999");
    e.set_request_id("reg-1");
    e.set_principals_version(set_->version());
    e.mutable_organisation_registered()->mutable_organisation()->set_jurisdiction(
        "city/east/t01/o1");
    return store::StoredEvent{.stream = e.stream(), .version = 1, .bytes = e.SerializeAsString()};
  }

  store::testing::TempDir dir_;
  std::unique_ptr<store::RocksEventLog> log_;
  std::shared_ptr<const Principals> set_;
  std::vector<store::StoredEvent> parts_;
};

TEST_F(DeepVerifyPrincipalsInPartsTest, TheWholeSetIsKnownAfterItsLastPart) {
  ASSERT_GE(parts_.size(), 2u) << "the record fitted one event";
  for (size_t i = 0; i < parts_.size(); ++i) {
    v1::Event e;
    ASSERT_TRUE(e.ParseFromString(parts_[i].bytes));
    EXPECT_EQ(e.principals_recorded().part(), static_cast<int>(i));
    EXPECT_EQ(e.principals_recorded().parts(), static_cast<int>(parts_.size()));
    EXPECT_EQ(e.principals_recorded().principals_version(), set_->version());
    EXPECT_LE(e.principals_recorded().ByteSizeLong(), kPrincipalsPartBytesMax + 64);
  }
  std::vector<store::StoredEvent> log = parts_;
  log.push_back(Listing());
  auto problem = Verify(log);
  // The listing's actor is a lister, not an admin: the set was known, its role judged.
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("without the role")) << problem->detail;
}

TEST_F(DeepVerifyPrincipalsInPartsTest, PartsOutOfOrderAreNamed) {
  // The first two parts' contents swapped, each in the other's envelope.
  std::vector<store::StoredEvent> log = parts_;
  v1::Event first, second;
  ASSERT_TRUE(first.ParseFromString(log[0].bytes) && second.ParseFromString(log[1].bytes));
  std::swap(*first.mutable_principals_recorded(), *second.mutable_principals_recorded());
  log[0].bytes = first.SerializeAsString();
  log[1].bytes = second.SerializeAsString();
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 0);
  EXPECT_THAT(problem->detail, HasSubstr("out of order")) << problem->detail;
}

TEST_F(DeepVerifyPrincipalsInPartsTest, ARecordCutShortIsNamed) {
  std::vector<store::StoredEvent> log = parts_;
  log.pop_back();
  log.push_back(Listing());
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("ends after part")) << problem->detail;
}

// The parts of one record come from one append (one actor, one request id): a part of
// another request is named.
TEST_F(DeepVerifyPrincipalsInPartsTest, APartOfAnotherRequestIsNamed) {
  ASSERT_GE(parts_.size(), 2u);
  std::vector<store::StoredEvent> log = parts_;
  v1::Event second;
  ASSERT_TRUE(second.ParseFromString(log[1].bytes));
  second.set_request_id("principals-another");
  log[1].bytes = second.SerializeAsString();
  auto problem = Verify(log);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->position, 1);
  EXPECT_THAT(problem->detail, HasSubstr("request id \"principals-another\"")) << problem->detail;
}

// A registry import's record: by an administrator, of a scope that is theirs or the one
// county they are within.
class DeepVerifyImportRecordTest : public DeepVerifyPrincipalsTest {
 protected:
  v1::Event ImportRecord(const std::string& who, const std::string& scope) const {
    v1::Event e;
    e.set_stream("registry-imports/0011223344556677");
    e.set_version(1);
    e.set_actor(who);
    e.set_request_id("import-1");
    e.set_principals_version(set_->version());
    e.mutable_registry_imported()->set_scope(scope);
    return e;
  }
};

TEST_F(DeepVerifyImportRecordTest, ByAnAdministratorOfItsScope) {
  auto problem = Feed({Record(set_->record()), ImportRecord("wu.gang", "city/west")});
  EXPECT_FALSE(problem.has_value()) << problem->detail;
}

TEST_F(DeepVerifyImportRecordTest, OfAnotherCountyIsNamed) {
  auto problem = Feed({Record(set_->record()), ImportRecord("wu.gang", "city/east")});
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("apart from the jurisdiction city/west"));
}

TEST_F(DeepVerifyImportRecordTest, OfTheWholeCityByACountyIsNamed) {
  auto problem = Feed({Record(set_->record()), ImportRecord("wu.gang", "city")});
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("apart from the jurisdiction city/west"));
}

TEST_F(DeepVerifyImportRecordTest, WithoutTheAdministratorRoleIsNamed) {
  auto problem = Feed({Record(set_->record()), ImportRecord("li.na", "city/east")});
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("without the role"));
}

TEST_F(DeepVerifyPrincipalsTest, EventsWithoutAVersionAreJudgedAsBefore) {
  std::vector<v1::Event> log = Create("zhao.lei", "c1");
  for (auto& e : log) e.clear_principals_version();
  auto problem = Feed(log);  // every role, as a server without records allows
  EXPECT_FALSE(problem.has_value()) << problem->detail;
}

// Each command is re-run under the rule set that admitted it: an older set this build
// still knows verifies, an unknown one is named.
TEST_F(DeepVerifyPrincipalsTest, EachCommandIsReRunUnderItsOwnRuleSet) {
  std::vector<v1::Event> log = {Record(set_->record())};
  for (auto& e : Create("li.na", "c1")) {
    e.set_rules_version(workflow::kRulesVersion2026_1);
    log.push_back(e);
  }
  auto problem = Feed(log);
  EXPECT_FALSE(problem.has_value()) << problem->detail;
  EXPECT_EQ(verifier_.commands_checked(), 1);

  std::vector<v1::Event> unknown = Create("li.na", "c2");
  for (auto& e : unknown) e.set_rules_version("rules/1999.1");
  problem = Feed(unknown);
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(problem->detail, HasSubstr("rules/1999.1")) << problem->detail;
}

}  // namespace
}  // namespace casework::shell

// The principals file parses into roles and jurisdictions and refuses mistakes with a
// message naming the entry and field.
#include "services/shell/principals.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "gtest/gtest.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/deep_verify.h"
#include "services/shell/gate_testing.h"
#include "services/workflow/workflow_testing.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

TEST(Principals, ParsesRolesJurisdictionAndLevel) {
  auto p = Principals::Parse(R"({"principals": [
      {"id": "li.na", "roles": ["lister", "reviewer"], "jurisdiction": "city/a"},
      {"id": "wang", "roles": ["approver"], "jurisdiction": "city", "approval_level": "city"}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ((*p)->size(), 2u);
  const workflow::Principal* li = (*p)->Find("li.na");
  ASSERT_NE(li, nullptr);
  EXPECT_EQ(li->jurisdiction, "city/a");
  ASSERT_EQ(li->roles.size(), 2u);
  EXPECT_EQ(li->roles[0], workflow::Role::kLister);
  EXPECT_EQ((*p)->Find("wang")->approval_level, casework::v1::APPROVAL_LEVEL_CITY);
  EXPECT_EQ((*p)->Find("nobody"), nullptr);
}

// An id that differs from an identity only in ASCII letter case or in '.', '-', '_' and
// spaces resembles it; an identity itself, an id resembling none, and one that folds to
// nothing do not.
TEST(Principals, AnIdDifferingOnlyInCaseOrPunctuationResemblesAnIdentity) {
  auto p = Principals::Parse(R"({"principals": [
      {"id": "zhang.wei", "roles": ["inspector"], "jurisdiction": "city/a"},
      {"id": "zhangwei2", "roles": ["assister"], "jurisdiction": "city/a"}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  for (const char* variant :
       {"Zhang.Wei", "zhangwei", "ZHANG_WEI", "zhang-wei", "zhang wei", "ｚｈａｎｇ．ｗｅｉ",
        "Zhang·Wei", "zhang・wei", "zhang\u3000wei", "zhang\u00a0wei", "zhang\uff65wei"}) {
    const workflow::Principal* like = (*p)->Resembling(variant);
    ASSERT_NE(like, nullptr) << variant;
    EXPECT_EQ(like->id, "zhang.wei") << variant;
  }
  EXPECT_EQ((*p)->Resembling("zhang.wei"), nullptr);  // the identity itself
  EXPECT_EQ((*p)->Resembling("zhangwei2"), nullptr);  // another identity, exactly
  EXPECT_NE((*p)->Resembling("Zhang.Wei2"), nullptr);
  EXPECT_EQ((*p)->Resembling("zhang.wen"), nullptr);
  EXPECT_EQ((*p)->Resembling("..."), nullptr);
  EXPECT_EQ((*p)->Resembling("张伟"), nullptr);
}

// What goes on acting when a reloaded file cannot be recorded: only principals the new
// file holds exactly as they are, under the version the log holds.
TEST(Principals, WithoutChangesInKeepsOnlyTheUnchangedUnderTheOldVersion) {
  auto old = Principals::Parse(R"({"principals": [
      {"id": "same", "roles": ["lister", "reviewer"], "jurisdiction": "city/a"},
      {"id": "gone", "roles": ["lister"], "jurisdiction": "city/a"},
      {"id": "moved", "roles": ["lister"], "jurisdiction": "city/a"},
      {"id": "demoted", "roles": ["lister", "admin"], "jurisdiction": "city"},
      {"id": "relevelled", "roles": ["approver"], "jurisdiction": "city", "approval_level": "city"}]})");
  auto next = Principals::Parse(R"({"principals": [
      {"id": "same", "roles": ["reviewer", "lister", "lister"], "jurisdiction": "city/a"},
      {"id": "moved", "roles": ["lister"], "jurisdiction": "city/b"},
      {"id": "demoted", "roles": ["lister"], "jurisdiction": "city"},
      {"id": "relevelled", "roles": ["approver"], "jurisdiction": "city", "approval_level": "county"},
      {"id": "new", "roles": ["admin"], "jurisdiction": "city"}]})");
  ASSERT_TRUE(old.ok() && next.ok());
  const auto served = (*old)->Stamped();
  const auto kept = served->WithoutChangesIn(**next);
  EXPECT_EQ(kept->size(), 1u);
  ASSERT_NE(kept->Find("same"), nullptr) << "the same roles in another order are unchanged";
  for (const char* id : {"gone", "moved", "demoted", "relevelled", "new"}) {
    EXPECT_EQ(kept->Find(id), nullptr) << id;
  }
  // Those the new file names but the set holds back are told so; the removed are not.
  for (const char* id : {"moved", "demoted", "relevelled", "new"}) {
    EXPECT_TRUE(kept->Withheld(id)) << id;
  }
  EXPECT_FALSE(kept->Withheld("gone"));
  EXPECT_FALSE(kept->Withheld("same"));
  EXPECT_EQ(kept->version(), (*old)->version());
  EXPECT_EQ(kept->Find("same")->principals_version, (*old)->version());
  // Applied twice (a second reload that cannot be recorded either), it only narrows.
  EXPECT_EQ(kept->WithoutChangesIn(**old)->size(), 1u);
  EXPECT_EQ(served->size(), 5u) << "the served set itself is left as it was";
}

// A long call's caller after reloads: the same roles in another order are no change; a
// role less ends it, and so does being removed.
TEST(CallerStanding, EndsOnlyWhenRolesOrJurisdictionChangeOrTheCallerGoes) {
  auto parse = [](const char* json) {
    auto p = Principals::Parse(json);
    EXPECT_TRUE(p.ok()) << p.status();
    return *p;
  };
  PrincipalsHolder holder(parse(R"({"principals": [
      {"id": "qian", "roles": ["auditor", "admin"], "jurisdiction": "city"}]})"));
  Authenticator auth(&holder);
  const std::shared_ptr<const Principals> first = holder.Get();
  CallerStanding standing(&auth, *first->Find("qian"), first);
  EXPECT_FALSE(standing.Revoked("the export", "导出").has_value());
  holder.Set(parse(R"({"principals": [
      {"id": "qian", "roles": ["admin", "auditor", "admin"], "jurisdiction": "city"}]})"));
  EXPECT_FALSE(standing.Revoked("the export", "导出").has_value()) << "roles reordered";
  holder.Set(parse(R"({"principals": [
      {"id": "qian", "roles": ["auditor"], "jurisdiction": "city"}]})"));
  std::optional<grpc::Status> ended = standing.Revoked("the export", "导出");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(ended->error_message().find("the export ended"), std::string::npos);
  CallerStanding again(&auth, *first->Find("qian"), nullptr);
  holder.Set(parse(R"({"principals": [
      {"id": "zhao", "roles": ["auditor"], "jurisdiction": "city"}]})"));
  ended = again.Revoked("the verification", "校验");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(Principals, RefusesMistakesNamingTheEntry) {
  struct Row {
    const char* json;
    const char* needle;
  } rows[] = {
      {"[]", "not a JSON object"},
      {R"({"principals": 1})", "array"},
      {R"({"principals": [{"roles": ["lister"], "jurisdiction": "c"}]})", "principals[0].id"},
      {R"({"principals": [{"id": "a", "roles": ["boss"], "jurisdiction": "c"}]})", "boss"},
      // Ids as people are named in commands: no space, control character or '/', at most
      // 64 bytes; and not the server's own name in the log.
      {R"({"principals": [{"id": "Zhang Wei", "roles": ["approver"], "jurisdiction": "c"}]})",
       "not a valid identity"},
      {R"({"principals": [{"id": "a\u0007b", "roles": ["lister"], "jurisdiction": "c"}]})",
       "not a valid identity"},
      {R"({"principals": [{"id": "c/a", "roles": ["lister"], "jurisdiction": "c"}]})",
       "not a valid identity"},
      {R"({"principals": [{"id": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                           "roles": ["lister"], "jurisdiction": "c"}]})",
       "not a valid identity"},
      {R"({"principals": [{"id": "caseworkd", "roles": ["admin"], "jurisdiction": "c"}]})",
       "server's own name"},
      {R"({"principals": [{"id": "a", "roles": ["lister"]}]})", "jurisdiction"},
      {R"({"principals": [{"id": "a", "roles": ["lister"], "jurisdiction": "c"},
                          {"id": "a", "roles": ["lister"], "jurisdiction": "c"}]})",
       "twice"},
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c",
                           "approval_level": "province"}]})",
       "approval_level"},
      // A level belongs to the city's department, or a county's (or the city's).
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c/x",
                           "approval_level": "city"}]})",
       "whole city"},
      {R"({"principals": [{"id": "a", "roles": ["approver"], "jurisdiction": "c/x/t",
                           "approval_level": "county"}]})",
       "one or two segments"},
      // Jurisdictions: a path of one to four segments, all under one city.
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "/"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/x/"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c//x"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/x y"}]})", "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/a/b/c/d"}]})",
       "segments"},
      {R"({"principals": [{"id": "a", "roles": ["admin"], "jurisdiction": "c/a"},
                          {"id": "b", "roles": ["auditor"], "jurisdiction": "xihe"}]})",
       "one city"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.json);
    auto p = Principals::Parse(row.json);
    ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(row.needle), std::string::npos) << p.status();
  }
}

// The reloader (SIGHUP and AdminService.ReloadPrincipals): records a changed file naming
// who asked, under the version they hold now; refuses a caller the set in use no longer
// makes an administrator of the whole city; keeps the set in use when the file does not
// load.
TEST(PrincipalsReloader, RecordsInTheCallersNameAndKeepsTheSetOnAFileThatDoesNotLoad) {
  store::testing::TempDir dir;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string path = dir.Sub("principals.json");
  auto write = [&](const std::string& extra) {
    std::ofstream(path, std::ios::trunc) << R"({"principals": [
      {"id": "boss", "roles": ["admin"], "jurisdiction": "city"},
      {"id": "county.admin", "roles": ["admin"], "jurisdiction": "city/a"})" +
                                                extra + "]}";
  };
  write("");
  // A file every user may write is refused: anyone could make themselves an administrator.
  std::filesystem::permissions(path, std::filesystem::perms::others_write,
                               std::filesystem::perm_options::add);
  auto open = Principals::Load(path);
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition) << open.status();
  std::filesystem::permissions(path, std::filesystem::perms::others_write,
                               std::filesystem::perm_options::remove);
  auto initial = Principals::Load(path);
  ASSERT_TRUE(initial.ok()) << initial.status();
  ASSERT_TRUE(RecordPrincipals(log->get(), **initial, 1).ok());
  PrincipalsHolder holder((*initial)->Stamped());
  PrincipalsReloader reloader({.path = path, .log = log->get(), .clock = [] { return 2; }},
                              &holder);

  // Unchanged, on SIGHUP: recorded before, by the server.
  auto same = reloader.Reload(nullptr);
  ASSERT_TRUE(same.ok()) << same.status();
  ASSERT_TRUE(same->record.has_value());
  EXPECT_FALSE(same->record->recorded_now);
  EXPECT_EQ(same->record->recorded_by, kServerActor);
  EXPECT_EQ(same->record->position, 0);

  // Changed, by the city's administrator: their name, their version.
  write(R"(, {"id": "new.lister", "roles": ["lister"], "jurisdiction": "city/a"})");
  const workflow::Principal boss = *holder.Get()->Find("boss");
  auto changed = reloader.Reload(&boss);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(changed->record->recorded_now);
  EXPECT_EQ(changed->record->recorded_by, "boss");
  ASSERT_NE(holder.Get()->Find("new.lister"), nullptr);
  auto stored = (*log)->ReadRange(changed->record->position, 1);
  ASSERT_TRUE(stored.ok() && stored->size() == 1u);
  casework::v1::Event event;
  ASSERT_TRUE(event.ParseFromString(stored->front().bytes));
  EXPECT_EQ(event.actor(), "boss");
  EXPECT_EQ(event.principals_version(), (*initial)->version());

  // A caller whom the set in use no longer makes an administrator of the whole city
  // (here: one of a county): refused, nothing recorded.
  write(R"(, {"id": "another", "roles": ["lister"], "jurisdiction": "city/a"})");
  const workflow::Principal county = *holder.Get()->Find("county.admin");
  const int64_t size = (*log)->Size();
  auto refused = reloader.Reload(&county);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(PrincipalsReloader::CallerChanged(refused.status())) << refused.status();
  EXPECT_FALSE(PrincipalsReloader::FileNotLoaded(refused.status()));
  EXPECT_EQ((*log)->Size(), size);
  EXPECT_EQ(holder.Get()->Find("another"), nullptr);

  // A file that does not load: the set in use stays.
  std::ofstream(path, std::ios::trunc) << "{";
  auto broken = reloader.Reload(&boss);
  ASSERT_FALSE(broken.ok());
  EXPECT_TRUE(PrincipalsReloader::FileNotLoaded(broken.status())) << broken.status();
  EXPECT_NE(holder.Get()->Find("new.lister"), nullptr);
  EXPECT_EQ((*log)->Size(), size);
}

// Deep verification of a log of `events` events: "" when it verifies, else the first
// problem, with its position.
std::string DeepProblem(store::EventLog* log, size_t events) {
  auto stored = log->ReadRange(0, events + 1);
  if (!stored.ok()) return std::string(stored.status().message());
  if (stored->size() != events) return "the log holds " + std::to_string(stored->size());
  DeepVerifier verifier{DeepVerifyOptions{}};
  std::optional<DeepVerifier::Problem> problem;
  for (const store::StoredEvent& e : *stored) {
    if ((problem = verifier.Add(e))) break;
  }
  if (!problem.has_value()) problem = verifier.Finish();
  return problem.has_value() ? std::to_string(problem->position) + ": " + problem->detail : "";
}

// The last event of the principals stream.
casework::v1::Event LastRecord(store::EventLog* log) {
  casework::v1::Event event;
  auto version = log->StreamVersion(kPrincipalsStream);
  EXPECT_TRUE(version.ok()) << version.status();
  auto last = log->ReadStream(kPrincipalsStream, *version, 1);
  EXPECT_TRUE(last.ok() && last->size() == 1u);
  if (last.ok() && last->size() == 1u) {
    EXPECT_TRUE(event.ParseFromString(last->front().bytes));
  }
  return event;
}

// Every set is recorded as claiming to stand alone, and a return to a file recorded
// before (a reload, or the first start over a log whose records did not claim it) is
// recorded as that set in force again, once.
TEST(PrincipalsReloader, AReturnToAFileRecordedBeforeIsRecordedAsInForceAgain) {
  store::testing::TempDir dir;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string path = dir.Sub("principals.json");
  const std::string first = R"({"principals": [
      {"id": "boss", "roles": ["admin"], "jurisdiction": "city"},
      {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"}]})";
  const std::string second = R"({"principals": [
      {"id": "boss", "roles": ["admin"], "jurisdiction": "city"}]})";
  std::ofstream(path, std::ios::trunc) << first;
  auto initial = Principals::Load(path);
  ASSERT_TRUE(initial.ok()) << initial.status();

  // A record as written before records claimed to stand alone (no `exclusive`).
  {
    casework::v1::Event old;
    old.set_stream(kPrincipalsStream);
    old.set_version(1);
    old.set_actor(kServerActor);
    old.set_request_id("principals-" + (*initial)->version());
    *old.mutable_principals_recorded() = (*initial)->record();
    store::AppendRequest append{.stream = kPrincipalsStream,
                                .expected_version = 0,
                                .events = {old.SerializeAsString()},
                                .request_id = old.request_id()};
    ASSERT_TRUE((*log)->Append(std::move(append)).ok());
  }
  // The first start since: the same set, in force again, claiming it.
  auto started = RecordPrincipalsBy(log->get(), **initial, 1, nullptr);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_FALSE(started->recorded_now);
  EXPECT_EQ(started->position, 0);
  EXPECT_EQ(started->reinstated_at, 1);
  casework::v1::Event again = LastRecord(log->get());
  EXPECT_TRUE(again.principals_recorded().reinstated());
  EXPECT_TRUE(again.principals_recorded().exclusive());
  EXPECT_EQ(again.principals_recorded().principals_version(), (*initial)->version());
  EXPECT_EQ(again.principals_recorded().principals_size(), 0);
  // A start after it: nothing more.
  auto restarted = RecordPrincipalsBy(log->get(), **initial, 1, nullptr);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_EQ(restarted->reinstated_at, -1);
  EXPECT_EQ((*log)->Size(), 2);

  PrincipalsHolder holder((*initial)->Stamped());
  PrincipalsReloader reloader({.path = path, .log = log->get(), .clock = [] { return 2; }},
                              &holder);
  // Another file: recorded, claiming to stand alone.
  std::ofstream(path, std::ios::trunc) << second;
  auto changed = reloader.Reload(nullptr);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(changed->record->recorded_now);
  EXPECT_EQ(changed->record->reinstated_at, -1);
  EXPECT_TRUE(LastRecord(log->get()).principals_recorded().exclusive());
  EXPECT_FALSE(LastRecord(log->get()).principals_recorded().reinstated());
  // Back to the first file, by the administrator: in force again, in their name.
  std::ofstream(path, std::ios::trunc) << first;
  const workflow::Principal boss = *holder.Get()->Find("boss");
  auto back = reloader.Reload(&boss);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->record->recorded_now);
  EXPECT_EQ(back->record->position, 0);
  EXPECT_EQ(back->record->reinstated_at, 3);
  again = LastRecord(log->get());
  EXPECT_TRUE(again.principals_recorded().reinstated());
  EXPECT_EQ(again.actor(), "boss");
  EXPECT_EQ(again.principals_version(), changed->set->version());
  EXPECT_NE(holder.Get()->Find("li.na"), nullptr);
  // The same file again: nothing more.
  auto same = reloader.Reload(nullptr);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->record->reinstated_at, -1);
  EXPECT_EQ((*log)->Size(), 4);

  // li.na, whom the second file removed, acts again under the first set's version: the log
  // verifies deep (without the reinstatement, the second set would be in force for her).
  CommandProcessor processor(log->get(), workflow::Policy{},
                             [] { return workflow::testing::kStartMicros; });
  casework::v1::CaseCommandResponse response;
  std::promise<grpc::Status> answered;
  processor.Execute(*holder.Get()->Find("li.na"), workflow::testing::kCaseId,
                    workflow::testing::CreateCase(workflow::testing::kStartMicros), &response,
                    [&](grpc::Status status) { answered.set_value(std::move(status)); });
  const grpc::Status created = answered.get_future().get();
  ASSERT_TRUE(created.ok()) << created.error_message();
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_EQ(response.events(0).event().principals_version(), (*initial)->version());
  EXPECT_EQ(DeepProblem(log->get(), 5), "");
}

// A reload while a command is between its last check of the caller and its append: the
// reload's record waits for the append (PrincipalsHolder::append_gate), so the log holds
// the command before the record of the set that removes its actor, and verifies deep.
TEST(PrincipalsReloader, ARecordWaitsForACommandCheckedAgainstTheSetInForce) {
  store::testing::TempDir dir;
  store::RocksEventLog::Options options;
  options.path = dir.Sub("log");
  auto log = store::RocksEventLog::Open(options);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string path = dir.Sub("principals.json");
  std::ofstream(path, std::ios::trunc) << R"({"principals": [
      {"id": "root", "roles": ["admin"], "jurisdiction": "city"},
      {"id": "li.na", "roles": ["lister"], "jurisdiction": "city/east"}]})";
  auto initial = Principals::Load(path);
  ASSERT_TRUE(initial.ok()) << initial.status();
  ASSERT_TRUE(RecordPrincipals(log->get(), **initial, workflow::testing::kStartMicros).ok());
  PrincipalsHolder holder((*initial)->Stamped());
  PrincipalsReloader reloader(
      {.path = path, .log = log->get(), .clock = [] { return workflow::testing::kStartMicros; }},
      &holder);
  CommandProcessor processor(log->get(), workflow::Policy{},
                             [] { return workflow::testing::kStartMicros; });
  testing::Gate checked;
  testing::Gate release;
  processor.SetAcceptedCheck(
      [&](const workflow::Principal&, const casework::v1::Command&) -> std::optional<grpc::Status> {
        checked.Open();
        release.Wait();
        return std::nullopt;
      },
      &holder);

  const workflow::Principal actor = *holder.Get()->Find("li.na");
  casework::v1::CaseCommandResponse response;
  std::promise<grpc::Status> answered;
  std::thread command([&] {
    processor.Execute(actor, workflow::testing::kCaseId,
                      workflow::testing::CreateCase(workflow::testing::kStartMicros), &response,
                      [&](grpc::Status status) { answered.set_value(std::move(status)); });
  });
  checked.Wait();
  // li.na removed, while her command is checked and not yet appended.
  std::ofstream(path, std::ios::trunc) << R"({"principals": [
      {"id": "root", "roles": ["admin"], "jurisdiction": "city"}]})";
  auto reload = std::async(std::launch::async, [&] { return reloader.Reload(nullptr); });
  // Held back (a reload not held back takes milliseconds).
  EXPECT_EQ(reload.wait_for(std::chrono::seconds(2)), std::future_status::timeout);
  release.Open();
  command.join();
  const grpc::Status status = answered.get_future().get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto reloaded = reload.get();
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  ASSERT_TRUE(reloaded->record->recorded_now);
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_LT(response.events(0).position(), reloaded->record->position);
  EXPECT_EQ(holder.Get()->Find("li.na"), nullptr);

  EXPECT_EQ(DeepProblem(log->get(), 3), "");
}

}  // namespace
}  // namespace casework::shell

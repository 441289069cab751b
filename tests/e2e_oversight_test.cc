// The campaign's oversight over the wire, against the real caseworkd: the registry import
// (idempotent, refusals naming the line), flags and county reports as of a time, county
// talks and notices, the accountability report tracing each line to its events, and the
// inspection draw recorded before it is returned and reproduced from its inputs.
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "clients/client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/oversight/sample.h"
#include "store/checkpoint.h"
#include "tests/e2e_support.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::client::DecodeError;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

constexpr int64_t kDay = 86400;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

google::protobuf::Timestamp Seconds(int64_t s) {
  google::protobuf::Timestamp t;
  t.set_seconds(s);
  return t;
}

// The registry: 20 organisations in dongshan (org-d00 worst .. org-d19 best), 5 in xihe.
std::string RegistryCsv() {
  std::string csv = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  for (int i = 0; i < 20; ++i) {
    const std::string id = absl::StrCat("org-d", i < 10 ? "0" : "", i);
    csv += absl::StrCat(id, ",\"东山 ", i, " 村, 党支部\",jiangcheng/dongshan/t01/", id,
                        ",village,", 4 - i / 5, ",", i % 5, "\n");
  }
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("org-x0", i);
    csv += absl::StrCat(id, ",西河 ", i, " 社区,jiangcheng/xihe/t01/", id, ",community,3,1\n");
  }
  return csv;
}

class OversightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  // The log these tests leave verifies offline, with the stream and request-id indexes
  // checked against the request ids its events carry.
  void TearDown() override {
    if (HasFatalFailure() || server_ == nullptr) return;
    EXPECT_EQ(casework::testing::StopAndVerifyOffline(*server_, dir_.path() / "data"), "");
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  // The whole city's county table, as the auditor sees it now.
  grpc::Status CountyReport(v1::GetCountyReportResponse* report) {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    return v1::OversightService::NewStub(auditor->channel())
        ->GetCountyReport(ctx.get(), v1::GetCountyReportRequest(), report);
  }

  grpc::Status Import(const std::string& who, const std::string& request_id, const std::string& csv,
                      v1::ImportRegistryResponse* resp) {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::ImportRegistryRequest req;
    req.set_request_id(request_id);
    req.set_csv(csv);
    return v1::OversightService::NewStub(c->channel())->ImportRegistry(ctx.get(), req, resp);
  }

  // Lists org `org` of `county` as case `id`, deadline `deadline_days` from now.
  void List(const std::string& id, const std::string& county, const std::string& org,
            int64_t deadline_days = 180) {
    auto lister = As("lister");
    v1::CreateCaseRequest req;
    req.set_case_id(id);
    req.set_request_id("create-" + id);
    req.mutable_organisation()->set_organisation_id(org);
    req.mutable_organisation()->set_display_name(org + " 党支部");
    req.mutable_organisation()->set_jurisdiction("jiangcheng/" + county + "/t01/" + org);
    req.mutable_organisation()->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant");
    *req.mutable_deadline() = Seconds(NowSeconds() + deadline_days * kDay);
    v1::CaseCommandResponse resp;
    auto ctx = lister->NewContext();
    auto status = lister->cases().CreateCase(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Confirms the listing of case `id` (at version 1) and assigns assistance.
  // A reviewer confirms the listing of case `id` (version 1).
  void Confirm(const std::string& id) {
    auto reviewer = As("reviewer");
    v1::ReviewListingRequest review;
    review.set_name("cases/" + id);
    review.set_request_id("review-" + id);
    review.set_expected_version(1);
    review.set_confirmed(true);
    v1::CaseCommandResponse resp;
    auto ctx = reviewer->NewContext();
    auto status = reviewer->cases().ReviewListing(ctx.get(), review, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void Assist(const std::string& id) {
    Confirm(id);
    v1::CaseCommandResponse resp;
    grpc::Status status;
    auto lister = As("lister");
    v1::AssignAssistanceRequest assign;
    assign.set_name("cases/" + id);
    assign.set_request_id("assign-" + id);
    assign.set_expected_version(2);
    auto* a = assign.mutable_assignment();
    a->mutable_paired_department()->set_department_id("dept-agri");
    a->mutable_paired_department()->set_display_name("农业农村局");
    a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_PARTY_GOVERNMENT);
    a->mutable_first_secretary()->set_person_id("secretary." + id);
    a->mutable_first_secretary()->set_display_name("第一书记");
    auto* cadre = a->add_stationed_cadres();
    cadre->set_person_id("cadre." + id);
    cadre->set_display_name("驻村干部");
    a->set_plan("一村一策: elect a secretary, restart branch meetings");
    auto ctx2 = lister->NewContext();
    status = lister->cases().AssignAssistance(ctx2.get(), assign, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status Flags(const std::string& who, const std::string& scope, int64_t as_of,
                     v1::ListFlagsResponse* resp, int32_t page_size = 0,
                     const std::string& page_token = "") {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::ListFlagsRequest req;
    req.set_jurisdiction(scope);
    if (as_of > 0) *req.mutable_as_of_time() = Seconds(as_of);
    req.set_page_size(page_size);
    req.set_page_token(page_token);
    return v1::OversightService::NewStub(c->channel())->ListFlags(ctx.get(), req, resp);
  }

  static std::vector<std::string> Rules(const v1::ListFlagsResponse& resp) {
    std::vector<std::string> out;
    for (const v1::Flag& f : resp.flags()) out.push_back(f.rule() + " " + f.subject());
    return out;
  }

  // The whole log as ExportLog streams it (docs/audit.md).
  std::string Export() {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    auto reader =
        v1::AuditService::NewStub(auditor->channel())->ExportLog(ctx.get(), v1::ExportLogRequest());
    std::string out;
    v1::ExportLogResponse m;
    while (reader->Read(&m)) out += m.data();
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  // The server's note verifier key, from its key file, as an auditor would be given it.
  std::string VerifierKey() {
    std::ifstream in(dir_.path() / "data" / "log.key", std::ios::binary);
    std::string seed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto signer = store::NoteSigner::FromSeed("casework/log", seed);
    EXPECT_TRUE(signer.ok());
    return signer.ok() ? signer->verifier().VerifierKey() : "";
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

// Runs tools/verify_export.py; its exit code, its output in `output`.
int RunPythonVerifier(const std::string& args, std::string* output) {
  const std::string command =
      std::string(CW_PYTHON3) + " " + CW_VERIFY_EXPORT_PY + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// An organisation registered under another county has moved: it counts there only. Moved
// back with the row it had before, it is registered again (the old record is not its
// latest any more), and counts where it is.
TEST_F(OversightTest, AnOrganisationMovedAndMovedBackCountsWhereItIsNow) {
  v1::ImportRegistryResponse resp;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &resp).ok());
  const std::string header = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  const std::string in_xihe =
      header + "org-d07,东山 7 村,jiangcheng/xihe/t02/org-d07,village,3,2\n";
  const std::string in_dongshan =
      header + "org-d07,\"东山 7 村, 党支部\",jiangcheng/dongshan/t01/org-d07,village,3,2\n";
  const auto organisations = [this]() {
    v1::GetCountyReportResponse report;
    EXPECT_TRUE(CountyReport(&report).ok());
    std::map<std::string, int64_t> out;
    for (const auto& line : report.lines()) out[line.jurisdiction()] = line.organisations();
    return out;
  };
  EXPECT_EQ(organisations()["jiangcheng/dongshan"], 20);
  // Xihe's administrator cannot take Dongshan's organisation into Xihe: the row's new
  // place is theirs, the organisation's place now is not.
  grpc::Status refused = Import("admin.xihe", "move-0", in_xihe, &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DecodeError(refused).reason, "JURISDICTION_NOT_COVERED");
  EXPECT_THAT(refused.error_message(),
              HasSubstr("line 2: organisation org-d07 is registered in jiangcheng/dongshan"));
  EXPECT_EQ(organisations()["jiangcheng/dongshan"], 20);
  EXPECT_EQ(organisations()["jiangcheng/xihe"], 5);
  ASSERT_TRUE(Import("admin", "move-1", in_xihe, &resp).ok());
  EXPECT_EQ(resp.imported(), 1);
  EXPECT_EQ(organisations()["jiangcheng/dongshan"], 19);
  EXPECT_EQ(organisations()["jiangcheng/xihe"], 6);
  ASSERT_TRUE(Import("admin", "move-2", in_dongshan, &resp).ok());
  EXPECT_EQ(resp.unchanged(), 0) << "the row it had before is not where it is now";
  EXPECT_EQ(resp.updated(), 1);
  EXPECT_EQ(organisations()["jiangcheng/dongshan"], 20);
  EXPECT_EQ(organisations()["jiangcheng/xihe"], 5);
  // And now the same row again is unchanged.
  ASSERT_TRUE(Import("admin", "move-3", in_dongshan, &resp).ok());
  EXPECT_EQ(resp.unchanged(), 1);
}

TEST_F(OversightTest, RegistryImportIsIdempotentAndRefusesBadInputClearly) {
  v1::ImportRegistryResponse resp;
  auto status = Import("admin", "reg-1", RegistryCsv(), &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.imported(), 25);
  EXPECT_EQ(resp.updated(), 0);
  EXPECT_THAT(resp.counties(), ::testing::ElementsAre("jiangcheng/dongshan", "jiangcheng/xihe"));
  EXPECT_THAT(resp.replayed_counties(), ::testing::IsEmpty());

  // The same request again: the first answer, nothing recorded twice, and said to be a
  // replay.
  v1::ImportRegistryResponse again;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &again).ok());
  EXPECT_EQ(again.imported(), 25);
  EXPECT_EQ(again.unchanged(), 0);
  EXPECT_THAT(again.replayed_counties(),
              ::testing::ElementsAre("jiangcheng/dongshan", "jiangcheng/xihe"));

  // A new import with one star changed: one event, the rest unchanged.
  std::string changed = RegistryCsv();
  const size_t at = changed.find("org-x04,");
  changed.replace(changed.find(",3,1", at), 4, ",3,2");
  v1::ImportRegistryResponse update;
  ASSERT_TRUE(Import("admin", "reg-2", changed, &update).ok());
  EXPECT_EQ(update.imported(), 0);
  EXPECT_EQ(update.updated(), 1);
  EXPECT_EQ(update.unchanged(), 24);
  EXPECT_THAT(update.counties(), ::testing::ElementsAre("jiangcheng/xihe"));
  EXPECT_THAT(update.replayed_counties(), ::testing::IsEmpty());

  // The first file again under its first request id, to go back to it: answered as the
  // first import was, recorded nowhere (the changed star stays), and said to be a replay;
  // under a new request id it is recorded.
  v1::ImportRegistryResponse back;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &back).ok());
  EXPECT_EQ(back.imported(), 25);
  EXPECT_THAT(back.replayed_counties(),
              ::testing::ElementsAre("jiangcheng/dongshan", "jiangcheng/xihe"));
  ASSERT_TRUE(Import("admin", "reg-1-again", RegistryCsv(), &back).ok());
  EXPECT_EQ(back.updated(), 1) << "the replay recorded the first file again";
  EXPECT_EQ(back.unchanged(), 24);
  EXPECT_THAT(back.replayed_counties(), ::testing::IsEmpty());
  // And the changed file once more, so that the registry is as the checks below expect.
  ASSERT_TRUE(Import("admin", "reg-2-again", changed, &update).ok());
  EXPECT_EQ(update.updated(), 1);

  // The same request id with other bytes.
  status = Import("admin", "reg-2", RegistryCsv(), &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");

  // A bad row: refused whole, naming line and column, in English and Chinese.
  std::string bad = RegistryCsv();
  bad += "org-bad,坏,jiangcheng/xihe/t01/org-bad,village,9,1\n";
  status = Import("admin", "reg-3", bad, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DecodeError(status).reason, "REGISTRY_CSV_INVALID");
  EXPECT_THAT(status.error_message(), HasSubstr("line 27, column grade"));
  EXPECT_THAT(DecodeError(status).message_zh, HasSubstr("第 27 行"));

  // Outside the importer's jurisdiction, and without the role.
  status = Import("admin.xihe", "reg-4", RegistryCsv(), &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("line 2: jiangcheng/dongshan/t01/org-d00"));
  status = Import("lister", "reg-5", RegistryCsv(), &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DecodeError(status).reason, "ACTOR_LACKS_ROLE");

  // More new organisations in one county than one import records (4,096): refused whole,
  // naming the county and the bound; the same rows in two imports are recorded. (Short
  // rows: 4,097 rows of a real registry are more than the server's 256 KiB request limit,
  // which casectl's imports stay under by splitting a file.)
  std::string first_part = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  std::string second_part = first_part;
  for (int i = 0; i < 4097; ++i) {
    const std::string id = absl::StrCat("n", i);
    (i < 2048 ? first_part : second_part) +=
        absl::StrCat(id, ",村,jiangcheng/xihe/t02/", id, ",village,3,0\n");
  }
  const std::string all = first_part + second_part.substr(second_part.find('\n') + 1);
  // With a new organisation of another county, which comes first: nothing is written
  // for it either.
  const std::string header = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  const std::string dongshan_row = "org-dnew,新村,jiangcheng/dongshan/t03/org-dnew,village,3,0\n";
  status = Import("admin", "reg-6a", all + dongshan_row, &resp);
  EXPECT_EQ(DecodeError(status).reason, "REGISTRY_TOO_LARGE");
  EXPECT_THAT(status.error_message(), HasSubstr("nothing was imported"));
  ASSERT_TRUE(Import("admin", "reg-6b", header + dongshan_row, &resp).ok());
  EXPECT_EQ(resp.imported(), 1) << "the refused import wrote another county's rows";
  status = Import("admin", "reg-6", all, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DecodeError(status).reason, "REGISTRY_TOO_LARGE");
  EXPECT_EQ(DecodeError(status).field, "csv");
  EXPECT_THAT(status.error_message(),
              HasSubstr("jiangcheng/xihe has 4097 new or changed organisations; at most 4096"));
  EXPECT_THAT(DecodeError(status).message_zh, HasSubstr("每县每次最多 4096 个"));
  ASSERT_TRUE(Import("admin", "reg-7", first_part, &resp).ok());
  EXPECT_EQ(resp.imported(), 2048);
  status = Import("admin", "reg-8", all, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.imported(), 2049);
  EXPECT_EQ(resp.unchanged(), 2048);
}

// Two identical imports at once (a client's retry racing its first attempt) get the same
// answer, whichever is written first: the retry reads the registry before it looks for the
// request, so it never counts the first import's rows as its own "unchanged".
TEST_F(OversightTest, IdenticalImportsRacingGetTheSameAnswer) {
  for (int round = 0; round < 12; ++round) {
    std::string csv = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
    for (int i = 0; i < 3; ++i) {
      const std::string id = absl::StrCat("org-race-", round, "-", i);
      absl::StrAppend(&csv, id, ",竞态村党支部,jiangcheng/dongshan/t02/", id, ",village,3,1\n");
    }
    const std::string request_id = absl::StrCat("race-", round);
    v1::ImportRegistryResponse answers[2];
    grpc::Status statuses[2];
    std::thread other([&] { statuses[1] = Import("admin", request_id, csv, &answers[1]); });
    statuses[0] = Import("admin", request_id, csv, &answers[0]);
    other.join();
    for (int k = 0; k < 2; ++k) {
      SCOPED_TRACE(absl::StrCat("round ", round, ", call ", k));
      // A call that lost the race to append may be asked to retry; its retry then gets the
      // first answer like any other.
      if (statuses[k].error_code() == grpc::StatusCode::ABORTED) {
        statuses[k] = Import("admin", request_id, csv, &answers[k]);
      }
      ASSERT_TRUE(statuses[k].ok()) << statuses[k].error_message();
      EXPECT_EQ(answers[k].imported(), 3);
      EXPECT_EQ(answers[k].updated(), 0);
      EXPECT_EQ(answers[k].unchanged(), 0);
    }
  }
}

// A retry is answered from the import as a whole, recorded on its own stream: also where it
// recorded nothing because every row was unchanged, after another import changed those
// rows since (the retry must not undo that change), and with rows for a county the first
// request did not hold (another request).
TEST_F(OversightTest, ARetryIsAnsweredFromTheWholeImportAndUndoesNothing) {
  v1::ImportRegistryResponse resp;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &resp).ok());
  // The same file under a new id: every row unchanged, no county appended to.
  v1::ImportRegistryResponse same;
  ASSERT_TRUE(Import("admin", "same-1", RegistryCsv(), &same).ok());
  EXPECT_EQ(same.unchanged(), 25);
  EXPECT_THAT(same.counties(), ::testing::IsEmpty());
  EXPECT_FALSE(same.replayed());
  // Another import changes one star in xihe.
  std::string changed = RegistryCsv();
  const size_t at = changed.find("org-x04,");
  changed.replace(changed.find(",3,1", at), 4, ",3,2");
  ASSERT_TRUE(Import("admin", "reg-2", changed, &resp).ok());
  ASSERT_EQ(resp.updated(), 1);

  // The all-unchanged import retried: its first answer, and the star stays changed.
  v1::ImportRegistryResponse retry;
  ASSERT_TRUE(Import("admin", "same-1", RegistryCsv(), &retry).ok());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.unchanged(), 25);
  EXPECT_EQ(retry.updated(), 0) << "the retry recorded the old star over reg-2's change";
  EXPECT_THAT(retry.counties(), ::testing::IsEmpty());
  v1::ImportRegistryResponse check;
  ASSERT_TRUE(Import("admin", "check-1", changed, &check).ok());
  EXPECT_EQ(check.unchanged(), 25) << "reg-2's change was undone";

  // The same id with a row for a county the first request did not hold: another request,
  // refused, and the row not recorded.
  const std::string header = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  const std::string nanshan_row = "org-n01,南山村,jiangcheng/nanshan/t01/org-n01,village,3,0\n";
  grpc::Status status = Import("admin", "same-1", RegistryCsv() + nanshan_row, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");
  ASSERT_TRUE(Import("admin", "check-2", header + nanshan_row, &check).ok());
  EXPECT_EQ(check.imported(), 1) << "the refused request recorded its new county";

  // The same id and rows from another administrator: another request.
  const std::string xihe =
      header + "org-x09,西河 9 社区,jiangcheng/xihe/t01/org-x09,community,3,1\n";
  ASSERT_TRUE(Import("admin", "xihe-1", xihe, &resp).ok());
  status = Import("admin.xihe", "xihe-1", xihe, &resp);
  EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");
  // A retry that recorded rows is answered as before, now whole.
  ASSERT_TRUE(Import("admin", "xihe-1", xihe, &resp).ok());
  EXPECT_TRUE(resp.replayed());
  EXPECT_EQ(resp.imported(), 1);
  EXPECT_THAT(resp.replayed_counties(), ::testing::ElementsAre("jiangcheng/xihe"));

  // The records are events of the log like any other: the deep audit checks who wrote
  // them and where, and xihe's administrator sees xihe's import only.
  casework::testing::ExpectLogVerifies(server_->address());
  const auto imports_seen_by = [this](const std::string& who) {
    auto watcher = As(who);
    auto ctx = watcher->NewContext();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::WatchEventsRequest watch;
    auto reader = v1::EventService::NewStub(watcher->channel())->WatchEvents(ctx.get(), watch);
    std::vector<std::string> imports;
    v1::WatchEventsResponse m;
    while (reader->Read(&m)) {
      for (const v1::EventRecord& e : m.events()) {
        if (e.event().has_registry_imported()) imports.push_back(e.event().request_id());
      }
      if (m.caught_up()) break;
    }
    ctx->TryCancel();
    (void)reader->Finish();
    return imports;
  };
  EXPECT_THAT(imports_seen_by("admin.xihe"), ::testing::ElementsAre("xihe-1"));
  EXPECT_THAT(imports_seen_by("auditor"),
              ::testing::ElementsAre("reg-1", "same-1", "reg-2", "check-1", "check-2", "xihe-1"));
}

// Xihe's administrator updates an organisation registered in xihe while the city's
// administrator moves it to dongshan. Either order is fine, but an update prepared while it
// was still in xihe must not land after the move: that would take it back out of dongshan,
// which xihe's administrator does not cover.
TEST_F(OversightTest, AnUpdateRacingAMoveNeverTakesTheOrganisationBack) {
  const std::string header = "organisation_id,display_name,jurisdiction,kind,grade,stars\n";
  int updates_first = 0, moves_first = 0;
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    const std::string id = absl::StrCat("org-m", round);
    v1::ImportRegistryResponse resp;
    ASSERT_TRUE(
        Import("admin", absl::StrCat("start-", round),
               absl::StrCat(header, id, ",移动村,jiangcheng/xihe/t01/", id, ",village,3,1\n"),
               &resp)
            .ok());
    const std::string update =
        absl::StrCat(header, id, ",移动村（更名）,jiangcheng/xihe/t01/", id, ",village,3,2\n");
    const std::string move =
        absl::StrCat(header, id, ",移动村,jiangcheng/dongshan/t01/", id, ",village,3,1\n");
    v1::ImportRegistryResponse answers[2];
    grpc::Status statuses[2];
    std::thread mover(
        [&] { statuses[1] = Import("admin", absl::StrCat("move-", round), move, &answers[1]); });
    statuses[0] = Import("admin.xihe", absl::StrCat("update-", round), update, &answers[0]);
    mover.join();
    ASSERT_TRUE(statuses[1].ok()) << statuses[1].error_message();
    // Where it is registered now, as the whole city's administrator's import of its moved
    // row finds it: unchanged only if it is in dongshan with that row.
    v1::ImportRegistryResponse where;
    ASSERT_TRUE(Import("admin", absl::StrCat("where-", round), move, &where).ok());
    if (statuses[0].ok()) {
      ++updates_first;
      EXPECT_EQ(where.unchanged(), 1) << "the update landed after the move and took it back";
    } else {
      ++moves_first;
      EXPECT_EQ(DecodeError(statuses[0]).reason, "JURISDICTION_NOT_COVERED")
          << statuses[0].error_message();
      EXPECT_EQ(where.unchanged(), 1);
    }
  }
  std::printf("updates first %d, moves first %d\n", updates_first, moves_first);
}

// Flags in pages: every page is cut from the listing the first page fixed (its time and
// log positions), so the pages add up to the unpaged answer even when the log grows
// meanwhile; a token is good for its own jurisdiction only.
TEST_F(OversightTest, FlagsInPagesAddUpToTheWholeList) {
  v1::ImportRegistryResponse imported;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &imported).ok());
  List("c-1", "dongshan", "org-d03", 10);
  Assist("c-1");
  List("c-2", "dongshan", "org-d00");
  const int64_t later = NowSeconds() + 40 * kDay;
  v1::ListFlagsResponse whole;
  ASSERT_TRUE(Flags("auditor", "", later, &whole).ok());
  ASSERT_GE(whole.flags_size(), 4);
  EXPECT_TRUE(whole.next_page_token().empty());

  std::vector<std::string> paged;
  std::string token;
  int pages = 0;
  do {
    v1::ListFlagsResponse page;
    const grpc::Status status = Flags("auditor", "", later, &page, 2, token);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.flags_size(), 2);
    EXPECT_EQ(page.through_position(), whole.through_position());
    for (const v1::Flag& f : page.flags()) paged.push_back(f.SerializeAsString());
    token = page.next_page_token();
    if (++pages == 1) {
      // The log grows between pages: the listing does not.
      List("c-3", "dongshan", "org-d01", 10);
      Assist("c-3");
      v1::ListFlagsResponse other;
      const grpc::Status elsewhere =
          Flags("auditor", "jiangcheng/dongshan", later, &other, 2, token);
      EXPECT_EQ(elsewhere.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << elsewhere.error_message();
      EXPECT_EQ(DecodeError(elsewhere).reason, "PAGE_TOKEN_INVALID");
      // Another time than the first page's is another listing; leaving it out is not.
      const grpc::Status retimed = Flags("auditor", "", later + 1, &other, 2, token);
      EXPECT_EQ(DecodeError(retimed).reason, "PAGE_TOKEN_INVALID") << retimed.error_message();
      v1::ListFlagsResponse untimed;
      const grpc::Status same = Flags("auditor", "", 0, &untimed, 2, token);
      ASSERT_TRUE(same.ok()) << same.error_message();
      EXPECT_EQ(untimed.through_position(), whole.through_position());
    }
  } while (!token.empty() && pages < 100);
  EXPECT_EQ(pages, (whole.flags_size() + 1) / 2);
  std::vector<std::string> expected;
  for (const v1::Flag& f : whole.flags()) expected.push_back(f.SerializeAsString());
  EXPECT_EQ(paged, expected);

  // Asked afresh, the listing holds the new case's flags too.
  v1::ListFlagsResponse now_whole;
  ASSERT_TRUE(Flags("auditor", "", later, &now_whole).ok());
  EXPECT_GT(now_whole.flags_size(), whole.flags_size());

  v1::ListFlagsResponse refused;
  const grpc::Status bad = Flags("auditor", "", later, &refused, 2, "not-a-token");
  EXPECT_EQ(DecodeError(bad).reason, "PAGE_TOKEN_INVALID") << bad.error_message();
  const grpc::Status negative = Flags("auditor", "", later, &refused, -1);
  EXPECT_EQ(negative.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(DecodeError(negative).reason, "PAGE_SIZE_INVALID");
}

TEST_F(OversightTest, FlagsAndCountyReportAsOfATime) {
  const int64_t before = NowSeconds() - 1;
  v1::ImportRegistryResponse imported;
  ASSERT_TRUE(Import("admin", "reg-1", RegistryCsv(), &imported).ok());
  List("c-1", "dongshan", "org-d03", 10);
  Assist("c-1");
  List("c-2", "dongshan", "org-d00");
  Confirm("c-2");  // only confirmed listings count toward the ratio

  // Now: dongshan listed 2 of 20 (10%) but skipped org-d01 and org-d02 (ranked below
  // org-d03); xihe listed none of its 5.
  v1::ListFlagsResponse now;
  ASSERT_TRUE(Flags("auditor", "", 0, &now).ok());
  EXPECT_THAT(Rules(now),
              ::testing::ElementsAre("LOWER_RANKED_SKIPPED counties/jiangcheng/dongshan",
                                     "LISTED_RATIO_BELOW_10_PERCENT counties/jiangcheng/xihe"));
  EXPECT_THAT(now.flags(0).detail(), HasSubstr("org-d01 (grade 4, 1 stars)"));
  EXPECT_THAT(now.flags(0).responsible(), ::testing::ElementsAre("lister"));
  EXPECT_GE(now.flags(0).evidence_positions_size(), 3);

  // Forty days on: c-1's deadline passed and its people have not visited.
  v1::ListFlagsResponse later;
  ASSERT_TRUE(Flags("auditor", "jiangcheng/dongshan", NowSeconds() + 40 * kDay, &later).ok());
  EXPECT_THAT(Rules(later),
              ::testing::ElementsAre("LOWER_RANKED_SKIPPED counties/jiangcheng/dongshan",
                                     "OVERDUE cases/c-1", "STATIONED_BUT_ABSENT cases/c-1",
                                     "STATIONED_BUT_ABSENT cases/c-1"));
  EXPECT_THAT(later.flags(1).responsible(),
              ::testing::ElementsAre("secretary.c-1", "cadre.c-1", "lister"));

  // Before the import and the listings there was nothing to flag.
  v1::ListFlagsResponse earlier;
  ASSERT_TRUE(Flags("auditor", "", before, &earlier).ok());
  EXPECT_EQ(earlier.flags_size(), 0);

  // The county table.
  v1::GetCountyReportResponse report;
  ASSERT_TRUE(CountyReport(&report).ok());
  ASSERT_EQ(report.lines_size(), 2);
  const v1::CountyLine& d = report.lines(0);
  EXPECT_EQ(d.jurisdiction(), "jiangcheng/dongshan");
  EXPECT_EQ(d.organisations(), 20);
  EXPECT_EQ(d.listed(), 2);
  EXPECT_EQ(d.assisted(), 1);
  EXPECT_EQ(d.awaiting_assistance(), 1);
  EXPECT_EQ(d.listed_ratio_bp(), 1000);
  EXPECT_EQ(d.flags(), 1);
  EXPECT_EQ(report.lines(1).listed_ratio_bp(), 0);
  EXPECT_GT(report.through_position(), 25);

  // Who may not: a lister; an approver of another county.
  v1::ListFlagsResponse denied;
  auto status = Flags("lister", "", 0, &denied);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status = Flags("approver.xihe", "jiangcheng/dongshan", 0, &denied);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DecodeError(status).reason, "JURISDICTION_NOT_COVERED");
  ASSERT_TRUE(Flags("approver.xihe", "", 0, &denied).ok());  // its own county
  EXPECT_THAT(Rules(denied),
              ::testing::ElementsAre("LISTED_RATIO_BELOW_10_PERCENT counties/jiangcheng/xihe"));
}

TEST_F(OversightTest, CountyTalksAndNoticesAppearInTheAccountabilityReport) {
  const int64_t start = NowSeconds() - 1;
  List("c-1", "dongshan", "org-d00");
  auto approver = As("approver.dongshan");
  auto stub = v1::OversightService::NewStub(approver->channel());
  v1::RecordCountyTalkRequest talk;
  talk.set_request_id("talk-1");
  talk.set_county("jiangcheng/dongshan");
  auto* who = talk.add_talked_with();
  who->set_person_id("head.dongshan");
  who->set_display_name("东山县委组织部部长");
  talk.set_subject("三年没有明显变化的村");
  v1::CountyAccountabilityResponse talked;
  {
    auto ctx = approver->NewContext();
    auto status = stub->RecordCountyTalk(ctx.get(), talk, &talked);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(talked.stream(), "counties/jiangcheng/dongshan");
  EXPECT_EQ(talked.version(), 1);
  {  // A retry answers the first record.
    v1::CountyAccountabilityResponse retried;
    auto ctx = approver->NewContext();
    ASSERT_TRUE(stub->RecordCountyTalk(ctx.get(), talk, &retried).ok());
    EXPECT_EQ(retried.position(), talked.position());
  }
  {  // The same request from someone else (who may record talks there too) is another
     // request: refused, not answered as if they had recorded the talk.
    auto auditor = As("auditor");
    v1::CountyAccountabilityResponse r;
    auto ctx = auditor->NewContext();
    auto status =
        v1::OversightService::NewStub(auditor->channel())->RecordCountyTalk(ctx.get(), talk, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");
  }
  v1::IssueCountyNoticeRequest notice;
  notice.set_request_id("notice-1");
  notice.set_county("jiangcheng/dongshan");
  notice.set_notice_id("JZ-2026-07");
  notice.set_content("通报整改: list the remaining weak branches");
  *notice.mutable_deadline() = Seconds(NowSeconds() + 30 * kDay);
  v1::CountyAccountabilityResponse noticed;
  {
    auto ctx = approver->NewContext();
    auto status = stub->IssueCountyNotice(ctx.get(), notice, &noticed);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {  // Refusals: another county's approver, a lister, a bad county path, no subject.
    auto other = As("approver.xihe");
    auto ctx = other->NewContext();
    v1::CountyAccountabilityResponse r;
    auto status =
        v1::OversightService::NewStub(other->channel())->RecordCountyTalk(ctx.get(), talk, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    auto lister = As("lister");
    auto ctx2 = lister->NewContext();
    status =
        v1::OversightService::NewStub(lister->channel())->RecordCountyTalk(ctx2.get(), talk, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    v1::RecordCountyTalkRequest bad = talk;
    bad.set_request_id("talk-bad");
    bad.set_county("jiangcheng/dongshan/t01");
    auto ctx3 = approver->NewContext();
    status = stub->RecordCountyTalk(ctx3.get(), bad, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DecodeError(status).reason, "COUNTY_INVALID");
    // A path in Chinese is quoted as it was sent, in both languages.
    bad.set_county("江城/东山/t01");
    auto ctx3b = approver->NewContext();
    status = stub->RecordCountyTalk(ctx3b.get(), bad, &r);
    EXPECT_EQ(DecodeError(status).reason, "COUNTY_INVALID");
    EXPECT_NE(status.error_message().find("\"江城/东山/t01\""), std::string::npos)
        << status.error_message();
    EXPECT_NE(DecodeError(status).message_zh.find("“江城/东山/t01”"), std::string::npos)
        << DecodeError(status).message_zh;
    // A county of the right shape that nothing is known of (a typo): refused, so that it
    // does not become a county of its own in every report.
    {
      auto auditor = As("auditor");
      v1::RecordCountyTalkRequest typo = talk;
      typo.set_request_id("talk-typo");
      typo.set_county("jiangcheng/dongsahn");
      auto ctx9 = auditor->NewContext();
      status =
          v1::OversightService::NewStub(auditor->channel())->RecordCountyTalk(ctx9.get(), typo, &r);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
      EXPECT_EQ(DecodeError(status).reason, "COUNTY_UNKNOWN");
      EXPECT_EQ(DecodeError(status).field, "county");
      v1::IssueCountyNoticeRequest typo_notice = notice;
      typo_notice.set_request_id("notice-typo");
      typo_notice.set_county("jiangcheng/dongsahn");
      auto ctx10 = auditor->NewContext();
      status = v1::OversightService::NewStub(auditor->channel())
                   ->IssueCountyNotice(ctx10.get(), typo_notice, &r);
      EXPECT_EQ(DecodeError(status).reason, "COUNTY_UNKNOWN") << status.error_message();
      // xihe has neither registry nor case in this test; once a case is listed there, it is
      // known.
      typo.set_county("jiangcheng/xihe");
      typo.set_request_id("talk-xihe");
      auto ctx11 = auditor->NewContext();
      status = v1::OversightService::NewStub(auditor->channel())
                   ->RecordCountyTalk(ctx11.get(), typo, &r);
      EXPECT_EQ(DecodeError(status).reason, "COUNTY_UNKNOWN") << status.error_message();
      List("c-x1", "xihe", "org-x01");
      auto ctx12 = auditor->NewContext();
      status = v1::OversightService::NewStub(auditor->channel())
                   ->RecordCountyTalk(ctx12.get(), typo, &r);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    bad.set_county("jiangcheng/dongshan");
    bad.set_subject("  ");
    auto ctx4 = approver->NewContext();
    status = stub->RecordCountyTalk(ctx4.get(), bad, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DecodeError(status).reason, "TALK_SUBJECT_REQUIRED");
    // The reasons a case's talk and notice get for the same mistakes, naming the field.
    const auto expect = [&](const grpc::Status& s, const std::string& reason,
                            const std::string& field) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
      EXPECT_EQ(DecodeError(s).reason, reason) << s.error_message();
      EXPECT_EQ(DecodeError(s).field, field) << s.error_message();
    };
    bad = talk;
    bad.set_request_id("talk-bad-2");
    bad.set_notes(std::string(16 * 1024 + 1, 'n'));
    auto ctx5 = approver->NewContext();
    expect(stub->RecordCountyTalk(ctx5.get(), bad, &r), "TEXT_TOO_LONG", "notes");
    bad = talk;
    bad.set_request_id("talk-bad-3");
    for (int i = 0; i < 40; ++i) bad.add_talked_with()->set_person_id(absl::StrCat("p", i));
    auto ctx6 = approver->NewContext();
    expect(stub->RecordCountyTalk(ctx6.get(), bad, &r), "TOO_MANY_ITEMS", "talked_with");
    bad = talk;
    bad.set_request_id("talk-bad-4");
    bad.mutable_talked_with(0)->set_display_name(std::string(300, 'd'));
    auto ctx7 = approver->NewContext();
    expect(stub->RecordCountyTalk(ctx7.get(), bad, &r), "TEXT_TOO_LONG",
           "talked_with[0].display_name");
    v1::IssueCountyNoticeRequest late = notice;
    late.set_request_id("notice-bad");
    *late.mutable_deadline() = Seconds(NowSeconds() - kDay);
    auto ctx8 = approver->NewContext();
    expect(stub->IssueCountyNotice(ctx8.get(), late, &r), "DEADLINE_NOT_AFTER_NOW", "deadline");
  }

  v1::GetAccountabilityReportRequest req;
  req.set_county("jiangcheng/dongshan");
  v1::GetAccountabilityReportResponse report;
  {  // A period needs its start, and ends after it starts.
    auto ctx = approver->NewContext();
    const grpc::Status no_start = stub->GetAccountabilityReport(ctx.get(), req, &report);
    EXPECT_EQ(no_start.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(client::DecodeError(no_start).reason, "PERIOD_INVALID");
    EXPECT_EQ(client::DecodeError(no_start).field, "period_start_time");
    v1::GetAccountabilityReportRequest backwards = req;
    *backwards.mutable_period_start_time() = Seconds(start);
    *backwards.mutable_period_end_time() = Seconds(start - kDay);
    auto ctx2 = approver->NewContext();
    const grpc::Status ends_first = stub->GetAccountabilityReport(ctx2.get(), backwards, &report);
    EXPECT_EQ(client::DecodeError(ends_first).reason, "PERIOD_INVALID");
    EXPECT_EQ(client::DecodeError(ends_first).field, "period_end_time");
    EXPECT_FALSE(client::DecodeError(ends_first).message_zh.empty());
  }
  *req.mutable_period_start_time() = Seconds(start);
  {
    auto ctx = approver->NewContext();
    auto status = stub->GetAccountabilityReport(ctx.get(), req, &report);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  std::vector<std::string> lines;
  for (const auto& l : report.lines()) {
    lines.push_back(absl::StrCat(l.section(), " ", l.subject(), " ",
                                 l.positions_size() > 0 ? l.positions(0) : -1));
  }
  EXPECT_THAT(lines, ::testing::ElementsAre(
                         "OPEN_CASE cases/c-1 0",
                         absl::StrCat("TALK counties/jiangcheng/dongshan ", talked.position()),
                         absl::StrCat("NOTICE counties/jiangcheng/dongshan ", noticed.position())));
  EXPECT_THAT(report.lines(1).people(),
              ::testing::ElementsAre("approver.dongshan", "head.dongshan"));
  EXPECT_EQ(report.summary().talks_in_period(), 1);
  EXPECT_EQ(report.summary().notices_in_period(), 1);
  EXPECT_EQ(report.summary().listed(), 1);
  {  // A notice whose deadline has passed since it was issued: its retry is answered with
     // the recorded notice, not refused for the deadline a new notice would need.
    v1::IssueCountyNoticeRequest soon = notice;
    soon.set_request_id("notice-soon");
    soon.set_notice_id("JZ-2026-08");
    *soon.mutable_deadline() = Seconds(NowSeconds() + 5);
    v1::CountyAccountabilityResponse issued;
    auto ctx = approver->NewContext();
    auto status = stub->IssueCountyNotice(ctx.get(), soon, &issued);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::this_thread::sleep_for(std::chrono::seconds(6));
    v1::CountyAccountabilityResponse retried;
    auto ctx2 = approver->NewContext();
    status = stub->IssueCountyNotice(ctx2.get(), soon, &retried);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(retried.position(), issued.position());
    soon.set_request_id("notice-late");  // as a new notice, it is refused
    auto ctx3 = approver->NewContext();
    status = stub->IssueCountyNotice(ctx3.get(), soon, &retried);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  }
}

TEST_F(OversightTest, TheInspectionDrawIsRecordedFirstAndReproducible) {
  for (int i = 0; i < 6; ++i) List(absl::StrCat("d-", i), "dongshan", absl::StrCat("org-d0", i));
  List("x-1", "xihe", "org-x01");
  auto auditor = As("auditor");
  auto stub = v1::OversightService::NewStub(auditor->channel());
  v1::DrawInspectionSampleRequest req;
  req.set_request_id("draw-1");
  req.set_scope("jiangcheng/dongshan");
  req.set_sample_size(3);
  v1::DrawInspectionSampleResponse drawn;
  {
    auto ctx = auditor->NewContext();
    auto status = stub->DrawInspectionSample(ctx.get(), req, &drawn);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(drawn.case_ids_size(), 3);
  EXPECT_EQ(drawn.population(), 6);
  for (const std::string& id : drawn.case_ids()) EXPECT_EQ(id.substr(0, 2), "d-");
  EXPECT_EQ(drawn.sample(), oversight::SampleStream("draw-1"));

  // The recorded event, read back from the log.
  v1::Event recorded;
  {
    auto ctx = auditor->NewContext();
    v1::WatchEventsRequest watch;
    watch.set_from_position(drawn.position());
    watch.mutable_filter()->set_stream(drawn.sample());
    auto reader = v1::EventService::NewStub(auditor->channel())->WatchEvents(ctx.get(), watch);
    v1::WatchEventsResponse m;
    while (reader->Read(&m)) {
      if (m.events_size() > 0) {
        recorded = m.events(0).event();
        break;
      }
    }
    ctx->TryCancel();
    (void)reader->Finish();
  }
  ASSERT_TRUE(recorded.has_inspection_sample_drawn());
  EXPECT_EQ(recorded.actor(), "auditor");
  const v1::InspectionSampleDrawn& d = recorded.inspection_sample_drawn();
  EXPECT_EQ(d.seed(), drawn.seed());
  EXPECT_EQ(d.checkpoint(), drawn.checkpoint());

  // A draw is not announced to those it inspects: its proof (which carries the event) is
  // the auditors', and a lister's refusal names nothing of it.
  {
    v1::GetInclusionProofRequest prove;
    prove.set_position(drawn.position());
    prove.set_tree_size(drawn.position() + 1);
    v1::GetInclusionProofResponse proof;
    auto lister = As("lister");
    auto ctx = lister->NewContext();
    const grpc::Status refused =
        v1::AuditService::NewStub(lister->channel())->GetInclusionProof(ctx.get(), prove, &proof);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(DecodeError(refused).reason, "AUDITOR_ROLE_REQUIRED");
    EXPECT_EQ(refused.error_message().find("samples/"), std::string::npos)
        << refused.error_message();
    EXPECT_EQ(refused.error_message().find("dongshan"), std::string::npos)
        << refused.error_message();
    auto ctx2 = auditor->NewContext();
    EXPECT_TRUE(v1::AuditService::NewStub(auditor->channel())
                    ->GetInclusionProof(ctx2.get(), prove, &proof)
                    .ok());
  }

  // Anyone can redo it: the seed from the checkpoint, the request and the draw's time;
  // the population from the cases listed below the checkpoint's tree size.
  const oversight::Seed seed =
      oversight::SampleSeed(d.checkpoint(), "jiangcheng/dongshan", 3, "draw-1",
                            TimeUtil::TimestampToMicroseconds(recorded.time()));
  EXPECT_EQ(std::string(seed.begin(), seed.end()), d.seed());
  std::vector<std::string> population;
  for (int i = 0; i < 6; ++i) population.push_back(absl::StrCat("d-", i));
  const auto redo = oversight::DrawSample(seed, population, 3);
  EXPECT_THAT(redo, ::testing::ElementsAreArray(drawn.case_ids().begin(), drawn.case_ids().end()));

  {  // The same request id: the same recorded draw, nothing new.
    v1::DrawInspectionSampleResponse again;
    auto ctx = auditor->NewContext();
    ASSERT_TRUE(stub->DrawInspectionSample(ctx.get(), req, &again).ok());
    EXPECT_EQ(again.position(), drawn.position());
    EXPECT_EQ(again.seed(), drawn.seed());
  }
  {  // Drawing again needs a new request id, and shows as a second recorded draw.
    v1::DrawInspectionSampleRequest second = req;
    second.set_request_id("draw-2");
    v1::DrawInspectionSampleResponse other;
    auto ctx = auditor->NewContext();
    ASSERT_TRUE(stub->DrawInspectionSample(ctx.get(), second, &other).ok());
    EXPECT_NE(other.sample(), drawn.sample());
    EXPECT_GT(other.position(), drawn.position());
  }
  {  // The same request id for another scope is refused.
    v1::DrawInspectionSampleRequest reused = req;
    reused.set_scope("jiangcheng/xihe");
    v1::DrawInspectionSampleResponse r;
    auto ctx = auditor->NewContext();
    auto status = stub->DrawInspectionSample(ctx.get(), reused, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");
  }
  {  // The same request from another auditor is another request, not a way to be handed
     // the first auditor's draw.
    v1::DrawInspectionSampleRequest xihe = req;
    xihe.set_request_id("draw-xihe");
    xihe.set_scope("jiangcheng/xihe");
    xihe.set_sample_size(1);
    auto county_auditor = As("auditor.xihe");
    v1::DrawInspectionSampleResponse first;
    auto ctx = county_auditor->NewContext();
    ASSERT_TRUE(v1::OversightService::NewStub(county_auditor->channel())
                    ->DrawInspectionSample(ctx.get(), xihe, &first)
                    .ok());
    v1::DrawInspectionSampleResponse r;
    auto ctx2 = auditor->NewContext();
    auto status = stub->DrawInspectionSample(ctx2.get(), xihe, &r);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_REUSED");
  }
  for (const std::string who : {"admin", "lister", "approver"}) {  // auditors only
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::DrawInspectionSampleRequest r = req;
    r.set_request_id("draw-" + who);
    v1::DrawInspectionSampleResponse out;
    auto status =
        v1::OversightService::NewStub(c->channel())->DrawInspectionSample(ctx.get(), r, &out);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << who;
  }
  {
    v1::DrawInspectionSampleRequest r = req;
    r.set_request_id("draw-size");
    r.set_sample_size(0);
    v1::DrawInspectionSampleResponse out;
    auto ctx = auditor->NewContext();
    auto status = stub->DrawInspectionSample(ctx.get(), r, &out);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DecodeError(status).reason, "SAMPLE_SIZE_INVALID");
  }

  // The independent verifier redoes every draw (three) from an export of the log.
  const std::string path = (dir_.path() / "ledger.export").string();
  {
    std::ofstream out(path, std::ios::binary);
    out << Export();
  }
  std::string verdict;
  EXPECT_EQ(RunPythonVerifier("export " + path + " --key " + VerifierKey(), &verdict), 0)
      << verdict;
  EXPECT_THAT(verdict, HasSubstr("\"draws_checked\": 3")) << verdict;

  // The whole log, draws included, passes the deep audit.
  casework::testing::ExpectLogVerifies(server_->address());
}

}  // namespace
}  // namespace casework

// Signed sign-off end to end over loopback with the real caseworkd: an administrator
// registers approvers' Ed25519 keys (made by the test, never stored in the repository),
// a case goes through VERIFIED and is closed by two approvers' real signatures, and every
// refusal (forged, replayed for another version, another approver's key, unknown or
// revoked key, malformed signature, weak or non-canonical keys at enrollment) answers
// with its exact status and reason. The stored sign-offs verify from the events alone.
#include <sodium.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/synchronization/notification.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "clients/client.h"
#include "clients/signing.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "services/workflow/statement.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::client::SigningKey;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using ::testing::HasSubstr;

constexpr char kCaseId[] = "sig-1";
constexpr char kInspection[] = "insp-2026-001";

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::filesystem::path WritePrincipals(const std::filesystem::path& dir,
                                      const std::string& city_level = "city") {
  const auto path = dir / "principals.json";
  std::ofstream out(path);
  out << R"({"principals": [
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "reviewer", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
  {"id": "inspector", "roles": ["inspector"], "jurisdiction": "jiangcheng"},
  {"id": "admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "admin.xihe", "roles": ["admin"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "admin.second", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "approver.county", "roles": ["approver"], "jurisdiction": "jiangcheng/dongshan", "approval_level": "county"},
  {"id": "approver.city", "roles": ["approver"], "jurisdiction": "jiangcheng", "approval_level": ")"
      << city_level << R"("},
  {"id": "approver.other", "roles": ["approver"], "jurisdiction": "jiangcheng", "approval_level": "county"},
  {"id": "approver.unlevelled", "roles": ["approver"], "jurisdiction": "jiangcheng"},
  {"id": "zhang.wei", "roles": ["inspector"], "jurisdiction": "jiangcheng"},
  {"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "auditor.dongshan", "roles": ["auditor"], "jurisdiction": "jiangcheng/dongshan"}
]})";
  return path;
}

// The reason in a status's ErrorInfo.
std::string Reason(const grpc::Status& status) {
  return casework::client::DecodeError(status).reason;
}

#define EXPECT_REFUSED(status, code, reason)                                  \
  do {                                                                        \
    const grpc::Status s_ = (status);                                         \
    EXPECT_EQ(s_.error_code(), grpc::StatusCode::code) << s_.error_message(); \
    EXPECT_EQ(Reason(s_), reason) << s_.error_message();                      \
  } while (0)

class SignOffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    std::filesystem::create_directories(dir_.path() / "data");
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", WritePrincipals(dir_.path()));
    ASSERT_TRUE(server_->Start()) << server_->error();
    for (auto* key : {&county_key_, &city_key_, &other_key_}) {
      auto made = SigningKey::Generate();
      ASSERT_TRUE(made.ok()) << made.status();
      *key = std::make_unique<SigningKey>(*std::move(made));
    }
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

  grpc::Status Register(const std::string& admin, const std::string& approver,
                        const std::string& public_key, v1::ApprovalLevel level,
                        v1::RegisterApproverKeyResponse* resp,
                        const std::string& request_id = casework::client::NewRequestId()) {
    auto c = As(admin);
    auto stub = v1::AdminService::NewStub(c->channel());
    v1::RegisterApproverKeyRequest req;
    req.set_request_id(request_id);
    req.set_approver(approver);
    req.set_public_key(public_key);
    req.set_level(level);
    auto ctx = c->NewContext();
    return stub->RegisterApproverKey(ctx.get(), req, resp);
  }

  grpc::Status Revoke(const std::string& admin, const std::string& approver,
                      const std::string& key_id, const std::string& reason) {
    auto c = As(admin);
    auto stub = v1::AdminService::NewStub(c->channel());
    v1::RevokeApproverKeyRequest req;
    req.set_request_id(casework::client::NewRequestId());
    req.set_approver(approver);
    req.set_key_id(key_id);
    req.set_reason(reason);
    v1::RevokeApproverKeyResponse resp;
    auto ctx = c->NewContext();
    return stub->RevokeApproverKey(ctx.get(), req, &resp);
  }

  // Runs a case command as `identity`; the response in `resp`.
  template <typename Request, typename Method>
  grpc::Status Do(const std::string& identity, Method method, const Request& req,
                  v1::CaseCommandResponse* resp) {
    auto c = As(identity);
    auto ctx = c->NewContext();
    return (c->cases().*method)(ctx.get(), req, resp);
  }

  // AssignAssistance at `version`: an economic department (the case is of type POOR), the
  // first secretary and one cadre named.
  static v1::AssignAssistanceRequest Assign(const std::string& request_id, int64_t version,
                                            const std::string& secretary,
                                            const std::string& cadre) {
    v1::AssignAssistanceRequest assign;
    assign.set_name(std::string("cases/") + kCaseId);
    assign.set_request_id(request_id);
    assign.set_expected_version(version);
    auto* a = assign.mutable_assignment();
    a->mutable_paired_department()->set_department_id("dept-finance");
    a->mutable_paired_department()->set_display_name("市财政局");
    a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_ECONOMIC);
    a->mutable_first_secretary()->set_person_id(secretary);
    a->mutable_first_secretary()->set_display_name(secretary);
    auto* stationed = a->add_stationed_cadres();
    stationed->set_person_id(cadre);
    stationed->set_display_name(cadre);
    a->set_plan("build a cooperative");
    return assign;
  }

  // The county approver's and the city approver's keys, each at its level.
  void RegisterCountyAndCityKeys() {
    v1::RegisterApproverKeyResponse reg;
    ASSERT_TRUE(Register("admin", "approver.county", county_key_->public_key(),
                         v1::APPROVAL_LEVEL_COUNTY, &reg)
                    .ok());
    ASSERT_TRUE(
        Register("admin", "approver.city", city_key_->public_key(), v1::APPROVAL_LEVEL_CITY, &reg)
            .ok());
  }

  // Lists, confirms, assigns and inspects (passed) the case: version 4, VERIFIED.
  void BringToVerified() {
    v1::CaseCommandResponse resp;
    v1::CreateCaseRequest create;
    create.set_case_id(kCaseId);
    create.set_request_id("create");
    auto* org = create.mutable_organisation();
    org->set_organisation_id("org-sig-1");
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-sig-1");
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    create.set_case_type(v1::CASE_TYPE_POOR);
    create.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    create.set_findings("no collective income");
    create.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
    ASSERT_TRUE(Do("lister", &v1::CaseService::Stub::CreateCase, create, &resp).ok());

    v1::ReviewListingRequest review;
    review.set_name(std::string("cases/") + kCaseId);
    review.set_request_id("review");
    review.set_expected_version(1);
    review.set_confirmed(true);
    ASSERT_TRUE(Do("reviewer", &v1::CaseService::Stub::ReviewListing, review, &resp).ok());

    ASSERT_TRUE(Do("lister", &v1::CaseService::Stub::AssignAssistance,
                   Assign("assign", 2, "zhang.wei", "chen.jie"), &resp)
                    .ok());

    v1::RecordInspectionRequest inspect;
    inspect.set_name(std::string("cases/") + kCaseId);
    inspect.set_request_id("inspect");
    inspect.set_expected_version(3);
    inspect.set_inspection_id(kInspection);
    inspect.set_passed(true);
    inspect.set_findings("income established; meetings regular");
    auto status = Do("inspector", &v1::CaseService::Stub::RecordInspection, inspect, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(resp.case_().state(), v1::CASE_STATE_VERIFIED);
    ASSERT_EQ(resp.case_().version(), 4);
  }

  // The case's events as the server lists them (one page: the test cases are short).
  std::vector<v1::EventRecord> History() {
    auto c = As("lister");
    v1::ListCaseEventsRequest list;
    list.set_name(std::string("cases/") + kCaseId);
    list.set_page_size(1000);
    v1::ListCaseEventsResponse history;
    auto ctx = c->NewContext();
    EXPECT_TRUE(c->cases().ListCaseEvents(ctx.get(), list, &history).ok());
    return {history.events().begin(), history.events().end()};
  }

  // The leaf hash of the case's event at `version`, as ListCaseEvents gives it.
  std::string LeafAt(int64_t version) {
    for (const v1::EventRecord& record : History()) {
      if (record.event().version() == version) return record.leaf_hash();
    }
    ADD_FAILURE() << "no event at version " << version;
    return "";
  }

  // A sign-off request for `version` signed by `key` over the statement of
  // `signed_version` (default: `version`) and the leaf hash of the event at that version.
  v1::SignOffClosureRequest SignedRequest(const SigningKey& key, int64_t version,
                                          int64_t signed_version = -1) {
    v1::SignOffClosureRequest req;
    req.set_name(std::string("cases/") + kCaseId);
    req.set_request_id(casework::client::NewRequestId());
    req.set_expected_version(version);
    req.set_inspection_id(kInspection);
    req.set_key_id(key.key_id());
    const int64_t signed_at = signed_version >= 0 ? signed_version : version;
    const std::string statement =
        workflow::SignOffStatement(kCaseId, signed_at, kInspection, LeafAt(signed_at));
    auto signature = key.Sign(statement);
    EXPECT_TRUE(signature.ok());
    req.set_signature(*signature);
    return req;
  }

  grpc::Status SignOff(const std::string& identity, const v1::SignOffClosureRequest& req,
                       v1::CaseCommandResponse* resp) {
    return Do(identity, &v1::CaseService::Stub::SignOffClosure, req, resp);
  }

  // The metrics text of the running server.
  std::string MetricsText() { return server_->MetricsText(); }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<SigningKey> county_key_, city_key_, other_key_;
};

// A closure admitted under the closure policy of its day (two approvers) stays good when
// the server is restarted with a stricter one (three): deep verification re-decides it
// under the policy its sign-off records and counts it, for an auditor of the whole city;
// an auditor of a county (who may verify the log too) is not told of the whole log's
// closures.
TEST_F(SignOffTest, AClosureUnderAWeakerPolicyIsCountedForTheWholeCityOnly) {
  ASSERT_NO_FATAL_FAILURE(RegisterCountyAndCityKeys());
  ASSERT_NO_FATAL_FAILURE(BringToVerified());
  v1::CaseCommandResponse resp;
  grpc::Status status = SignOff("approver.county", SignedRequest(*county_key_, 4), &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  status = SignOff("approver.city", SignedRequest(*city_key_, 5), &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(resp.case_().state(), v1::CASE_STATE_CLOSED);
  ASSERT_GE(resp.events_size(), 1);
  ASSERT_TRUE(resp.events(0).event().has_closure_signed_off());
  const int64_t closing_sign_off = resp.events(0).position();

  ASSERT_EQ(server_->Stop(), 0) << server_->error();
  server_ =
      std::make_unique<ServerProcess>(dir_.path() / "data", dir_.path() / "principals.json",
                                      std::vector<std::string>{"--closure-approvers-min", "3"});
  ASSERT_TRUE(server_->Start()) << server_->error();
  auto verify = [this](const std::string& who) {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::VerifyLogRequest req;
    req.set_deep(true);
    auto stream = v1::AuditService::NewStub(c->channel())->VerifyLog(ctx.get(), req);
    v1::VerifyLogResponse message;
    v1::VerifyLogResponse last;
    while (stream->Read(&message)) last = message;
    const grpc::Status finished = stream->Finish();
    EXPECT_TRUE(finished.ok()) << who << ": " << finished.error_message();
    EXPECT_TRUE(last.done()) << who;
    return last;
  };
  const v1::VerifyLogResponse city = verify("auditor");
  EXPECT_TRUE(city.ok()) << city.problem();
  EXPECT_EQ(city.closures_under_weaker_policy(), 1);
  EXPECT_EQ(city.first_closure_under_weaker_policy(), closing_sign_off);
  const v1::VerifyLogResponse county = verify("auditor.dongshan");
  EXPECT_TRUE(county.ok()) << county.problem();
  EXPECT_EQ(county.closures_under_weaker_policy(), 0);
  EXPECT_EQ(county.first_closure_under_weaker_policy(), 0);
}

// A key signs at the level its approver holds now: after the principals file moves the
// city approver to county level (and SIGHUP), the key registered at city level is refused.
TEST_F(SignOffTest, AKeySignsOnlyAtTheLevelItsApproverHoldsNow) {
  v1::RegisterApproverKeyResponse reg;
  ASSERT_TRUE(
      Register("admin", "approver.city", city_key_->public_key(), v1::APPROVAL_LEVEL_CITY, &reg)
          .ok());
  ASSERT_NO_FATAL_FAILURE(BringToVerified());
  WritePrincipals(dir_.path(), "county");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  for (int i = 0; i < 200 && server_->log().find("reloaded principals") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_NE(server_->log().find("reloaded principals"), std::string::npos) << server_->log();
  v1::CaseCommandResponse resp;
  EXPECT_REFUSED(SignOff("approver.city", SignedRequest(*city_key_, 4), &resp), PERMISSION_DENIED,
                 "APPROVER_LEVEL_MISMATCH");
}

// A registration sent again while its first attempt is still being written (a client
// retrying on a timeout) gets the first answer, not KEY_ALREADY_REGISTERED; later
// retries too. The same request id and body from another administrator is another
// request, and is refused.
TEST_F(SignOffTest, ARetriedRegistrationGetsTheFirstAnswer) {
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(round);
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key.ok()) << key.status();
    const std::string request_id = casework::client::NewRequestId();
    v1::RegisterApproverKeyResponse first, second;
    grpc::Status first_status, second_status;
    std::thread a([&] {
      first_status = Register("admin", "approver.other", key->public_key(),
                              v1::APPROVAL_LEVEL_COUNTY, &first, request_id);
    });
    std::thread b([&] {
      second_status = Register("admin", "approver.other", key->public_key(),
                               v1::APPROVAL_LEVEL_COUNTY, &second, request_id);
    });
    a.join();
    b.join();
    ASSERT_TRUE(first_status.ok()) << first_status.error_message();
    ASSERT_TRUE(second_status.ok()) << second_status.error_message();
    EXPECT_EQ(first.key_id(), key->key_id());
    EXPECT_EQ(second.key_id(), key->key_id());
    EXPECT_EQ(first.key().SerializeAsString(), second.key().SerializeAsString());
    EXPECT_EQ(second.key().level(), v1::APPROVAL_LEVEL_COUNTY);

    v1::RegisterApproverKeyResponse later;
    ASSERT_TRUE(Register("admin", "approver.other", key->public_key(), v1::APPROVAL_LEVEL_COUNTY,
                         &later, request_id)
                    .ok());
    EXPECT_EQ(later.key().SerializeAsString(), first.key().SerializeAsString());
    v1::RegisterApproverKeyResponse other;
    EXPECT_REFUSED(Register("admin.second", "approver.other", key->public_key(),
                            v1::APPROVAL_LEVEL_COUNTY, &other, request_id),
                   INVALID_ARGUMENT, "REQUEST_ID_REUSED");
    EXPECT_TRUE(other.key_id().empty());
  }
}

TEST_F(SignOffTest, EnrollmentChecksCallerKeyAndApprover) {
  v1::RegisterApproverKeyResponse resp;
  const std::string pk = county_key_->public_key();
  EXPECT_REFUSED(Register("lister", "approver.county", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 PERMISSION_DENIED, "ACTOR_LACKS_ROLE");
  EXPECT_REFUSED(Register("admin.xihe", "approver.county", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 PERMISSION_DENIED, "JURISDICTION_NOT_COVERED");
  EXPECT_REFUSED(Register("admin", "lister", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 FAILED_PRECONDITION, "APPROVER_NOT_IN_PRINCIPALS");
  EXPECT_REFUSED(Register("admin", "nobody", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 FAILED_PRECONDITION, "APPROVER_NOT_IN_PRINCIPALS");
  EXPECT_REFUSED(Register("admin", "bad/id", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 INVALID_ARGUMENT, "PERSON_ID_INVALID");
  EXPECT_REFUSED(Register("admin", "approver.county", pk, v1::APPROVAL_LEVEL_UNSPECIFIED, &resp),
                 INVALID_ARGUMENT, "APPROVER_LEVEL_INVALID");
  // The level is the approver's, from the principals file: a registration cannot raise it.
  EXPECT_REFUSED(Register("admin", "approver.county", pk, v1::APPROVAL_LEVEL_CITY, &resp),
                 FAILED_PRECONDITION, "APPROVER_LEVEL_MISMATCH");
  EXPECT_REFUSED(Register("admin", "approver.unlevelled", pk, v1::APPROVAL_LEVEL_COUNTY, &resp),
                 FAILED_PRECONDITION, "APPROVER_LEVEL_NOT_IN_PRINCIPALS");
  EXPECT_REFUSED(
      Register("admin", "approver.county", pk.substr(0, 31), v1::APPROVAL_LEVEL_COUNTY, &resp),
      INVALID_ARGUMENT, "PUBLIC_KEY_MALFORMED");
  // A small-order point (order 8) and a non-canonical encoding of the identity.
  EXPECT_REFUSED(Register("admin", "approver.county",
                          absl::HexStringToBytes(
                              "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
                          v1::APPROVAL_LEVEL_COUNTY, &resp),
                 INVALID_ARGUMENT, "PUBLIC_KEY_WEAK");
  EXPECT_REFUSED(Register("admin", "approver.county",
                          absl::HexStringToBytes(
                              "0100000000000000000000000000000000000000000000000000000000000080"),
                          v1::APPROVAL_LEVEL_COUNTY, &resp),
                 INVALID_ARGUMENT, "PUBLIC_KEY_NOT_CANONICAL");

  // Registered: the id is the one the client computes; a retry answers the same.
  ASSERT_TRUE(
      Register("admin", "approver.county", pk, v1::APPROVAL_LEVEL_COUNTY, &resp, "reg-1").ok());
  EXPECT_EQ(resp.key_id(), county_key_->key_id());
  EXPECT_EQ(resp.key().approver(), "approver.county");
  EXPECT_EQ(resp.key().public_key(), pk);
  EXPECT_EQ(resp.key().level(), v1::APPROVAL_LEVEL_COUNTY);
  EXPECT_EQ(resp.key().registered_by(), "admin");
  EXPECT_EQ(resp.key().register_version(), 1);
  v1::RegisterApproverKeyResponse again;
  ASSERT_TRUE(
      Register("admin", "approver.county", pk, v1::APPROVAL_LEVEL_COUNTY, &again, "reg-1").ok());
  EXPECT_EQ(again.key_id(), resp.key_id());
  EXPECT_EQ(again.key().register_version(), 1);
  EXPECT_REFUSED(Register("admin", "approver.county", city_key_->public_key(),
                          v1::APPROVAL_LEVEL_CITY, &again, "reg-1"),
                 INVALID_ARGUMENT, "REQUEST_ID_REUSED");
  // The same key again, for anyone: refused.
  EXPECT_REFUSED(Register("admin", "approver.other", pk, v1::APPROVAL_LEVEL_COUNTY, &again),
                 ALREADY_EXISTS, "KEY_ALREADY_REGISTERED");

  // Revocation: role, reason, key, owner; idempotent; a revoked key never comes back.
  EXPECT_REFUSED(Revoke("lister", "approver.county", resp.key_id(), "lost"), PERMISSION_DENIED,
                 "ACTOR_LACKS_ROLE");
  EXPECT_REFUSED(Revoke("admin", "approver.county", resp.key_id(), " "), INVALID_ARGUMENT,
                 "REVOKE_REASON_REQUIRED");
  EXPECT_REFUSED(Revoke("admin", "approver.county", "ed25519:0000000000000000", "lost"), NOT_FOUND,
                 "KEY_UNKNOWN");
  EXPECT_REFUSED(Revoke("admin", "approver.county", "", "lost"), INVALID_ARGUMENT,
                 "KEY_ID_REQUIRED");
  EXPECT_REFUSED(Revoke("admin", "approver.other", resp.key_id(), "lost"), INVALID_ARGUMENT,
                 "KEY_NOT_OWNED_BY_APPROVER");
  EXPECT_REFUSED(Revoke("admin.xihe", "approver.county", resp.key_id(), "lost"), PERMISSION_DENIED,
                 "JURISDICTION_NOT_COVERED");
  // Whose key it is shows only to an administrator of the approver named; an approver not
  // in the principals file has no jurisdiction to check, so only a city administrator may.
  EXPECT_REFUSED(Revoke("admin.xihe", "approver.other", resp.key_id(), "lost"), PERMISSION_DENIED,
                 "JURISDICTION_NOT_COVERED");
  EXPECT_REFUSED(Revoke("admin.xihe", "approver.gone", resp.key_id(), "lost"), PERMISSION_DENIED,
                 "JURISDICTION_NOT_COVERED");
  ASSERT_TRUE(Revoke("admin", "approver.county", resp.key_id(), "laptop lost").ok());
  ASSERT_TRUE(Revoke("admin", "approver.county", resp.key_id(), "laptop lost").ok());
  EXPECT_REFUSED(Register("admin", "approver.county", pk, v1::APPROVAL_LEVEL_COUNTY, &again),
                 ALREADY_EXISTS, "KEY_ALREADY_REGISTERED");
  // Refused keys are refused attempts whatever their status code.
  const std::string metrics = MetricsText();
  EXPECT_NE(metrics.find("casework_refused_attempts_total{reason=\"KEY_ALREADY_REGISTERED\"} 2\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("casework_refused_attempts_total{reason=\"KEY_UNKNOWN\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(server_->log().find("code=ALREADY_EXISTS reason=KEY_ALREADY_REGISTERED"),
            std::string::npos)
      << server_->log();
}

TEST_F(SignOffTest, TwoSignedSignOffsCloseTheCaseAndEveryBadSignatureIsRefused) {
  ASSERT_NO_FATAL_FAILURE(RegisterCountyAndCityKeys());
  v1::RegisterApproverKeyResponse reg;
  ASSERT_TRUE(
      Register("admin", "approver.other", other_key_->public_key(), v1::APPROVAL_LEVEL_COUNTY, &reg)
          .ok());
  // A second key of approver.other, revoked before use.
  auto spare = SigningKey::Generate();
  ASSERT_TRUE(spare.ok());
  ASSERT_TRUE(
      Register("admin", "approver.other", spare->public_key(), v1::APPROVAL_LEVEL_COUNTY, &reg)
          .ok());
  ASSERT_TRUE(Revoke("admin", "approver.other", spare->key_id(), "rotated").ok());

  ASSERT_NO_FATAL_FAILURE(BringToVerified());
  v1::CaseCommandResponse resp;

  // Forged: 64 random bytes.
  {
    auto req = SignedRequest(*county_key_, 4);
    std::string forged(64, '\0');
    randombytes_buf(forged.data(), forged.size());
    req.set_signature(forged);
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), PERMISSION_DENIED, "SIGNATURE_INVALID");
  }
  // A real signature with one bit flipped.
  {
    auto req = SignedRequest(*county_key_, 4);
    std::string sig = req.signature();
    sig[10] = static_cast<char>(sig[10] ^ 0x01);
    req.set_signature(sig);
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), PERMISSION_DENIED, "SIGNATURE_INVALID");
  }
  // Replayed for another version: signed for version 3, sent at the current version 4.
  EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*county_key_, 4, 3), &resp),
                 PERMISSION_DENIED, "SIGNATURE_INVALID");
  // Signed for version 3 and sent for version 3: the core says the version is stale.
  EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*county_key_, 3), &resp), ABORTED,
                 "STALE_EXPECTED_VERSION");
  // Signed for another inspection.
  {
    auto req = SignedRequest(*county_key_, 4);
    req.set_inspection_id("insp-other");
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), PERMISSION_DENIED, "SIGNATURE_INVALID");
  }
  // Another approver's key and signature.
  EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*other_key_, 4), &resp),
                 PERMISSION_DENIED, "KEY_NOT_OWNED_BY_CALLER");
  // Own key id, but signed with another key.
  {
    auto req = SignedRequest(*other_key_, 4);
    req.set_key_id(county_key_->key_id());
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), PERMISSION_DENIED, "SIGNATURE_INVALID");
  }
  // Unknown and revoked keys.
  {
    auto unregistered = SigningKey::Generate();
    ASSERT_TRUE(unregistered.ok());
    EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*unregistered, 4), &resp),
                   PERMISSION_DENIED, "KEY_UNKNOWN");
  }
  EXPECT_REFUSED(SignOff("approver.other", SignedRequest(*spare, 4), &resp), PERMISSION_DENIED,
                 "KEY_REVOKED");
  // Malformed: 63 bytes.
  {
    auto req = SignedRequest(*county_key_, 4);
    req.set_signature(req.signature().substr(0, 63));
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), INVALID_ARGUMENT, "SIGNATURE_MALFORMED");
  }
  // No signature at all: the core's refusal.
  {
    auto req = SignedRequest(*county_key_, 4);
    req.clear_signature();
    EXPECT_REFUSED(SignOff("approver.county", req, &resp), PERMISSION_DENIED,
                   "SIGN_OFF_SIGNATURE_NOT_VERIFIED");
  }
  // The right case, version and inspection, over another history (a leaf hash that is not
  // the case's latest): refused, and the message names the leaf the server holds.
  {
    auto req = SignedRequest(*county_key_, 4);
    std::string other = LeafAt(4);
    other[31] = static_cast<char>(other[31] ^ 0x80);
    auto signature = county_key_->Sign(workflow::SignOffStatement(kCaseId, 4, kInspection, other));
    ASSERT_TRUE(signature.ok());
    req.set_signature(*signature);
    const grpc::Status refused = SignOff("approver.county", req, &resp);
    EXPECT_REFUSED(refused, PERMISSION_DENIED, "SIGNATURE_INVALID");
    EXPECT_THAT(refused.error_message(), HasSubstr(absl::BytesToHexString(LeafAt(4))));
  }
  // Signed over the statement of the earlier rules (no leaf hash): a reason of its own,
  // which names the leaf hash to sign.
  {
    auto req = SignedRequest(*county_key_, 4);
    auto signature = county_key_->Sign(workflow::SignOffStatementV1(kCaseId, 4, kInspection));
    ASSERT_TRUE(signature.ok());
    req.set_signature(*signature);
    const grpc::Status refused = SignOff("approver.county", req, &resp);
    EXPECT_REFUSED(refused, PERMISSION_DENIED, "SIGNATURE_STATEMENT_OUTDATED");
    EXPECT_EQ(casework::client::DecodeError(refused).field, "signature");
    EXPECT_THAT(refused.error_message(), HasSubstr("latest: " + absl::BytesToHexString(LeafAt(4))));
  }
  // The core's checks come first: a lister holding a valid signature lacks the role.
  EXPECT_REFUSED(SignOff("lister", SignedRequest(*county_key_, 4), &resp), PERMISSION_DENIED,
                 "ACTOR_LACKS_ROLE");

  // Nothing of the above changed the case.
  {
    auto c = As("lister");
    v1::GetCaseRequest get;
    get.set_name(std::string("cases/") + kCaseId);
    v1::Case now;
    auto ctx = c->NewContext();
    ASSERT_TRUE(c->cases().GetCase(ctx.get(), get, &now).ok());
    EXPECT_EQ(now.version(), 4);
    EXPECT_EQ(now.sign_offs_size(), 0);
  }

  // GetCase gives the leaf hash to sign: that of the event at the case's version.
  {
    auto c = As("approver.county");
    v1::GetCaseRequest get;
    get.set_name(std::string("cases/") + kCaseId);
    v1::Case now;
    auto ctx = c->NewContext();
    ASSERT_TRUE(c->cases().GetCase(ctx.get(), get, &now).ok());
    EXPECT_EQ(now.last_leaf_hash(), LeafAt(4));
    EXPECT_EQ(now.last_leaf_hash().size(), 32u);
    // A ListCases row gives the same, so a case can be signed from a page.
    v1::ListCasesRequest list;
    list.set_filter("state = VERIFIED");
    v1::ListCasesResponse page;
    auto list_ctx = c->NewContext();
    ASSERT_TRUE(c->cases().ListCases(list_ctx.get(), list, &page).ok());
    ASSERT_EQ(page.cases_size(), 1);
    EXPECT_EQ(page.cases(0).last_leaf_hash(), LeafAt(4));
    EXPECT_EQ(page.cases(0).last_position(), now.last_position());
  }

  // The county approver signs version 4; the city approver signs version 5: closed.
  const v1::SignOffClosureRequest county_request = SignedRequest(*county_key_, 4);
  auto status = SignOff("approver.county", county_request, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The sign-off keeps the leaf hash it signed; the answer gives the new event's.
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_EQ(resp.events(0).event().closure_signed_off().sign_off().latest_leaf_hash(), LeafAt(4));
  EXPECT_EQ(resp.events(0).leaf_hash(), LeafAt(5));
  EXPECT_EQ(resp.case_().last_leaf_hash(), LeafAt(5));
  EXPECT_EQ(resp.case_().state(), v1::CASE_STATE_VERIFIED);
  EXPECT_EQ(resp.case_().version(), 5);
  ASSERT_EQ(resp.case_().sign_offs_size(), 1);
  EXPECT_EQ(resp.case_().sign_offs(0).key_id(), county_key_->key_id());
  EXPECT_EQ(resp.case_().sign_offs(0).level(), v1::APPROVAL_LEVEL_COUNTY);
  // Signed, not closed: the answer says what the closure still needs.
  EXPECT_EQ(resp.closure_outstanding(),
            "the closure of case sig-1 still needs 1 more approver(s) (2 in all)");
  EXPECT_EQ(resp.closure_outstanding_zh(), "案件 sig-1 销号尚需：还需 1 名审批人（共 2 名）");
  {  // The same request again (a retry after a lost answer): the first answer, in full.
    v1::CaseCommandResponse again;
    ASSERT_TRUE(SignOff("approver.county", county_request, &again).ok());
    EXPECT_TRUE(again.replayed());
    EXPECT_EQ(again.case_().version(), 5);
    EXPECT_EQ(again.closure_outstanding(), resp.closure_outstanding());
    EXPECT_EQ(again.closure_outstanding_zh(), resp.closure_outstanding_zh());
  }

  // The county approver's signature for version 4, replayed at version 5: refused.
  EXPECT_REFUSED(SignOff("approver.city", SignedRequest(*county_key_, 5, 4), &resp),
                 PERMISSION_DENIED, "KEY_NOT_OWNED_BY_CALLER");
  EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*county_key_, 5, 4), &resp),
                 PERMISSION_DENIED, "SIGNATURE_INVALID");

  // One approver signs a pending closure once.
  EXPECT_REFUSED(SignOff("approver.county", SignedRequest(*county_key_, 5), &resp),
                 FAILED_PRECONDITION, "APPROVER_ALREADY_SIGNED_OFF");
  {  // A well-signed sign-off that names another inspection than the latest passed one.
    v1::SignOffClosureRequest req = SignedRequest(*city_key_, 5);
    req.set_inspection_id("insp-elsewhere");
    auto signature =
        city_key_->Sign(workflow::SignOffStatement(kCaseId, 5, "insp-elsewhere", LeafAt(5)));
    ASSERT_TRUE(signature.ok());
    req.set_signature(*signature);
    EXPECT_REFUSED(SignOff("approver.city", req, &resp), FAILED_PRECONDITION,
                   "SIGN_OFF_INSPECTION_NOT_LATEST_PASSED");
  }

  status = SignOff("approver.city", SignedRequest(*city_key_, 5), &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.case_().state(), v1::CASE_STATE_CLOSED);
  EXPECT_EQ(resp.case_().version(), 7);
  EXPECT_TRUE(resp.closure_outstanding().empty());
  ASSERT_EQ(resp.events_size(), 2);
  EXPECT_TRUE(resp.events(0).event().has_closure_signed_off());
  EXPECT_TRUE(resp.events(1).event().has_case_closed());

  {  // A follow-up review that found no relapse takes no relapse fields.
    v1::RecordFollowUpReviewRequest review;
    review.set_name(std::string("cases/") + kCaseId);
    review.set_request_id("follow-up");
    review.set_expected_version(7);
    review.set_relapsed(false);
    review.set_findings("the result holds");
    review.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    v1::CaseCommandResponse follow_up;
    EXPECT_REFUSED(
        Do("inspector", &v1::CaseService::Stub::RecordFollowUpReview, review, &follow_up),
        INVALID_ARGUMENT, "RELAPSE_FIELDS_ONLY_WHEN_RELAPSED");
  }

  // Revoking a key later leaves the past sign-off verifiable from the log alone: the
  // events carry key id, signature and the leaf hash signed, which is the previous
  // event's; the statement is rebuilt from the envelope.
  ASSERT_TRUE(Revoke("admin", "approver.county", county_key_->key_id(), "left office").ok());
  const std::vector<v1::EventRecord> history = History();
  const std::map<std::string, std::string> public_keys = {
      {county_key_->key_id(), county_key_->public_key()},
      {city_key_->key_id(), city_key_->public_key()}};
  int verified = 0;
  for (size_t i = 0; i < history.size(); ++i) {
    const v1::EventRecord& record = history[i];
    if (!record.event().has_closure_signed_off()) continue;
    const v1::SignOff& s = record.event().closure_signed_off().sign_off();
    SCOPED_TRACE(s.approver());
    EXPECT_EQ(s.approver(), record.event().actor());
    ASSERT_GT(i, 0u);
    EXPECT_EQ(s.latest_leaf_hash(), history[i - 1].leaf_hash());
    const std::string statement = workflow::SignOffStatement(
        kCaseId, record.event().version() - 1, s.inspection_id(), s.latest_leaf_hash());
    const std::string& pk = public_keys.at(s.key_id());
    EXPECT_EQ(crypto_sign_verify_detached(
                  reinterpret_cast<const unsigned char*>(s.signature().data()),
                  reinterpret_cast<const unsigned char*>(statement.data()), statement.size(),
                  reinterpret_cast<const unsigned char*>(pk.data())),
              0);
    ++verified;
  }
  EXPECT_EQ(verified, 2);

  // A call of a method the server does not serve, with a quote in its path: counted as
  // "unknown", so that clients cannot add labels (nor break the text format).
  {
    auto c = As("admin");
    grpc::GenericStub generic(c->channel());
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer reply;
    auto ctx = c->NewContext();
    absl::Notification answered;
    grpc::Status unknown;
    generic.UnaryCall(ctx.get(), "/x.Y/not\"served", grpc::StubOptions(), &request, &reply,
                      [&](grpc::Status status) {
                        unknown = std::move(status);
                        answered.Notify();
                      });
    answered.WaitForNotification();
    EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }

  // Refused signatures are counted by reason.
  const std::string metrics = MetricsText();
  EXPECT_NE(
      metrics.find("casework_rpc_requests_total{method=\"unknown\",code=\"UNIMPLEMENTED\"} 1"),
      std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("x.Y"), std::string::npos);
  // A plaintext server has no certificate to report.
  EXPECT_EQ(metrics.find("casework_tls_"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("casework_refused_attempts_total{reason=\"SIGNATURE_INVALID\"} 7"),
            std::string::npos)
      << metrics;
  EXPECT_NE(
      metrics.find("casework_refused_attempts_total{reason=\"SIGNATURE_STATEMENT_OUTDATED\"} 1"),
      std::string::npos);
  EXPECT_NE(metrics.find("casework_refused_attempts_total{reason=\"KEY_REVOKED\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("casework_refused_attempts_total{reason=\"SIGNATURE_MALFORMED\"} 1"),
            std::string::npos);
  // Memory, by part and for the whole process, beside them.
  std::vector<std::string> gauges = {R"(casework_log_memory_bytes\{part="memtables"\} [1-9])",
                                     R"(casework_log_memory_bytes\{part="block_cache"\} [0-9])",
                                     R"(casework_log_memory_bytes\{part="table_readers"\} [0-9])",
                                     R"(process_resident_memory_bytes [1-9])",
                                     R"(casework_process_resident_memory_peak_bytes [1-9])"};
#if !defined(__SANITIZE_ADDRESS__)
  // glibc's malloc answers for the heap (AddressSanitizer's allocator does not).
  gauges.push_back(R"(casework_malloc_bytes\{state="in_use"\} [1-9])");
#endif
  for (const std::string& gauge : gauges) {
    EXPECT_TRUE(std::regex_search(metrics, std::regex(gauge))) << gauge;
  }
  // And logged with the identity.
  EXPECT_NE(server_->log().find("identity=approver.other code=PERMISSION_DENIED "
                                "reason=KEY_REVOKED"),
            std::string::npos);
}

// The whole cycle over the wire, past a closure: a follow-up review finds a relapse
// (CLOSED -> REOPENED), assistance is assigned again (-> ASSISTED), and the people of the
// first round still may not inspect the case or review it; each refusal of the relapse
// with its status and reason.
TEST_F(SignOffTest, ARelapseReopensTheCaseAndTheFirstRoundsAssistersStillMayNotInspect) {
  ASSERT_NO_FATAL_FAILURE(RegisterCountyAndCityKeys());
  ASSERT_NO_FATAL_FAILURE(BringToVerified());  // zhang.wei is the first secretary
  v1::CaseCommandResponse resp;
  ASSERT_TRUE(SignOff("approver.county", SignedRequest(*county_key_, 4), &resp).ok());
  ASSERT_TRUE(SignOff("approver.city", SignedRequest(*city_key_, 5), &resp).ok());
  ASSERT_EQ(resp.case_().state(), v1::CASE_STATE_CLOSED);
  ASSERT_EQ(resp.case_().version(), 7);

  auto review = [](const std::string& request_id) {
    v1::RecordFollowUpReviewRequest r;
    r.set_name(std::string("cases/") + kCaseId);
    r.set_request_id(request_id);
    r.set_expected_version(7);
    r.set_relapsed(true);
    r.set_findings("the collective income stopped; meetings lapsed");
    r.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
    r.add_problem_categories(v1::PROBLEM_CATEGORY_ORGANISATIONAL_LIFE);
    r.mutable_deadline()->set_seconds(NowSeconds() + 120 * 86400);
    return r;
  };
  auto follow_up = [&](const std::string& identity, const v1::RecordFollowUpReviewRequest& r) {
    return Do(identity, &v1::CaseService::Stub::RecordFollowUpReview, r, &resp);
  };
  // The first secretary of the case may not review it.
  EXPECT_REFUSED(follow_up("zhang.wei", review("fu-1")), PERMISSION_DENIED,
                 "INSPECTOR_MUST_NOT_HAVE_ASSISTED");
  {  // A relapse names what relapsed ...
    v1::RecordFollowUpReviewRequest r = review("fu-2");
    r.clear_problem_categories();
    const grpc::Status s = follow_up("inspector", r);
    EXPECT_REFUSED(s, INVALID_ARGUMENT, "PROBLEM_CATEGORIES_REQUIRED");
    EXPECT_EQ(casework::client::DecodeError(s).field, "problem_categories");
    EXPECT_FALSE(casework::client::DecodeError(s).message_zh.empty());
  }
  {  // ... and a new deadline after now.
    v1::RecordFollowUpReviewRequest r = review("fu-3");
    r.mutable_deadline()->set_seconds(NowSeconds() - 60);
    const grpc::Status s = follow_up("inspector", r);
    EXPECT_REFUSED(s, INVALID_ARGUMENT, "DEADLINE_NOT_AFTER_NOW");
    EXPECT_EQ(casework::client::DecodeError(s).field, "deadline");
  }
  ASSERT_TRUE(follow_up("inspector", review("fu-4")).ok());
  ASSERT_EQ(resp.case_().state(), v1::CASE_STATE_REOPENED);
  EXPECT_EQ(resp.case_().version(), 8);
  EXPECT_EQ(resp.case_().reopen_count(), 1);
  EXPECT_EQ(resp.case_().problem_categories_size(), 2);
  ASSERT_EQ(resp.events_size(), 1);
  EXPECT_TRUE(resp.events(0).event().has_relapse_found());

  // A reopened case takes no inspection before assistance is assigned again.
  v1::RecordInspectionRequest inspect;
  inspect.set_name(std::string("cases/") + kCaseId);
  inspect.set_request_id("inspect-round-2");
  inspect.set_expected_version(8);
  inspect.set_inspection_id("insp-2027-001");
  inspect.set_passed(true);
  inspect.set_findings("income restored");
  EXPECT_REFUSED(Do("inspector", &v1::CaseService::Stub::RecordInspection, inspect, &resp),
                 FAILED_PRECONDITION, "COMMAND_NOT_ALLOWED_IN_STATE");

  // The second round, with other people.
  const grpc::Status assigned = Do("lister", &v1::CaseService::Stub::AssignAssistance,
                                   Assign("assign-round-2", 8, "li.ming", "zhao.lei"), &resp);
  ASSERT_TRUE(assigned.ok()) << assigned.error_message();
  ASSERT_EQ(resp.case_().state(), v1::CASE_STATE_ASSISTED);
  EXPECT_EQ(resp.case_().version(), 9);

  // zhang.wei assisted the first round only: still refused (rules/2026.2).
  inspect.set_expected_version(9);
  inspect.set_request_id("inspect-round-2-by-first-secretary");
  const grpc::Status earlier =
      Do("zhang.wei", &v1::CaseService::Stub::RecordInspection, inspect, &resp);
  EXPECT_REFUSED(earlier, PERMISSION_DENIED, "INSPECTOR_MUST_NOT_HAVE_ASSISTED");
  EXPECT_FALSE(casework::client::DecodeError(earlier).message_zh.empty());
  // Someone who never assisted it inspects: verified again, with no sign-off carried over.
  inspect.set_request_id("inspect-round-2");
  const grpc::Status passed =
      Do("inspector", &v1::CaseService::Stub::RecordInspection, inspect, &resp);
  ASSERT_TRUE(passed.ok()) << passed.error_message();
  EXPECT_EQ(resp.case_().state(), v1::CASE_STATE_VERIFIED);
  EXPECT_EQ(resp.case_().sign_offs_size(), 0);
}

}  // namespace
}  // namespace casework

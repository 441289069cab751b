// A sign-off and a revocation of its key at the same moment: a sign-off checked against
// the key before the revocation must not be written after it (the log would then hold a
// sign-off with a key already revoked, which deep verification reports), and one that
// begins while the revocation is being written is refused as revoked. Over loopback
// against the real AdminService and CommandProcessor on a real log; the sign-off's
// check and its append are pulled apart with a stepped log.
#include <sodium.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "casework/v1/admin_service.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/shell/admin_service.h"
#include "services/shell/auth.h"
#include "services/shell/command_processor.h"
#include "services/shell/ed25519.h"
#include "services/shell/gate_testing.h"
#include "services/shell/principals.h"
#include "services/shell/status_testing.h"
#include "services/shell/stepped_log_testing.h"
#include "services/workflow/statement.h"
#include "services/workflow/workflow_testing.h"
#include "store/hasher.h"
#include "store/rocks_event_log.h"
#include "store/testing/temp_dir.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;
using store::testing::TempDir;
using testing::ReasonOf;
using workflow::testing::Cast;
using workflow::testing::kCaseId;
using workflow::testing::kHourMicros;
using workflow::testing::kStartMicros;

// The principals of workflow::testing::Cast that these tests use, as a file would give them.
constexpr char kPrincipals[] = R"({"principals": [
  {"id": "root", "roles": ["admin"], "jurisdiction": "city"},
  {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city/east",
   "approval_level": "county"}
]})";

class SignOffRevocation : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    store::RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    auto log = store::RocksEventLog::Open(options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    stepped_ = std::make_unique<testing::SteppedLog>(log_.get());
    auto principals = Principals::Parse(kPrincipals);
    ASSERT_TRUE(principals.ok()) << principals.status();
    holder_ = std::make_unique<PrincipalsHolder>(*principals);
    auth_ = std::make_unique<Authenticator>(holder_.get());
    const Clock clock = [this] { return now_ += kHourMicros; };
    admin_ = std::make_unique<AdminServiceImpl>(stepped_.get(), auth_.get(), holder_.get(), clock);
    processor_ = std::make_unique<CommandProcessor>(stepped_.get(), workflow::Policy{}, clock);
    processor_->set_approver_keys(&admin_->keys());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    admin_stub_ = v1::AdminService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

    // The key, registered; the case, verified.
    public_key_.resize(crypto_sign_PUBLICKEYBYTES);
    secret_key_.resize(crypto_sign_SECRETKEYBYTES);
    crypto_sign_keypair(reinterpret_cast<unsigned char*>(public_key_.data()),
                        reinterpret_cast<unsigned char*>(secret_key_.data()));
    key_id_ = ApproverKeyId(public_key_);
    {
      v1::RegisterApproverKeyRequest req;
      req.set_request_id("register-1");
      req.set_approver(cast_.county_approver.id);
      req.set_public_key(public_key_);
      req.set_level(v1::APPROVAL_LEVEL_COUNTY);
      v1::RegisterApproverKeyResponse resp;
      auto ctx = Context();
      const grpc::Status status = admin_stub_->RegisterApproverKey(ctx.get(), req, &resp);
      ASSERT_TRUE(status.ok()) << status.error_message();
      ASSERT_EQ(resp.key_id(), key_id_);
    }
    ASSERT_TRUE(Run(cast_.lister, workflow::testing::CreateCase(kStartMicros)).ok());
    ASSERT_TRUE(Run(cast_.reviewer, workflow::testing::ReviewListing(1)).ok());
    ASSERT_TRUE(Run(cast_.lister, workflow::testing::AssignAssistance(2)).ok());
    ASSERT_TRUE(Run(cast_.inspector, workflow::testing::RecordInspection(3, "insp-1", true)).ok());
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_.reset();
    processor_.reset();
    admin_.reset();
    stepped_.reset();
    log_.reset();
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& who = "root") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-casework-identity", who);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }

  grpc::Status Run(const workflow::Principal& who, const v1::Command& command,
                   v1::CaseCommandResponse* response = nullptr) {
    v1::CaseCommandResponse own;
    std::promise<grpc::Status> done;
    processor_->Execute(who, kCaseId, command, response != nullptr ? response : &own,
                        [&done](grpc::Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  }

  // The county approver's sign-off of the case at version 4, signed for real.
  v1::Command SignOff(const std::string& request_id) {
    v1::Command command = workflow::testing::SignOffClosure(4, "insp-1", key_id_);
    v1::SignOffClosureRequest* r = command.mutable_sign_off_closure();
    r->set_request_id(request_id);
    auto latest = processor_->ReadEventAt(kCaseId, 4);
    EXPECT_TRUE(latest.ok()) << latest.status();
    const std::string statement = workflow::SignOffStatement(
        kCaseId, 4, "insp-1",
        latest.ok() ? std::string(store::rfc9162::AsBytes(latest->leaf_hash)) : std::string());
    std::string signature(crypto_sign_BYTES, '\0');
    crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(statement.data()), statement.size(),
                         reinterpret_cast<const unsigned char*>(secret_key_.data()));
    r->set_signature(signature);
    return command;
  }

  grpc::Status Revoke(const std::string& request_id, const std::string& who = "root") {
    v1::RevokeApproverKeyRequest req;
    req.set_request_id(request_id);
    req.set_approver(cast_.county_approver.id);
    req.set_key_id(key_id_);
    req.set_reason("the token was lost");
    v1::RevokeApproverKeyResponse resp;
    auto ctx = Context(who);
    return admin_stub_->RevokeApproverKey(ctx.get(), req, &resp);
  }

  // Waits (bounded: 30 s) until `n` appends came to the principals append gate.
  bool Arrived(int64_t n) {
    for (int i = 0; i < 3000 && holder_->append_gate_arrivals() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return holder_->append_gate_arrivals() == n;
  }

  // Registers `public_key` for the county approver at `level`.
  grpc::Status Register(const std::string& request_id, const std::string& public_key,
                        v1::ApprovalLevel level) {
    v1::RegisterApproverKeyRequest req;
    req.set_request_id(request_id);
    req.set_approver(cast_.county_approver.id);
    req.set_public_key(public_key);
    req.set_level(level);
    v1::RegisterApproverKeyResponse resp;
    auto ctx = Context();
    return admin_stub_->RegisterApproverKey(ctx.get(), req, &resp);
  }

  static std::string NewPublicKey() {
    std::string public_key(crypto_sign_PUBLICKEYBYTES, '\0');
    std::string secret_key(crypto_sign_SECRETKEYBYTES, '\0');
    crypto_sign_keypair(reinterpret_cast<unsigned char*>(public_key.data()),
                        reinterpret_cast<unsigned char*>(secret_key.data()));
    return public_key;
  }

  // The principals of `text`, in force from now on, as a reload sets them.
  void Reload(const char* text) {
    auto principals = Principals::Parse(text);
    ASSERT_TRUE(principals.ok()) << principals.status();
    holder_->Set(*principals);
  }

  // The number of events of `kind` in the log.
  int CountOf(v1::Event::BodyCase kind) {
    auto events = log_->ReadRange(0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    int n = 0;
    for (const store::StoredEvent& stored : *events) {
      v1::Event event;
      EXPECT_TRUE(event.ParseFromString(stored.bytes));
      n += event.body_case() == kind ? 1 : 0;
    }
    return n;
  }

  // The position of the one event of `kind` in the log (-1 when there is none).
  int64_t PositionOf(v1::Event::BodyCase kind) {
    auto events = log_->ReadRange(0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    int64_t found = -1;
    for (const store::StoredEvent& stored : *events) {
      v1::Event event;
      EXPECT_TRUE(event.ParseFromString(stored.bytes));
      if (event.body_case() == kind) {
        EXPECT_EQ(found, -1) << "more than one";
        found = stored.position;
      }
    }
    return found;
  }

  TempDir dir_;
  Cast cast_;
  int64_t now_ = kStartMicros;
  std::unique_ptr<store::RocksEventLog> log_;
  std::unique_ptr<testing::SteppedLog> stepped_;
  std::unique_ptr<PrincipalsHolder> holder_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<CommandProcessor> processor_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AdminService::Stub> admin_stub_;
  std::string public_key_;
  std::string secret_key_;
  std::string key_id_;
};

// The revocation comes exactly between the sign-off's check of its key and its append:
// it waits for the sign-off (here in vain, as the sign-off is held up inside its own
// call, until its wait ends: ABORTED KEY_IN_USE), and so lands after it; retried, it is
// written.
TEST_F(SignOffRevocation, ARevocationDuringASignOffIsWrittenAfterIt) {
  grpc::Status during;
  // After the sign-off's request-id lookup, its next two reads are its key's (registered,
  // then revoked or not): right after them, before its append, revoke.
  stepped_->after_find_request = [&] {
    stepped_->after_get_projection = [&] {
      stepped_->after_get_projection = [&] { during = Revoke("revoke-1"); };
    };
  };
  v1::CaseCommandResponse signed_off;
  const grpc::Status sign_off = Run(cast_.county_approver, SignOff("sign-1"), &signed_off);
  EXPECT_TRUE(sign_off.ok()) << sign_off.error_message();
  EXPECT_EQ(during.error_code(), grpc::StatusCode::ABORTED) << during.error_message();
  EXPECT_EQ(ReasonOf(during), "KEY_IN_USE");

  const grpc::Status retried = Revoke("revoke-1");
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  const int64_t signed_at = PositionOf(v1::Event::kClosureSignedOff);
  const int64_t revoked_at = PositionOf(v1::Event::kApproverKeyRevoked);
  ASSERT_GE(signed_at, 0);
  EXPECT_GT(revoked_at, signed_at) << "the sign-off checked first is written first";

  auto key = admin_->keys().Find(key_id_);
  ASSERT_TRUE(key.ok() && key->has_value());
  EXPECT_NE((*key)->revoke_version(), 0) << "revoked from now on";
}

// A sign-off that begins while its key's revocation is being written is refused, to be
// retried; once no revocation is under way (this one was given up), the retry signs.
TEST_F(SignOffRevocation, ASignOffDuringARevocationIsRefusedForARetry) {
  auto mark = admin_->keys().MarkForRevocation(key_id_, absl::ZeroDuration());
  ASSERT_TRUE(mark.has_value());
  const grpc::Status refused = Run(cast_.county_approver, SignOff("sign-1"));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(ReasonOf(refused), "KEY_BEING_REVOKED");
  EXPECT_NE(refused.error_message().find("is being written; retry with the same request id"),
            std::string::npos)
      << refused.error_message();
  EXPECT_FALSE(admin_->keys().MarkForRevocation(key_id_, absl::ZeroDuration()).has_value())
      << "one revocation of a key at a time";
  mark->Release();
  const grpc::Status retried = Run(cast_.county_approver, SignOff("sign-1"));
  EXPECT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(PositionOf(v1::Event::kApproverKeyRevoked), -1);
}

// A revocation waits for the sign-offs that hold its key and goes on once they are
// answered (here released by another thread during the wait).
TEST_F(SignOffRevocation, ARevocationGoesOnOnceTheSignOffsHoldingItsKeyAreAnswered) {
  ApproverKeys::SignOffHold hold = admin_->keys().HoldForSignOff(key_id_);
  ASSERT_FALSE(hold.blocked());
  EXPECT_FALSE(admin_->keys().MarkForRevocation(key_id_, absl::ZeroDuration()).has_value())
      << "held: no waiting, no mark";
  std::thread answer([&hold] {
    absl::SleepFor(absl::Milliseconds(20));
    hold.Release();
  });
  // Bounded by the 60 s wait, which only a stalled machine would reach.
  auto mark = admin_->keys().MarkForRevocation(key_id_, absl::Seconds(60));
  answer.join();
  ASSERT_TRUE(mark.has_value());
  EXPECT_TRUE(admin_->keys().HoldForSignOff(key_id_).blocked());
  mark->Release();
  EXPECT_FALSE(admin_->keys().HoldForSignOff(key_id_).blocked());
}

// A reload between a key registration's checks and its append, which moves the approver
// to another level: the key, asked for at the level the approver no longer holds, is not
// registered (ABORTED PRINCIPAL_CHANGED, to be checked and retried). The reload comes
// right after the registration reads its stream's version, the last read before the append.
TEST_F(SignOffRevocation, ARegistrationWhoseApproverAReloadChangedIsNotMade) {
  const std::string public_key = NewPublicKey();
  stepped_->after_stream_version = [&] {
    Reload(R"({"principals": [
      {"id": "root", "roles": ["admin"], "jurisdiction": "city"},
      {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city",
       "approval_level": "city"}
    ]})");
  };
  const grpc::Status refused = Register("register-2", public_key, v1::APPROVAL_LEVEL_COUNTY);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ABORTED) << refused.error_message();
  EXPECT_EQ(ReasonOf(refused), "PRINCIPAL_CHANGED");
  EXPECT_EQ(CountOf(v1::Event::kApproverKeyRegistered), 1) << "only the fixture's";
  // Retried at the level the approver holds now: registered.
  const grpc::Status retried = Register("register-3", public_key, v1::APPROVAL_LEVEL_CITY);
  EXPECT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(CountOf(v1::Event::kApproverKeyRegistered), 2);
}

// A reload between an administrator's checks and the append that removes the
// administrator, or narrows their jurisdiction away from the approver: nothing is
// registered or revoked in their name.
TEST_F(SignOffRevocation, AnAdministratorAReloadRemovedOrChangedRegistersAndRevokesNothing) {
  constexpr char kWithoutRoot[] = R"({"principals": [
    {"id": "root.2", "roles": ["admin"], "jurisdiction": "city"},
    {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city/east",
     "approval_level": "county"}
  ]})";
  constexpr char kRootElsewhere[] = R"({"principals": [
    {"id": "root", "roles": ["admin"], "jurisdiction": "city/west"},
    {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city/east",
     "approval_level": "county"}
  ]})";
  stepped_->after_stream_version = [&] { Reload(kWithoutRoot); };
  const grpc::Status registered = Register("register-2", NewPublicKey(), v1::APPROVAL_LEVEL_COUNTY);
  EXPECT_EQ(registered.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << registered.error_message();
  EXPECT_EQ(CountOf(v1::Event::kApproverKeyRegistered), 1) << "only the fixture's";

  Reload(kPrincipals);
  stepped_->after_stream_version = [&] { Reload(kWithoutRoot); };
  const grpc::Status removed = Revoke("revoke-1");
  EXPECT_EQ(removed.error_code(), grpc::StatusCode::UNAUTHENTICATED) << removed.error_message();
  EXPECT_EQ(ReasonOf(removed), "IDENTITY_UNKNOWN");

  Reload(kPrincipals);
  stepped_->after_stream_version = [&] { Reload(kRootElsewhere); };
  const grpc::Status changed = Revoke("revoke-2");
  EXPECT_EQ(changed.error_code(), grpc::StatusCode::PERMISSION_DENIED) << changed.error_message();
  EXPECT_EQ(ReasonOf(changed), "PRINCIPAL_CHANGED");
  EXPECT_EQ(CountOf(v1::Event::kApproverKeyRevoked), 0);

  // With the file as it was, the revocation is made.
  Reload(kPrincipals);
  const grpc::Status revoked = Revoke("revoke-3");
  EXPECT_TRUE(revoked.ok()) << revoked.error_message();
  EXPECT_EQ(CountOf(v1::Event::kApproverKeyRevoked), 1);
}

// A key registration and a revocation while a reload records its set (the principals
// append gate held, as the reload holds it): both wait, then find their administrator
// removed by the set the reload serves, and append nothing.
TEST_F(SignOffRevocation, ARegistrationAndARevocationWaitForAReloadAndCheckTheSetItServes) {
  std::future<grpc::Status> registered, revoked;
  // After the futures: let go before they are awaited, also when an assertion fails.
  testing::HeldExclusively held(holder_->append_gate());
  const int64_t arrived = holder_->append_gate_arrivals();
  registered = std::async(std::launch::async, [&] {
    return Register("register-2", NewPublicKey(), v1::APPROVAL_LEVEL_COUNTY);
  });
  revoked = std::async(std::launch::async, [&] { return Revoke("revoke-1"); });
  // Each comes to the gate (bounded: 30 s) and waits there.
  ASSERT_TRUE(Arrived(arrived + 2));
  EXPECT_EQ(registered.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  EXPECT_EQ(revoked.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  const int64_t size = log_->Size();
  Reload(R"({"principals": [
    {"id": "root.2", "roles": ["admin"], "jurisdiction": "city"},
    {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city/east",
     "approval_level": "county"}
  ]})");
  held.Release();
  const grpc::Status registration = registered.get();
  EXPECT_EQ(registration.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << registration.error_message();
  const grpc::Status revocation = revoked.get();
  EXPECT_EQ(revocation.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << revocation.error_message();
  EXPECT_EQ(log_->Size(), size);
}

// A county's administrator revokes a key while a reload removes its approver from the
// file: refused as it is once the approver is gone (no jurisdiction shows whose the key
// was; only the whole city's administrator may revoke it), and nothing is appended.
TEST_F(SignOffRevocation, ARevocationWhoseApproverAReloadRemovedNeedsTheWholeCity) {
  Reload(R"({"principals": [
    {"id": "root", "roles": ["admin"], "jurisdiction": "city"},
    {"id": "admin.east", "roles": ["admin"], "jurisdiction": "city/east"},
    {"id": "sun.li", "roles": ["approver"], "jurisdiction": "city/east",
     "approval_level": "county"}
  ]})");
  std::future<grpc::Status> revoked;
  testing::HeldExclusively held(holder_->append_gate());  // after the future, as above
  const int64_t arrived = holder_->append_gate_arrivals();
  revoked = std::async(std::launch::async, [&] { return Revoke("revoke-1", "admin.east"); });
  ASSERT_TRUE(Arrived(arrived + 1));
  const int64_t size = log_->Size();
  Reload(R"({"principals": [
    {"id": "root", "roles": ["admin"], "jurisdiction": "city"},
    {"id": "admin.east", "roles": ["admin"], "jurisdiction": "city/east"}
  ]})");
  held.Release();
  const grpc::Status revocation = revoked.get();
  EXPECT_EQ(revocation.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << revocation.error_message();
  EXPECT_EQ(ReasonOf(revocation), "JURISDICTION_NOT_COVERED");
  EXPECT_EQ(log_->Size(), size);
}

}  // namespace
}  // namespace casework::shell

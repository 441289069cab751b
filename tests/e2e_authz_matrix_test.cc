// The authorization matrix, over the wire against the real caseworkd on 127.0.0.1: every
// RPC of every service in proto/casework/v1/*_service.proto, called as every role both
// inside and outside the target's jurisdiction, as an identity the server does not know
// and with no identity at all.
//
// The RPCs are not listed by hand: they are enumerated from the service descriptors of
// the generated code (the files are found by scanning the proto folder), and called by
// their full name through grpc::GenericStub, with a request built from the method's input
// type and a few fields filled from kExpectations. kExpectations is the one table of who
// may call what: an RPC in the descriptors without an entry fails the test, and so does
// an entry that names no RPC, so a new RPC cannot escape the check.
//
// A cell passes when:
//  - an allowed caller is not refused PERMISSION_DENIED or UNAUTHENTICATED (any other
//    answer is fine: the requests are minimal, so most end INVALID_ARGUMENT or
//    FAILED_PRECONDITION before they change anything);
//  - a caller without the role is refused PERMISSION_DENIED for its role
//    (ACTOR_LACKS_ROLE, AUDITOR_ROLE_REQUIRED);
//  - a caller with the role but outside the target's jurisdiction is refused
//    PERMISSION_DENIED for its jurisdiction (JURISDICTION_NOT_COVERED), or, for RPCs that filter
//    rather than refuse (ListCases), is answered without the target;
//  - an unknown identity is refused UNAUTHENTICATED IDENTITY_UNKNOWN, a call without
//    identity UNAUTHENTICATED IDENTITY_MISSING.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/case_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "clients/client.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

#ifndef CW_PROTO_DIR
#error "CW_PROTO_DIR must name proto/casework/v1"
#endif

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;

// --- Roles, and the identities that hold them (tests/server_process.cc) ----------------

enum RoleBit : uint32_t {
  kLister = 1u << 0,
  kReviewer = 1u << 1,
  kAssister = 1u << 2,
  kInspector = 1u << 3,
  kApprover = 1u << 4,
  kAuditor = 1u << 5,
  kAdmin = 1u << 6,
};
constexpr uint32_t kEveryRole =
    kLister | kReviewer | kAssister | kInspector | kApprover | kAuditor | kAdmin;

struct RoleName {
  RoleBit bit;
  const char* name;
};
constexpr RoleName kRoles[] = {
    {kLister, "lister"},       {kReviewer, "reviewer"}, {kAssister, "assister"},
    {kInspector, "inspector"}, {kApprover, "approver"}, {kAuditor, "auditor"},
    {kAdmin, "admin"},
};

// Each role is held by "<role>" (jurisdiction "jiangcheng", the whole city: inside the
// target) and by "<role>.xihe" (the county "jiangcheng/xihe": outside the target, which
// lies in "jiangcheng/dongshan").
constexpr char kTargetCounty[] = "jiangcheng/dongshan";
constexpr char kTargetOrgJurisdiction[] = "jiangcheng/dongshan/t01/authz-org";
constexpr char kTargetCase[] = "authz-target";
constexpr char kTargetApprover[] = "approver.dongshan";

// --- The table ---------------------------------------------------------------------

enum class Scope {
  kNone,      // jurisdiction does not apply: every caller with the role is served
  kRefused,   // callers outside the target's jurisdiction are refused PERMISSION_DENIED
  kFiltered,  // callers outside are served, but the answer holds nothing of the target
};

struct Expectation {
  std::string_view method;  // "/casework.v1.Service/Method"
  uint32_t roles;           // who may call it (RoleBit)
  Scope scope;
  // The request in protobuf text format. Placeholders: $CASE (the target's name),
  // $VERSION (its current version), $REQ (a fresh request id), $NEW_CASE (a fresh case
  // id), $ORG_JURISDICTION (the target organisation's path), $COUNTY (the target's
  // county), $POSITION (the position of the target's first event), $APPROVER (an
  // approver of the target's county), $KEY (that approver's registered key id).
  std::string_view request;
  // kFiltered only: the repeated field of the response that lists what was found.
  std::string_view found_field = "";
  // Not served yet: every caller, whoever it is, must get UNIMPLEMENTED. When the RPC is
  // implemented this test fails until the entry states the real permissions.
  bool unimplemented = false;
};

constexpr char kCommand[] = R"(name: "$CASE" request_id: "$REQ" expected_version: $VERSION)";

// What the code enforces: the core's command table (services/workflow/decider.cc) for
// case commands, the shell's checks (services/shell/*.cc) for reads, audit and admin.
const Expectation kExpectations[] = {
    // CaseService: commands, checked by the core for role and then jurisdiction.
    {"/casework.v1.CaseService/CreateCase", kLister, Scope::kRefused,
     R"(case_id: "$NEW_CASE" request_id: "$REQ"
        organisation { jurisdiction: "$ORG_JURISDICTION" })"},
    {"/casework.v1.CaseService/ReviewListing", kReviewer, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/AmendListing", kLister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/AssignAssistance", kLister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/ReplaceAssignment", kLister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordFieldVisit", kAssister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordMeasure", kAssister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordFunds", kAssister, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordInspection", kInspector, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/SignOffClosure", kApprover, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/SendBack", kApprover, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordFollowUpReview", kInspector, Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/RecordAdmonishmentTalk", kApprover | kAuditor | kAdmin,
     Scope::kRefused, kCommand},
    {"/casework.v1.CaseService/IssueRectificationNotice", kApprover | kAuditor | kAdmin,
     Scope::kRefused, kCommand},
    // CaseService: reads, any role, inside the caller's jurisdiction.
    {"/casework.v1.CaseService/GetCase", kEveryRole, Scope::kRefused, R"(name: "$CASE")"},
    {"/casework.v1.CaseService/ListCaseEvents", kEveryRole, Scope::kRefused, R"(name: "$CASE")"},
    {"/casework.v1.CaseService/ListCases", kEveryRole, Scope::kFiltered,
     R"(filter: 'jurisdiction = "$COUNTY"')", "cases"},

    // EventService: any role; a jurisdiction filter must lie inside the caller's.
    {"/casework.v1.EventService/WatchEvents", kEveryRole, Scope::kRefused,
     R"(filter { jurisdiction: "$COUNTY" })"},

    // AuditService: auditor or admin, except what carries hashes only (checkpoints and
    // consistency proofs: every role) and the proof of a case's event (below); what
    // carries case data only inside the jurisdiction; an export only to the whole city.
    {"/casework.v1.AuditService/GetCheckpoint", kEveryRole, Scope::kNone, ""},
    {"/casework.v1.AuditService/GetConsistencyProof", kEveryRole, Scope::kNone,
     "first_tree_size: 1"},
    {"/casework.v1.AuditService/VerifyLog", kAuditor | kAdmin, Scope::kNone, ""},
    // Any role may prove an event of its jurisdiction (an approver, before signing).
    {"/casework.v1.AuditService/GetInclusionProof", kEveryRole, Scope::kRefused,
     "position: $POSITION"},
    {"/casework.v1.AuditService/GetCaseAsOf", kAuditor | kAdmin, Scope::kRefused,
     R"(name: "$CASE")"},
    {"/casework.v1.AuditService/GetLedgerAsOf", kAuditor | kAdmin, Scope::kRefused,
     R"(jurisdiction: "$COUNTY")"},
    {"/casework.v1.AuditService/ListCasesAsOf", kAuditor | kAdmin, Scope::kRefused,
     R"(jurisdiction: "$COUNTY")"},
    {"/casework.v1.AuditService/ExportLog", kAuditor | kAdmin, Scope::kRefused, ""},

    // AdminService: admin, acting on approvers inside its jurisdiction.
    {"/casework.v1.AdminService/RegisterApproverKey", kAdmin, Scope::kRefused,
     R"(request_id: "$REQ" approver: "$APPROVER")"},
    {"/casework.v1.AdminService/RevokeApproverKey", kAdmin, Scope::kRefused,
     R"(request_id: "$REQ" approver: "$APPROVER" key_id: "$KEY" reason: "authorization matrix")"},
    // A backup holds the whole ledger: an admin of the whole city.
    {"/casework.v1.AdminService/CreateBackup", kAdmin, Scope::kRefused, ""},
    // The principals file grants roles everywhere: an admin of the whole city.
    {"/casework.v1.AdminService/ReloadPrincipals", kAdmin, Scope::kRefused, ""},

    // OversightService (services/shell/oversight_service.h, docs/oversight.md).
    {"/casework.v1.OversightService/ImportRegistry", kAdmin, Scope::kRefused,
     R"(request_id: "$REQ"
        csv: "organisation_id,display_name,jurisdiction,kind,grade,stars\n"
             "authz-org,Authz,$ORG_JURISDICTION,village,4,0\n")"},
    {"/casework.v1.OversightService/GetCountyReport", kAuditor | kAdmin | kApprover,
     Scope::kRefused, R"(jurisdiction: "$COUNTY")"},
    {"/casework.v1.OversightService/ListFlags", kAuditor | kAdmin | kApprover, Scope::kRefused,
     R"(jurisdiction: "$COUNTY")"},
    {"/casework.v1.OversightService/GetAccountabilityReport", kAuditor | kAdmin | kApprover,
     Scope::kRefused, R"(county: "$COUNTY" period_start_time { seconds: 1 })"},
    {"/casework.v1.OversightService/RecordCountyTalk", kApprover | kAuditor | kAdmin,
     Scope::kRefused,
     R"(request_id: "$REQ" county: "$COUNTY" talked_with { person_id: "head.county" }
        subject: "authorization matrix")"},
    {"/casework.v1.OversightService/IssueCountyNotice", kApprover | kAuditor | kAdmin,
     Scope::kRefused,
     R"(request_id: "$REQ" county: "$COUNTY" notice_id: "N-1" content: "authorization matrix")"},
    {"/casework.v1.OversightService/DrawInspectionSample", kAuditor, Scope::kRefused,
     R"(request_id: "$REQ" scope: "$COUNTY" sample_size: 1)"},
};

const std::set<std::string> kRoleRefusals = {"ACTOR_LACKS_ROLE", "AUDITOR_ROLE_REQUIRED"};
const std::set<std::string> kJurisdictionRefusals = {"JURISDICTION_NOT_COVERED"};

// --- The RPCs of the contract, from the descriptors ------------------------------------

// One message of each *_service.proto, so that the linker keeps every generated file and
// its descriptor is in the generated pool. A new service file must be added here; until
// it is, ServiceFiles() names it as missing.
const FileDescriptor* const kLinkedServiceFiles[] = {
    v1::GetCaseRequest::descriptor()->file(),
    v1::WatchEventsRequest::descriptor()->file(),
    v1::GetCheckpointRequest::descriptor()->file(),
    v1::RegisterApproverKeyRequest::descriptor()->file(),
    v1::ImportRegistryRequest::descriptor()->file(),
};

// The generated descriptors of every proto/casework/v1/*_service.proto; `missing`
// collects the files that have none in this binary.
std::vector<const FileDescriptor*> ServiceFiles(std::vector<std::string>* missing) {
  std::vector<const FileDescriptor*> files;
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(CW_PROTO_DIR)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 14 && name.ends_with("_service.proto")) names.insert(name);
  }
  for (const std::string& name : names) {
    const FileDescriptor* file =
        DescriptorPool::generated_pool()->FindFileByName("casework/v1/" + name);
    if (file == nullptr) {
      missing->push_back(name);
    } else {
      files.push_back(file);
    }
  }
  return files;
}

std::string FullMethodName(const MethodDescriptor* m) {
  return absl::StrCat("/", m->service()->full_name(), "/", m->name());
}

std::map<std::string, const MethodDescriptor*> ContractMethods(std::vector<std::string>* missing) {
  std::map<std::string, const MethodDescriptor*> methods;
  for (const FileDescriptor* file : ServiceFiles(missing)) {
    for (int s = 0; s < file->service_count(); ++s) {
      for (int m = 0; m < file->service(s)->method_count(); ++m) {
        const MethodDescriptor* method = file->service(s)->method(m);
        methods[FullMethodName(method)] = method;
      }
    }
  }
  return methods;
}

const Expectation* ExpectationFor(std::string_view method) {
  for (const Expectation& e : kExpectations) {
    if (e.method == method) return &e;
  }
  return nullptr;
}

// --- Calls by name -------------------------------------------------------------------

struct Answer {
  grpc::Status status;
  bool got_message = false;  // the first response message arrived
  std::string message;       // its bytes
};

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Calls `method` with one request message and reads the first response message (or the
// status). A server stream is cancelled after its first message. Every wait is bounded
// by the call's deadline.
Answer CallByName(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                  bool server_streaming, const std::string& request_bytes,
                  const std::string* identity) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (identity != nullptr) ctx.AddMetadata("x-casework-identity", *identity);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::CompletionQueue cq;
  Answer answer;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  auto wait = [&cq]() {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) return false;
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  bool ok = wait();
  if (ok) {
    call->WriteLast(ToByteBuffer(request_bytes), grpc::WriteOptions(), reinterpret_cast<void*>(2));
    ok = wait();
  }
  if (ok) {
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(3));
    if (wait()) {
      answer.got_message = true;
      answer.message = FromByteBuffer(response);
      if (server_streaming) ctx.TryCancel();  // the first message is enough
    }
  }
  call->Finish(&answer.status, reinterpret_cast<void*>(4));
  wait();
  cq.Shutdown();
  void* tag = nullptr;
  while (cq.Next(&tag, &ok)) {
  }
  return answer;
}

// --- The fixture: one server, a target case, a registered approver key -------------

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// RFC 8032, section 7.1, test 1: a valid Ed25519 public key.
std::string Rfc8032PublicKey() {
  const std::string hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

class AuthzMatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::filesystem::create_directories(dir_->path() / "data");
    server_ = new ServerProcess(dir_->path() / "data",
                                casework::testing::WriteTestPrincipals(dir_->path()));
    if (!server_->Start()) {
      setup_error_ = server_->error();
      return;
    }
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));

    // The target: a case listed by "lister" in "jiangcheng/dongshan".
    Client lister(ClientOptions{.server = server_->address(), .identity = "lister"});
    v1::CreateCaseRequest create;
    create.set_case_id(kTargetCase);
    create.set_request_id("authz-create");
    auto* org = create.mutable_organisation();
    org->set_organisation_id("authz-org");
    org->set_display_name("Authorization matrix village");
    org->set_jurisdiction(kTargetOrgJurisdiction);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    create.set_case_type(v1::CASE_TYPE_WEAK);
    create.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    create.set_findings("the secretary post is vacant");
    create.mutable_deadline()->set_seconds(NowSeconds() + 365 * 86400);
    v1::CaseCommandResponse created;
    auto ctx = lister.NewContext();
    auto status = lister.cases().CreateCase(ctx.get(), create, &created);
    if (!status.ok() || created.events_size() == 0) {
      setup_error_ = "creating the target case: " + status.error_message();
      return;
    }
    target_position_ = created.events(0).position();

    // A registered key of the target county's approver, for RevokeApproverKey.
    Client admin(ClientOptions{.server = server_->address(), .identity = "admin"});
    v1::RegisterApproverKeyRequest reg;
    reg.set_request_id("authz-register");
    reg.set_approver(kTargetApprover);
    reg.set_public_key(Rfc8032PublicKey());
    reg.set_level(v1::APPROVAL_LEVEL_COUNTY);
    v1::RegisterApproverKeyResponse registered;
    auto admin_ctx = admin.NewContext();
    status = v1::AdminService::NewStub(admin.channel())
                 ->RegisterApproverKey(admin_ctx.get(), reg, &registered);
    if (!status.ok()) {
      setup_error_ = "registering the approver key: " + status.error_message();
      return;
    }
    key_id_ = new std::string(registered.key_id());
  }

  static void TearDownTestSuite() {
    delete key_id_;
    delete channel_;
    delete server_;
    delete dir_;
    key_id_ = nullptr;
    channel_ = nullptr;
    server_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // The target's current version, read by the city's administrator.
  int64_t TargetVersion() {
    Client admin(ClientOptions{.server = server_->address(), .identity = "admin"});
    v1::GetCaseRequest get;
    get.set_name(absl::StrCat("cases/", kTargetCase));
    v1::Case c;
    auto ctx = admin.NewContext();
    auto status = admin.cases().GetCase(ctx.get(), get, &c);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return c.version();
  }

  // The request of `e` for `method`, placeholders filled; empty with a failure on error.
  std::unique_ptr<Message> RequestFor(const MethodDescriptor* method, const Expectation& e) {
    std::string text(e.request);
    const int n = ++counter_;
    std::vector<std::pair<std::string, std::string>> values = {
        {"$CASE", absl::StrCat("cases/", kTargetCase)},
        {"$REQ", absl::StrCat("authz-", n)},
        {"$NEW_CASE", absl::StrCat("authz-new-", n)},
        {"$ORG_JURISDICTION", kTargetOrgJurisdiction},
        {"$COUNTY", kTargetCounty},
        {"$POSITION", absl::StrCat(target_position_)},
        {"$APPROVER", kTargetApprover},
        {"$KEY", *key_id_},
    };
    if (text.find("$VERSION") != std::string::npos) {
      values.emplace_back("$VERSION", absl::StrCat(TargetVersion()));
    }
    text = absl::StrReplaceAll(text, values);
    const Message* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(method->input_type());
    if (prototype == nullptr) {
      ADD_FAILURE() << "no generated type for " << method->input_type()->full_name();
      return nullptr;
    }
    std::unique_ptr<Message> request(prototype->New());
    if (!google::protobuf::TextFormat::ParseFromString(text, request.get())) {
      ADD_FAILURE() << "the request of " << e.method << " in kExpectations does not parse as "
                    << method->input_type()->full_name() << ": " << text;
      return nullptr;
    }
    return request;
  }

  std::pair<int, int> CheckRows(bool unimplemented_rows);

  static inline TempDir* dir_ = nullptr;
  static inline ServerProcess* server_ = nullptr;
  static inline std::shared_ptr<grpc::Channel>* channel_ = nullptr;
  static inline std::string setup_error_;
  static inline int64_t target_position_ = 0;
  static inline std::string* key_id_ = nullptr;
  static inline int counter_ = 0;
};

std::string Describe(const Answer& a) {
  if (a.got_message) return "a response message";
  auto details = casework::client::DecodeError(a.status);
  return absl::StrCat("status ", a.status.error_code(), " ", details.reason, " (",
                      a.status.error_message(), ")");
}

// The number of entries of the repeated field `field` in a response of `method`.
int FoundCount(const MethodDescriptor* method, const std::string& bytes, std::string_view field) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(method->output_type());
  std::unique_ptr<Message> response(prototype->New());
  if (!response->ParseFromString(bytes)) return -1;
  const auto* f = method->output_type()->FindFieldByName(std::string(field));
  if (f == nullptr || !f->is_repeated()) return -1;
  return response->GetReflection()->FieldSize(*response, f);
}

// --- The tests -----------------------------------------------------------------------

TEST_F(AuthzMatrix, TheTableNamesExactlyTheRpcsOfTheContract) {
  std::vector<std::string> missing_files;
  const auto methods = ContractMethods(&missing_files);
  EXPECT_TRUE(missing_files.empty())
      << "these service files of " << CW_PROTO_DIR << " have no generated descriptor in this "
      << "test binary; add one of their messages to kLinkedServiceFiles: "
      << absl::StrJoin(missing_files, ", ");
  EXPECT_GE(methods.size(), 30u) << "the descriptors hold fewer RPCs than the contract has";
  std::vector<std::string> unlisted;
  for (const auto& [name, method] : methods) {
    if (ExpectationFor(name) == nullptr) unlisted.push_back(name);
  }
  EXPECT_TRUE(unlisted.empty())
      << "these RPCs have no entry in kExpectations (tests/e2e_authz_matrix_test.cc); add "
         "one stating which roles may call each and whether jurisdiction applies: "
      << absl::StrJoin(unlisted, ", ");
  std::vector<std::string> unknown;
  std::set<std::string_view> seen;
  for (const Expectation& e : kExpectations) {
    if (!methods.contains(std::string(e.method))) unknown.push_back(std::string(e.method));
    EXPECT_TRUE(seen.insert(e.method).second) << e.method << " is in kExpectations twice";
  }
  EXPECT_TRUE(unknown.empty()) << "kExpectations names RPCs that the contract does not have; "
                                  "remove or rename them: "
                               << absl::StrJoin(unknown, ", ");
}

// The server serves exactly the casework.v1 services of the proto files (asked through
// server reflection), so no service is served that the matrix does not enumerate.
TEST_F(AuthzMatrix, TheServerServesExactlyTheServicesOfTheContract) {
  std::vector<std::string> missing_files;
  std::set<std::string> contract;
  for (const FileDescriptor* file : ServiceFiles(&missing_files)) {
    for (int s = 0; s < file->service_count(); ++s) contract.insert(file->service(s)->full_name());
  }
  // grpc.reflection.v1alpha.ServerReflectionRequest{list_services: "*"} (field 7).
  const std::string list_services("\x3a\x01*", 3);
  const Answer answer =
      CallByName(*channel_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 /*server_streaming=*/true, list_services, nullptr);
  ASSERT_TRUE(answer.got_message) << Describe(answer);
  // ServerReflectionResponse.list_services_response (6) . service (1) . name (1).
  std::set<std::string> served;
  google::protobuf::UnknownFieldSet response;
  ASSERT_TRUE(response.ParseFromString(answer.message));
  for (int i = 0; i < response.field_count(); ++i) {
    if (response.field(i).number() != 6) continue;
    google::protobuf::UnknownFieldSet list;
    ASSERT_TRUE(list.ParseFromString(response.field(i).length_delimited()));
    for (int j = 0; j < list.field_count(); ++j) {
      google::protobuf::UnknownFieldSet service;
      ASSERT_TRUE(service.ParseFromString(list.field(j).length_delimited()));
      for (int k = 0; k < service.field_count(); ++k) {
        const std::string& name = service.field(k).length_delimited();
        if (name.starts_with("casework.")) served.insert(name);
      }
    }
  }
  EXPECT_EQ(served, contract) << "the server's casework services differ from the services of "
                              << CW_PROTO_DIR << "/*_service.proto";
}

// Calls every RPC whose entry is (or is not, by `unimplemented_rows`) marked
// unimplemented as every caller; returns the number of RPCs and calls.
std::pair<int, int> AuthzMatrix::CheckRows(bool unimplemented_rows) {
  std::vector<std::string> missing_files;
  const auto methods = ContractMethods(&missing_files);
  EXPECT_FALSE(methods.empty());
  int rpcs = 0;
  int cells = 0;
  for (const auto& [name, method] : methods) {
    const Expectation* e = ExpectationFor(name);
    if (e == nullptr) {
      ADD_FAILURE() << name << " has no entry in kExpectations; it is not checked";
      continue;
    }
    if (e->unimplemented != unimplemented_rows) continue;
    ++rpcs;
    SCOPED_TRACE(name);
    auto call = [&](const std::string* identity) -> Answer {
      auto request = RequestFor(method, *e);
      if (request == nullptr) return Answer{.status = grpc::Status(grpc::StatusCode::INTERNAL, "")};
      ++cells;
      return CallByName(*channel_, name, method->server_streaming(), request->SerializeAsString(),
                        identity);
    };

    if (e->unimplemented) {
      std::vector<std::string> everyone = {"nobody"};
      for (const RoleName& r : kRoles) {
        everyone.emplace_back(r.name);
        everyone.push_back(absl::StrCat(r.name, ".xihe"));
      }
      for (const std::string& who : everyone) {
        const Answer a = call(&who);
        EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
            << name << " as " << who << ": marked unimplemented in kExpectations, but got "
            << Describe(a) << "; replace its entry with the real permissions";
      }
      continue;
    }

    // Callers the server does not know.
    {
      const std::string nobody = "nobody";
      const Answer a = call(&nobody);
      EXPECT_EQ(a.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << name << " as an unknown identity: " << Describe(a);
      EXPECT_EQ(casework::client::DecodeError(a.status).reason, "IDENTITY_UNKNOWN")
          << name << " as an unknown identity: " << Describe(a);
      const Answer b = call(nullptr);
      EXPECT_EQ(b.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << name << " without identity: " << Describe(b);
      EXPECT_EQ(casework::client::DecodeError(b.status).reason, "IDENTITY_MISSING")
          << name << " without identity: " << Describe(b);
    }

    for (const RoleName& r : kRoles) {
      const bool has_role = (e->roles & r.bit) != 0;
      for (const bool inside : {true, false}) {
        const std::string who = inside ? std::string(r.name) : absl::StrCat(r.name, ".xihe");
        const std::string cell =
            absl::StrCat(name, " as ", who, " (role ", r.name, ", ", inside ? "inside" : "outside",
                         " ", kTargetCounty, ")");
        const Answer a = call(&who);
        const auto code = a.status.error_code();
        const std::string reason = casework::client::DecodeError(a.status).reason;
        if (!has_role) {
          EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED)
              << cell << ": the role may not call it, but got " << Describe(a);
          EXPECT_TRUE(kRoleRefusals.contains(reason))
              << cell << ": refused, but not for its role: " << Describe(a);
          continue;
        }
        if (!inside && e->scope == Scope::kRefused) {
          EXPECT_EQ(code, grpc::StatusCode::PERMISSION_DENIED)
              << cell << ": outside the jurisdiction, but got " << Describe(a);
          EXPECT_TRUE(kJurisdictionRefusals.contains(reason))
              << cell << ": refused, but not for its jurisdiction: " << Describe(a);
          continue;
        }
        // Allowed: anything but a refusal of who the caller is.
        EXPECT_TRUE(a.got_message || (code != grpc::StatusCode::PERMISSION_DENIED &&
                                      code != grpc::StatusCode::UNAUTHENTICATED))
            << cell << ": allowed, but got " << Describe(a);
        if (e->scope == Scope::kFiltered) {
          EXPECT_TRUE(a.status.ok()) << cell << ": " << Describe(a);
          const int found = FoundCount(method, a.message, e->found_field);
          if (inside) {
            EXPECT_GE(found, 1) << cell << ": the target is missing from " << e->found_field;
          } else {
            EXPECT_EQ(found, 0) << cell << ": outside the jurisdiction, yet " << e->found_field
                                << " holds " << found << " entries";
          }
        }
      }
    }
  }
  return {rpcs, cells};
}

TEST_F(AuthzMatrix, EveryRpcAsEveryRoleInsideAndOutsideTheJurisdiction) {
  const auto [rpcs, cells] = CheckRows(/*unimplemented_rows=*/false);
  // 16 callers for each RPC: 7 roles inside and outside, an unknown identity, none.
  EXPECT_EQ(cells, rpcs * 16);
  EXPECT_GE(rpcs, 25);
  std::printf("authorization matrix: %d RPCs, %d calls\n", rpcs, cells);
}

// The block of kExpectations marked unimplemented: every caller gets UNIMPLEMENTED, so
// that an RPC implemented later fails here until its entry states its permissions.
// Rows marked unimplemented (none in this build) must answer UNIMPLEMENTED to everyone.
TEST_F(AuthzMatrix, RpcsMarkedUnimplementedAnswerUnimplementedToEveryone) {
  const auto [rpcs, cells] = CheckRows(/*unimplemented_rows=*/true);
  EXPECT_EQ(cells, rpcs * 15);
  std::printf("marked unimplemented: %d RPCs, %d calls\n", rpcs, cells);
}

}  // namespace
}  // namespace casework

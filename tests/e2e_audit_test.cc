// The audit service end to end against the real caseworkd on 127.0.0.1: role checks,
// checkpoints and proofs checked with the RFC 9162 verifiers, replay as of, verify (also
// deep), export verified offline, receipts; and tampering with the stored log (edit,
// delete, reorder, truncate, done with RocksDB directly while the server is stopped) is
// detected by VerifyLog and against a checkpoint kept from before.
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "clients/casectl/kept_checkpoint.h"
#include "clients/client.h"
#include "clients/signing.h"
#include "gtest/gtest.h"
#include "services/workflow/statement.h"
#include "store/checkpoint.h"
#include "store/export.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"
#include "store/testing/wal_records.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

v1::CreateCaseRequest ListingOf(const std::string& case_id, const std::string& county) {
  v1::CreateCaseRequest req;
  req.set_case_id(case_id);
  req.set_request_id("r-" + case_id);
  auto* org = req.mutable_organisation();
  org->set_organisation_id("org-" + case_id);
  org->set_display_name("东山村党支部");
  org->set_jurisdiction("jiangcheng/" + county + "/t01/org-" + case_id);
  org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
  req.set_case_type(v1::CASE_TYPE_POOR);
  req.add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  req.set_findings("no collective income");
  req.mutable_deadline()->set_seconds(NowSeconds() + 180 * 86400);
  return req;
}

// The store's counter merge operator (same name and arithmetic): int64 big-endian sums.
class AddInt64 final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* out, rocksdb::Logger*) const override {
    int64_t base = 0;
    int64_t delta = 0;
    if (existing != nullptr &&
        !store::format::DecodeInt64({existing->data(), existing->size()}, &base)) {
      return false;
    }
    if (!store::format::DecodeInt64({value.data(), value.size()}, &delta)) return false;
    *out = store::format::EncodeInt64(
        static_cast<int64_t>(static_cast<uint64_t>(base) + static_cast<uint64_t>(delta)));
    return true;
  }
  const char* Name() const override { return "casework.AddInt64"; }
};

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    std::filesystem::create_directories(dir_.path() / "data");
    StartServer();
  }

  void StartServer(std::vector<std::string> extra_args = {}) {
    server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_, extra_args);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  // Runs caseworkd with `flags` on the data folder, its output to `out`; its exit code.
  int RunCaseworkd(const std::string& flags, const std::string& out) {
    const std::string command = std::string(CASEWORKD_PATH) + " " + flags + " --data-dir " +
                                (dir_.path() / "data").string() + " > " + out + " 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static std::string ReadText(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  std::unique_ptr<v1::AuditService::Stub> Audit(Client& c) {
    return v1::AuditService::NewStub(c.channel());
  }

  void CreateCases(int n, const std::string& prefix = "c", const std::string& county = "dongshan") {
    auto lister = As("lister");
    for (int i = 0; i < n; ++i) {
      v1::CaseCommandResponse resp;
      auto ctx = lister->NewContext();
      auto status = lister->cases().CreateCase(
          ctx.get(), ListingOf(prefix + std::to_string(i), county), &resp);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  v1::GetCheckpointResponse Checkpoint() {
    auto auditor = As("auditor");
    v1::GetCheckpointResponse resp;
    auto ctx = auditor->NewContext();
    EXPECT_TRUE(Audit(*auditor)->GetCheckpoint(ctx.get(), {}, &resp).ok());
    return resp;
  }

  // The server's key, read from its key file.
  store::NoteSigner Signer() {
    auto signer =
        store::LoadSigningKey((dir_.path() / "data" / "log.key").string(), "casework/log");
    EXPECT_TRUE(signer.ok()) << signer.status();
    return *std::move(signer);
  }
  // Its verifier key, as an auditor would be given it.
  store::NoteVerifier Verifier() { return Signer().verifier(); }

  struct Verdict {
    bool ok = false;
    int64_t first_bad = -1;
    std::string problem;
    int messages = 0;
    grpc::Status status;
  };
  Verdict VerifyLog(bool deep, int64_t from = 0, int64_t to = 0) {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    v1::VerifyLogRequest req;
    req.set_deep(deep);
    req.set_from_position(from);
    req.set_to_position(to);
    auto reader = Audit(*auditor)->VerifyLog(ctx.get(), req);
    Verdict v;
    v1::VerifyLogResponse m;
    while (reader->Read(&m)) {
      ++v.messages;
      if (m.done()) {
        v.ok = m.ok();
        v.first_bad = m.ok() ? -1 : m.first_bad_position();
        v.problem = m.problem();
      }
    }
    v.status = reader->Finish();
    return v;
  }

  std::string Export(int64_t from = 0, int64_t to = 0) {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    v1::ExportLogRequest req;
    req.set_from_position(from);
    req.set_to_position(to);
    auto reader = Audit(*auditor)->ExportLog(ctx.get(), req);
    std::string out;
    v1::ExportLogResponse m;
    while (reader->Read(&m)) out += m.data();
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  // Opens the stopped server's RocksDB and hands the events column family to `edit`.
  void Tamper(const std::function<void(rocksdb::DB*, rocksdb::ColumnFamilyHandle*)>& edit) {
    TamperFamilies([&](rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
      edit(db, handles[1]);
    });
  }

  // The same with every column family, in the order of store/log_format.h: default,
  // events, streams, requests, projections, tree, meta.
  void TamperFamilies(
      const std::function<void(rocksdb::DB*, const std::vector<rocksdb::ColumnFamilyHandle*>&)>&
          edit) {
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const char* name :
         {"default", "events", "streams", "requests", "projections", "tree", "meta"}) {
      rocksdb::ColumnFamilyOptions cf;
      // The counters' merge operator, by name, so recovery can flush the projections.
      if (std::string_view(name) == "projections") cf.merge_operator = std::make_shared<AddInt64>();
      families.emplace_back(name, cf);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    rocksdb::DBOptions options;
    options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
    auto s = rocksdb::DB::Open(options, (dir_.path() / "data" / "log").string(), families, &handles,
                               &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    edit(db, handles);
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }

  static std::string Get(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events, int64_t position) {
    std::string value;
    auto s = db->Get({}, events, store::format::PositionKey(position), &value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return value;
  }

  // Checks the event at `position` against a checkpoint kept from before: inclusion of
  // the served bytes under the old root.
  bool IncludedUnder(int64_t position, const v1::GetCheckpointResponse& old) {
    auto auditor = As("auditor");
    auto ctx = auditor->NewContext();
    v1::GetInclusionProofRequest req;
    req.set_position(position);
    req.set_tree_size(old.tree_size());
    v1::GetInclusionProofResponse resp;
    if (!Audit(*auditor)->GetInclusionProof(ctx.get(), req, &resp).ok()) return false;
    const store::Hash leaf = store::rfc9162::HashLeaf(resp.leaf());
    std::vector<std::string> proof(resp.proof().begin(), resp.proof().end());
    return store::merkle::VerifyInclusion(position, old.tree_size(), store::rfc9162::AsBytes(leaf),
                                          proof, old.root_hash())
        .ok();
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

// Replays of the ledger serve auditors and administrators only; checkpoints and
// consistency proofs, hashes only, serve every role, so that anyone who kept a checkpoint
// (an approver, a receipt's holder) can check that the log only grew since.
TEST_F(AuditTest, OnlyAuditorsAndAdminsMayAuditWhileCheckpointsServeEveryRole) {
  CreateCases(3, "r", "dongshan");
  for (const char* who : {"lister", "approver", "inspector", "auditor", "admin"}) {
    const bool auditor = std::string(who) == "auditor" || std::string(who) == "admin";
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::GetLedgerAsOfRequest ledger;
    ledger.set_jurisdiction("jiangcheng/dongshan");
    v1::GetLedgerAsOfResponse counts;
    auto status = Audit(*c)->GetLedgerAsOf(ctx.get(), ledger, &counts);
    if (auditor) {
      EXPECT_TRUE(status.ok()) << who << ": " << status.error_message();
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << who;
      EXPECT_EQ(client::DecodeError(status).reason, "AUDITOR_ROLE_REQUIRED") << who;
    }
    auto ctx2 = c->NewContext();
    v1::GetCheckpointResponse head;
    status = Audit(*c)->GetCheckpoint(ctx2.get(), {}, &head);
    ASSERT_TRUE(status.ok()) << who << ": " << status.error_message();
    EXPECT_TRUE(store::OpenCheckpoint(head.checkpoint(), Verifier(), "casework/log").ok()) << who;
    auto ctx3 = c->NewContext();
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(1);
    v1::GetConsistencyProofResponse proof;
    status = Audit(*c)->GetConsistencyProof(ctx3.get(), req, &proof);
    ASSERT_TRUE(status.ok()) << who << ": " << status.error_message();
    EXPECT_EQ(proof.second_tree_size(), head.tree_size()) << who;
  }
}

// A kept checkpoint (casectl --checkpoint-file) moves on only along a proof, and never
// back. A run whose checkpoint is older than the one kept (another run kept a newer one
// meanwhile) proves its own a prefix of the kept one and leaves the file as it is; an
// older checkpoint of another history, signed with the log's own key, is refused.
TEST_F(AuditTest, AKeptCheckpointMovesOnlyForwardAlongProofs) {
  CreateCases(3, "k", "dongshan");
  const v1::GetCheckpointResponse older = Checkpoint();
  CreateCases(3, "l", "dongshan");
  const v1::GetCheckpointResponse newer = Checkpoint();
  ASSERT_GT(newer.tree_size(), older.tree_size());
  const store::NoteVerifier verifier = Verifier();
  auto older_opened = store::OpenCheckpoint(older.checkpoint(), verifier, "casework/log");
  auto newer_opened = store::OpenCheckpoint(newer.checkpoint(), verifier, "casework/log");
  ASSERT_TRUE(older_opened.ok() && newer_opened.ok());
  const std::string path = (dir_.path() / "kept.note").string();
  auto approver = As("approver");  // checkpoints and consistency proofs serve every role
  auto first = client::AdvanceKeptCheckpoint(*approver, verifier, path, newer.checkpoint(),
                                             *newer_opened, /*create=*/true);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->first_use);
  EXPECT_EQ(ReadText(path), newer.checkpoint());

  auto behind = client::AdvanceKeptCheckpoint(*approver, verifier, path, older.checkpoint(),
                                              *older_opened, /*create=*/true);
  ASSERT_TRUE(behind.ok()) << behind.status();
  EXPECT_TRUE(behind->kept_is_newer);
  EXPECT_EQ(behind->size, newer.tree_size());
  EXPECT_EQ(ReadText(path), newer.checkpoint()) << "the kept checkpoint moved back";

  // The older size over another root, signed with the server's key: not part of the kept one.
  store::Checkpoint other = *older_opened;
  other.root[0] ^= 1;
  auto other_note = Signer().Sign(store::FormatCheckpoint(other));
  ASSERT_TRUE(other_note.ok());
  auto refused = client::AdvanceKeptCheckpoint(*approver, verifier, path, *other_note, other,
                                               /*create=*/true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("not shown to be part of it"), std::string::npos)
      << refused.status();
  EXPECT_EQ(ReadText(path), newer.checkpoint());
}

// Requests an auditor can get wrong, each refused naming the field: a negative size is
// INVALID_ARGUMENT, a size past the log OUT_OF_RANGE, an as-of time outside the API's
// range TIME_INVALID (no overflow), a verify range with from past to names from_position.
TEST_F(AuditTest, MalformedAuditRequestsAreRefusedNamingTheField) {
  CreateCases(5, "d", "dongshan");
  ASSERT_EQ(Checkpoint().tree_size(), 5);
  auto auditor = As("auditor");
  auto audit = Audit(*auditor);
  const auto expect = [](const grpc::Status& status, grpc::StatusCode code,
                         const std::string& reason, const std::string& field) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    const auto error = client::DecodeError(status);
    EXPECT_EQ(error.reason, reason) << status.error_message();
    EXPECT_EQ(error.field, field) << status.error_message();
  };
  {
    auto ctx = auditor->NewContext();
    v1::GetInclusionProofRequest req;
    req.set_tree_size(-1);
    v1::GetInclusionProofResponse resp;
    expect(audit->GetInclusionProof(ctx.get(), req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "AUDIT_REQUEST_INVALID", "tree_size");
    auto ctx2 = auditor->NewContext();
    req.set_tree_size(6);
    expect(audit->GetInclusionProof(ctx2.get(), req, &resp), grpc::StatusCode::OUT_OF_RANGE,
           "POSITION_BEYOND_LOG", "tree_size");
    req.set_tree_size(0);
    req.set_position(-2);
    auto ctx3 = auditor->NewContext();
    expect(audit->GetInclusionProof(ctx3.get(), req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "AUDIT_REQUEST_INVALID", "position");
    req.set_position(5);
    auto ctx4 = auditor->NewContext();
    expect(audit->GetInclusionProof(ctx4.get(), req, &resp), grpc::StatusCode::OUT_OF_RANGE,
           "POSITION_BEYOND_LOG", "position");
  }
  {
    v1::GetConsistencyProofResponse resp;
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(0);
    auto ctx = auditor->NewContext();
    expect(audit->GetConsistencyProof(ctx.get(), req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "AUDIT_REQUEST_INVALID", "first_tree_size");
    req.set_first_tree_size(2);
    req.set_second_tree_size(-3);
    auto ctx2 = auditor->NewContext();
    expect(audit->GetConsistencyProof(ctx2.get(), req, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "AUDIT_REQUEST_INVALID", "second_tree_size");
  }
  for (const int64_t seconds : {int64_t{-1}, int64_t{253402300800}, INT64_MAX}) {
    SCOPED_TRACE(seconds);
    auto ctx = auditor->NewContext();
    v1::GetCaseAsOfRequest req;
    req.set_name("cases/d1");
    req.mutable_as_of()->mutable_time()->set_seconds(seconds);
    v1::Case c;
    expect(audit->GetCaseAsOf(ctx.get(), req, &c), grpc::StatusCode::INVALID_ARGUMENT,
           "TIME_INVALID", "as_of.time");
    auto ctx2 = auditor->NewContext();
    v1::GetLedgerAsOfRequest ledger;
    *ledger.mutable_as_of() = req.as_of();
    v1::GetLedgerAsOfResponse resp;
    expect(audit->GetLedgerAsOf(ctx2.get(), ledger, &resp), grpc::StatusCode::INVALID_ARGUMENT,
           "TIME_INVALID", "as_of.time");
  }
  {
    Verdict v = VerifyLog(false, 4, 2);
    expect(v.status, grpc::StatusCode::OUT_OF_RANGE, "POSITION_BEYOND_LOG", "from_position");
    v = VerifyLog(false, 0, 9);
    expect(v.status, grpc::StatusCode::OUT_OF_RANGE, "POSITION_BEYOND_LOG", "to_position");
    v = VerifyLog(false, -1, 3);
    expect(v.status, grpc::StatusCode::INVALID_ARGUMENT, "AUDIT_REQUEST_INVALID", "from_position");
  }
}

// The ledger's cases as of a point, in pages: each page replayed to the first page's
// point (a position, or now: the log's size then), so the pages hold each case once, as
// it stood then, whatever was written since; a county's listing holds its own cases only.
TEST_F(AuditTest, TheLedgersCasesAsOfAPointComeInPages) {
  CreateCases(7, "d", "dongshan");
  CreateCases(3, "x", "xihe");
  auto auditor = As("auditor");
  auto audit = Audit(*auditor);
  const auto list = [&](const std::string& jurisdiction, int64_t position, int32_t page_size,
                        const std::string& token, v1::ListCasesAsOfResponse* resp) {
    auto ctx = auditor->NewContext();
    v1::ListCasesAsOfRequest req;
    req.set_jurisdiction(jurisdiction);
    if (position >= 0) req.mutable_as_of()->set_position(position);
    req.set_page_size(page_size);
    req.set_page_token(token);
    return audit->ListCasesAsOf(ctx.get(), req, resp);
  };
  std::vector<std::string> ids;
  std::string token;
  int pages = 0;
  do {
    v1::ListCasesAsOfResponse page;
    // Later pages leave the point out: the token holds it.
    const grpc::Status status = list("", pages == 0 ? 9 : -1, 3, token, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(page.cases_size(), 3);
    EXPECT_EQ(page.through_position(), 9);
    for (const v1::Case& c : page.cases()) {
      ids.push_back(c.case_id());
      EXPECT_EQ(c.version(), 1);
    }
    token = page.next_page_token();
    if (++pages == 1) {
      CreateCases(2, "late", "dongshan");  // after the point: in no page
      v1::ListCasesAsOfResponse other;
      const grpc::Status moved = list("", 8, 3, token, &other);
      EXPECT_EQ(client::DecodeError(moved).reason, "PAGE_TOKEN_INVALID") << moved.error_message();
      const grpc::Status narrowed = list("jiangcheng/xihe", -1, 3, token, &other);
      EXPECT_EQ(client::DecodeError(narrowed).reason, "PAGE_TOKEN_INVALID")
          << narrowed.error_message();
    }
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ids, (std::vector<std::string>{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "x0", "x1"}));

  // As of now: the first page fixes the log's size (12 events), so cases written while
  // the pages are read are in none of them.
  ids.clear();
  token.clear();
  pages = 0;
  do {
    v1::ListCasesAsOfResponse page;
    const grpc::Status status = list("jiangcheng/dongshan", -1, 4, token, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(page.through_position(), 12);
    for (const v1::Case& c : page.cases()) ids.push_back(c.case_id());
    token = page.next_page_token();
    if (++pages == 1) CreateCases(2, "later", "dongshan");
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(ids,
            (std::vector<std::string>{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "late0", "late1"}));

  v1::ListCasesAsOfResponse xihe;
  ASSERT_TRUE(list("jiangcheng/xihe", -1, 0, "", &xihe).ok());
  ASSERT_EQ(xihe.cases_size(), 3);
  EXPECT_EQ(xihe.cases(2).case_id(), "x2");
  EXPECT_TRUE(xihe.next_page_token().empty());
  v1::ListCasesAsOfResponse refused;
  EXPECT_EQ(client::DecodeError(list("", -1, -1, "", &refused)).reason, "PAGE_SIZE_INVALID");
  auto county = As("auditor.xihe");
  auto ctx = county->NewContext();
  v1::ListCasesAsOfRequest outside;
  outside.set_jurisdiction("jiangcheng/dongshan");
  const grpc::Status denied = Audit(*county)->ListCasesAsOf(ctx.get(), outside, &refused);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << denied.error_message();
}

// An inclusion proof carries its event: the principals recorded in the log (a stream of
// no jurisdiction) only to an auditor of the whole city, not to a county's.
TEST_F(AuditTest, AnEventOfNoJurisdictionIsProvedOnlyToTheWholeCity) {
  server_.reset();
  std::filesystem::create_directories(dir_.path() / "data2");
  server_ = std::make_unique<ServerProcess>(dir_.path() / "data2", principals_);
  server_->set_record_principals(true);
  ASSERT_TRUE(server_->Start()) << server_->error();
  CreateCases(1, "x", "xihe");
  ASSERT_EQ(Checkpoint().tree_size(), 2);
  const auto proof = [this](const std::string& who, int64_t position,
                            v1::GetInclusionProofResponse* resp) {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::GetInclusionProofRequest req;
    req.set_position(position);
    return Audit(*c)->GetInclusionProof(ctx.get(), req, resp);
  };
  v1::GetInclusionProofResponse resp;
  ASSERT_TRUE(proof("auditor", 0, &resp).ok());
  EXPECT_EQ(resp.record().event().stream(), "config/principals");
  v1::GetInclusionProofResponse county;
  const grpc::Status refused = proof("auditor.xihe", 0, &county);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED) << refused.error_message();
  EXPECT_EQ(client::DecodeError(refused).reason, "JURISDICTION_NOT_COVERED");
  EXPECT_FALSE(county.has_record());
  // The county's own case: proved to its auditor.
  ASSERT_TRUE(proof("auditor.xihe", 1, &county).ok());
  EXPECT_EQ(county.record().event().stream(), "cases/x0");
}

TEST_F(AuditTest, ProofsReplayVerifyExportAndReceipts) {
  CreateCases(30, "d", "dongshan");
  const v1::GetCheckpointResponse old = Checkpoint();
  ASSERT_EQ(old.tree_size(), 30);
  CreateCases(20, "x", "xihe");
  const v1::GetCheckpointResponse now = Checkpoint();
  ASSERT_EQ(now.tree_size(), 50);
  const store::NoteVerifier verifier = Verifier();
  auto opened = store::OpenCheckpoint(now.checkpoint(), verifier, "casework/log");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->size, 50);

  auto auditor = As("auditor");
  auto audit = Audit(*auditor);
  {  // Consistency of the old checkpoint with the new one.
    auto ctx = auditor->NewContext();
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(30);
    v1::GetConsistencyProofResponse resp;
    ASSERT_TRUE(audit->GetConsistencyProof(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.second_tree_size(), 50);
    EXPECT_FALSE(resp.checkpoint().empty());
    std::vector<std::string> proof(resp.proof().begin(), resp.proof().end());
    EXPECT_TRUE(
        store::merkle::VerifyConsistency(30, 50, proof, old.root_hash(), now.root_hash()).ok());
  }
  for (int64_t p : {0, 17, 29, 49}) EXPECT_TRUE(IncludedUnder(p, now)) << p;
  EXPECT_TRUE(IncludedUnder(12, old));
  {  // Case as of a position and a time; unknown before it existed.
    auto ctx = auditor->NewContext();
    v1::GetCaseAsOfRequest req;
    req.set_name("cases/x3");
    req.mutable_as_of()->set_position(34);
    v1::Case c;
    ASSERT_TRUE(audit->GetCaseAsOf(ctx.get(), req, &c).ok());
    EXPECT_EQ(c.version(), 1);
    EXPECT_EQ(c.last_position(), 33);
    auto ctx2 = auditor->NewContext();
    req.mutable_as_of()->set_position(33);
    EXPECT_EQ(audit->GetCaseAsOf(ctx2.get(), req, &c).error_code(), grpc::StatusCode::NOT_FOUND);
    auto ctx3 = auditor->NewContext();
    req.mutable_as_of()->mutable_time()->set_seconds(NowSeconds() + 10);
    EXPECT_TRUE(audit->GetCaseAsOf(ctx3.get(), req, &c).ok());
  }
  {  // The ledger as of: counts by county.
    auto ctx = auditor->NewContext();
    v1::GetLedgerAsOfRequest req;
    req.mutable_as_of()->set_position(40);
    v1::GetLedgerAsOfResponse resp;
    ASSERT_TRUE(audit->GetLedgerAsOf(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.through_position(), 40);
    std::map<std::string, int64_t> listed;
    for (const auto& row : resp.counts()) listed[row.jurisdiction()] = row.listed();
    EXPECT_EQ(listed["jiangcheng"], 40);
    EXPECT_EQ(listed["jiangcheng/dongshan"], 30);
    EXPECT_EQ(listed["jiangcheng/xihe"], 10);
  }
  {  // Verify, plain and deep.
    Verdict plain = VerifyLog(false);
    EXPECT_TRUE(plain.ok) << plain.problem;
    Verdict deep = VerifyLog(true);
    EXPECT_TRUE(deep.ok) << deep.problem;
    EXPECT_TRUE(deep.status.ok());
  }
  {  // Export, whole and a range, verified offline with the server key.
    for (auto [from, to] : {std::pair<int64_t, int64_t>{0, 0}, {10, 37}, {30, 50}}) {
      std::istringstream in(Export(from, to));
      auto verdict = store::VerifyExport(in, verifier);
      ASSERT_TRUE(verdict.ok()) << verdict.status();
      EXPECT_TRUE(verdict->ok) << from << " " << to << ": " << verdict->problem;
      EXPECT_EQ(verdict->records, (to == 0 ? 50 : to) - from);
    }
  }
  {  // A receipt: the checkpoint that includes the command and the proof of its event.
    auto lister = As("lister");
    auto req = ListingOf("r1", "dongshan");
    req.set_want_receipt(true);
    v1::CaseCommandResponse resp;
    auto ctx = lister->NewContext();
    ASSERT_TRUE(lister->cases().CreateCase(ctx.get(), req, &resp).ok());
    const v1::Receipt& r = resp.receipt();
    auto cp = store::OpenCheckpoint(r.checkpoint(), verifier, "casework/log");
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_EQ(r.leaf_index(), 50);
    EXPECT_EQ(r.tree_size(), cp->size);
    std::vector<std::string> proof(r.inclusion_proof().begin(), r.inclusion_proof().end());
    EXPECT_TRUE(store::merkle::VerifyInclusion(50, cp->size, r.leaf_hash(), proof,
                                               store::rfc9162::AsBytes(cp->root))
                    .ok());
    // Without asking: no receipt.
    v1::CaseCommandResponse plain;
    auto ctx2 = lister->NewContext();
    ASSERT_TRUE(lister->cases().CreateCase(ctx2.get(), ListingOf("r2", "xihe"), &plain).ok());
    EXPECT_FALSE(plain.has_receipt());
  }
}

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Runs tools/verify_export.py (Debian's python3 with python3-cryptography); its exit code.
// Prints its verdict when it is not 0.
int RunPythonVerifier(const std::string& args) {
  const std::string command =
      std::string(CW_PYTHON3) + " " + CW_VERIFY_EXPORT_PY + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string output;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = pclose(pipe);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0)
    std::printf("verify_export.py %s\n  -> %d: %s", args.substr(0, 40).c_str(), code,
                output.c_str());
  return code;
}

TEST_F(AuditTest, IndependentPythonVerifierChecksARealExportCheckpointAndProofs) {
  CreateCases(25, "p", "dongshan");
  const v1::GetCheckpointResponse old = Checkpoint();
  CreateCases(12, "q", "xihe");
  const v1::GetCheckpointResponse now = Checkpoint();
  const std::string vkey = Verifier().VerifierKey();
  const auto dir = dir_.path();
  auto write = [](const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  };
  const std::string whole = Export();
  write(dir / "whole.export", whole);
  write(dir / "range.export", Export(5, 30));
  write(dir / "checkpoint.note", now.checkpoint());
  EXPECT_EQ(RunPythonVerifier("export " + (dir / "whole.export").string() + " --key " + vkey), 0);
  EXPECT_EQ(RunPythonVerifier("export " + (dir / "range.export").string() + " --key " + vkey), 0);
  EXPECT_EQ(
      RunPythonVerifier("checkpoint " + (dir / "checkpoint.note").string() + " --key " + vkey), 0);
  // One flipped byte in an event, and a key that is not the server's.
  std::string tampered = whole;
  const size_t at = tampered.find("no collective income");
  ASSERT_NE(at, std::string::npos);
  tampered[at] = 'N';
  write(dir / "tampered.export", tampered);
  EXPECT_EQ(RunPythonVerifier("export " + (dir / "tampered.export").string() + " --key " + vkey),
            1);
  auto other = store::NoteSigner::FromSeed("casework/log", std::string(32, '\x07'));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(RunPythonVerifier("export " + (dir / "whole.export").string() + " --key " +
                              other->verifier().VerifierKey()),
            1);

  auto auditor = As("auditor");
  {  // Inclusion of position 11 under the latest checkpoint.
    auto ctx = auditor->NewContext();
    v1::GetInclusionProofRequest req;
    req.set_position(11);
    v1::GetInclusionProofResponse resp;
    ASSERT_TRUE(Audit(*auditor)->GetInclusionProof(ctx.get(), req, &resp).ok());
    std::string args = "inclusion --index 11 --size " + std::to_string(resp.tree_size()) +
                       " --leaf-hash " +
                       Hex(store::rfc9162::AsBytes(store::rfc9162::HashLeaf(resp.leaf()))) +
                       " --root " + Hex(now.root_hash()) + " --proof";
    for (const auto& p : resp.proof()) args += " " + Hex(p);
    EXPECT_EQ(RunPythonVerifier(args), 0);
  }
  {  // Consistency of the old checkpoint with the latest.
    auto ctx = auditor->NewContext();
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(old.tree_size());
    v1::GetConsistencyProofResponse resp;
    ASSERT_TRUE(Audit(*auditor)->GetConsistencyProof(ctx.get(), req, &resp).ok());
    std::string args = "consistency --size1 " + std::to_string(old.tree_size()) + " --size2 " +
                       std::to_string(resp.second_tree_size()) + " --root1 " +
                       Hex(old.root_hash()) + " --root2 " + Hex(now.root_hash()) + " --proof";
    for (const auto& p : resp.proof()) args += " " + Hex(p);
    EXPECT_EQ(RunPythonVerifier(args), 0);
    // The last hex digit of the proof changed (setting the last byte to 00 changed
    // nothing for one proof in 256, whose last byte was 00 already).
    std::string damaged = args;
    damaged.back() = damaged.back() == '0' ? '1' : '0';
    EXPECT_EQ(RunPythonVerifier(damaged), 1);
  }
}

// A case closed by two signed sign-offs: deep verify re-checks the rules and both
// signatures, and the Python verifier re-checks the signatures from the export alone.
TEST_F(AuditTest, SignedClosureVerifiesDeepAndOffline) {
  server_->Stop();
  {
    std::ofstream out(dir_.path() / "signers.json");
    out << R"({"principals": [
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "reviewer", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
  {"id": "inspector", "roles": ["inspector"], "jurisdiction": "jiangcheng"},
  {"id": "admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "approver.county", "roles": ["approver"], "jurisdiction": "jiangcheng/dongshan", "approval_level": "county"},
  {"id": "approver.city", "roles": ["approver"], "jurisdiction": "jiangcheng", "approval_level": "city"}
]})";
  }
  principals_ = dir_.path() / "signers.json";
  StartServer();
  auto county = client::SigningKey::Generate();
  auto city = client::SigningKey::Generate();
  ASSERT_TRUE(county.ok() && city.ok());
  for (auto [who, key, level] : {std::tuple{"approver.county", &*county, v1::APPROVAL_LEVEL_COUNTY},
                                 std::tuple{"approver.city", &*city, v1::APPROVAL_LEVEL_CITY}}) {
    auto admin = As("admin");
    v1::RegisterApproverKeyRequest req;
    req.set_request_id(client::NewRequestId());
    req.set_approver(who);
    req.set_public_key(key->public_key());
    req.set_level(level);
    v1::RegisterApproverKeyResponse resp;
    auto ctx = admin->NewContext();
    auto status =
        v1::AdminService::NewStub(admin->channel())->RegisterApproverKey(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string name = "cases/s1";
  std::string latest;  // the leaf hash of the case's latest event, from the last answer
  auto run = [&](const std::string& who, auto method, const auto& req) {
    auto c = As(who);
    auto ctx = c->NewContext();
    v1::CaseCommandResponse resp;
    auto status = (c->cases().*method)(ctx.get(), req, &resp);
    EXPECT_TRUE(status.ok()) << who << ": " << status.error_message();
    latest = resp.case_().last_leaf_hash();
    return resp.case_().version();
  };
  run("lister", &v1::CaseService::Stub::CreateCase, ListingOf("s1", "dongshan"));
  v1::ReviewListingRequest review;
  review.set_name(name);
  review.set_request_id("review");
  review.set_expected_version(1);
  review.set_confirmed(true);
  run("reviewer", &v1::CaseService::Stub::ReviewListing, review);
  v1::AssignAssistanceRequest assign;
  assign.set_name(name);
  assign.set_request_id("assign");
  assign.set_expected_version(2);
  auto* a = assign.mutable_assignment();
  a->mutable_paired_department()->set_department_id("dept-finance");
  a->mutable_paired_department()->set_display_name("市财政局");
  a->mutable_paired_department()->set_kind(v1::DEPARTMENT_KIND_ECONOMIC);
  a->mutable_first_secretary()->set_person_id("zhang.wei");
  a->mutable_first_secretary()->set_display_name("张伟");
  auto* cadre = a->add_stationed_cadres();
  cadre->set_person_id("chen.jie");
  cadre->set_display_name("陈杰");
  a->set_plan("build a cooperative");
  run("lister", &v1::CaseService::Stub::AssignAssistance, assign);
  v1::RecordInspectionRequest inspect;
  inspect.set_name(name);
  inspect.set_request_id("inspect");
  inspect.set_expected_version(3);
  inspect.set_inspection_id("insp-1");
  inspect.set_passed(true);
  inspect.set_findings("income established");
  run("inspector", &v1::CaseService::Stub::RecordInspection, inspect);
  int64_t version = 4;
  for (auto [who, key] : {std::pair{"approver.county", &*county}, {"approver.city", &*city}}) {
    v1::SignOffClosureRequest req;
    req.set_name(name);
    req.set_request_id(client::NewRequestId());
    req.set_expected_version(version);
    req.set_inspection_id("insp-1");
    req.set_key_id(key->key_id());
    auto signature = key->Sign(workflow::SignOffStatement("s1", version, "insp-1", latest));
    ASSERT_TRUE(signature.ok());
    req.set_signature(*signature);
    version = run(who, &v1::CaseService::Stub::SignOffClosure, req);
  }
  ASSERT_EQ(version, 7);  // signed, signed and closed

  Verdict deep = VerifyLog(true);
  EXPECT_TRUE(deep.ok) << deep.problem;
  const std::string exported = Export();
  std::ofstream(dir_.path() / "signed.export", std::ios::binary) << exported;
  const std::string vkey = Verifier().VerifierKey();
  EXPECT_EQ(
      RunPythonVerifier("export " + (dir_.path() / "signed.export").string() + " --key " + vkey),
      0);
  std::istringstream in(exported);
  auto verdict = store::VerifyExport(in, Verifier());
  ASSERT_TRUE(verdict.ok());
  EXPECT_TRUE(verdict->ok) << verdict->problem;
}

// --- Tampering: each case on its own log of 40 events -------------------------------

// Audit jobs (ledger replays, verifications, exports) run at most four at once: a fifth
// is refused with AUDIT_JOBS_BUSY, whatever its kind, and a job that ends frees its place.
// Four exports of a log far larger than the transport buffers hold their places while
// their readers stop after the first message.
TEST_F(AuditTest, AFifthAuditJobIsRefusedWhileFourRun) {
  // About 32 MiB of events: 2,000 listings with 16,000 bytes of findings each.
  {
    std::vector<std::thread> writers;
    for (int t = 0; t < 4; ++t) {
      writers.emplace_back([&, t] {
        auto lister = As("lister");
        for (int i = t; i < 2000; i += 4) {
          v1::CreateCaseRequest req = ListingOf(absl::StrCat("big", i), "dongshan");
          req.set_findings(std::string(16000, 'f'));
          v1::CaseCommandResponse resp;
          auto ctx = lister->NewContext();
          const grpc::Status status = lister->cases().CreateCase(ctx.get(), req, &resp);
          ASSERT_TRUE(status.ok()) << status.error_message();
        }
      });
    }
    for (std::thread& writer : writers) writer.join();
  }
  struct Export {
    std::unique_ptr<Client> client;
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<v1::AuditService::Stub> stub;
    std::unique_ptr<grpc::ClientReader<v1::ExportLogResponse>> reader;
  };
  // Starts an export and reads its first message; false when it ended instead.
  auto start = [&](Export* e) {
    e->client = As("auditor");
    e->ctx = e->client->NewContext();
    e->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    e->stub = Audit(*e->client);
    e->reader = e->stub->ExportLog(e->ctx.get(), v1::ExportLogRequest());
    v1::ExportLogResponse message;
    return e->reader->Read(&message);
  };
  auto stop = [](Export* e) {
    e->ctx->TryCancel();
    v1::ExportLogResponse message;
    while (e->reader->Read(&message)) {
    }
    return e->reader->Finish();
  };
  Export running[4];
  for (Export& e : running) ASSERT_TRUE(start(&e));

  Export fifth;
  EXPECT_FALSE(start(&fifth));
  const grpc::Status refused = fifth.reader->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(casework::client::DecodeError(refused).reason, "AUDIT_JOBS_BUSY");
  EXPECT_NE(refused.error_message().find("retry when one has finished"), std::string::npos)
      << refused.error_message();
  // Another kind of job shares the bound.
  const Verdict busy = VerifyLog(false);
  EXPECT_EQ(busy.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << busy.status.error_message();
  EXPECT_EQ(casework::client::DecodeError(busy.status).reason, "AUDIT_JOBS_BUSY");

  // One export ends: a job may start again (once the server has seen the cancellation).
  EXPECT_EQ(stop(&running[0]).error_code(), grpc::StatusCode::CANCELLED);
  bool verified = false;
  for (int attempt = 0; attempt < 200 && !verified; ++attempt) {
    const Verdict v = VerifyLog(false);
    verified = v.status.ok() && v.ok;
    if (!verified) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(verified);
  for (int i = 1; i < 4; ++i) stop(&running[i]);
}

// Beside a running server: an offline verification is refused (exit 4, "is in use", and
// what to do instead), and the verifier key is printed from the key file alone; the
// server serves on.
TEST_F(AuditTest, OfflineActionsBesideARunningServer) {
  CreateCases(3);
  const std::string verify_out = (dir_.path() / "verify.out").string();
  EXPECT_EQ(RunCaseworkd("--verify-offline", verify_out), 4) << ReadText(verify_out);
  EXPECT_NE(ReadText(verify_out).find("is in use"), std::string::npos) << ReadText(verify_out);
  EXPECT_NE(ReadText(verify_out).find("stop the server first"), std::string::npos);
  const std::string key_out = (dir_.path() / "key.out").string();
  EXPECT_EQ(RunCaseworkd("--print-verifier-key", key_out), 0) << ReadText(key_out);
  EXPECT_NE(ReadText(key_out).find(Verifier().VerifierKey() + "\n"), std::string::npos)
      << ReadText(key_out);
  CreateCases(2, "after");
}

class TamperTest : public AuditTest {
 protected:
  // Runs caseworkd with `flags` on the stopped server's data folder, its output into
  // `out`; returns its exit status.

  void SetUp() override {
    AuditTest::SetUp();
    CreateCases(40);
    kept_ = Checkpoint();  // what an auditor kept
    ASSERT_EQ(kept_.tree_size(), 40);
    ASSERT_EQ(server_->Stop(), 0);
  }
  v1::GetCheckpointResponse kept_;
};

TEST_F(TamperTest, EditedEventIsDetected) {
  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    std::string value = Get(db, events, 5);
    const size_t at = value.find("no collective income");
    ASSERT_NE(at, std::string::npos);
    value[at] = 'N';  // still a well-formed event
    ASSERT_TRUE(db->Put({}, events, store::format::PositionKey(5), value).ok());
  });
  StartServer();
  Verdict v = VerifyLog(false);
  EXPECT_FALSE(v.ok);
  EXPECT_LE(v.first_bad, 5);
  EXPECT_GT(v.first_bad + 16, 5) << v.problem;  // within the 16-event block of position 5
  EXPECT_FALSE(IncludedUnder(5, kept_));
  EXPECT_TRUE(IncludedUnder(20, kept_));
  std::istringstream in(Export());
  auto verdict = store::VerifyExport(in, Verifier());
  ASSERT_TRUE(verdict.ok());
  EXPECT_FALSE(verdict->ok);
}

TEST_F(TamperTest, DeletedEventIsDetected) {
  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    ASSERT_TRUE(db->Delete({}, events, store::format::PositionKey(7)).ok());
  });
  StartServer();
  Verdict v = VerifyLog(false);
  EXPECT_FALSE(v.ok);
  // The 16-event block of position 7, whose other events cannot be checked without it;
  // the problem names position 7 itself.
  EXPECT_EQ(v.first_bad, 0) << v.problem;
  EXPECT_NE(v.problem.find("position 7"), std::string::npos) << v.problem;
  EXPECT_FALSE(IncludedUnder(7, kept_));
}

// caseworkd --verify-offline: with the server stopped, it reads the log without serving
// it or writing anything, and names the first position that does not verify, or says
// why the server would not start. Exit 0 intact, 3 not.
TEST_F(TamperTest, OfflineVerificationNamesTheFirstBadPositionAndWritesNothing) {
  const auto data = dir_.path() / "data";
  auto verify_offline = [&](const std::string& out) {
    return RunCaseworkd("--verify-offline", out);
  };
  auto read = &TamperTest::ReadText;
  const std::string intact_out = (dir_.path() / "intact.out").string();
  EXPECT_EQ(verify_offline(intact_out), 0) << read(intact_out);
  EXPECT_NE(read(intact_out).find("every one of the 40 events verifies"), std::string::npos)
      << read(intact_out);

  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    ASSERT_TRUE(db->Delete({}, events, store::format::PositionKey(7)).ok());
  });
  // What the directory holds, file by file, before the offline verification.
  auto listing = [&] {
    std::vector<std::pair<std::string, uintmax_t>> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(data)) {
      if (entry.is_regular_file()) files.emplace_back(entry.path().string(), entry.file_size());
    }
    std::sort(files.begin(), files.end());
    return files;
  };
  const auto before = listing();
  const std::string bad_out = (dir_.path() / "bad.out").string();
  EXPECT_EQ(verify_offline(bad_out), 3) << read(bad_out);
  EXPECT_NE(read(bad_out).find("position 7"), std::string::npos) << read(bad_out);
  EXPECT_EQ(listing(), before) << "the offline verification wrote to the data folder";
  // Without the checkpoint file too: it says why the server would refuse to start.
  std::filesystem::rename(data / "log.checkpoint", dir_.path() / "kept.checkpoint");
  const std::string no_file_out = (dir_.path() / "no-file.out").string();
  EXPECT_EQ(verify_offline(no_file_out), 3) << read(no_file_out);
  EXPECT_NE(read(no_file_out).find("checkpoint file"), std::string::npos) << read(no_file_out);
  EXPECT_NE(read(no_file_out).find("position 7"), std::string::npos) << read(no_file_out);
}

// caseworkd --verify-offline checks the indexes of streams and request ids against the
// events too: a stream's index entry dropped leaves every event verifying against the
// tree, and the log not intact.
TEST_F(TamperTest, OfflineVerificationChecksTheStreamIndex) {
  const std::string intact_out = (dir_.path() / "intact.out").string();
  EXPECT_EQ(RunCaseworkd("--verify-offline", intact_out), 0) << ReadText(intact_out);
  EXPECT_NE(ReadText(intact_out).find("the stream and request-id indexes match the events"),
            std::string::npos)
      << ReadText(intact_out);
  TamperFamilies([](rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[2]));
    it->SeekToFirst();
    ASSERT_TRUE(it->Valid());
    ASSERT_TRUE(db->Delete({}, handles[2], it->key()).ok());
  });
  const std::string bad_out = (dir_.path() / "bad.out").string();
  EXPECT_EQ(RunCaseworkd("--verify-offline", bad_out), 3) << ReadText(bad_out);
  EXPECT_NE(ReadText(bad_out).find("every one of the 40 events verifies"), std::string::npos)
      << ReadText(bad_out);
  EXPECT_NE(ReadText(bad_out).find("NOT INTACT: an index does not match the events"),
            std::string::npos)
      << ReadText(bad_out);
}

// A write-ahead log record whose type byte was damaged on disk (bit 2: a full record then
// reads as the recyclable format's, which RocksDB takes for the end of the log and drops
// with everything after it, in silence). The server refuses to start and says how to
// repair it; --verify-offline says it is not intact; --repair-wal rewrites the byte the
// record's checksum shows, and the server starts with every event.
TEST_F(TamperTest, ADamagedWalRecordIsRefusedAndRepairedWithoutLoss) {
  const auto data = dir_.path() / "data";
  std::string wal;
  for (const auto& entry : std::filesystem::directory_iterator(data / "log")) {
    if (entry.path().extension() == ".log" && entry.file_size() > 0) wal = entry.path().string();
  }
  ASSERT_FALSE(wal.empty()) << "no write-ahead log holds the events";
  std::string bytes;
  {
    std::ifstream in(wal, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::vector<store::testing::WalRecord> records = store::testing::WalRecords(bytes);
  ASSERT_GT(records.size(), 10u);
  const store::testing::WalRecord& victim = records[records.size() / 2];
  ASSERT_GE(victim.type, 1);
  ASSERT_LE(victim.type, 3);
  {
    std::fstream file(wal, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(victim.offset + 6));
    file.put(static_cast<char>(victim.type ^ 4));
  }

  server_ = std::make_unique<ServerProcess>(data, principals_);
  EXPECT_FALSE(server_->Start());
  EXPECT_NE(server_->error().find(absl::StrCat("is damaged at byte ", victim.offset)),
            std::string::npos)
      << server_->error();
  EXPECT_NE(server_->error().find("caseworkd --repair-wal"), std::string::npos) << server_->error();

  auto run = [&](const std::string& flags, const std::string& out) {
    return RunCaseworkd(flags, out);
  };
  auto read = &TamperTest::ReadText;
  const std::string offline_out = (dir_.path() / "offline.out").string();
  EXPECT_EQ(run("--verify-offline", offline_out), 3) << read(offline_out);
  EXPECT_NE(read(offline_out).find("NOT INTACT"), std::string::npos) << read(offline_out);
  const std::string repair_out = (dir_.path() / "repair.out").string();
  EXPECT_EQ(run("--repair-wal", repair_out), 0) << read(repair_out);
  EXPECT_NE(read(repair_out)
                .find(absl::StrCat("rewrote the type field of the record at byte ", victim.offset)),
            std::string::npos)
      << read(repair_out);
  EXPECT_EQ(run("--repair-wal", repair_out), 0) << read(repair_out);
  EXPECT_NE(read(repair_out).find("nothing to repair"), std::string::npos) << read(repair_out);
  // Offline actions one at a time: given together, one would be skipped without a word.
  EXPECT_EQ(run("--repair-wal --verify-offline", repair_out), 2) << read(repair_out);
  EXPECT_NE(read(repair_out).find("excludes"), std::string::npos) << read(repair_out);

  StartServer();
  EXPECT_EQ(Checkpoint().tree_size(), 40);
  const Verdict v = VerifyLog(true);
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_TRUE(IncludedUnder(39, kept_));
}

// The verifier key auditors check checkpoints against, printed offline from the log
// (and logged at start); a rebuild of the read models refuses a folder without a log
// rather than making a new one.
TEST_F(TamperTest, TheVerifierKeyIsPrintedOfflineAndARebuildNeedsALog) {
  auto read = &TamperTest::ReadText;
  const std::string key_out = (dir_.path() / "key.out").string();
  ASSERT_EQ(RunCaseworkd("--print-verifier-key", key_out), 0) << read(key_out);
  EXPECT_NE(read(key_out).find(Verifier().VerifierKey() + "\n"), std::string::npos)
      << read(key_out);
  EXPECT_NE(server_->log().find("checkpoints are signed for the verifier key " +
                                Verifier().VerifierKey()),
            std::string::npos);
  // Without its key the log has no verifier key to print: said, exit 4.
  const auto key = dir_.path() / "data" / "log.key";
  const auto kept = dir_.path() / "log.key.kept";
  std::filesystem::rename(key, kept);
  EXPECT_EQ(RunCaseworkd("--print-verifier-key", key_out), 4) << read(key_out);
  EXPECT_NE(read(key_out).find("no readable checkpoint key"), std::string::npos) << read(key_out);
  std::filesystem::rename(kept, key);

  const auto missing = dir_.path() / "no-such-folder";
  const std::string rebuild_out = (dir_.path() / "rebuild.out").string();
  // An offline action: no transport or principals flags needed.
  const std::string command = std::string(CASEWORKD_PATH) + " --rebuild-projections --data-dir " +
                              missing.string() + " > " + rebuild_out + " 2>&1";
  const int status = std::system(command.c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 4) << read(rebuild_out);
  EXPECT_NE(read(rebuild_out).find("no event log"), std::string::npos) << read(rebuild_out);
  EXPECT_FALSE(std::filesystem::exists(missing)) << "a rebuild made a new, empty log";
}

TEST_F(TamperTest, ReorderedEventsAreDetected) {
  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    const std::string a = Get(db, events, 3);
    const std::string b = Get(db, events, 9);
    ASSERT_TRUE(db->Put({}, events, store::format::PositionKey(3), b).ok());
    ASSERT_TRUE(db->Put({}, events, store::format::PositionKey(9), a).ok());
  });
  StartServer();
  Verdict v = VerifyLog(false);
  EXPECT_FALSE(v.ok);
  EXPECT_LE(v.first_bad, 3) << v.problem;
  EXPECT_FALSE(IncludedUnder(3, kept_));
  EXPECT_FALSE(IncludedUnder(9, kept_));
  // A range after the damage verifies on its own; a deep pass re-runs every command from
  // the start, and finds it.
  Verdict after = VerifyLog(false, 16, 40);
  EXPECT_TRUE(after.ok) << after.problem;
  Verdict deep = VerifyLog(true, 16, 40);
  EXPECT_FALSE(deep.ok);
  EXPECT_LE(deep.first_bad, 3) << deep.problem;
}

// A range that ends inside a 16-event block is checked to the block's end, against its
// stored subtree: event 20, in [16, 32), is found by a range that ends at 25. (An edit in
// the log's unfinished last block is refused at start, by the checkpoint file; a live one
// is in jobs_test.)
TEST_F(TamperTest, ARangeEndingInsideABlockIsCheckedToTheBlocksEnd) {
  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    std::string value = Get(db, events, 20);
    const size_t at = value.find("no collective income");
    ASSERT_NE(at, std::string::npos);
    value[at] = 'N';  // still a well-formed event
    ASSERT_TRUE(db->Put({}, events, store::format::PositionKey(20), value).ok());
  });
  StartServer();
  Verdict v = VerifyLog(false, 0, 25);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 16) << v.problem;
  v = VerifyLog(false, 17, 21);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 16) << v.problem;
  v = VerifyLog(false, 0, 16);
  EXPECT_TRUE(v.ok) << v.problem;
  // Beyond the signed checkpoint: refused, naming its size.
  v = VerifyLog(false, 0, 41);
  EXPECT_EQ(v.status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << v.status.error_message();
  EXPECT_NE(v.status.error_message().find("40 (the latest signed checkpoint)"), std::string::npos)
      << v.status.error_message();
}

TEST_F(TamperTest, TruncatedLogIsDetected) {
  Tamper([](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* events) {
    for (int64_t p = 35; p < 40; ++p) {
      ASSERT_TRUE(db->Delete({}, events, store::format::PositionKey(p)).ok());
    }
  });
  // The server keeps its last checkpoint outside RocksDB and refuses a shorter log.
  server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
  EXPECT_FALSE(server_->Start());
  // An attacker who also removes that file: the server still refuses to start (a log
  // with events and no checkpoint file is a rollback until shown otherwise).
  std::filesystem::remove(dir_.path() / "data" / "log.checkpoint");
  server_ = std::make_unique<ServerProcess>(dir_.path() / "data", principals_);
  EXPECT_FALSE(server_->Start());
  EXPECT_NE(server_->error().find("checkpoint file"), std::string::npos) << server_->error();
  EXPECT_NE(server_->error().find("--start-without-checkpoint"), std::string::npos);
  // Started anyway by an operator who overrides that: the auditor's kept checkpoint
  // exposes it, before and after new events hide the length.
  StartServer({"--start-without-checkpoint"});
  auto auditor = As("auditor");
  {
    auto ctx = auditor->NewContext();
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(40);
    v1::GetConsistencyProofResponse resp;
    EXPECT_EQ(Audit(*auditor)->GetConsistencyProof(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
  }
  CreateCases(10, "late");
  const v1::GetCheckpointResponse now = Checkpoint();
  ASSERT_EQ(now.tree_size(), 45);
  auto ctx = auditor->NewContext();
  v1::GetConsistencyProofRequest req;
  req.set_first_tree_size(40);
  v1::GetConsistencyProofResponse resp;
  ASSERT_TRUE(Audit(*auditor)->GetConsistencyProof(ctx.get(), req, &resp).ok());
  std::vector<std::string> proof(resp.proof().begin(), resp.proof().end());
  EXPECT_FALSE(
      store::merkle::VerifyConsistency(40, 45, proof, kept_.root_hash(), now.root_hash()).ok());
}

}  // namespace
}  // namespace casework

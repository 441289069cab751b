// Online backup over the API and restore with caseworkd: a backup is verified against its
// signed checkpoint before it is called good; a restored server holds exactly the backed
// up events and verifies; a damaged backup is refused and leaves nothing behind.
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "clients/client.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

namespace casework {
namespace {

using casework::client::Client;
using casework::client::ClientOptions;
using casework::client::DecodeError;
using casework::testing::ServerProcess;
using casework::testing::TempDir;

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    principals_ = casework::testing::WriteTestPrincipals(dir_.path());
    Start(dir_.path() / "data");
  }

  void Start(const std::filesystem::path& data) {
    std::filesystem::create_directories(data);
    server_ = std::make_unique<ServerProcess>(data, principals_);
    ASSERT_TRUE(server_->Start()) << server_->error();
  }

  std::unique_ptr<Client> As(const std::string& identity) {
    return std::make_unique<Client>(
        ClientOptions{.server = server_->address(), .identity = identity});
  }

  void Create(const std::string& id) {
    auto c = As("lister");
    v1::CreateCaseRequest req;
    req.set_case_id(id);
    req.set_request_id("create-" + id);
    auto* org = req.mutable_organisation();
    org->set_organisation_id("org-" + id);
    org->set_display_name("东山村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + id);
    org->set_kind(v1::ORGANISATION_KIND_VILLAGE);
    req.set_case_type(v1::CASE_TYPE_WEAK);
    req.add_problem_categories(v1::PROBLEM_CATEGORY_LEADERSHIP);
    req.set_findings("secretary post vacant");
    req.mutable_deadline()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count() +
                                        100 * 86400);
    v1::CaseCommandResponse resp;
    auto ctx = c->NewContext();
    auto status = c->cases().CreateCase(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status Backup(const std::string& who, v1::CreateBackupResponse* resp,
                      const std::string& request_id = "") {
    auto c = As(who);
    auto ctx = c->NewContext();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::CreateBackupRequest req;
    req.set_request_id(request_id);
    return v1::AdminService::NewStub(c->channel())->CreateBackup(ctx.get(), req, resp);
  }

  // Runs caseworkd --restore-backup; its exit status. Puts the server's signing key in
  // place first, as the operator must (without it the restore refuses, exit status 2).
  int Restore(const std::filesystem::path& backups, const std::filesystem::path& data,
              bool with_key = true) {
    std::filesystem::create_directories(data);
    if (with_key) {
      std::filesystem::copy_file(dir_.path() / "data" / "log.key", data / "log.key",
                                 std::filesystem::copy_options::overwrite_existing);
    }
    const std::string command = std::string(CASEWORKD_PATH) + " --restore-backup " +
                                backups.string() + " --data-dir " + data.string() +
                                " --principals " + principals_.string() + " > " +
                                (dir_.path() / "restore.log").string() + " 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static std::string ReadText(const std::filesystem::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  TempDir dir_;
  std::filesystem::path principals_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(BackupTest, BackupVerifiesRestoreHoldsExactlyItAndDamageIsRefused) {
  for (int i = 0; i < 30; ++i) Create("b-" + std::to_string(i));
  v1::CreateBackupResponse backup;
  auto status = Backup("admin", &backup, "backup-1");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(backup.backup_id(), 1);
  EXPECT_EQ(backup.tree_size(), 30);
  {  // A retry with the request id (an answer lost): the first answer, no second backup.
    Create("between");
    v1::CreateBackupResponse again;
    status = Backup("admin", &again, "backup-1");
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(again.backup_id(), 1);
    EXPECT_EQ(again.tree_size(), 30);
    EXPECT_EQ(again.checkpoint(), backup.checkpoint());
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / "data" / "backups" / "checkpoint-2"));
    status = Backup("admin", &again, std::string(200, 'r'));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DecodeError(status).reason, "REQUEST_ID_INVALID");
  }
  EXPECT_NE(backup.checkpoint().find("\n30\n"), std::string::npos) << backup.checkpoint();
  const std::filesystem::path backups = backup.directory();
  EXPECT_EQ(backups, dir_.path() / "data" / "backups");

  // Only an admin of the whole city.
  v1::CreateBackupResponse refused;
  status = Backup("admin.xihe", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status = Backup("auditor", &refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(DecodeError(status).reason, "ACTOR_LACKS_ROLE");

  for (int i = 0; i < 5; ++i) Create("late-" + std::to_string(i));  // not in the backup
  ASSERT_EQ(server_->Stop(), 0);

  // Restore into a new folder, and not over an existing log.
  const auto restored = dir_.path() / "restored";
  EXPECT_EQ(Restore(backups, dir_.path() / "keyless", /*with_key=*/false), 2);
  ASSERT_EQ(Restore(backups, restored), 0);
  // The operator is told that checkpoints signed past the backup's 30 events are forked
  // from what the restored server signs next.
  const std::string restore_log = ReadText(dir_.path() / "restore.log");
  EXPECT_NE(restore_log.find("the restored log holds 30 events"), std::string::npos) << restore_log;
  EXPECT_NE(restore_log.find("will see the log as forked"), std::string::npos) << restore_log;
  // Over an existing log: not the backup's fault (exit 4, not 3).
  EXPECT_EQ(Restore(backups, restored), 4) << ReadText(dir_.path() / "restore.log");
  Start(restored);
  // The restored projections were not trusted: rebuilt from the verified events first.
  EXPECT_NE(server_->log().find("rebuilding them from the 30 events"), std::string::npos)
      << server_->log();
  auto auditor = As("auditor");
  {
    auto ctx = auditor->NewContext();
    v1::GetCheckpointResponse head;
    ASSERT_TRUE(v1::AuditService::NewStub(auditor->channel())
                    ->GetCheckpoint(ctx.get(), v1::GetCheckpointRequest(), &head)
                    .ok());
    EXPECT_EQ(head.tree_size(), 30);
  }
  {
    auto ctx = auditor->NewContext();
    v1::GetCaseRequest get;
    get.set_name("cases/b-29");
    v1::Case c;
    EXPECT_TRUE(auditor->cases().GetCase(ctx.get(), get, &c).ok());
    auto ctx2 = auditor->NewContext();
    get.set_name("cases/late-0");
    EXPECT_EQ(auditor->cases().GetCase(ctx2.get(), get, &c).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  {
    auto ctx = auditor->NewContext();
    v1::VerifyLogRequest req;
    auto reader = v1::AuditService::NewStub(auditor->channel())->VerifyLog(ctx.get(), req);
    v1::VerifyLogResponse m;
    bool ok = false;
    while (reader->Read(&m)) {
      if (m.done()) ok = m.ok();
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_TRUE(ok);
  }
  ASSERT_EQ(server_->Stop(), 0);

  // Damage every backed up table file in the middle: the restore is refused and leaves
  // no log behind.
  int damaged = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(backups)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sst") continue;
    std::fstream f(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(entry.file_size());
    f.seekg(size / 2);
    char byte = 0;
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    f.seekp(size / 2);
    f.write(&byte, 1);
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  const auto refused_dir = dir_.path() / "refused";
  // The backup is bad (exit 3), and nothing of it is left behind.
  EXPECT_EQ(Restore(backups, refused_dir), 3) << ReadText(dir_.path() / "restore.log");
  EXPECT_FALSE(std::filesystem::exists(refused_dir / "log"));
  EXPECT_FALSE(std::filesystem::exists(refused_dir / "log.checkpoint"));
  EXPECT_FALSE(std::filesystem::exists(refused_dir / "log.restoring"));
  EXPECT_FALSE(std::filesystem::exists(refused_dir / "log.restoring.checkpoint"));
}

}  // namespace
}  // namespace casework

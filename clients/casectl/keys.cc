#include "clients/casectl/keys.h"

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "clients/casectl/kept_checkpoint.h"
#include "clients/casectl/request_id.h"
#include "clients/casectl/validators.h"
#include "clients/signing.h"
#include "nlohmann/json.hpp"
#include "services/workflow/statement.h"
#include "store/checkpoint.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"

namespace casework::client {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitFailure = 4;
constexpr int kExitNotVerified = 5;  // a proof was checked and failed: nothing signed

// Everything the commands' options write into; lives as long as the application.
struct State {
  KeyCommandHooks hooks;
  std::string request_id;
  // keygen
  std::string keygen_out;
  // sign and sign-off
  std::string case_id, inspection_id, key_file, signature_b64, key_id, latest_hex, verify_with,
      checkpoint_file;
  int64_t expected_version = -1;
  bool show_statement = false;
  // admin
  std::string approver, public_key_text, level = "county", revoke_key_id, reason;
};

std::string RequestId(const State& s) { return CommandRequestId(s.request_id); }

int Fail(const State& s, const std::string& message, int code) {
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"error", {{"message", message}}}}.dump() << "\n";
  } else {
    std::cerr << "error 错误: " << message << "\n";
  }
  return code;
}

// A public key given as 64 hex digits or as base64 of 32 bytes.
bool DecodePublicKey(const std::string& text, std::string* out) {
  if (text.size() == 64 && absl::c_all_of(text, [](char c) { return absl::ascii_isxdigit(c); })) {
    *out = absl::HexStringToBytes(text);
    return true;
  }
  return absl::Base64Unescape(text, out) && out->size() == 32;
}

void Keygen(State& s) {
  auto key = SigningKey::Generate();
  if (!key.ok()) {
    *s.hooks.exit_code = Fail(s, std::string(key.status().message()), kExitFailure);
    return;
  }
  if (auto saved = key->Save(s.keygen_out); !saved.ok()) {
    *s.hooks.exit_code = Fail(s, std::string(saved.message()), kExitFailure);
    return;
  }
  const std::string b64 = absl::Base64Escape(key->public_key());
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"key_file", s.keygen_out},
                                {"key_id", key->key_id()},
                                {"public_key", b64},
                                {"public_key_hex", absl::BytesToHexString(key->public_key())}}
                     // The path as typed, which need not be UTF-8: shown, not refused.
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << "private key 私钥: " << s.keygen_out
              << " (mode 0600; keep it to yourself 请妥善保管)\n"
              << "public key 公钥: " << b64 << "\n"
              << "key id 密钥标识: " << key->key_id() << "\n"
              << "Give the public key to an administrator, who registers it with "
                 "请将公钥交给管理员登记：\n"
              << "  casectl admin register-key <your-id> --public-key " << b64
              << " --level county|city\n";
  }
  *s.hooks.exit_code = kExitOk;
}

// The leaf hash given as --latest: 64 hex digits.
bool DecodeLeafHash(const std::string& hex, std::string* out) {
  if (hex.size() != 2 * workflow::kLeafHashBytes) return false;
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = absl::HexStringToBytes(hex);
  return true;
}

void Sign(State& s) {
  auto key = SigningKey::Load(s.key_file);
  if (!key.ok()) {
    *s.hooks.exit_code = Fail(s, std::string(key.status().message()), kExitUsage);
    return;
  }
  std::string latest;
  if (!DecodeLeafHash(s.latest_hex, &latest)) {
    *s.hooks.exit_code =
        Fail(s,
             "--latest must be 64 hex digits: the leaf hash of the case's event at that version "
             "--latest 须为 64 位十六进制数（该版本事件的叶哈希）",
             kExitUsage);
    return;
  }
  const std::string statement =
      workflow::SignOffStatement(s.case_id, s.expected_version, s.inspection_id, latest);
  auto signature = key->Sign(statement);
  if (!signature.ok()) {
    *s.hooks.exit_code = Fail(s, std::string(signature.status().message()), kExitFailure);
    return;
  }
  const std::string b64 = absl::Base64Escape(*signature);
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"key_id", key->key_id()},
                                {"signature", b64},
                                {"statement", statement}}
                     .dump()
              << "\n";
  } else {
    if (s.show_statement) std::cerr << statement;
    std::cout << b64 << "\n";
  }
  *s.hooks.exit_code = kExitOk;
}

// "" when the log whose checkpoints `verifier` checks is proved to hold, at `position`,
// the record of event `version` of case `case_id` with the leaf hash `leaf_hash` (an
// inclusion proof under the latest signed checkpoint, asked for again for up to 5 s while
// that checkpoint does not reach the position yet); else why not. `*under` gets the
// signed checkpoint proved under.
struct ProvedUnder {
  std::string note;          // the signed note
  store::Checkpoint opened;  // its size and root, as signed
  std::string label;         // "size N root HEX", to compare with one kept elsewhere
  bool refused = false;      // the server gave no proof: nothing was checked
};
std::string ProveLeaf(casework::client::Client& client, const store::NoteVerifier& verifier,
                      const std::string& case_id, int64_t version, int64_t position,
                      const std::string& leaf_hash, ProvedUnder* under) {
  auto stub = casework::v1::AuditService::NewStub(client.channel());
  casework::v1::GetInclusionProofRequest req;
  req.set_position(position);
  casework::v1::GetInclusionProofResponse resp;
  grpc::Status status;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    resp.Clear();
    auto ctx = client.NewContext();
    status = stub->GetInclusionProof(ctx.get(), req, &resp);
    if (status.error_code() != grpc::StatusCode::OUT_OF_RANGE ||
        std::chrono::steady_clock::now() >= give_up) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the next checkpoint
  }
  if (!status.ok()) {
    under->refused = true;
    return absl::StrCat("the proof was refused: ", status.error_message());
  }
  auto body = store::OpenCheckpoint(resp.checkpoint(), verifier, verifier.name());
  if (!body.ok()) return absl::StrCat("its checkpoint: ", body.status().message());
  if (body->size != resp.tree_size()) return "the checkpoint is of another tree size";
  const std::string_view root = store::rfc9162::AsBytes(body->root);
  under->note = resp.checkpoint();
  under->opened = *body;
  under->label = absl::StrCat("size ", body->size, " root ",
                              absl::BytesToHexString(absl::string_view(root.data(), root.size())));
  // The record proved is that event of that case, with that hash.
  store::format::EventRecord record;
  if (!store::format::DecodeEventRecord(resp.leaf(), &record)) {
    return "the record proved is not an event record";
  }
  const std::string stream = absl::StrCat("cases/", case_id);
  if (record.stream != stream || record.version != version) {
    return absl::StrCat("the record at position ", position, " is version ", record.version, " of ",
                        std::string(record.stream), ", not version ", version, " of ", stream);
  }
  const store::Hash leaf = store::rfc9162::HashLeaf(resp.leaf());
  const std::string_view held = store::rfc9162::AsBytes(leaf);
  if (held != leaf_hash) {
    return absl::StrCat("the log holds the leaf ",
                        absl::BytesToHexString(absl::string_view(held.data(), held.size())),
                        " there");
  }
  const std::vector<std::string> nodes(resp.proof().begin(), resp.proof().end());
  absl::Status proved =
      store::merkle::VerifyInclusion(position, body->size, leaf_hash, nodes, root);
  return proved.ok() ? "" : std::string(proved.message());
}

void SignOff(State& s) {
  auto client = s.hooks.client();
  casework::v1::SignOffClosureRequest req;
  req.set_name(absl::StrCat("cases/", s.case_id));
  // Recorded as sent only when the sign-off goes (below): a failed read of the case
  // before it must not say the command may have been applied.
  req.set_request_id(s.request_id.empty() ? NewRequestId() : s.request_id);
  req.set_expected_version(s.expected_version);
  req.set_inspection_id(s.inspection_id);
  // Either the signature is made here (--key, with its proof and leaf options) or it was
  // made by `casectl sign`; options of the one way given with the other would be ignored,
  // and an approver who asked for a proof must not sign without one.
  if (!s.key_file.empty() && (!s.key_id.empty() || !s.signature_b64.empty())) {
    *s.hooks.exit_code = Fail(s,
                              "give either --key, or --key-id and --signature (made by casectl "
                              "sign), not both 请只选择一种签署方式",
                              kExitUsage);
    return;
  }
  if (s.key_file.empty() && (!s.verify_with.empty() || !s.latest_hex.empty())) {
    *s.hooks.exit_code = Fail(
        s,
        "--verify-with and --latest go with --key: a signature made by casectl sign is over the "
        "--latest given to it there, and nothing is proved here; sign with --key to have the "
        "leaf proved before signing --verify-with 与 --latest 须与 --key 一同使用",
        kExitUsage);
    return;
  }
  if (!s.checkpoint_file.empty() && (s.key_file.empty() || s.verify_with.empty())) {
    *s.hooks.exit_code = Fail(s,
                              "--checkpoint-file needs --key and --verify-with: the checkpoint "
                              "kept is checked where the leaf is proved "
                              "--checkpoint-file 须与 --key 和 --verify-with 一同使用",
                              kExitUsage);
    return;
  }
  if (!s.key_file.empty()) {
    auto key = SigningKey::Load(s.key_file);
    if (!key.ok()) {
      *s.hooks.exit_code = Fail(s, std::string(key.status().message()), kExitUsage);
      return;
    }
    std::string latest;
    if (!s.latest_hex.empty() && !DecodeLeafHash(s.latest_hex, &latest)) {
      *s.hooks.exit_code =
          Fail(s,
               "--latest must be 64 hex digits: the leaf hash of the case's event at that version "
               "--latest 须为 64 位十六进制数（该版本事件的叶哈希）",
               kExitUsage);
      return;
    }
    if (!s.verify_with.empty() && !store::NoteVerifier::FromVerifierKey(s.verify_with).ok()) {
      *s.hooks.exit_code = Fail(s,
                                "--verify-with must be the log's verifier key (name+hash+base64) "
                                "--verify-with 须为日志的验证公钥",
                                kExitUsage);
      return;
    }
    if (s.latest_hex.empty() || !s.verify_with.empty()) {
      // The case as the server has it now: still at the version the approver checked.
      casework::v1::GetCaseRequest get;
      get.set_name(req.name());
      casework::v1::Case current;
      auto get_ctx = client->NewContext();
      if (auto status = client->cases().GetCase(get_ctx.get(), get, &current); !status.ok()) {
        *s.hooks.exit_code = s.hooks.report_error(status);
        return;
      }
      if (current.version() != s.expected_version) {
        *s.hooks.exit_code =
            Fail(s,
                 absl::StrCat("case ", s.case_id, " is at version ", current.version(), ", not ",
                              s.expected_version,
                              "; check it again (casectl get) and sign for its current version "
                              "案件版本已变化，请重新核对后签批"),
                 kExitFailure);
        return;
      }
      if (latest.empty()) {
        // The server's word for the case's latest leaf, at the version the approver checked.
        if (current.last_leaf_hash().size() != workflow::kLeafHashBytes) {
          *s.hooks.exit_code = Fail(
              s,
              absl::StrCat("the server gave no leaf hash for case ", s.case_id,
                           "; give the one you checked with --latest 请用 --latest 指定叶哈希"),
              kExitFailure);
          return;
        }
        latest = current.last_leaf_hash();
      }
      if (!s.verify_with.empty()) {
        // Signed only once the log proves it holds that leaf at the case's latest position.
        const store::NoteVerifier verifier = *store::NoteVerifier::FromVerifierKey(s.verify_with);
        ProvedUnder under;
        const std::string why = ProveLeaf(*client, verifier, s.case_id, s.expected_version,
                                          current.last_position(), latest, &under);
        if (!why.empty()) {
          *s.hooks.exit_code =
              Fail(s,
                   absl::StrCat("not signed: the leaf hash ", absl::BytesToHexString(latest),
                                " of case ", s.case_id, " at position ", current.last_position(),
                                " was not proved under a checkpoint signed by --verify-with: ", why,
                                " 叶哈希未能在签名检查点下得到证明，未签署"),
                   under.refused ? kExitFailure : kExitNotVerified);
          return;
        }
        // On stderr in both modes: the checkpoint to compare with one kept from elsewhere.
        std::cerr << "proved 已证明: leaf " << absl::BytesToHexString(latest) << " at position "
                  << current.last_position() << " under the signed checkpoint of " << under.label
                  << "\n";
        if (!s.checkpoint_file.empty()) {
          // Signed only on a log that extends the history this approver saw before.
          auto step = AdvanceKeptCheckpoint(*client, verifier, s.checkpoint_file, under.note,
                                            under.opened, /*create=*/true);
          if (!step.ok()) {
            // Only a proof that failed says the log is not what was kept.
            const bool inconsistent = step.status().code() == absl::StatusCode::kFailedPrecondition;
            *s.hooks.exit_code =
                Fail(s,
                     absl::StrCat("not signed: ", step.status().message(),
                                  inconsistent ? " 日志与保存的检查点不一致，未签署"
                                               : " 未能核对保存的检查点，未签署"),
                     inconsistent ? kExitNotVerified : kExitFailure);
            return;
          }
          if (step->first_use) {
            std::cerr << "kept 已保存: the checkpoint of size " << step->size << " in "
                      << s.checkpoint_file
                      << " (first use; later sign-offs are checked against it)\n";
          } else if (step->kept_is_newer) {
            std::cerr << "consistent 一致: the log's checkpoint of size " << under.opened.size
                      << " is part of the newer one kept in " << s.checkpoint_file << " (size "
                      << step->size << "), which stays\n";
          } else if (step->size == step->kept_size) {
            std::cerr << "consistent 一致: the log is at the checkpoint kept in "
                      << s.checkpoint_file << " (size " << step->size << ")\n";
          } else {
            std::cerr << "consistent 一致: the log only grew from the kept checkpoint of size "
                      << step->kept_size << " to size " << step->size << " (kept in "
                      << s.checkpoint_file << ")\n";
          }
        }
      }
    }
    const std::string statement =
        workflow::SignOffStatement(s.case_id, s.expected_version, s.inspection_id, latest);
    auto signature = key->Sign(statement);
    if (!signature.ok()) {
      *s.hooks.exit_code = Fail(s, std::string(signature.status().message()), kExitFailure);
      return;
    }
    if (!*s.hooks.json) std::cerr << "signing 签署:\n" << statement;
    req.set_key_id(key->key_id());
    req.set_signature(*signature);
  } else {
    std::string signature;
    if (s.key_id.empty() || s.signature_b64.empty() ||
        !absl::Base64Unescape(s.signature_b64, &signature)) {
      *s.hooks.exit_code =
          Fail(s,
               "give --key FILE, or --key-id and --signature (base64, from casectl sign) "
               "请提供 --key，或 --key-id 与 --signature",
               kExitUsage);
      return;
    }
    req.set_key_id(s.key_id);
    req.set_signature(signature);
  }
  (void)CommandRequestId(req.request_id());  // sent now: a lost answer names it
  casework::v1::CaseCommandResponse resp;
  auto ctx = client->NewContext();
  *s.hooks.exit_code =
      s.hooks.print_result(client->cases().SignOffClosure(ctx.get(), req, &resp), resp);
}

void RegisterKey(State& s) {
  std::string public_key;
  if (!DecodePublicKey(s.public_key_text, &public_key)) {
    *s.hooks.exit_code = Fail(s,
                              "--public-key must be 32 bytes in base64, or 64 hex digits "
                              "--public-key 须为 32 字节的 base64 或 64 位十六进制数",
                              kExitUsage);
    return;
  }
  casework::v1::RegisterApproverKeyRequest req;
  req.set_request_id(RequestId(s));
  req.set_approver(s.approver);
  req.set_public_key(public_key);
  req.set_level(s.level == "city" ? casework::v1::APPROVAL_LEVEL_CITY
                                  : casework::v1::APPROVAL_LEVEL_COUNTY);
  auto client = s.hooks.client();
  auto stub = casework::v1::AdminService::NewStub(client->channel());
  casework::v1::RegisterApproverKeyResponse resp;
  auto ctx = client->NewContext();
  auto status = stub->RegisterApproverKey(ctx.get(), req, &resp);
  if (!status.ok()) {
    *s.hooks.exit_code = s.hooks.report_error(status);
    return;
  }
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"key_id", resp.key_id()}, {"approver", s.approver}}.dump() << "\n";
  } else {
    std::cout << "registered 已登记: " << resp.key_id() << " for " << s.approver << " (" << s.level
              << ")\n";
  }
  *s.hooks.exit_code = kExitOk;
}

void RevokeKey(State& s) {
  casework::v1::RevokeApproverKeyRequest req;
  req.set_request_id(RequestId(s));
  req.set_approver(s.approver);
  req.set_key_id(s.revoke_key_id);
  req.set_reason(s.reason);
  auto client = s.hooks.client();
  auto stub = casework::v1::AdminService::NewStub(client->channel());
  casework::v1::RevokeApproverKeyResponse resp;
  auto ctx = client->NewContext();
  auto status = stub->RevokeApproverKey(ctx.get(), req, &resp);
  if (!status.ok()) {
    *s.hooks.exit_code = s.hooks.report_error(status);
    return;
  }
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"revoked", s.revoke_key_id}, {"approver", s.approver}}.dump()
              << "\n";
  } else {
    std::cout << "revoked 已吊销: " << s.revoke_key_id << " of " << s.approver << "\n";
  }
  *s.hooks.exit_code = kExitOk;
}

void Backup(State& s) {
  auto client = s.hooks.client();
  auto stub = casework::v1::AdminService::NewStub(client->channel());
  casework::v1::CreateBackupResponse resp;
  // A backup is verified in full before it is called good: a long call.
  auto ctx = client->NewLongContext();
  casework::v1::CreateBackupRequest req;
  req.set_request_id(s.request_id);  // empty: a backup whatever was taken before
  auto status = stub->CreateBackup(ctx.get(), req, &resp);
  if (!status.ok()) {
    *s.hooks.exit_code = s.hooks.report_error(status);
    return;
  }
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"backup_id", resp.backup_id()},
                                {"tree_size", resp.tree_size()},
                                {"directory", resp.directory()},
                                {"checkpoint", resp.checkpoint()}}
                     .dump()
              << "\n";
  } else {
    std::cout << "backup 备份 " << resp.backup_id() << " in " << resp.directory() << ": "
              << resp.tree_size() << " events, verified against its checkpoint 已校验\n"
              << "restore with 恢复: copy log.key into a new folder, then caseworkd "
                 "--restore-backup "
              << resp.directory() << " --restore-backup-id " << resp.backup_id()
              << " --data-dir <new folder>\n";
  }
  *s.hooks.exit_code = kExitOk;
}

void ReloadPrincipals(State& s) {
  auto client = s.hooks.client();
  auto stub = casework::v1::AdminService::NewStub(client->channel());
  casework::v1::ReloadPrincipalsResponse resp;
  auto ctx = client->NewContext();
  auto status = stub->ReloadPrincipals(ctx.get(), casework::v1::ReloadPrincipalsRequest(), &resp);
  if (!status.ok()) {
    *s.hooks.exit_code = s.hooks.report_error(status);
    return;
  }
  if (*s.hooks.json) {
    std::cout << nlohmann::json{{"principals_version", resp.principals_version()},
                                {"identities", resp.identities()},
                                {"recorded_now", resp.recorded_now()},
                                {"recorded_by", resp.recorded_by()},
                                {"recorded_position", resp.recorded_position()},
                                {"reinstated_position", resp.reinstated_position()}}
                     .dump()
              << "\n";
  } else {
    std::cout << "principals 人员名册: version 版本 " << resp.principals_version() << ", "
              << resp.identities() << " identities 人\n";
    if (resp.recorded_by().empty()) {
      std::cout << "not recorded: the server does not record its principals 服务器未记录名册\n";
    } else if (resp.recorded_now()) {
      std::cout << "recorded 已记录 at position 位置 " << resp.recorded_position() << " by "
                << resp.recorded_by() << "\n";
    } else if (resp.reinstated_position() > 0) {
      std::cout << "in force again 重新启用: recorded before 此前已记录 at position 位置 "
                << resp.recorded_position() << " by " << resp.recorded_by()
                << "; in force again from position 自位置 " << resp.reinstated_position()
                << " 起重新生效\n";
    } else {
      std::cout << "unchanged 未变化: recorded before 此前已记录 at position 位置 "
                << resp.recorded_position() << " by " << resp.recorded_by() << "\n";
    }
  }
  *s.hooks.exit_code = kExitOk;
}

}  // namespace

void AddKeyCommands(CLI::App* app, KeyCommandHooks hooks) {
  auto s = std::make_shared<State>();
  s->hooks = std::move(hooks);

  auto* keygen = app->add_subcommand(
      "keygen", "make an approver's Ed25519 signing key 生成审批签名密钥 (no server needed)");
  keygen->add_option("--out", s->keygen_out, "private key file to create (mode 0600)")->required();
  keygen->callback([s] { Keygen(*s); });

  auto* sign = app->add_subcommand(
      "sign", "sign a case's closure statement offline 离线签署销号声明 (prints the signature)");
  sign->add_option("case_id", s->case_id, "case id")->required();
  sign->add_option("--expected-version", s->expected_version,
                   "the case version you sign for (see `casectl get`)")
      ->required()
      ->transform(Version());
  sign->add_option("--inspection-id", s->inspection_id, "the passed inspection")->required();
  sign->add_option("--latest", s->latest_hex,
                   "the leaf hash of the case's event at that version, 64 hex digits "
                   "(`casectl get` shows it as Latest leaf)")
      ->required();
  sign->add_option("--key", s->key_file, "your private key file (casectl keygen)")->required();
  sign->add_flag("--show-statement", s->show_statement, "also print the signed statement");
  sign->callback([s] { Sign(*s); });

  auto* sign_off = app->add_subcommand("sign-off", "sign and submit a closure 销号签批");
  sign_off->add_option("case_id", s->case_id, "case id")->required();
  sign_off->add_option("--inspection-id", s->inspection_id, "the passed inspection")->required();
  // Required: a signature is for the version the approver checked (`casectl get`), not
  // whatever version the case has reached when the command runs.
  sign_off
      ->add_option("--expected-version", s->expected_version,
                   "the case version you checked and sign for (see `casectl get`)")
      ->required()
      ->transform(Version());
  sign_off->add_option("--key", s->key_file, "sign now with this private key file");
  sign_off->add_option("--verify-with", s->verify_with,
                       "with --key: the log's verifier key; sign only once an inclusion proof "
                       "under a checkpoint it signed shows the leaf hash is the case's latest "
                       "event in the log (exit 5 otherwise; 4 when no proof could be had)");
  sign_off->add_option("--checkpoint-file", s->checkpoint_file,
                       "with --verify-with: the checkpoint you kept from your last proof (a "
                       "signed note; created on first use); sign only if the log's checkpoint "
                       "extends it (a consistency proof), then keep the newer one there");
  sign_off->add_option("--latest", s->latest_hex,
                       "with --key: the leaf hash of the case's event at that version, 64 hex "
                       "digits (default: the server's, read when the case is at that version)");
  sign_off->add_option("--key-id", s->key_id, "or: the key id of a signature made with sign");
  sign_off->add_option("--signature", s->signature_b64, "and that signature (base64)");
  sign_off->add_option("--request-id", s->request_id,
                       "idempotency key; a retry with the same id is safe (default: random)");
  sign_off->callback([s] { SignOff(*s); });

  auto* admin = app->add_subcommand("admin", "administration 系统管理 (role admin)");
  admin->require_subcommand(1);
  auto* reg = admin->add_subcommand("register-key", "register an approver's public key 登记公钥");
  reg->add_option("approver", s->approver, "the approver's identity")->required();
  reg->add_option("--public-key", s->public_key_text, "base64 (as keygen prints) or hex")
      ->required();
  reg->add_option("--level", s->level, "county or city")
      ->capture_default_str()
      ->check(CLI::IsMember({"county", "city"}));
  reg->add_option("--request-id", s->request_id, "idempotency key (default: random)");
  reg->callback([s] { RegisterKey(*s); });

  auto* revoke = admin->add_subcommand("revoke-key", "revoke an approver's key 吊销密钥");
  revoke->add_option("approver", s->approver, "the approver's identity")->required();
  revoke->add_option("key_id", s->revoke_key_id, "the key id (ed25519:...)")->required();
  revoke->add_option("--reason", s->reason, "why")->required();
  revoke->add_option("--request-id", s->request_id, "idempotency key (default: random)");
  revoke->callback([s] { RevokeKey(*s); });

  auto* backup = admin->add_subcommand(
      "backup", "take a verified online backup on the server 在线备份（校验后生效）");
  backup->add_option("--request-id", s->request_id,
                     "idempotency key: a retry with the same id gets the first backup's "
                     "answer instead of a second backup (default: none)");
  backup->callback([s] { Backup(*s); });
  auto* reload = admin->add_subcommand(
      "reload-principals",
      "read the server's principals file again, recorded in your name 重新加载人员名册");
  reload->callback([s] { ReloadPrincipals(*s); });
}

}  // namespace casework::client

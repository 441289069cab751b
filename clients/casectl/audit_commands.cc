#include "clients/casectl/audit_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "clients/casectl/dates.h"
#include "clients/casectl/kept_checkpoint.h"
#include "clients/casectl/labels.h"
#include "clients/casectl/progress.h"
#include "clients/table.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "services/shell/ed25519.h"
#include "services/workflow/decider.h"
#include "services/workflow/statement.h"
#include "store/checkpoint.h"
#include "store/export.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"

namespace casework::client {
namespace {

namespace v1 = ::casework::v1;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
// A check that was made and failed: the log, a proof or a file is not what it should be.
constexpr int kExitNotVerified = 5;
constexpr int kExitWriteFailed = 4;  // a file could not be written (any other failure)
constexpr int kExitFailure = 4;      // the work could not be done

// Syncs the file at `from`, renames it to `to` (replacing what is there) and syncs the
// directory, so that `to` is the whole new file or the old one after a crash.
bool SyncAndReplace(const std::string& from, const std::string& to) {
  const int fd = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!synced || std::rename(from.c_str(), to.c_str()) != 0) return false;
  return store::SyncDirectoryOf(to).ok();
}

std::string Hex(std::string_view bytes) {
  return absl::BytesToHexString(absl::string_view(bytes.data(), bytes.size()));
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Zero values too (position 0, a count of 0, state fields at their default): a script
  // reads a field without knowing proto3's rule that defaults are left out.
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

// No deadline: a watch ends by --count or by Ctrl-C.
void Unbounded(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::time_point::max());
}

// The checkpoint `note`, opened with the verifier key `key` (name+hash+base64): its
// signature checked, its size and root read from the signed text.
absl::StatusOr<store::Checkpoint> OpenSigned(const std::string& note, const std::string& key) {
  absl::StatusOr<store::NoteVerifier> verifier = store::NoteVerifier::FromVerifierKey(key);
  if (!verifier.ok()) return verifier.status();
  if (note.empty()) return absl::NotFoundError("no checkpoint came with the answer");
  return store::OpenCheckpoint(note, *verifier, verifier->name());
}

// A --key that is not a verifier key is a usage error, found before anything is sent;
// false (printed, exit status set) then.
bool UsableKey(const std::string& key, int* exit_code) {
  if (key.empty()) return true;
  auto verifier = store::NoteVerifier::FromVerifierKey(key);
  if (verifier.ok()) return true;
  std::cerr << "--key: not a verifier key (name+hash+base64): " << verifier.status().message()
            << " 验证密钥格式错误\n";
  *exit_code = kExitUsage;
  return false;
}

// A time as casectl prints it: local time to the minute, "-" when unset.
std::string TimeLabel(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

// Sign-off signatures of an export, checked against keys registered earlier in it.
class SignOffChecker {
 public:
  std::optional<std::string> Visit(const store::ExportRecord& r) {
    v1::Event e;
    if (!e.ParseFromString(r.event)) return "the event does not parse as casework.v1.Event";
    if (first_naming_leaf_ < 0 && workflow::KnownRulesVersion(e.rules_version()) &&
        workflow::SignOffNamesLatestLeaf(e.rules_version())) {
      first_naming_leaf_ = r.position;
    }
    if (r.stream.rfind("approvers/", 0) == 0) {
      const std::string person = r.stream.substr(10);
      if (e.has_approver_key_registered()) {
        keys_[e.approver_key_registered().key_id()] = {person,
                                                       e.approver_key_registered().public_key()};
      } else if (e.has_approver_key_revoked()) {
        auto it = keys_.find(e.approver_key_revoked().key_id());
        if (it != keys_.end() && it->second.person == person) it->second.revoked = true;
      }
      return std::nullopt;
    }
    if (r.stream.rfind("cases/", 0) != 0) return std::nullopt;
    // The leaf hash of the case's previous event, which a sign-off's statement names.
    store::Hash& latest = latest_[r.stream];
    const store::Hash before = latest;
    latest = r.leaf_hash;
    if (!e.has_closure_signed_off()) return std::nullopt;
    const v1::SignOff& s = e.closure_signed_off().sign_off();
    if (s.approver() != e.actor()) {
      // The closure policy counts approvers by this field, and the signed statement does
      // not name the approver: it must be the event's actor.
      return "sign-off by " + e.actor() + " names another approver, \"" + s.approver() + "\"";
    }
    auto it = keys_.find(s.key_id());
    if (it == keys_.end() || it->second.person != e.actor() || it->second.revoked) {
      return "sign-off by " + e.actor() + " names key \"" + s.key_id() +
             "\", not registered (or revoked) by them before it";
    }
    std::string statement;
    if (workflow::SignOffNamesLatestLeaf(e.rules_version())) {
      const std::string expected(reinterpret_cast<const char*>(before.data()), before.size());
      if (s.latest_leaf_hash() != expected) {
        return "sign-off by " + e.actor() + " names the latest leaf " +
               absl::BytesToHexString(s.latest_leaf_hash()) + ", but event " +
               std::to_string(r.version - 1) + " of " + r.stream + " has leaf " +
               absl::BytesToHexString(expected);
      }
      statement = workflow::SignOffStatement(r.stream.substr(6), r.version - 1, s.inspection_id(),
                                             s.latest_leaf_hash());
    } else if (first_naming_leaf_ >= 0 && first_naming_leaf_ < r.position) {
      // Rules only move forward (deep verification checks the same).
      return "sign-off by " + e.actor() + " was admitted under " + e.rules_version() +
             ", whose statement names no leaf hash, after position " +
             std::to_string(first_naming_leaf_) + " was admitted under rules that require one";
    } else {
      statement =
          workflow::SignOffStatementV1(r.stream.substr(6), r.version - 1, s.inspection_id());
    }
    // The server's own strict check (services/shell/ed25519.h): what it would refuse to
    // admit, an export must not pass with.
    if (!shell::VerifyEd25519Strict(it->second.public_key, statement, s.signature())) {
      return "sign-off signature of " + e.actor() + " does not verify";
    }
    ++checked_;
    return std::nullopt;
  }
  int64_t checked() const { return checked_; }

 private:
  struct Key {
    std::string person;
    std::string public_key;
    bool revoked = false;
  };
  absl::flat_hash_map<std::string, Key> keys_;
  absl::flat_hash_map<std::string, store::Hash> latest_;  // case stream -> last leaf hash
  // The position of the first event under rules whose sign-offs name the latest leaf.
  int64_t first_naming_leaf_ = -1;
  int64_t checked_ = 0;
};

// The last record position in an export chunk that ends at a record boundary, or -1.
// `offset` is where records start in the chunk (after the header in the first one).
int64_t LastPositionIn(const std::string& chunk, size_t offset) {
  int64_t last = -1;
  // The lengths come from the server: compared without an addition that could wrap.
  while (offset <= chunk.size() && chunk.size() - offset >= 12) {
    last = static_cast<int64_t>(store::format::DecodeFixed64BE(chunk.data() + offset));
    offset += 12 + store::format::DecodeFixed32BE(chunk.data() + offset + 8);
  }
  return last;
}

// The ledger's cases as of `as_of` within `jurisdiction`, replayed no further than
// `log_size` (the through_position of the counts printed before them, so that both
// replays end at the same place), page by page: a table a page, or with --json one case
// per line.
void PrintCasesAsOf(const std::shared_ptr<AuditCommandContext>& shared,
                    const std::string& jurisdiction, const v1::AsOf& as_of, int64_t log_size,
                    bool json) {
  auto c = shared->client();
  auto stub = v1::AuditService::NewStub(c->channel());
  v1::ListCasesAsOfRequest req;
  req.set_jurisdiction(jurisdiction);
  *req.mutable_as_of() = as_of;
  req.set_log_size(log_size);
  req.set_page_size(1000);
  int64_t count = 0;
  std::string last_token;
  for (int busy = 0;;) {
    v1::ListCasesAsOfResponse page;
    auto ctx = c->NewLongContext();
    const grpc::Status status = stub->ListCasesAsOf(ctx.get(), req, &page);
    if (!status.ok() && DecodeError(status).reason == "AUDIT_JOBS_BUSY" && ++busy <= 10) {
      std::this_thread::sleep_for(std::chrono::seconds(1));  // the same page again
      continue;
    }
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    busy = 0;
    Table table({"Case 案件", "State 状态", "Version 版本", "Organisation 组织",
                 "Jurisdiction 辖区", "Deadline 整改期限"});
    for (const v1::Case& k : page.cases()) {
      ++count;
      if (json) {
        std::cout << Json(k) << "\n";
      } else {
        table.AddRow({k.case_id(), StateLabel(k.state()), std::to_string(k.version()),
                      k.organisation().display_name(), k.organisation().jurisdiction(),
                      TimeLabel(k.deadline())});
      }
    }
    if (!json && page.cases_size() > 0) table.Print(std::cout);
    if (page.next_page_token().empty()) break;
    if (page.next_page_token() == last_token || page.cases_size() == 0) {
      std::cerr << "the server's pages of cases do not advance; stopped\n"
                   "服务器返回的案件分页没有推进，已停止\n";
      *shared->exit_code = kExitFailure;
      return;
    }
    last_token = page.next_page_token();
    req.set_page_token(last_token);
  }
  if (!json) std::cout << count << " cases 个案件\n";
}

// `proof consistency --checkpoint-file`: the log's latest signed checkpoint, proved to
// extend the one kept in `path`, is kept there in its place.
void AdvanceKept(const AuditCommandContext& shared, const std::string& key, const std::string& path,
                 bool json_mode) {
  auto c = shared.client();
  v1::GetCheckpointResponse head;
  auto ctx = c->NewContext();
  const grpc::Status status =
      v1::AuditService::NewStub(c->channel())->GetCheckpoint(ctx.get(), {}, &head);
  if (!status.ok()) {
    *shared.exit_code = shared.report_error(status);
    return;
  }
  const store::NoteVerifier verifier = *store::NoteVerifier::FromVerifierKey(key);
  const absl::StatusOr<store::Checkpoint> latest =
      store::OpenCheckpoint(head.checkpoint(), verifier, verifier.name());
  absl::StatusOr<KeptCheckpointStep> step =
      latest.ok() ? AdvanceKeptCheckpoint(*c, verifier, path, head.checkpoint(), *latest,
                                          /*create=*/false)
                  : absl::StatusOr<KeptCheckpointStep>(absl::FailedPreconditionError(
                        absl::StrCat("the log's latest checkpoint does not verify under --key: ",
                                     latest.status().message())));
  if (!step.ok() && step.status().code() == absl::StatusCode::kNotFound) {
    std::cerr << step.status().message() << " 未找到保存的检查点\n";
    *shared.exit_code = kExitUsage;
    return;
  }
  // Only a proof that failed says the log is not what was kept; anything else (the file,
  // the call, the write) says the check could not be made.
  const bool inconsistent =
      !step.ok() && step.status().code() == absl::StatusCode::kFailedPrecondition;
  json out = {{"checkpoint_file", path}, {"verified", step.ok()}};
  if (step.ok()) {
    // With a newer checkpoint kept (another run's), the log's is proved a prefix of it.
    out["first_tree_size"] = step->kept_is_newer ? latest->size : step->kept_size;
    out["second_tree_size"] = step->size;  // the size kept now
    out["kept_is_newer"] = step->kept_is_newer;
    if (!step->kept_is_newer) out["checkpoint"] = head.checkpoint();
  } else {
    out["error"] = std::string(step.status().message());
  }
  // Paths as typed, which need not be UTF-8: shown, not refused.
  std::cout << (json_mode ? out.dump(-1, ' ', false, json::error_handler_t::replace)
                          : out.dump(2, ' ', false, json::error_handler_t::replace))
            << "\n";
  if (!json_mode) {
    if (step.ok()) {
      std::cout << (step->size == step->kept_size
                        ? "verified: the log is where it was kept 已验证：日志与保存的检查点一致\n"
                        : "verified: the log only grew; the newer checkpoint is kept "
                          "已验证：日志仅追加，已保存新检查点\n");
    } else if (inconsistent) {
      std::cout << "NOT VERIFIED: the log is not an extension of the kept checkpoint, which is "
                   "left as it was 未通过验证：日志不是保存的检查点的延续，保存的检查点未改动\n";
    } else {
      std::cout << "NOT CHECKED: the kept checkpoint could not be checked against the log "
                   "未能核对保存的检查点\n";
    }
  }
  // Only a proof that failed says the log is not what was kept; otherwise nothing was
  // checked.
  if (!step.ok()) *shared.exit_code = inconsistent ? kExitNotVerified : kExitFailure;
}

}  // namespace

void AddAuditCommands(CLI::App* app, AuditCommandContext cx) {
  auto shared = std::make_shared<AuditCommandContext>(std::move(cx));
  const bool* json_mode = shared->json;

  // --- watch ---
  struct WatchArgs {
    int64_t from = 0;
    std::string stream, jurisdiction;
    std::vector<std::string> kinds;
    int64_t count = 0;
    int per_message = 0;
    std::string key, checkpoint_file;
  };
  auto w = std::make_shared<WatchArgs>();
  auto* watch = app->add_subcommand("watch", "follow the log as it changes 订阅事件流");
  watch
      ->add_option("--from", w->from,
                   "first position (to resume, the position the last watch printed at its end)")
      ->capture_default_str();
  watch->add_option("--stream", w->stream, "only this stream, e.g. cases/c-1");
  watch->add_option("--jurisdiction", w->jurisdiction, "only this jurisdiction subtree");
  watch->add_option("--kind", w->kinds, "only these event kinds, e.g. inspection_passed");
  watch->add_option("--count", w->count, "stop after this many events (0: follow forever)");
  watch->add_option("--max-per-message", w->per_message, "events per message (server default)");
  watch->add_option("--key", w->key,
                    "verify every checkpoint the stream carries with this verifier key "
                    "(name+hash+base64); one that does not verify ends the watch (exit 5)");
  watch->add_option("--checkpoint-file", w->checkpoint_file,
                    "with --key: the checkpoint kept (created on first use); each checkpoint "
                    "the stream carries must extend it (a consistency proof) and is then kept "
                    "there in its place (exit 5 otherwise; 4 when that could not be checked)");
  watch->callback([shared, w, json_mode] {
    if (!UsableKey(w->key, shared->exit_code)) return;
    if (!w->checkpoint_file.empty() && w->key.empty()) {
      std::cerr << "--checkpoint-file needs --key 请同时提供 --key\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    std::optional<store::NoteVerifier> verifier;
    if (!w->key.empty()) verifier = *store::NoteVerifier::FromVerifierKey(w->key);
    // The newest checkpoint verified, and whether it is kept yet (--checkpoint-file).
    std::string newest_note;
    store::Checkpoint newest;
    bool newest_kept = true;
    bool refused = false;
    auto c = shared->client();
    // Keeps the newest checkpoint in --checkpoint-file after a consistency proof from the
    // one kept there (the server sends one about every second while the log grows). False
    // (printed, exit status set) when the log is not an extension of the kept one, or the
    // file is unusable; a proof that could not be asked for now (the server away) is
    // asked for again at the next checkpoint, or at the end.
    const auto keep = [&]() {
      if (w->checkpoint_file.empty() || newest_kept) return true;
      absl::StatusOr<KeptCheckpointStep> step = AdvanceKeptCheckpoint(
          *c, *verifier, w->checkpoint_file, newest_note, newest, /*create=*/true);
      if (step.ok()) {
        newest_kept = true;
        return true;
      }
      if (step.status().code() == absl::StatusCode::kUnavailable) {
        std::cerr << "-- the kept checkpoint could not be checked now (" << step.status().message()
                  << "); tried again at the next checkpoint 暂时无法核对保存的检查点\n";
        return true;
      }
      const bool inconsistent = step.status().code() == absl::StatusCode::kFailedPrecondition;
      std::cerr << (inconsistent ? "NOT VERIFIED 未通过验证: " : "NOT CHECKED 未能核对: ")
                << step.status().message() << "\n";
      *shared->exit_code = inconsistent ? kExitNotVerified : kExitFailure;
      return false;
    };
    auto stub = v1::EventService::NewStub(c->channel());
    v1::WatchEventsRequest req;
    req.set_max_events_per_message(w->per_message);
    req.mutable_filter()->set_stream(w->stream);
    req.mutable_filter()->set_jurisdiction(w->jurisdiction);
    for (const auto& k : w->kinds) req.mutable_filter()->add_kinds(k);
    // Where to resume: every position below it was delivered or examined.
    int64_t next = w->from;
    int64_t seen = 0;
    bool live = false;
    // A lost connection (the server restarted, or closed the connection at its maximum
    // age) is resumed from `next` on a new one; only a run of failed attempts without a
    // message in between ends the watch.
    constexpr int kAttemptsMax = 8;
    int failed_attempts = 0;
    bool connected = false;  // a message came on some connection
    grpc::Status status;
    for (;;) {
      auto ctx = c->NewContext();
      Unbounded(ctx.get());  // a watch follows the log until stopped, whatever --timeout-ms
      req.set_from_position(next);
      auto reader = stub->WatchEvents(ctx.get(), req);
      v1::WatchEventsResponse m;
      while ((w->count == 0 || seen < w->count) && reader->Read(&m)) {
        failed_attempts = 0;
        connected = true;
        for (const auto& r : m.events()) {
          if (*json_mode) {
            std::cout << Json(r) << "\n";
          } else {
            std::cout << r.position() << "  " << r.event().stream() << " v" << r.event().version()
                      << "  " << EventKindLabel(r.event()) << "  " << r.event().actor() << "  "
                      << TimeLabel(r.event().time()) << "\n";
          }
          next = std::max(next, r.position() + 1);
          if (w->count != 0 && ++seen >= w->count) break;
        }
        // A message cut short by --count: its scan and checkpoint reach past events that
        // were not printed, so neither is a place to resume from. Its checkpoint is of the
        // log all the same, and checked.
        const bool whole = w->count == 0 || seen < w->count;
        if (verifier.has_value() && !m.checkpoint().empty()) {
          // The checkpoint covers exactly what was scanned, signed by the key given.
          absl::StatusOr<store::Checkpoint> opened =
              store::OpenCheckpoint(m.checkpoint(), *verifier, verifier->name());
          if (!opened.ok() || opened->size != m.scanned_through()) {
            std::cerr << "NOT VERIFIED 未通过验证: the checkpoint at " << m.scanned_through()
                      << (opened.ok() ? absl::StrCat(" is of size ", opened->size)
                                      : absl::StrCat(" does not verify under --key: ",
                                                     opened.status().message()))
                      << "\n";
            *shared->exit_code = kExitNotVerified;
            refused = true;
            break;
          }
          newest_note = m.checkpoint();
          newest = *opened;
          newest_kept = false;
          if (!keep()) {
            refused = true;
            break;
          }
        }
        if (whole) next = std::max(next, m.scanned_through());
        if (*json_mode && whole && !m.checkpoint().empty()) {
          json line = {{"checkpoint", m.checkpoint()}, {"scanned_through", m.scanned_through()}};
          if (verifier.has_value()) line["verified"] = true;  // signed by --key, of this size
          // With --checkpoint-file: whether it is now the kept one (proved to extend it);
          // false while the proof waits for the server.
          if (!w->checkpoint_file.empty()) line["kept"] = newest_kept;
          std::cout << line.dump() << "\n";
        }
        if (m.caught_up() && !live && !*json_mode) {
          std::cerr << "-- caught up at " << m.scanned_through()
                    << "; following live 已追平，实时跟随\n";
          live = true;
        }
        std::cout.flush();
      }
      const bool done = refused || (w->count != 0 && seen >= w->count);
      if (done) ctx->TryCancel();
      status = reader->Finish();
      // The server going away shows as UNAVAILABLE, or as CANCELLED when it cancels its
      // calls on shutdown; this client cancels only once it has what it asked for.
      const bool lost = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                        status.error_code() == grpc::StatusCode::CANCELLED;
      // A server never reached (a wrong address) ends the watch at once.
      if (done || !lost || !connected || ++failed_attempts > kAttemptsMax) break;
      // 0.25 s, 0.5 s, ... at most 8 s between attempts: about 30 s in all.
      const auto wait = std::chrono::milliseconds(std::min(250 << (failed_attempts - 1), 8000));
      if (!*json_mode) {
        std::cerr << "-- connection lost (" << status.error_message() << "); resuming from " << next
                  << " 连接中断，从位置 " << next << " 继续\n";
      }
      std::this_thread::sleep_for(wait);
      // A new channel: the old one waits out gRPC's own reconnect backoff (1 s, growing
      // 1.6 times), failing calls at once meanwhile, however soon the server is back.
      c = shared->client();
      stub = v1::EventService::NewStub(c->channel());
    }
    // A checkpoint whose proof could not be asked for is tried once more at the end; one
    // still not proved then leaves the run unchecked, not good (the watch's own error, if
    // it ended with one, is reported below all the same).
    if (!refused && !keep()) refused = true;
    const bool unproved = !refused && !newest_kept;
    if (unproved) {
      std::cerr << "NOT CHECKED 未能核对: the newest checkpoint received (size " << newest.size
                << ") could not be proved to extend the one kept in " << w->checkpoint_file
                << ", which is left as it was; run again to check it 保存的检查点未更新\n";
      *shared->exit_code = kExitFailure;
    }
    if (!*json_mode)
      std::cerr << "-- to resume: --from " << next << " 续订请用 --from " << next << "\n";
    if (!refused && !status.ok() && !(w->count != 0 && seen >= w->count)) {
      *shared->exit_code = shared->report_error(status);
    }
  });

  // --- verify ---
  struct VerifyArgs {
    int64_t from = 0, to = 0;
    bool deep = false;
  };
  auto v = std::make_shared<VerifyArgs>();
  auto* verify = app->add_subcommand("verify", "verify the log on the server 校验日志");
  verify->add_option("--from", v->from, "first position")->capture_default_str();
  verify->add_option("--to", v->to, "end position, exclusive (0: the latest checkpoint)");
  verify->add_flag("--deep", v->deep, "also re-run the rules and sign-off signatures");
  verify->callback([shared, v, json_mode] {
    auto c = shared->client();
    auto stub = v1::AuditService::NewStub(c->channel());
    auto ctx = c->NewLongContext();
    v1::VerifyLogRequest req;
    req.set_from_position(v->from);
    req.set_to_position(v->to);
    req.set_deep(v->deep);
    auto reader = stub->VerifyLog(ctx.get(), req);
    Progress progress(!*json_mode, "verify");
    v1::VerifyLogResponse m, last;
    bool received = false;
    while (reader->Read(&m)) {
      progress.Update(m.checked(), m.total(), m.phase());
      last = m;
      received = true;
    }
    progress.Finish();
    auto status = reader->Finish();
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    if (!received || !last.done()) {
      std::cerr << "the server ended the verification without a verdict, so nothing was "
                   "verified 服务器未返回校验结论，未完成校验\n";
      *shared->exit_code = kExitFailure;
      return;
    }
    // The range as the server resolved it; a server of before 2026-12-07 does not say, and
    // its total then counts the last pass's positions (from 0 in a deep one).
    int64_t first = last.from_position();
    int64_t end = last.to_position();
    if (end == 0 && last.total() > 0) {
      first = v->from;
      end = v->from == 0 || v->deep ? last.total() : v->from + last.total();
    }
    if (*json_mode) {
      std::cout << Json(last) << "\n";
    } else if (last.ok()) {
      // Says which positions: a range verified is not the whole log.
      if (end <= first) {
        std::cout << "verified: the range holds no position, nothing was checked "
                     "范围内没有可校验的位置\n";
      } else if (first == 0 && v->to == 0) {
        std::cout << "verified: the log up to its latest signed checkpoint, positions 0 to "
                  << end - 1 << ", every one checked, intact 校验通过：截至最新签名检查点的全部 "
                  << end << " 个位置完好\n";
      } else {
        std::cout << "verified: positions " << first << " to " << end - 1
                  << " only, intact; positions outside the range were not checked 校验通过：仅第 "
                  << first << " 至 " << end - 1 << " 号位置完好\n";
      }
    } else {
      std::cout << "NOT VERIFIED at position " << last.first_bad_position() << ": "
                << last.problem() << "\n校验未通过\n";
    }
    if (!*json_mode && last.closures_under_weaker_policy() > 0) {
      std::cout << "note: " << last.closures_under_weaker_policy()
                << " closure(s) were admitted under a closure policy weaker than this server's "
                   "(the first signed off at position "
                << last.first_closure_under_weaker_policy() << ")\n注意：有 "
                << last.closures_under_weaker_policy()
                << " 个案件在比当前更宽松的销号签批规则下销号（首个签批位于第 "
                << last.first_closure_under_weaker_policy() << " 号位置）\n";
    }
    *shared->exit_code = last.ok() ? kExitOk : kExitNotVerified;
  });

  // --- as-of case | ledger ---
  struct AsOfArgs {
    int64_t position = -1;
    std::string at, case_id, jurisdiction;
    bool cases = false;
  };
  auto a = std::make_shared<AsOfArgs>();
  auto* asof =
      app->add_subcommand("as-of", "a case or the ledger as of a position or time 时点回放");
  asof->require_subcommand(1);
  auto point = [a](v1::AsOf* out) -> bool {
    if (a->position >= 0) {
      out->set_position(a->position);
    } else if (!a->at.empty()) {
      auto t = ParseDate(a->at);
      if (!t.ok()) return false;
      *out->mutable_time() = *t;
    }
    return true;
  };
  for (auto* sub : {asof->add_subcommand("case", "one case 单个案件"),
                    asof->add_subcommand("ledger", "counts and conversion rates 台账统计")}) {
    auto* position = sub->add_option("--position", a->position, "every event before this position");
    // One point or the other: given both, one would be ignored while the user reads the
    // answer as of it.
    sub->add_option("--at", a->at,
                    "each stream's events up to this time (RFC 3339 or YYYY-MM-DD; docs/audit.md)")
        ->excludes(position);
  }
  auto* asof_case = asof->get_subcommand("case");
  asof_case->add_option("case_id", a->case_id, "case id")->required();
  asof_case->callback([shared, a, point, json_mode] {
    v1::GetCaseAsOfRequest req;
    req.set_name("cases/" + a->case_id);
    if (!point(req.mutable_as_of())) {
      std::cerr
          << "--at: not a time (use 2026-03-01 or 2026-03-01T12:00:00+08:00) --at 不是有效时间\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    auto c = shared->client();
    v1::Case resp;
    auto ctx = c->NewContext();
    auto status = v1::AuditService::NewStub(c->channel())->GetCaseAsOf(ctx.get(), req, &resp);
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    if (*json_mode) {
      std::cout << Json(resp) << "\n";
    } else {
      PrintRecord(std::cout,
                  {{"Case 案件", resp.case_id()},
                   {"State 状态", StateLabel(resp.state())},
                   {"Version 版本", std::to_string(resp.version())},
                   {"Last position 末位置", std::to_string(resp.last_position())},
                   {"Organisation 组织", resp.organisation().display_name() + " (" +
                                             resp.organisation().organisation_id() + ")"},
                   {"Jurisdiction 辖区", resp.organisation().jurisdiction()},
                   {"Deadline 整改期限", TimeLabel(resp.deadline())},
                   {"Updated 更新时间", TimeLabel(resp.update_time())}});
    }
  });
  auto* asof_ledger = asof->get_subcommand("ledger");
  asof_ledger->add_option("--jurisdiction", a->jurisdiction, "subtree (default: yours)");
  asof_ledger->add_flag("--cases", a->cases,
                        "also every case as it stood then, by case id 并列出当时的每个案件");
  asof_ledger->callback([shared, a, point, json_mode] {
    v1::GetLedgerAsOfRequest req;
    req.set_jurisdiction(a->jurisdiction);
    if (!point(req.mutable_as_of())) {
      std::cerr
          << "--at: not a time (use 2026-03-01 or 2026-03-01T12:00:00+08:00) --at 不是有效时间\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    auto c = shared->client();
    v1::GetLedgerAsOfResponse resp;
    auto ctx = c->NewLongContext();
    auto status = v1::AuditService::NewStub(c->channel())->GetLedgerAsOf(ctx.get(), req, &resp);
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    if (*json_mode) {
      std::cout << Json(resp) << "\n";
      if (a->cases) {
        PrintCasesAsOf(shared, req.jurisdiction(), req.as_of(), resp.through_position(), true);
      }
      return;
    }
    std::cout << "through position 截至位置 " << resp.through_position() << "\n";
    Table table({"Jurisdiction 辖区", "Listed 列入", "Assisted 帮扶中", "Verified 已验收",
                 "Closed 已销号", "Reopened 反弹", "Rate 转化率"});
    for (const auto& r : resp.counts()) {
      char rate[32];
      std::snprintf(rate, sizeof rate, "%.2f%%", r.conversion_rate_bp() / 100.0);
      table.AddRow({r.jurisdiction(), std::to_string(r.listed()), std::to_string(r.assisted()),
                    std::to_string(r.verified()), std::to_string(r.closed()),
                    std::to_string(r.reopened()), rate});
    }
    table.Print(std::cout);
    if (a->cases) {
      PrintCasesAsOf(shared, req.jurisdiction(), req.as_of(), resp.through_position(), false);
    }
  });

  // --- proof checkpoint | inclusion | consistency ---
  struct ProofArgs {
    int64_t position = 0, size = 0, first = 0, second = 0;
    std::string key, out, first_root, checkpoint_file;
  };
  auto p = std::make_shared<ProofArgs>();
  auto* proof = app->add_subcommand("proof", "checkpoints and Merkle proofs 检查点与证明");
  proof->require_subcommand(1);
  auto* cp = proof->add_subcommand("checkpoint", "the latest signed checkpoint 最新签名检查点");
  cp->add_option("--out", p->out, "also write the note to this file");
  cp->add_option("--key", p->key, "verify it with this verifier key (name+hash+base64)");
  cp->callback([shared, p, json_mode] {
    if (!UsableKey(p->key, shared->exit_code)) return;
    auto c = shared->client();
    v1::GetCheckpointResponse resp;
    auto ctx = c->NewContext();
    auto status = v1::AuditService::NewStub(c->channel())->GetCheckpoint(ctx.get(), {}, &resp);
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    std::optional<bool> verified;
    // The size and root shown are the signed note's own, never the response's other fields
    // (which the signature does not cover); a response whose fields disagree with its note
    // does not verify.
    int64_t size = resp.tree_size();
    std::string root = resp.root_hash();
    if (!p->key.empty()) {
      auto verifier = store::NoteVerifier::FromVerifierKey(p->key);
      absl::StatusOr<store::Checkpoint> opened =
          verifier.ok() ? store::OpenCheckpoint(resp.checkpoint(), *verifier, verifier->name())
                        : absl::StatusOr<store::Checkpoint>(verifier.status());
      verified = opened.ok();
      if (opened.ok()) {
        verified = opened->size == resp.tree_size() &&
                   store::rfc9162::AsBytes(opened->root) == resp.root_hash();
        size = opened->size;
        root = std::string(store::rfc9162::AsBytes(opened->root));
      }
    }
    // --out only gets a note that verified (when --key asks for it), whole: an earlier
    // note there stays until the new one is synced beside it.
    if (!p->out.empty() && verified.value_or(true)) {
      // The lock of a kept checkpoint (proof consistency --checkpoint-file, sign-off): a
      // note written here does not mix with a step of theirs.
      absl::StatusOr<KeptCheckpointLock> lock = KeptCheckpointLock::Take(p->out);
      if (!lock.ok()) {
        std::cerr << lock.status().message() << " 无法锁定文件\n";
        *shared->exit_code = kExitWriteFailed;
        return;
      }
      const std::string partial = p->out + ".partial";
      std::ofstream note(partial, std::ios::binary | std::ios::trunc);
      note << resp.checkpoint();
      note.close();
      if (note.fail() || !SyncAndReplace(partial, p->out)) {
        std::remove(partial.c_str());
        std::cerr << "cannot write " << p->out << " 无法写入文件\n";
        *shared->exit_code = kExitWriteFailed;
        return;
      }
    }
    if (*json_mode) {
      json out = {{"checkpoint", resp.checkpoint()}, {"tree_size", size}, {"root_hash", Hex(root)}};
      if (verified.has_value()) out["verified"] = *verified;
      std::cout << out.dump() << "\n";
    } else {
      std::cout << resp.checkpoint();
      if (verified.has_value())
        std::cout << (*verified ? "signature verified 签名有效\n"
                                : "SIGNATURE DOES NOT VERIFY 签名无效\n");
    }
    if (verified.has_value() && !*verified) *shared->exit_code = kExitNotVerified;
  });
  auto* inc = proof->add_subcommand("inclusion", "prove one event is in the log 包含证明");
  inc->add_option("--position", p->position, "the event's position")->required();
  inc->add_option("--size", p->size, "tree size (0: the latest checkpoint)");
  inc->add_option("--key", p->key,
                  "check the proof under the checkpoint signed with this verifier key "
                  "(name+hash+base64); without it nothing is verified");
  inc->callback([shared, p, json_mode] {
    if (!UsableKey(p->key, shared->exit_code)) return;
    auto c = shared->client();
    v1::GetInclusionProofRequest req;
    req.set_position(p->position);
    req.set_tree_size(p->size);
    v1::GetInclusionProofResponse resp;
    auto ctx = c->NewContext();
    auto status = v1::AuditService::NewStub(c->channel())->GetInclusionProof(ctx.get(), req, &resp);
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    // Checked here, with --key, under the checkpoint that came with it: its signature, the
    // proof against the signed root at the signed size (not a size the response names), and
    // the leaf hashed here from the event bytes returned.
    const store::Hash leaf = store::rfc9162::HashLeaf(resp.leaf());
    std::vector<std::string> nodes(resp.proof().begin(), resp.proof().end());
    std::optional<bool> verified;
    std::string via;
    if (!p->key.empty() && resp.checkpoint().empty()) {
      // A proof at an older size comes unsigned (the server signs its latest size): the
      // root it leads to is checked by a consistency proof from that size to the latest
      // signed checkpoint.
      const absl::StatusOr<store::Hash> root_then = store::merkle::RootFromInclusion(
          p->position, resp.tree_size(), store::rfc9162::AsBytes(leaf), nodes);
      v1::GetConsistencyProofRequest creq;
      creq.set_first_tree_size(resp.tree_size());
      v1::GetConsistencyProofResponse cresp;
      auto cctx = c->NewContext();
      const grpc::Status cstatus =
          v1::AuditService::NewStub(c->channel())->GetConsistencyProof(cctx.get(), creq, &cresp);
      if (!cstatus.ok()) {
        *shared->exit_code = shared->report_error(cstatus);
        return;
      }
      const absl::StatusOr<store::Checkpoint> body = OpenSigned(cresp.checkpoint(), p->key);
      const std::vector<std::string> cnodes(cresp.proof().begin(), cresp.proof().end());
      verified = root_then.ok() && body.ok() && cresp.first_tree_size() == resp.tree_size() &&
                 body->size == cresp.second_tree_size() &&
                 store::merkle::VerifyConsistency(resp.tree_size(), body->size, cnodes,
                                                  store::rfc9162::AsBytes(*root_then),
                                                  store::rfc9162::AsBytes(body->root))
                     .ok();
      via = absl::StrCat("a consistency proof from size ", resp.tree_size(),
                         " to the signed checkpoint of size ", cresp.second_tree_size());
    } else if (!p->key.empty()) {
      const absl::StatusOr<store::Checkpoint> body = OpenSigned(resp.checkpoint(), p->key);
      verified =
          body.ok() && body->size == resp.tree_size() &&
          store::merkle::VerifyInclusion(p->position, body->size, store::rfc9162::AsBytes(leaf),
                                         nodes, store::rfc9162::AsBytes(body->root))
              .ok();
    } else {
      std::cerr << "no --key: the proof was not checked under a signed checkpoint "
                   "未提供 --key：未在签名检查点下验证证明\n";
    }
    json out = {{"position", p->position},
                {"tree_size", resp.tree_size()},
                {"leaf_hash", Hex(store::rfc9162::AsBytes(leaf))},
                {"leaf", absl::Base64Escape(resp.leaf())},
                {"checkpoint", resp.checkpoint()}};
    out["proof"] = json::array();
    for (const auto& n : nodes) out["proof"].push_back(Hex(n));
    if (verified.has_value()) out["verified_under_checkpoint"] = *verified;
    if (!via.empty()) out["verified_via"] = via;
    std::cout << (*json_mode ? out.dump() : out.dump(2)) << "\n";
    if (!*json_mode && verified.has_value()) {
      std::cout << (*verified ? "verified under the signed checkpoint 已在签名检查点下验证\n"
                              : "NOT VERIFIED under the signed checkpoint 未通过验证\n");
    }
    if (verified.has_value() && !*verified) *shared->exit_code = kExitNotVerified;
  });
  auto* con = proof->add_subcommand("consistency", "prove the log only grew 一致性证明");
  auto* first_option =
      con->add_option("--first", p->first, "the older tree size (a checkpoint you kept)");
  con->add_option("--second", p->second, "the newer tree size (0: the latest checkpoint)");
  con->add_option("--first-root", p->first_root,
                  "the root (hex) of the checkpoint you kept at --first; with --key, the proof "
                  "is checked from it to the latest signed checkpoint");
  con->add_option("--key", p->key,
                  "the verifier key (name+hash+base64) the checkpoint is signed with");
  con->add_option("--checkpoint-file", p->checkpoint_file,
                  "instead of --first and --first-root: the checkpoint you kept (a signed note, "
                  "as `proof checkpoint --out` writes); with --key, proved to the latest signed "
                  "checkpoint, which is then kept there");
  con->callback([shared, p, json_mode, first_option] {
    if (!UsableKey(p->key, shared->exit_code)) return;
    if (!p->checkpoint_file.empty()) {
      if (p->key.empty() || first_option->count() > 0 || p->second != 0 || !p->first_root.empty()) {
        std::cerr << "--checkpoint-file needs --key, and takes the place of --first, --second "
                     "and --first-root 请只用 --checkpoint-file 与 --key\n";
        *shared->exit_code = kExitUsage;
        return;
      }
      AdvanceKept(*shared, p->key, p->checkpoint_file, *json_mode);
      return;
    }
    if (first_option->count() == 0) {
      std::cerr << "give --first (a tree size you kept) or --checkpoint-file "
                   "请提供 --first 或 --checkpoint-file\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    auto c = shared->client();
    v1::GetConsistencyProofRequest req;
    req.set_first_tree_size(p->first);
    req.set_second_tree_size(p->second);
    v1::GetConsistencyProofResponse resp;
    auto ctx = c->NewContext();
    auto status =
        v1::AuditService::NewStub(c->channel())->GetConsistencyProof(ctx.get(), req, &resp);
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    json out = {{"first_tree_size", resp.first_tree_size()},
                {"second_tree_size", resp.second_tree_size()},
                {"checkpoint", resp.checkpoint()}};
    out["proof"] = json::array();
    for (const auto& n : resp.proof()) out["proof"].push_back(Hex(n));
    // The log only grew from the kept checkpoint: the proof from (first, first root) to the
    // signed checkpoint that came with it, at the signed size.
    std::optional<bool> verified;
    if (!p->key.empty() && !p->first_root.empty() && resp.checkpoint().empty()) {
      std::cerr << "no signed checkpoint came with a proof to size " << resp.second_tree_size()
                << " (the server signs its latest size only): drop --second to check the proof "
                   "to the latest signed checkpoint 服务器仅签名最新检查点，请去掉 --second\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    if (!p->key.empty() && !p->first_root.empty()) {
      std::string first_root;
      const absl::StatusOr<store::Checkpoint> body = OpenSigned(resp.checkpoint(), p->key);
      const std::vector<std::string> nodes(resp.proof().begin(), resp.proof().end());
      const bool hex =
          p->first_root.size() == 64 &&
          p->first_root.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
      if (hex) first_root = absl::HexStringToBytes(p->first_root);
      verified = hex && body.ok() && resp.first_tree_size() == p->first &&
                 body->size == resp.second_tree_size() &&
                 store::merkle::VerifyConsistency(p->first, body->size, nodes, first_root,
                                                  store::rfc9162::AsBytes(body->root))
                     .ok();
      out["verified"] = *verified;
    } else {
      std::cerr << "no --key and --first-root: the proof was not checked "
                   "未提供 --key 与 --first-root：未验证证明\n";
    }
    std::cout << (*json_mode ? out.dump() : out.dump(2)) << "\n";
    if (!*json_mode && verified.has_value()) {
      std::cout << (*verified ? "verified: the log only grew 已验证：日志仅追加\n"
                              : "NOT VERIFIED 未通过验证\n");
    }
    if (verified.has_value() && !*verified) *shared->exit_code = kExitNotVerified;
  });

  // --- export ---
  struct ExportArgs {
    int64_t from = 0, to = 0;
    std::string out;
  };
  auto e = std::make_shared<ExportArgs>();
  auto* exp = app->add_subcommand("export", "export the log (docs/audit.md) 导出日志");
  exp->add_option("--from", e->from, "first position")->capture_default_str();
  exp->add_option("--to", e->to, "end position, exclusive (0: the latest checkpoint)");
  exp->add_option("--out", e->out, "file to write")->required();
  exp->callback([shared, e, json_mode] {
    // Written beside --out and put in its place only once whole and synced: a refused or
    // broken export leaves an earlier file of that name as it was.
    const std::string partial = e->out + ".partial";
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out.is_open()) {
      std::cerr << "cannot write " << partial << " 无法写入文件\n";
      *shared->exit_code = kExitWriteFailed;
      return;
    }
    struct RemovePartial {
      const std::string& path;
      bool keep = false;
      ~RemovePartial() {
        if (!keep) std::remove(path.c_str());
      }
    } remove_partial{partial};
    auto c = shared->client();
    auto ctx = c->NewLongContext();
    v1::ExportLogRequest req;
    req.set_from_position(e->from);
    req.set_to_position(e->to);
    auto reader = v1::AuditService::NewStub(c->channel())->ExportLog(ctx.get(), req);
    Progress progress(!*json_mode, "export");
    v1::ExportLogResponse m;
    int64_t bytes = 0, from = e->from, to = 0, done = 0;
    bool first = true;
    while (reader->Read(&m)) {
      out.write(m.data().data(), static_cast<std::streamsize>(m.data().size()));
      bytes += static_cast<int64_t>(m.data().size());
      size_t offset = 0;
      if (first) {  // the header: from, to, then the checkpoint
        first = false;
        const std::string& d = m.data();
        auto value = [&d](const std::string& key) -> int64_t {
          const size_t at = d.find("\n" + key + ": ");
          return at == std::string::npos ? 0 : std::atoll(d.c_str() + at + key.size() + 3);
        };
        from = value("from");
        to = value("to");
        const size_t blank = d.find("\n\n");
        const int64_t note = value("checkpoint-length");
        // A header that does not fit its message (a server's word, not trusted) leaves
        // the progress at 0 rather than reading past it.
        offset = blank == std::string::npos || note < 0 ||
                         static_cast<uint64_t>(note) > d.size() - blank - 2
                     ? d.size()
                     : blank + 2 + static_cast<size_t>(note);
      }
      const int64_t last = LastPositionIn(m.data(), offset);
      if (last >= 0) done = last + 1 - from;
      progress.Update(done, to - from);
    }
    progress.Finish();
    out.close();
    auto status = reader->Finish();
    if (!status.ok()) {
      *shared->exit_code = shared->report_error(status);
      return;
    }
    if (out.fail() || !SyncAndReplace(partial, e->out)) {  // a full disk, say
      std::cerr << "writing " << e->out << " failed; nothing was put in its place 写入失败，"
                << "未替换该文件\n";
      *shared->exit_code = kExitWriteFailed;
      return;
    }
    remove_partial.keep = true;  // it is --out now
    if (*json_mode) {
      // The path as typed, which need not be UTF-8: shown, not refused (the export is done).
      std::cout << json{{"file", e->out}, {"bytes", bytes}, {"from", from}, {"to", to}}.dump(
                       -1, ' ', false, json::error_handler_t::replace)
                << "\n";
    } else {
      std::cout << "exported [" << from << ", " << to << ") to " << e->out << " (" << bytes
                << " bytes) 导出完成\n";
    }
  });

  // --- verify-export (offline) ---
  struct VerifyExportArgs {
    std::string file, key;
  };
  auto ve = std::make_shared<VerifyExportArgs>();
  auto* vex = app->add_subcommand("verify-export",
                                  "verify an export offline, without the server 离线校验导出文件");
  vex->add_option("file", ve->file, "the export file")->required()->check(CLI::ExistingFile);
  vex->add_option("--key", ve->key,
                  "the server's verifier key (name+hash+base64), obtained from the operator")
      ->required();
  vex->callback([shared, ve, json_mode] {
    auto verifier = store::NoteVerifier::FromVerifierKey(ve->key);
    if (!verifier.ok()) {
      std::cerr << "--key: " << verifier.status().message() << "\n";
      *shared->exit_code = kExitUsage;
      return;
    }
    std::ifstream in(ve->file, std::ios::binary);
    if (!in) {
      // Nothing was checked: not a verdict on the file.
      std::cerr << "cannot read " << ve->file << " 无法读取文件\n";
      *shared->exit_code = kExitFailure;
      return;
    }
    Progress progress(!*json_mode, "verify-export");
    SignOffChecker signoffs;
    bool from_zero = false;
    auto verdict = store::VerifyExport(
        in, *verifier,
        [&](const store::ExportRecord& r) -> std::optional<std::string> {
          if (r.position == 0) from_zero = true;
          return from_zero ? signoffs.Visit(r) : std::nullopt;
        },
        [&](int64_t done, int64_t total) { progress.Update(done, total); });
    progress.Finish();
    if (!verdict.ok()) {
      // A file that cannot be read as an export (its header damaged, or not an export at
      // all) does not verify: the same exit status as a damaged record.
      if (*json_mode) {
        std::cout << json{{"ok", false}, {"problem", verdict.status().message()}}.dump() << "\n";
      } else {
        std::cout << "NOT VERIFIED: " << ve->file << ": " << verdict.status().message()
                  << "\n校验未通过\n";
      }
      *shared->exit_code = kExitNotVerified;
      return;
    }
    // The checkpoint verified against, to compare with one kept from before (a server that
    // showed another root for the same size to someone else has forked its log).
    const std::string root = Hex(store::rfc9162::AsBytes(verdict->checkpoint.root));
    if (*json_mode) {
      json out = {{"ok", verdict->ok},
                  {"from", verdict->header.from},
                  {"to", verdict->header.to},
                  {"tree_size", verdict->header.tree_size},
                  {"records", verdict->records},
                  {"sign_offs_checked", signoffs.checked()},
                  {"sign_offs_skipped", !from_zero}};
      if (!verdict->checkpoint.origin.empty()) {  // the checkpoint opened
        out["origin"] = verdict->checkpoint.origin;
        out["root_hash"] = root;
      }
      if (!verdict->ok) {
        out["problem"] = verdict->problem;
        if (verdict->first_bad_position) out["first_bad_position"] = *verdict->first_bad_position;
      }
      std::cout << out.dump() << "\n";
    } else if (verdict->ok) {
      std::cout << "verified: " << verdict->records << " records [" << verdict->header.from << ", "
                << verdict->header.to << ") against the checkpoint of size "
                << verdict->header.tree_size << ", "
                << (from_zero ? absl::StrCat(signoffs.checked(), " sign-off signatures")
                              : std::string("sign-off signatures not checked (the export does "
                                            "not start at position 0, so the approvers' keys "
                                            "registered before it are not in it; 签批签名未校验)"))
                << " 校验通过\n"
                << "checkpoint 检查点: " << verdict->checkpoint.origin << ", size 大小 "
                << verdict->checkpoint.size << ", root 根哈希 " << root << "\n";
    } else {
      std::cout << "NOT VERIFIED"
                << (verdict->first_bad_position
                        ? " at position " + std::to_string(*verdict->first_bad_position)
                        : std::string())
                << ": " << verdict->problem << "\n校验未通过\n";
    }
    *shared->exit_code = verdict->ok ? kExitOk : kExitNotVerified;
  });
}

}  // namespace casework::client

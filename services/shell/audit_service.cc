#include "services/shell/audit_service.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "services/oversight/oversight.h"
#include "services/shell/command_processor.h"
#include "services/shell/event_view.h"
#include "services/shell/page_token.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/decider.h"
#include "spdlog/spdlog.h"
#include "store/checkpoint.h"
#include "store/export.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, grpc::Status status) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

grpc::Status Invalid(std::string_view field, std::string en, std::string zh) {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "AUDIT_REQUEST_INVALID", field,
                     std::move(en), std::move(zh));
}

grpc::Status OutOfRange(std::string_view field, std::string en, std::string zh) {
  return ErrorStatus(grpc::StatusCode::OUT_OF_RANGE, "POSITION_BEYOND_LOG", field, std::move(en),
                     std::move(zh));
}

// A position or size that is negative: never a place in the log.
grpc::Status Negative(const std::string& field, int64_t value) {
  return Invalid(field, absl::StrCat(field, " ", value, " is negative; positions start at 0"),
                 absl::StrCat(field, " ", value, " 为负数；位置从 0 开始"));
}

// A tree size that is negative (0 means the latest checkpoint).
grpc::Status NegativeSize(const std::string& field, int64_t value) {
  return Invalid(
      field,
      absl::StrCat(field, " ", value, " is negative; give a size, or 0 for the latest checkpoint"),
      absl::StrCat(field, " ", value, " 为负数；请给出树的规模，或以 0 表示最新检查点"));
}

grpc::Status Busy() {
  return ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "AUDIT_JOBS_BUSY", "",
                     "the server is already running its maximum of audit jobs (ledger replay, "
                     "verify, export); retry when one has finished",
                     "审计任务数已达上限，请稍后重试");
}

std::string AsBytes(const store::Hash& hash) {
  return std::string(reinterpret_cast<const char*>(hash.data()), hash.size());
}

// True for a jurisdiction of one segment ("jiangcheng", trailing '/' ignored): the root
// of every path of a deployment.
bool WholeCity(std::string_view jurisdiction) {
  while (!jurisdiction.empty() && jurisdiction.back() == '/') jurisdiction.remove_suffix(1);
  return !jurisdiction.empty() && jurisdiction.find('/') == std::string_view::npos;
}

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

// The latest signed checkpoint, parsed.
struct SignedHead {
  std::string note;
  store::Checkpoint checkpoint;
};

absl::StatusOr<SignedHead> LatestCheckpoint(store::RocksEventLog* log) {
  auto note = log->SignedCheckpoint();
  if (!note.ok()) return note.status();
  auto opened =
      store::OpenCheckpoint(*note, log->CheckpointVerifier(), log->CheckpointVerifier().name());
  if (!opened.ok()) return OwnCheckpointUnreadable(opened.status());
  return SignedHead{.note = std::move(*note), .checkpoint = std::move(*opened)};
}

// A server-streaming reactor written to by a job thread: Write blocks the job (never a
// gRPC thread) until the client took the message, so at most one message is buffered.
// A client that takes no message for `stall_max` (it stopped reading, and its flow-control
// window is full) has its call cancelled, so that it does not hold a job's place for as
// long as its connection lives.
template <typename Response>
class JobWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  static std::shared_ptr<JobWriter> Create(grpc::CallbackServerContext* ctx,
                                           absl::Duration stall_max) {
    auto writer = std::shared_ptr<JobWriter>(new JobWriter());
    writer->self_ = writer;
    writer->ctx_ = ctx;
    writer->stall_max_ = stall_max;
    return writer;
  }

  // Checks `standing` before every message: a caller a reload removed or changed is sent
  // nothing more, and the call ends with the reason (Done).
  void set_standing(CallerStanding standing, const char* call, const char* call_zh) {
    standing_.emplace(std::move(standing));
    call_ = call;
    call_zh_ = call_zh;
  }

  // False when the call is gone (cancelled, stalled or the write failed), or its caller no
  // longer stands, or (unless it is the job's `last` message: a finished job still
  // answers) the server is about to stop.
  bool Write(const Response& message, bool last = false) {
    if (standing_.has_value() && !revoked_.has_value()) {
      revoked_ = standing_->ServerStopping() && !last
                     ? std::optional<grpc::Status>(StoppedByShutdown(call_, call_zh_))
                     : standing_->Revoked(call_, call_zh_);
    }
    if (revoked_.has_value()) return false;
    {
      absl::MutexLock lock(&mu_);
      if (failed_ || cancelled_) return false;
      message_ = message;
      pending_ = true;
    }
    {
      JobRunner::InGrpcCall in_grpc;
      this->StartWrite(&message_);
    }
    const absl::Condition written(
        +[](bool* pending) { return !*pending; }, &pending_);
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(written, stall_max_)) return !failed_;
      failed_ = true;
    }
    // Without the lock: gRPC may run this reactor's callbacks (which take it) from within
    // the cancellation. The call is still live (Finish comes after this returns), so is
    // its context.
    spdlog::warn("{}: a message waited {} to be taken; cancelling the call to free its job",
                 ctx_->peer(), absl::FormatDuration(stall_max_));
    {
      JobRunner::InGrpcCall in_grpc;
      ctx_->TryCancel();
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(written);  // the message stays put until gRPC is done with it
    return false;
  }

  bool cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_ || failed_;
  }

  // The job's last word: its place in the runner first, so that the client it answers
  // may start another job at once (JobRunner).
  void Done(grpc::Status status) {
    JobRunner::ReleaseCurrentPlace();
    this->Finish(revoked_.has_value() ? *revoked_ : std::move(status));
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    pending_ = false;
    if (!ok) failed_ = true;
  }
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }
  void OnDone() override {
    std::shared_ptr<JobWriter> self = std::move(self_);
    // `self` may be the last owner: nothing touches this object after it goes.
  }

 private:
  JobWriter() = default;
  // Only the job's thread touches these.
  std::optional<CallerStanding> standing_;
  const char* call_ = "";
  const char* call_zh_ = "";
  std::optional<grpc::Status> revoked_;
  absl::Mutex mu_;
  std::shared_ptr<JobWriter> self_;
  grpc::CallbackServerContext* ctx_ = nullptr;
  absl::Duration stall_max_ = absl::InfiniteDuration();
  Response message_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Response>
class Refused final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit Refused(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Authenticates and requires the auditor or admin role.
grpc::Status RequireAuditor(const Authenticator* auth, grpc::CallbackServerContext* ctx,
                            workflow::Principal* caller) {
  if (auto status = auth->Authenticate(ctx, caller); !status.ok()) return status;
  if (caller->HasRole(workflow::Role::kAuditor) || caller->HasRole(workflow::Role::kAdmin)) {
    return grpc::Status::OK;
  }
  return ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "AUDITOR_ROLE_REQUIRED", "",
                     absl::StrCat("the audit service needs the role auditor or admin; ", caller->id,
                                  " has neither; ask an administrator"),
                     absl::StrCat("审计服务需要监督审计人员或管理员角色；", caller->id,
                                  " 不具备该角色，请联系管理员"));
}

// Where an as-of point cuts the log: every position below the returned one is included.
// `position`: min(position, size). `time`: the first event recorded after it.
struct Cut {
  bool by_time = false;
  int64_t position = 0;
  int64_t time_micros = 0;
};

// The cut of `as_of` in a log of `size` events into *cut, or INVALID_ARGUMENT naming the
// field.
grpc::Status CutOf(const v1::AsOf& as_of, int64_t size, Cut* cut) {
  *cut = Cut{.position = size};  // unset: now
  switch (as_of.point_case()) {
    case v1::AsOf::kPosition:
      if (as_of.position() < 0) {
        return Invalid("as_of.position", "as_of.position must not be negative",
                       "as_of.position 不能为负数");
      }
      cut->position = std::min(as_of.position(), size);
      break;
    case v1::AsOf::kTime: {
      const google::protobuf::Timestamp& t = as_of.time();
      const std::optional<int64_t> micros = oversight::RequestTimeMicros(t);
      if (!micros.has_value()) {
        return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "TIME_INVALID", "as_of.time",
                           absl::StrCat("as_of.time (", t.seconds(), " s, ", t.nanos(),
                                        " ns) is not a time from 1970-01-01 to 9999-12-31"),
                           absl::StrCat("as_of.time（", t.seconds(), " 秒，", t.nanos(),
                                        " 纳秒）不是 1970-01-01 至 9999-12-31 之间的时间"));
      }
      cut->by_time = true;
      cut->time_micros = *micros;
      break;
    }
    case v1::AsOf::POINT_NOT_SET:
      break;
  }
  return grpc::Status::OK;
}

// Cases per page of ListCasesAsOf by default and at most, and the bytes of a page.
constexpr size_t kCasesAsOfPageDefault = 100;
constexpr int32_t kCasesAsOfPageMax = 1000;
constexpr size_t kCasesAsOfPageBytesMax = size_t{4} << 20;

// PERMISSION_DENIED for a ledger replay of `root` outside the caller's jurisdiction.
grpc::Status RootNotCovered(const workflow::Principal& caller, const std::string& root) {
  return ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED",
                     "jurisdiction",
                     absl::StrCat("jurisdiction \"", root, "\" is outside your jurisdiction \"",
                                  caller.jurisdiction, "\""),
                     absl::StrCat("辖区 \"", root, "\" 不在您的管辖范围内"));
}

// Where a page of ListCasesAsOf starts: the first page's point, as asked (`as_of`, its
// serialized AsOf) and as cut, and the offset of the next case in case id order.
struct CasesPage {
  Cut cut;
  std::string as_of;
  int64_t offset = 0;
};

std::string CasesPageTag(const std::string& root) { return absl::StrCat("cases-as-of\n", root); }

std::string EncodeCasesPageToken(const CasesPage& page, const std::string& root) {
  return EncodePageToken(
      absl::StrCat(page.cut.by_time ? 1 : 0, " ", page.cut.time_micros, " ", page.cut.position, " ",
                   page.offset, " ", absl::BytesToHexString(page.as_of)),
      CasesPageTag(root));
}

std::optional<CasesPage> DecodeCasesPageToken(const std::string& token, const std::string& root) {
  std::optional<std::string> key = DecodePageToken(token, CasesPageTag(root));
  if (!key.has_value()) return std::nullopt;
  std::vector<absl::string_view> parts = absl::StrSplit(*key, ' ');
  CasesPage page;
  int by_time = 0;
  if (parts.size() != 5 || !absl::SimpleAtoi(parts[0], &by_time) ||
      !absl::SimpleAtoi(parts[1], &page.cut.time_micros) ||
      !absl::SimpleAtoi(parts[2], &page.cut.position) ||
      !absl::SimpleAtoi(parts[3], &page.offset) || page.cut.position < 0 || page.offset < 0) {
    return std::nullopt;
  }
  page.cut.by_time = by_time != 0;
  page.as_of = absl::HexStringToBytes(parts[4]);
  return page;
}

// Folds every case within `root` (no trailing '/') through Evolve up to `cut` into
// *cases, with *end the position folded through (exclusive); else the status that ends
// the job (cancelled, the caller no longer stands, the ledger too large, the store).
grpc::Status FoldCases(store::RocksEventLog* log, const AuditOptions& options,
                       grpc::CallbackServerContext* ctx, JobCaller* caller,
                       const std::string& trimmed, const Cut& cut, CaseStates* cases,
                       int64_t* end) {
  v1::Event event;  // reused: parsing into it keeps its allocations
  int64_t position = 0;
  *end = cut.position;
  oversight::AsOfCut as_of(cut.by_time ? cut.time_micros : INT64_MAX);
  // Cases outside the jurisdiction asked for, known by their first event (a case's
  // organisation and place never change): neither folded nor counted against the bound,
  // so that a narrower jurisdiction is a smaller replay.
  absl::flat_hash_set<std::string> outside;
  while (position < *end) {
    if (ctx->IsCancelled()) {
      return grpc::Status::CANCELLED;
    }
    if (grpc::Status stands = caller->CheckWhileRunning(); !stands.ok()) {
      return stands;
    }
    auto events =
        log->ReadRange(position, std::min<int64_t>(options.read_chunk_events, *end - position));
    if (!events.ok() || events->empty()) {
      return FromStoreStatus(events.ok() ? absl::DataLossError("the log ended early")
                                         : events.status());
    }
    for (const store::StoredEvent& e : *events) {
      position = e.position + 1;
      if (e.stream.rfind("cases/", 0) != 0) continue;
      if (!event.ParseFromString(e.bytes)) {
        return FromStoreStatus(absl::DataLossError(
            absl::StrCat("the event at position ", e.position, " does not parse")));
      }
      if (cut.by_time) {
        const auto verdict = as_of.Judge(e.stream, MicrosOf(event.time()));
        if (verdict == oversight::AsOfCut::Verdict::kEnd) {
          *end = e.position;
          break;
        }
        if (verdict == oversight::AsOfCut::Verdict::kSkip) continue;
      }
      if (outside.contains(e.stream)) continue;
      const int64_t version = cases->Version(e.stream);
      if (version == 0) {
        v1::Case first;
        workflow::Evolve(first, event);
        if (!SubtreeHolds(trimmed, first.organisation().jurisdiction())) {
          outside.insert(e.stream);
          continue;
        }
      }
      if (cases->size() >= options.ledger_cases_max && version == 0) {
        return ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "LEDGER_TOO_LARGE", "jurisdiction",
                           absl::StrCat("the ledger holds more than ", options.ledger_cases_max,
                                        " cases, the most one replay may hold; ask for a narrower "
                                        "jurisdiction"),
                           absl::StrCat("台账超过 ", options.ledger_cases_max,
                                        " 个案件，超出单次回放的上限；请缩小辖区范围"));
      }
      absl::StatusOr<v1::Case*> folded = cases->Open(e.stream);
      if (!folded.ok()) {
        return FromStoreStatus(folded.status());
      }
      workflow::Evolve(**folded, event);
      (*folded)->set_last_position(e.position);
      (*folded)->set_last_leaf_hash(e.leaf_hash.data(), e.leaf_hash.size());
      cases->Updated(e.stream);
    }
  }
  return grpc::Status::OK;
}

}  // namespace

AuditServiceImpl::AuditServiceImpl(store::RocksEventLog* log, const Authenticator* auth,
                                   DeepVerifyOptions deep, AuditOptions options)
    : log_(log),
      auth_(auth),
      deep_(std::move(deep)),
      options_(std::move(options)),
      jobs_(options_.jobs_max) {}

CaseStates::Loader AuditServiceImpl::StreamLoader() const {
  return [log = log_, chunk = options_.read_chunk_events](
             std::string_view stream,
             int64_t through) -> absl::StatusOr<std::vector<store::StoredEvent>> {
    std::vector<store::StoredEvent> all;
    while (static_cast<int64_t>(all.size()) < through) {
      const auto have = static_cast<int64_t>(all.size());
      auto part = log->ReadStream(
          stream, have + 1,
          static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(chunk), through - have)));
      if (!part.ok()) return part.status();
      if (part->empty()) {
        return absl::DataLossError(absl::StrCat("stream ", std::string(stream), " ends at version ",
                                                have, ", before version ", through));
      }
      for (store::StoredEvent& e : *part) all.push_back(std::move(e));
    }
    return all;
  };
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetCheckpoint(grpc::CallbackServerContext* ctx,
                                                          const v1::GetCheckpointRequest*,
                                                          v1::GetCheckpointResponse* resp) {
  // Any role: a checkpoint carries a size and a root, no case data, and whoever keeps one
  // (an approver's last proof, a receipt) checks later ones against it.
  workflow::Principal caller;
  if (auto s = auth_->Authenticate(ctx, &caller); !s.ok()) return Finish(ctx, s);
  auto head = LatestCheckpoint(log_);
  if (!head.ok()) return Finish(ctx, FromStoreStatus(head.status()));
  resp->set_checkpoint(head->note);
  resp->set_tree_size(head->checkpoint.size);
  resp->set_root_hash(AsBytes(head->checkpoint.root));
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetInclusionProof(
    grpc::CallbackServerContext* ctx, const v1::GetInclusionProofRequest* req,
    v1::GetInclusionProofResponse* resp) {
  // Any role: an approver proves the event a sign-off names before signing it. What the
  // proof carries (the event) is held to the caller's jurisdiction below.
  workflow::Principal caller;
  if (auto s = auth_->Authenticate(ctx, &caller); !s.ok()) return Finish(ctx, s);
  const bool auditor =
      caller.HasRole(workflow::Role::kAuditor) || caller.HasRole(workflow::Role::kAdmin);
  auto head = LatestCheckpoint(log_);
  if (!head.ok()) return Finish(ctx, FromStoreStatus(head.status()));
  const int64_t size = req->tree_size() == 0 ? head->checkpoint.size : req->tree_size();
  if (req->tree_size() < 0) return Finish(ctx, NegativeSize("tree_size", req->tree_size()));
  if (size > log_->Size()) {
    return Finish(
        ctx,
        OutOfRange("tree_size",
                   absl::StrCat("tree_size ", req->tree_size(),
                                " is not a tree this log has; it holds ", log_->Size(), " events"),
                   absl::StrCat("tree_size ", req->tree_size(), " 超出日志长度；日志共有 ",
                                log_->Size(), " 个事件")));
  }
  if (req->position() < 0) return Finish(ctx, Negative("position", req->position()));
  if (req->position() >= size) {
    return Finish(
        ctx,
        OutOfRange("position",
                   absl::StrCat("position ", req->position(), " is not in the tree of size ", size),
                   absl::StrCat("位置 ", req->position(), " 不在规模为 ", size, " 的树中")));
  }
  auto events = log_->ReadRange(req->position(), 1);
  if (!events.ok()) return Finish(ctx, FromStoreStatus(events.status()));
  if (events->size() != 1) {
    return Finish(ctx, FromStoreStatus(absl::DataLossError("the event is missing")));
  }
  const store::StoredEvent& e = events->front();
  // The proof carries the event itself: an event of a case, a county or a sample only for
  // a caller whose jurisdiction holds it; of a stream of no jurisdiction (approvers' keys,
  // the principals) only for an auditor of the whole city.
  {
    JurisdictionResolver resolver(log_, 1);
    auto jurisdiction = resolver.Of(e.stream, e.bytes);
    if (!jurisdiction.ok()) return Finish(ctx, FromStoreStatus(jurisdiction.status()));
    if (!auditor) {
      // Other roles prove events of cases inside their jurisdiction, nothing else (not a
      // county's record, nor an inspection draw, which is not announced to those it
      // inspects), and are told nothing of what they may not read.
      if (e.stream.rfind("cases/", 0) != 0 || !jurisdiction->has_value()) {
        return Finish(
            ctx,
            ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "AUDITOR_ROLE_REQUIRED", "position",
                        absl::StrCat("the event at position ", req->position(),
                                     " is not of a case; other events are proved to "
                                     "auditors and administrators"),
                        absl::StrCat("位置 ", req->position(),
                                     " 的事件不是案件事件；其他事件仅向审计人员和管理员提供证明")));
      }
      if (!SubtreeHolds(caller.jurisdiction, **jurisdiction)) {
        return Finish(
            ctx, ErrorStatus(
                     grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "position",
                     absl::StrCat("the event at position ", req->position(),
                                  " is of a case outside your jurisdiction ", caller.jurisdiction),
                     absl::StrCat("位置 ", req->position(), " 的事件属于您的管辖范围 ",
                                  caller.jurisdiction, " 以外的案件")));
      }
    }
    if (!jurisdiction->has_value() && !WholeCity(caller.jurisdiction)) {
      return Finish(
          ctx,
          ErrorStatus(grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "position",
                      absl::StrCat("the event at position ", req->position(),
                                   " belongs to no jurisdiction (stream ", e.stream,
                                   "); only an auditor of the whole city may read it"),
                      absl::StrCat("位置 ", req->position(), " 的事件不属于任何辖区（", e.stream,
                                   "）；仅全市审计人员可查看")));
    }
    if (jurisdiction->has_value() && !SubtreeHolds(caller.jurisdiction, **jurisdiction)) {
      return Finish(
          ctx,
          ErrorStatus(
              grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "position",
              absl::StrCat("the event at position ", req->position(), " belongs to ",
                           **jurisdiction, ", outside your jurisdiction ", caller.jurisdiction),
              absl::StrCat("位置 ", req->position(), " 的事件属于 ", **jurisdiction,
                           "，不在您的管辖范围 ", caller.jurisdiction, " 内")));
    }
  }
  auto proof = log_->InclusionProof(req->position(), size);
  if (!proof.ok()) return Finish(ctx, FromStoreStatus(proof.status()));
  v1::EventRecord* record = resp->mutable_record();
  record->set_position(e.position);
  if (!record->mutable_event()->ParseFromString(e.bytes)) {
    return Finish(ctx, FromStoreStatus(absl::DataLossError(
                           absl::StrCat("the event at ", e.position, " does not parse"))));
  }
  record->set_leaf_hash(AsBytes(e.leaf_hash));
  std::string leaf;
  store::format::AppendEventRecord(&leaf, e.stream, e.version, e.bytes);
  resp->set_leaf(std::move(leaf));
  resp->set_tree_size(size);
  for (const store::Hash& h : *proof) resp->add_proof(AsBytes(h));
  if (size == head->checkpoint.size) resp->set_checkpoint(head->note);
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetConsistencyProof(
    grpc::CallbackServerContext* ctx, const v1::GetConsistencyProofRequest* req,
    v1::GetConsistencyProofResponse* resp) {
  // Any role, as a checkpoint: the proof is hashes, and it is how a caller that kept a
  // checkpoint learns that the log only grew since.
  workflow::Principal caller;
  if (auto s = auth_->Authenticate(ctx, &caller); !s.ok()) return Finish(ctx, s);
  auto head = LatestCheckpoint(log_);
  if (!head.ok()) return Finish(ctx, FromStoreStatus(head.status()));
  const int64_t second =
      req->second_tree_size() == 0 ? head->checkpoint.size : req->second_tree_size();
  if (req->second_tree_size() < 0) {
    return Finish(ctx, NegativeSize("second_tree_size", req->second_tree_size()));
  }
  if (second > log_->Size()) {
    return Finish(
        ctx, OutOfRange("second_tree_size",
                        absl::StrCat("second_tree_size ", second,
                                     " is beyond the log, which holds ", log_->Size(), " events"),
                        absl::StrCat("second_tree_size ", second, " 超出日志长度；日志共有 ",
                                     log_->Size(), " 个事件")));
  }
  if (req->first_tree_size() <= 0) {
    return Finish(ctx, Invalid("first_tree_size",
                               absl::StrCat("first_tree_size ", req->first_tree_size(),
                                            " must be in 1..", second),
                               absl::StrCat("first_tree_size ", req->first_tree_size(), " 须在 1..",
                                            second, " 之间")));
  }
  if (req->first_tree_size() > second) {
    return Finish(
        ctx, OutOfRange("first_tree_size",
                        absl::StrCat(
                            "first_tree_size ", req->first_tree_size(), " must be in 1..", second,
                            req->second_tree_size() == 0 ? "; a log that holds fewer events than a "
                                                           "checkpoint you kept has lost events"
                                                         : ""),
                        absl::StrCat("first_tree_size ", req->first_tree_size(), " 须在 1..",
                                     second, " 之间")));
  }
  auto proof = log_->ConsistencyProof(req->first_tree_size(), second);
  if (!proof.ok()) return Finish(ctx, FromStoreStatus(proof.status()));
  resp->set_first_tree_size(req->first_tree_size());
  resp->set_second_tree_size(second);
  for (const store::Hash& h : *proof) resp->add_proof(AsBytes(h));
  if (second == head->checkpoint.size) resp->set_checkpoint(head->note);
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetCaseAsOf(grpc::CallbackServerContext* ctx,
                                                        const v1::GetCaseAsOfRequest* req,
                                                        v1::Case* resp) {
  workflow::Principal caller;
  if (auto s = RequireAuditor(auth_, ctx, &caller); !s.ok()) return Finish(ctx, s);
  const std::string case_id = CaseIdFromName(req->name());
  if (case_id.empty()) {
    return Finish(ctx, CaseNameInvalid(req->name()));
  }
  Cut cut;
  if (grpc::Status refused = CutOf(req->as_of(), log_->Size(), &cut); !refused.ok()) {
    return Finish(ctx, refused);
  }
  // One case's events: bounded by the case's length, read in chunks.
  v1::Case state;
  for (int64_t version = 1;;) {
    auto events = log_->ReadStream(CaseStream(case_id), version, options_.read_chunk_events);
    if (!events.ok()) return Finish(ctx, FromStoreStatus(events.status()));
    bool past = false;
    for (const store::StoredEvent& e : *events) {
      if (e.position >= cut.position) {
        past = true;
        break;
      }
      v1::Event event;
      if (!event.ParseFromString(e.bytes)) {
        return Finish(ctx, FromStoreStatus(absl::DataLossError(absl::StrCat(
                               "the event at position ", e.position, " does not parse"))));
      }
      if (cut.by_time && MicrosOf(event.time()) > cut.time_micros) {
        past = true;
        break;
      }
      workflow::Evolve(state, event);
      state.set_last_position(e.position);
      state.set_last_leaf_hash(e.leaf_hash.data(), e.leaf_hash.size());
    }
    if (past || events->size() < options_.read_chunk_events) break;
    version += static_cast<int64_t>(events->size());
  }
  if (state.version() == 0) {
    return Finish(
        ctx, ErrorStatus(grpc::StatusCode::NOT_FOUND, "CASE_NOT_FOUND", "name",
                         absl::StrCat("case ", case_id, " did not exist at that point of the log"),
                         absl::StrCat("案件 ", case_id, " 在该时点不存在")));
  }
  if (!SubtreeHolds(caller.jurisdiction, state.organisation().jurisdiction())) {
    return Finish(
        ctx,
        ErrorStatus(
            grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "name",
            absl::StrCat("case ", case_id, " is outside your jurisdiction ", caller.jurisdiction),
            absl::StrCat("案件 ", case_id, " 不在您的管辖范围 ", caller.jurisdiction, " 内")));
  }
  *resp = std::move(state);
  return Finish(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetLedgerAsOf(grpc::CallbackServerContext* ctx,
                                                          const v1::GetLedgerAsOfRequest* req,
                                                          v1::GetLedgerAsOfResponse* resp) {
  workflow::Principal caller;
  if (auto s = RequireAuditor(auth_, ctx, &caller); !s.ok()) return Finish(ctx, s);
  const std::string root = req->jurisdiction().empty() ? caller.jurisdiction : req->jurisdiction();
  if (!SubtreeHolds(caller.jurisdiction, root)) return Finish(ctx, RootNotCovered(caller, root));
  Cut cut;
  if (grpc::Status refused = CutOf(req->as_of(), log_->Size(), &cut); !refused.ok()) {
    return Finish(ctx, refused);
  }
  auto* reactor = ctx->DefaultReactor();
  // The caller is checked as the log is folded and before the answer: one a reload
  // removed or changed meanwhile is not answered (docs/security.md).
  JobCaller job_caller(auth_, std::move(caller), "the ledger replay", "台账回放");
  const bool started = jobs_.Start([this, reactor, resp, root, cut, ctx,
                                    job_caller = std::move(job_caller)]() mutable {
    if (options_.job_started_for_testing) options_.job_started_for_testing();
    // Fold every case through Evolve up to the cut.
    CaseStates cases(options_.fold_state_bytes_max, StreamLoader());
    std::string trimmed = root;
    while (!trimmed.empty() && trimmed.back() == '/') trimmed.pop_back();
    int64_t end = 0;
    if (grpc::Status s = FoldCases(log_, options_, ctx, &job_caller, trimmed, cut, &cases, &end);
        !s.ok()) {
      JobRunner::FinishJob(reactor, s);
      return;
    }
    // Rows: the subtree root and each jurisdiction one level below it.
    std::map<std::string, v1::JurisdictionCounts> rows;
    auto count = [](v1::JurisdictionCounts& row, v1::CaseState state) {
      switch (state) {
        case v1::CASE_STATE_LISTED:
          row.set_listed(row.listed() + 1);
          break;
        case v1::CASE_STATE_ASSISTED:
          row.set_assisted(row.assisted() + 1);
          break;
        case v1::CASE_STATE_VERIFIED:
          row.set_verified(row.verified() + 1);
          break;
        case v1::CASE_STATE_CLOSED:
          row.set_closed(row.closed() + 1);
          break;
        case v1::CASE_STATE_REOPENED:
          row.set_reopened(row.reopened() + 1);
          break;
        default:
          break;
      }
    };
    rows[trimmed].set_jurisdiction(trimmed);
    absl::Status visited = cases.ForEach([&](const std::string& /*stream*/, const v1::Case& state) {
      const std::string& j = state.organisation().jurisdiction();
      if (!SubtreeHolds(trimmed, j)) return;
      count(rows[trimmed], state.state());
      if (j.size() > trimmed.size()) {
        const size_t slash = j.find('/', trimmed.size() + 1);
        const std::string child = j.substr(0, slash);
        rows[child].set_jurisdiction(child);
        count(rows[child], state.state());
      }
    });
    if (!visited.ok()) {
      JobRunner::FinishJob(reactor, FromStoreStatus(visited));
      return;
    }
    resp->set_through_position(end);
    for (auto& [name, row] : rows) {
      const int64_t all =
          row.listed() + row.assisted() + row.verified() + row.closed() + row.reopened();
      row.set_conversion_rate_bp(all == 0 ? 0 : row.closed() * 10000 / all);
      *resp->add_counts() = std::move(row);
    }
    JobRunner::FinishJob(reactor, job_caller.Check());
  });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

grpc::ServerUnaryReactor* AuditServiceImpl::ListCasesAsOf(grpc::CallbackServerContext* ctx,
                                                          const v1::ListCasesAsOfRequest* req,
                                                          v1::ListCasesAsOfResponse* resp) {
  workflow::Principal caller;
  if (auto s = RequireAuditor(auth_, ctx, &caller); !s.ok()) return Finish(ctx, s);
  std::string root = req->jurisdiction().empty() ? caller.jurisdiction : req->jurisdiction();
  if (!SubtreeHolds(caller.jurisdiction, root)) return Finish(ctx, RootNotCovered(caller, root));
  while (!root.empty() && root.back() == '/') root.pop_back();
  if (req->page_size() < 0) return Finish(ctx, PageSizeNegative());
  // The first page fixes the point (and, for a time, the log's size then); its token
  // carries both, so that every page is cut from the same replay.
  if (req->log_size() < 0) {
    return Finish(ctx, Invalid("log_size", "log_size must not be negative", "log_size 不能为负数"));
  }
  CasesPage page;
  if (grpc::Status refused = CutOf(req->as_of(), log_->Size(), &page.cut); !refused.ok()) {
    return Finish(ctx, refused);
  }
  if (req->log_size() > 0) page.cut.position = std::min(page.cut.position, req->log_size());
  // The point as asked: what a later page may leave out but not change.
  page.as_of = absl::StrCat(req->as_of().SerializeAsString(), "@", req->log_size());
  if (!req->page_token().empty()) {
    std::optional<CasesPage> from = DecodeCasesPageToken(req->page_token(), root);
    const bool point_given =
        req->as_of().point_case() != v1::AsOf::POINT_NOT_SET || req->log_size() != 0;
    if (!from.has_value() || (point_given && from->as_of != page.as_of)) {
      return Finish(ctx, PageTokenInvalid());
    }
    page = *std::move(from);
  }
  const size_t limit = req->page_size() == 0
                           ? kCasesAsOfPageDefault
                           : static_cast<size_t>(std::min(req->page_size(), kCasesAsOfPageMax));
  auto* reactor = ctx->DefaultReactor();
  JobCaller job_caller(auth_, std::move(caller), "the ledger replay", "台账回放");
  const bool started = jobs_.Start([this, reactor, resp, root, page, limit, ctx,
                                    job_caller = std::move(job_caller)]() mutable {
    if (options_.job_started_for_testing) options_.job_started_for_testing();
    CaseStates cases(options_.fold_state_bytes_max, StreamLoader());
    int64_t end = 0;
    if (grpc::Status s = FoldCases(log_, options_, ctx, &job_caller, root, page.cut, &cases, &end);
        !s.ok()) {
      JobRunner::FinishJob(reactor, s);
      return;
    }
    // This page's cases: those from the offset in case id order (stream names sort so),
    // loaded one by one until the page is full; nothing past it is loaded.
    std::vector<std::string> streams = cases.Streams();
    std::sort(streams.begin(), streams.end());
    size_t next = static_cast<size_t>(std::min<int64_t>(page.offset, streams.size()));
    const size_t from = next;
    size_t bytes = 0;
    for (; next < streams.size() && next - from < limit; ++next) {
      absl::StatusOr<v1::Case*> state = cases.Open(streams[next]);
      if (!state.ok()) {
        JobRunner::FinishJob(reactor, FromStoreStatus(state.status()));
        return;
      }
      bytes += (*state)->ByteSizeLong();
      if (bytes > kCasesAsOfPageBytesMax && next > from) break;  // at least one a page
      *resp->add_cases() = **state;
    }
    resp->set_through_position(end);
    if (next < streams.size()) {
      CasesPage following = page;
      following.offset = static_cast<int64_t>(next);
      resp->set_next_page_token(EncodeCasesPageToken(following, root));
    }
    JobRunner::FinishJob(reactor, job_caller.Check());
  });
  if (!started) reactor->Finish(Busy());
  return reactor;
}

grpc::ServerWriteReactor<v1::VerifyLogResponse>* AuditServiceImpl::VerifyLog(
    grpc::CallbackServerContext* ctx, const v1::VerifyLogRequest* req) {
  using Refuse = Refused<v1::VerifyLogResponse>;
  workflow::Principal caller;
  if (auto s = RequireAuditor(auth_, ctx, &caller); !s.ok()) return new Refuse(s);
  auto head = LatestCheckpoint(log_);
  if (!head.ok()) return new Refuse(FromStoreStatus(head.status()));
  const int64_t to = req->to_position() == 0 ? head->checkpoint.size : req->to_position();
  const int64_t from = req->from_position();
  if (from < 0) return new Refuse(Negative("from_position", from));
  if (to < 0) return new Refuse(Negative("to_position", to));
  // Up to the signed checkpoint: the events of an unfinished 16-event block are checked
  // against its root, as no stored subtree covers them yet.
  const int64_t signed_size = head->checkpoint.size;
  if (to > signed_size || from > to) {
    const bool from_wrong = from > to && to <= signed_size;
    return new Refuse(OutOfRange(from_wrong ? "from_position" : "to_position",
                                 absl::StrCat("cannot verify [", from, ", ", to,
                                              "): need 0 <= from_position <= "
                                              "to_position <= ",
                                              signed_size, " (the latest signed checkpoint)"),
                                 absl::StrCat("无法校验 [", from, ", ", to,
                                              ")：须满足 0 <= from_position <= to_position <= ",
                                              signed_size, "（最新签名检查点）")));
  }
  auto writer =
      JobWriter<v1::VerifyLogResponse>::Create(ctx, absl::Milliseconds(options_.write_stall_ms));
  // Checked at its first message against the principals in force then, and at each after.
  writer->set_standing(CallerStanding(auth_, caller, nullptr), "the verification", "校验");
  const bool deep = req->deep();
  const SignedHead signed_head = *head;
  // The rules pass's problems name cases, people and keys of any jurisdiction: told in
  // full to an auditor of the whole city only (as exports are), by position to the others.
  const bool whole_city = WholeCity(caller.jurisdiction);
  const bool started = jobs_.Start([this, writer, from, to, deep, signed_head, whole_city] {
    const int64_t chunk = options_.verify_progress_positions;
    const absl::Time started_at = absl::Now();
    v1::VerifyLogResponse progress;
    progress.set_total(to - from);
    std::optional<DeepVerifier> rules;
    const auto rules_problem = [whole_city](std::string detail) {
      if (whole_city) return detail;
      return std::string(
          "the rules or a sign-off signature do not hold for the event at this position; the "
          "details name cases and people of any jurisdiction, so an auditor of the whole city "
          "must run the deep verification to read them");
    };
    auto verdict = [&](std::optional<int64_t> bad, std::string problem) {
      // For the operator: what a verification cost, and what the deep pass did.
      spdlog::info("verify [{}, {}){}: {} in {:.2f} s{}", from, to, deep ? " deep" : "",
                   bad.has_value() ? absl::StrCat("problem at ", *bad) : std::string("intact"),
                   absl::ToDoubleSeconds(absl::Now() - started_at),
                   rules.has_value()
                       ? absl::StrCat("; ", rules->commands_checked(), " commands re-decided, ",
                                      rules->signatures_checked(), " signatures; case states: ",
                                      rules->cases().size(), " cases, ", rules->cases().parses(),
                                      " parsed back, ", rules->cases().refolds(), " refolded, ",
                                      rules->cases().drops(), " budget drops")
                       : std::string());
      v1::VerifyLogResponse last = progress;
      last.set_done(true);
      last.set_ok(!bad.has_value());
      last.set_from_position(from);
      last.set_to_position(to);
      // Of the whole log before `to` (the rules pass folds from 0), so told to an overseer
      // of the whole city only, as a rules problem is.
      if (whole_city && rules.has_value() && rules->closures_under_weaker_policy() > 0) {
        last.set_closures_under_weaker_policy(rules->closures_under_weaker_policy());
        last.set_first_closure_under_weaker_policy(rules->first_closure_under_weaker_policy());
      }
      if (bad.has_value()) {
        last.set_first_bad_position(*bad);
        last.set_problem(std::move(problem));
      }
      writer->Write(last, /*last=*/true);
      writer->Done(grpc::Status::OK);
    };
    // Pass 1: leaf hashes and stored subtrees, in chunks for progress. A stored subtree
    // of 16 events needs all of them: the range is read on to the end of the block that
    // holds its last event, when the log holds that whole block; otherwise that block is
    // the log's last, unfinished one, checked against the signed checkpoint below.
    constexpr int64_t kBlock = int64_t{1} << store::format::kStoredLevelMin;
    const int64_t tree_to = std::min(log_->Size(), (to + kBlock - 1) / kBlock * kBlock);
    // Checks [begin, end) against the stored subtrees, a chunk at a time, between which a
    // cancelled call stops it. True when it answered the call (a verdict, a cancellation,
    // an error), false when every stored subtree matched. Progress is told only when
    // `tell` (pass 1; not the search after a root that differs).
    const auto check_tree = [&](int64_t begin, int64_t end, bool tell) {
      const int64_t end_tree = std::min(log_->Size(), (end + kBlock - 1) / kBlock * kBlock);
      for (int64_t a = begin; a < end;) {
        if (writer->cancelled()) {
          writer->Done(grpc::Status::CANCELLED);
          return true;
        }
        const int64_t b = std::min(end, (a / chunk + 1) * chunk);
        auto report = log_->Verify(a, b == end ? std::max(b, end_tree) : b);
        if (!report.ok()) {
          if (report.status().code() == absl::StatusCode::kDataLoss) {
            verdict(a, std::string(report.status().message()));
          } else {
            writer->Done(FromStoreStatus(report.status()));
          }
          return true;
        }
        if (report->first_mismatch.has_value()) {
          verdict(report->first_mismatch, report->detail);
          return true;
        }
        if (tell) {
          progress.set_checked(b - from);
          if (!writer->Write(progress)) {
            writer->Done(grpc::Status::CANCELLED);
            return true;
          }
        }
        a = b;
      }
      return false;
    };
    progress.set_phase("tree");
    if (check_tree(from, to, /*tell=*/true)) return;
    if (to > from && tree_to % kBlock != 0) {
      // The range ends in the log's unfinished last block (the log held no more when it
      // was read; it ends at or after the signed size, which is at least `to`): its events
      // are checked against the signed checkpoint's root, which covers them.
      const int64_t tail = (to - 1) / kBlock * kBlock;
      auto root = log_->RootAt(signed_head.checkpoint.size);
      if (!root.ok()) {
        if (root.status().code() == absl::StatusCode::kDataLoss) {
          return verdict(tail, std::string(root.status().message()));
        }
        return writer->Done(FromStoreStatus(root.status()));
      }
      if (*root != signed_head.checkpoint.root) {
        return verdict(tail,
                       absl::StrCat("the events from ", tail, " to ", signed_head.checkpoint.size,
                                    " (no stored subtree covers them yet) do not hash to "
                                    "the signed checkpoint of size ",
                                    signed_head.checkpoint.size,
                                    ", or the stored subtrees before them were rewritten"));
      }
    }
    // Pass 2 (from 0): the root recomputed from every event against the signed root, and
    // (deep) the rules re-run over every command.
    if (from != 0 && !deep) return verdict(std::nullopt, "");
    progress.set_phase(deep ? "rules" : "root");
    progress.set_total(to);
    progress.set_checked(0);
    store::merkle::CompactRange tree;
    if (deep) {
      DeepVerifyOptions options = deep_;
      options.state_bytes_max = options_.fold_state_bytes_max;
      options.loader = StreamLoader();
      rules.emplace(std::move(options));
    }
    for (int64_t position = 0; position < to;) {
      if (writer->cancelled()) return writer->Done(grpc::Status::CANCELLED);
      auto events = log_->ReadRange(position, static_cast<size_t>(std::min<int64_t>(
                                                  to - position, options_.read_chunk_events)));
      // A sign-off found bad beside the fold comes before what this read finds (checked
      // inline, it would have been reported already).
      if (rules.has_value() && (!events.ok() || events->empty())) {
        if (auto problem = rules->SignatureFailure()) {
          return verdict(problem->position, rules_problem(std::move(problem->detail)));
        }
      }
      if (!events.ok() && events.status().code() != absl::StatusCode::kDataLoss) {
        return writer->Done(FromStoreStatus(events.status()));  // not a verdict on the log
      }
      if (!events.ok() || events->empty()) {
        // Missing or malformed: name the block, as pass 1 does.
        auto located =
            log_->Verify(position, std::min<int64_t>(to, position + options_.read_chunk_events));
        if (located.ok() && located->first_mismatch.has_value()) {
          return verdict(located->first_mismatch, located->detail);
        }
        return verdict(
            position, events.ok() ? "the log ended early" : std::string(events.status().message()));
      }
      for (const store::StoredEvent& e : *events) {
        tree.Append(e.leaf_hash);
        if (rules.has_value()) {
          if (auto problem = rules->Add(e)) {
            return verdict(problem->position, rules_problem(std::move(problem->detail)));
          }
        }
      }
      const int64_t before = position;
      position += static_cast<int64_t>(events->size());
      if (position / chunk != before / chunk || position == to) {
        progress.set_checked(position);
        if (!writer->Write(progress)) return writer->Done(grpc::Status::CANCELLED);
      }
    }
    if (rules.has_value()) {
      if (auto problem = rules->Finish()) {
        return verdict(problem->position, rules_problem(std::move(problem->detail)));
      }
    }
    auto stored_root = log_->RootAt(to);
    if (!stored_root.ok()) return writer->Done(FromStoreStatus(stored_root.status()));
    const bool at_signed_size = signed_head.checkpoint.size == to;
    if (tree.Root() != *stored_root ||
        (at_signed_size && tree.Root() != signed_head.checkpoint.root)) {
      // The events no longer hash to the tree the server signed. Name the first stored
      // subtree that differs: pass 1 checked [from, to), so only what lies before `from`
      // (a deep verification of a range) is left to check.
      if (check_tree(0, from, /*tell=*/false)) return;
      return verdict((to - 1) / kBlock * kBlock,
                     absl::StrCat("the root recomputed from the ", to, " events differs from the ",
                                  at_signed_size ? "signed checkpoint" : "stored tree",
                                  " although every stored subtree matches: the change is at or "
                                  "after this position, or the stored subtrees were rewritten "
                                  "too; compare an export with a checkpoint you kept"));
    }
    return verdict(std::nullopt, "");
  });
  if (!started) {
    writer->Done(Busy());
  }
  return writer.get();
}

grpc::ServerWriteReactor<v1::ExportLogResponse>* AuditServiceImpl::ExportLog(
    grpc::CallbackServerContext* ctx, const v1::ExportLogRequest* req) {
  using Refuse = Refused<v1::ExportLogResponse>;
  workflow::Principal caller;
  if (auto s = RequireAuditor(auth_, ctx, &caller); !s.ok()) return new Refuse(s);
  // An export holds every event of its range, whatever its jurisdiction: only an auditor
  // or admin of the whole city (a one-segment jurisdiction) may take one.
  if (!WholeCity(caller.jurisdiction)) {
    return new Refuse(ErrorStatus(
        grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "",
        absl::StrCat("an export holds the events of every jurisdiction; ", caller.id, " acts in \"",
                     caller.jurisdiction,
                     "\" only. An auditor or admin of the whole city must export; "
                     "GetCaseAsOf, GetLedgerAsOf and WatchEvents serve your jurisdiction"),
        absl::StrCat("导出包含所有辖区的事件；", caller.id, " 的管辖范围仅为 \"",
                     caller.jurisdiction, "\"，须由全市的监督审计人员或管理员导出")));
  }
  auto head = LatestCheckpoint(log_);
  if (!head.ok()) return new Refuse(FromStoreStatus(head.status()));
  const int64_t to = req->to_position() == 0 ? head->checkpoint.size : req->to_position();
  const int64_t from = req->from_position();
  if (from < 0) return new Refuse(Negative("from_position", from));
  if (to < 0) return new Refuse(Negative("to_position", to));
  if (from > to || to > head->checkpoint.size) {
    const bool from_wrong = from > to && to <= head->checkpoint.size;
    return new Refuse(OutOfRange(from_wrong ? "from_position" : "to_position",
                                 absl::StrCat("cannot export [", from, ", ", to,
                                              "): need 0 <= from_position <= "
                                              "to_position <= ",
                                              head->checkpoint.size, " (the latest checkpoint)"),
                                 absl::StrCat("无法导出 [", from, ", ", to,
                                              ")：须满足 0 <= from_position <= to_position <= ",
                                              head->checkpoint.size, "（最新检查点）")));
  }
  auto writer =
      JobWriter<v1::ExportLogResponse>::Create(ctx, absl::Milliseconds(options_.write_stall_ms));
  writer->set_standing(CallerStanding(auth_, caller, nullptr), "the export", "导出");
  const SignedHead signed_head = *head;
  const bool started = jobs_.Start([this, writer, from, to, signed_head] {
    store::ExportHeader header{.origin = signed_head.checkpoint.origin,
                               .from = from,
                               .to = to,
                               .tree_size = signed_head.checkpoint.size,
                               .checkpoint = signed_head.note,
                               .verifier_key = log_->CheckpointVerifier().VerifierKey()};
    auto edge = log_->EdgeHashes(from);
    if (!edge.ok()) return writer->Done(FromStoreStatus(edge.status()));
    header.left_edge = std::move(*edge);
    if (to > 0 && to < signed_head.checkpoint.size) {
      auto proof = log_->ConsistencyProof(to, signed_head.checkpoint.size);
      if (!proof.ok()) return writer->Done(FromStoreStatus(proof.status()));
      header.consistency_proof = std::move(*proof);
    }
    v1::ExportLogResponse chunk;
    std::string* data = chunk.mutable_data();
    store::AppendExportHeader(data, header);
    for (int64_t position = from; position < to;) {
      if (writer->cancelled()) return writer->Done(grpc::Status::CANCELLED);
      auto events = log_->ReadRange(position, static_cast<size_t>(std::min<int64_t>(
                                                  to - position, options_.read_chunk_events)));
      if (!events.ok()) return writer->Done(FromStoreStatus(events.status()));
      if (events->empty()) {
        return writer->Done(FromStoreStatus(absl::DataLossError("the log ended early")));
      }
      for (const store::StoredEvent& e : *events) {
        store::AppendExportRecord(data, e);
        if (data->size() >= options_.export_chunk_bytes) {
          if (!writer->Write(chunk)) return writer->Done(grpc::Status::CANCELLED);
          data->clear();
        }
      }
      position += static_cast<int64_t>(events->size());
    }
    store::AppendExportEnd(data);
    if (!writer->Write(chunk, /*last=*/true)) return writer->Done(grpc::Status::CANCELLED);
    writer->Done(grpc::Status::OK);
  });
  if (!started) writer->Done(Busy());
  return writer.get();
}

}  // namespace casework::shell

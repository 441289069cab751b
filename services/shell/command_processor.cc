#include "services/shell/command_processor.h"

#include <chrono>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/shell/fingerprint.h"
#include "services/shell/principals.h"
#include "services/shell/projections.h"
#include "services/shell/receipts.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/limits.h"
#include "services/workflow/names.h"

namespace casework::shell {
namespace {

using casework::v1::Case;
using casework::v1::CaseCommandResponse;
using casework::v1::Command;
using casework::v1::Event;
using casework::v1::EventRecord;

const std::string& RequestIdOf(const Command& command) {
  switch (command.kind_case()) {
    case Command::kCreateCase:
      return command.create_case().request_id();
    case Command::kReviewListing:
      return command.review_listing().request_id();
    case Command::kAmendListing:
      return command.amend_listing().request_id();
    case Command::kAssignAssistance:
      return command.assign_assistance().request_id();
    case Command::kReplaceAssignment:
      return command.replace_assignment().request_id();
    case Command::kRecordFieldVisit:
      return command.record_field_visit().request_id();
    case Command::kRecordMeasure:
      return command.record_measure().request_id();
    case Command::kRecordFunds:
      return command.record_funds().request_id();
    case Command::kRecordInspection:
      return command.record_inspection().request_id();
    case Command::kSignOffClosure:
      return command.sign_off_closure().request_id();
    case Command::kSendBack:
      return command.send_back().request_id();
    case Command::kRecordFollowUpReview:
      return command.record_follow_up_review().request_id();
    case Command::kRecordAdmonishmentTalk:
      return command.record_admonishment_talk().request_id();
    case Command::kIssueRectificationNotice:
      return command.issue_rectification_notice().request_id();
    case Command::KIND_NOT_SET:
      break;
  }
  static const std::string kEmpty;
  return kEmpty;
}

}  // namespace

int64_t SystemClockMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string CaseIdFromName(const std::string& name) {
  const std::optional<std::string_view> id = workflow::CaseIdFromName(name);
  return id.has_value() ? std::string(*id) : std::string();
}

std::string CaseStream(const std::string& case_id) { return absl::StrCat("cases/", case_id); }

absl::StatusOr<Case> CommandProcessor::LoadCase(const std::string& case_id) {
  Case state;
  if (absl::Status status = LoadCaseInto(case_id, &state); !status.ok()) return status;
  return state;
}

absl::Status CommandProcessor::LoadCaseInto(const std::string& case_id, Case* state) {
  state->Clear();
  auto bytes = log_->GetProjection(kCaseTable, case_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) return absl::OkStatus();
  if (!state->ParseFromString(**bytes)) {
    return absl::DataLossError(absl::StrCat("the stored projection of case ", case_id,
                                            " does not parse; rebuild the projections"));
  }
  return absl::OkStatus();
}

absl::StatusOr<store::StoredEvent> CommandProcessor::ReadEventAt(const std::string& case_id,
                                                                 int64_t version) {
  auto read = log_->ReadStream(CaseStream(case_id), version, 1);
  if (!read.ok()) return read.status();
  if (read->empty() || read->front().version != version) {
    return absl::DataLossError(absl::StrCat("the log holds no event ", version, " of case ",
                                            case_id, ", though its projection is at that version"));
  }
  return std::move(read->front());
}

absl::Status CommandProcessor::SetLastEvent(Case* state) {
  if (state->version() == 0) return absl::OkStatus();
  auto latest = ReadEventAt(state->case_id(), state->version());
  if (!latest.ok()) return latest.status();
  state->set_last_position(latest->position);
  state->set_last_leaf_hash(latest->leaf_hash.data(), latest->leaf_hash.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EventRecord>> CommandProcessor::ReadCaseEvents(
    const std::string& case_id, int64_t from_version, size_t limit) {
  auto stored = log_->ReadStream(CaseStream(case_id), from_version, limit);
  if (!stored.ok()) return stored.status();
  std::vector<EventRecord> records;
  records.reserve(stored->size());
  for (const auto& s : *stored) {
    EventRecord record;
    record.set_position(s.position);
    if (!record.mutable_event()->ParseFromString(s.bytes)) {
      return absl::DataLossError(
          absl::StrCat("the event at position ", s.position, " does not parse"));
    }
    record.set_leaf_hash(s.leaf_hash.data(), s.leaf_hash.size());
    records.push_back(std::move(record));
  }
  return records;
}

void CommandProcessor::SetClosureOutstanding(const Case& state,
                                             CaseCommandResponse* response) const {
  if (state.state() != casework::v1::CASE_STATE_VERIFIED) return;  // closed: nothing more
  // Signed, not closed: say what the closure still needs.
  workflow::ClosureOutstanding outstanding = workflow::DescribeClosureOutstanding(state, policy_);
  response->set_closure_outstanding(std::move(outstanding.en));
  response->set_closure_outstanding_zh(std::move(outstanding.zh));
}

void CommandProcessor::AnswerRetry(const std::string& actor_id, const std::string& case_id,
                                   const store::AppendResult& first, const std::string& fingerprint,
                                   CaseCommandResponse* response, Done done) {
  const auto reused = [] {
    return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_ID_REUSED", "request_id",
                       "this request_id was already used for a different request on this case; "
                       "use a new request_id for a new request",
                       "该 request_id 已用于本案件的另一请求；新请求请使用新的 request_id");
  };
  // Nothing of this call's own reading or deciding goes out with a retry's answer.
  response->clear_case_();
  response->clear_events();
  if (first.request_fingerprint != fingerprint) {
    std::move(done)(reused());
    return;
  }
  // The first answer: the case as of the first append, and its events, read in as many
  // pages as the log's bound on one read takes.
  Case state;
  bool signed_off = false;
  for (int64_t from = 1; from <= first.version;) {
    auto page = ReadCaseEvents(case_id, from, static_cast<size_t>(first.version - from + 1));
    if (!page.ok()) {
      std::move(done)(FromStoreStatus(page.status()));
      return;
    }
    if (page->empty()) {
      std::move(done)(FromStoreStatus(absl::DataLossError(
          absl::StrCat("the events of case ", case_id, " end before version ", from,
                       ", though the log records a request answered at version ", first.version))));
      return;
    }
    from += static_cast<int64_t>(page->size());
    for (auto& record : *page) {
      const bool answered = record.position() >= first.first_position &&
                            record.position() < first.first_position + first.event_count;
      // A retry comes from whoever made the first request: the same request from someone
      // else is another request (and must not hand them the case without their own checks).
      if (record.position() == first.first_position && record.event().actor() != actor_id) {
        std::move(done)(reused());
        return;
      }
      workflow::Evolve(state, record.event());
      state.set_last_position(record.position());
      state.set_last_leaf_hash(record.leaf_hash());
      if (answered) {
        signed_off = signed_off || record.event().has_closure_signed_off();
        *response->add_events() = std::move(record);
      }
    }
  }
  // As the first answer said: what the closure still needed after this sign-off.
  if (signed_off) SetClosureOutstanding(state, response);
  *response->mutable_case_() = std::move(state);
  response->set_replayed(true);
  std::move(done)(grpc::Status::OK);
}

void CommandProcessor::Execute(const workflow::Principal& actor, const std::string& case_id,
                               const Command& command, CaseCommandResponse* response, Done done) {
  if (receipts_ && WantsReceipt(command)) {
    // After the answer is final (appended and durable, or a retry's first answer): the
    // receipt of the command's last event.
    done = [this, response, inner = std::move(done)](grpc::Status status) mutable {
      if (!status.ok() || response->events_size() == 0) {
        std::move(inner)(std::move(status));
        return;
      }
      receipts_(response->events(response->events_size() - 1).position(),
                response->mutable_receipt(), std::move(inner));
    };
  }
  const std::string& request_id = RequestIdOf(command);
  if (!workflow::IsValidRequestId(request_id)) {
    // The rule of the core (workflow::IsValidRequestId), checked here before the request
    // id is looked up in the log.
    std::move(done)(RequestIdInvalid(request_id));
    return;
  }
  const std::string stream = CaseStream(case_id);
  const std::string fingerprint = RequestFingerprint(command);

  workflow::Context context{.actor = actor, .now_micros = clock_(), .policy = &policy_};
  // The case as it is, then as the command leaves it: the answer's own case, so that
  // neither is copied (and both are on the response's arena when it has one).
  Case& state = *response->mutable_case_();
  if (!workflow::IsValidCaseId(case_id)) {
    // Only CreateCase names its case by a bare id: the core refuses it (CASE_ID_INVALID,
    // after the checks that come first) before the id reaches the log as a stream name.
    workflow::Decision decision = workflow::Decide(state, command, context);
    auto* refusal = std::get_if<workflow::Refusal>(&decision);
    std::move(done)(refusal != nullptr
                        ? ToGrpcStatus(*refusal)
                        : ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "CASE_ID_INVALID",
                                      "case_id", "the case id is invalid", "案件编号无效"));
    return;
  }

  // Taken before the state and the request id are read, so that the log may trust both
  // reads instead of repeating them on its sequencer (store::ReadToken).
  const store::ReadToken read_token = log_->TakeReadToken();
  // The state first, then the request id: a first attempt that becomes durable between
  // the two reads is then found as a retry's first answer. Read the other way round, the
  // retry would miss its first attempt and then decide on the state that attempt left
  // (refused as stale, or the transition already made); read this way, a first attempt
  // that lands after both reads is found by the log, which looks the id up again for a
  // stream appended to since the token.
  if (absl::Status loaded = LoadCaseInto(case_id, &state); !loaded.ok()) {
    std::move(done)(FromStoreStatus(loaded));
    return;
  }
  auto first = log_->FindRequest(stream, request_id);
  if (!first.ok()) {
    std::move(done)(FromStoreStatus(first.status()));
    return;
  }
  if (first->has_value()) {
    AnswerRetry(actor.id, case_id, **first, fingerprint, response, std::move(done));
    return;
  }
  // A sign-off's signature is verified here, against the registered key, before the core
  // decides; the core then records the verified key id and level. When it does not
  // verify, the shell's precise reason replaces the core's SIGN_OFF_SIGNATURE_NOT_VERIFIED,
  // which comes after the core's other checks (role, version, state).
  std::optional<grpc::Status> signature_refusal;
  // Held until the append is answered: a revocation of the key waits for it, so this
  // sign-off, checked against a key not yet revoked, is never written after the
  // revocation (ApproverKeys::SignOffHold).
  ApproverKeys::SignOffHold key_hold;
  if (command.kind_case() == Command::kSignOffClosure && keys_ != nullptr) {
    key_hold = keys_->HoldForSignOff(command.sign_off_closure().key_id());
    // The statement names the leaf hash of the case's latest event, read after the case:
    // an append to the case since then makes this one stale, so the two agree.
    std::string latest_leaf_hash;
    if (state.version() > 0) {
      auto latest = ReadEventAt(case_id, state.version());
      if (!latest.ok()) {
        std::move(done)(FromStoreStatus(latest.status()));
        return;
      }
      latest_leaf_hash.assign(reinterpret_cast<const char*>(latest->leaf_hash.data()),
                              latest->leaf_hash.size());
    }
    auto verdict = VerifySignOff(*keys_, actor, command.sign_off_closure(), latest_leaf_hash);
    if (!verdict.ok()) {
      std::move(done)(FromStoreStatus(verdict.status()));
      return;
    }
    if (verdict->verified.has_value() && key_hold.blocked()) {
      // Its revocation is being written (it may still fail): refused for now, after the
      // checks that come first (whose key it is, ...), as a revoked key would be.
      const std::string& key_id = command.sign_off_closure().key_id();
      verdict->verified.reset();
      verdict->refusal = ErrorStatus(
          grpc::StatusCode::ABORTED, "KEY_BEING_REVOKED", "key_id",
          absl::StrCat("a revocation of key ", key_id,
                       " is being written; retry with the same request id (refused as "
                       "KEY_REVOKED if it was revoked: then sign with another registered key)"),
          absl::StrCat("密钥 ", key_id,
                       " 的吊销正在写入；请使用相同的 request_id 重试（若已吊销将被拒绝为 "
                       "KEY_REVOKED，届时请使用其他已登记的密钥签署）"));
    }
    if (verdict->verified.has_value()) {
      context.verified_key_id = verdict->verified->key_id();
      context.verified_level = verdict->verified->level();
      context.verified_latest_leaf_hash = std::move(latest_leaf_hash);
    }
    signature_refusal = std::move(verdict->refusal);
  }
  workflow::Decision decision = workflow::Decide(state, command, context);
  if (auto* refusal = std::get_if<workflow::Refusal>(&decision)) {
    if (refusal->reason == workflow::Reason::kSignOffSignatureNotVerified &&
        signature_refusal.has_value()) {
      std::move(done)(std::move(*signature_refusal));
      return;
    }
    std::move(done)(ToGrpcStatus(*refusal));
    return;
  }
  auto& events = std::get<workflow::Events>(decision);
  if (events.empty()) {
    // Already satisfied: nothing to append; the answer holds the case as it is.
    std::move(done)(grpc::Status::OK);
    return;
  }
  // From the caller's last check until the append is queued: no reload's record between.
  const AppendGateHold gate(append_gate_);
  if (accepted_check_) {
    if (std::optional<grpc::Status> refused = accepted_check_(actor, command)) {
      std::move(done)(*std::move(refused));
      return;
    }
  }

  // The case evolves in place; the projections need only this much of it as it was.
  const CaseRowBefore row_before = CaseRowBefore::Of(state);
  store::AppendRequest append;
  append.stream = stream;
  append.expected_version = row_before.version;
  append.read_token = read_token;
  append.request_id_checked = true;  // FindRequest above, after the token
  append.may_block = true;           // a handler with this one command in flight
  append.request_id = request_id;
  append.request_fingerprint = fingerprint;
  append.events.reserve(events.size());
  for (const Event& event : events) {
    workflow::Evolve(state, event);
    append.events.push_back(event.SerializeAsString());
  }
  ProjectCase(row_before, state, &append.projections);
  // Every command rewrites the case's row. The core keeps the row's history bounded
  // (workflow/limits.h), but an unusual case (thousands of inspections in one round) can
  // still reach the log's bound on a row: refused here with a reason, not as a storage
  // error.
  size_t row_bytes = 0;
  for (const store::ProjectionWrite& write : append.projections) {  // the row: the first
    if (write.table == kCaseTable) {
      row_bytes = write.value.size();
      break;
    }
  }
  if (row_bytes > case_row_bytes_max_) {
    std::move(done)(ErrorStatus(
        grpc::StatusCode::FAILED_PRECONDITION, "CASE_RECORD_FULL", "",
        absl::StrCat("with this command the record of case ", case_id, " would grow to ", row_bytes,
                     " bytes, beyond the ", case_row_bytes_max_,
                     " one case's record may hold, so nothing was applied; the case's whole "
                     "history is in its events (ListCaseEvents)"),
        absl::StrCat("执行本命令后案件 ", case_id, " 的记录将达到 ", row_bytes,
                     " 字节，超过单个案件记录的上限 ", case_row_bytes_max_,
                     " 字节，命令未执行；案件的完整历史见其事件（ListCaseEvents）")));
    return;
  }
  if (command.kind_case() == Command::kSignOffClosure) SetClosureOutstanding(state, response);

  // One case per organisation (a relapse reopens its case; it is not listed again).
  std::optional<std::string> reserved;
  if (row_before.version == 0) {
    const std::string& organisation = state.organisation().jurisdiction();
    if (auto refused = ReserveOrganisation(organisation, case_id)) {
      std::move(done)(*std::move(refused));
      return;
    }
    reserved = organisation;
  }

  // The core's events join the answer without a copy: each moves into a heap message
  // that the answer's arena owns (a copy onto the arena would allocate every string again).
  google::protobuf::Arena* arena = response->GetArena();
  for (Event& event : events) {
    EventRecord* record = response->add_events();
    if (arena == nullptr) {
      *record->mutable_event() = std::move(event);
      continue;
    }
    auto* owned = new Event(std::move(event));
    arena->Own(owned);
    record->unsafe_arena_set_allocated_event(owned);
  }

  const bool creating = row_before.version == 0;
  log_->AppendAsync(std::move(append), [this, actor_id = actor.id, case_id, fingerprint, response,
                                        creating, reserved = std::move(reserved),
                                        key_hold = std::move(key_hold), done = std::move(done)](
                                           absl::StatusOr<store::AppendResult> result) mutable {
    // Durable or refused: a revocation of the sign-off's key may go on.
    key_hold.Release();
    // Durable (and its org_case row visible) or refused: the reservation has done its part.
    if (reserved.has_value()) ReleaseOrganisation(*reserved);
    if (!result.ok()) {
      if (result.status().code() == absl::StatusCode::kAborted && creating) {
        std::move(done)(ErrorStatus(
            grpc::StatusCode::ALREADY_EXISTS, "CASE_ALREADY_EXISTS", "case_id",
            "a case with this case_id was created meanwhile; choose another case_id or read "
            "the existing case",
            "该案件编号已被创建；请换用其他编号或读取已有案件"));
        return;
      }
      if (result.status().code() == absl::StatusCode::kAborted) {
        std::move(done)(ErrorStatus(
            grpc::StatusCode::ABORTED, "STALE_EXPECTED_VERSION", "expected_version",
            "the case changed while this command was decided; read it again and retry with "
            "its current version",
            "案件在处理期间已被修改；请重新读取并以当前版本重试"));
        return;
      }
      std::move(done)(FromStoreStatus(result.status()));
      return;
    }
    if (result->replayed) {
      // The same request id reached the log first in another call, which was not yet
      // durable when this one looked it up: this decision was not appended. Answer as a
      // retry: the first request's answer, or REQUEST_ID_REUSED when it was another request.
      // The first append is durable by now (in this batch or an earlier one). Its answer
      // is read from the case's history, which must not hold up the log's commit thread,
      // where this runs.
      response->Clear();
      racing_retries_.Post([this, actor_id = std::move(actor_id), case_id = std::move(case_id),
                            first = *std::move(result), fingerprint = std::move(fingerprint),
                            response, done = std::move(done)]() mutable {
        AnswerRetry(actor_id, case_id, first, fingerprint, response, std::move(done));
      });
      return;
    }
    for (int i = 0; i < response->events_size(); ++i) {
      EventRecord* record = response->mutable_events(i);
      record->set_position(result->first_position + i);
      if (static_cast<size_t>(i) < result->leaf_hashes.size()) {
        const store::Hash& leaf = result->leaf_hashes[static_cast<size_t>(i)];
        record->set_leaf_hash(leaf.data(), leaf.size());
      }
    }
    Case* after = response->mutable_case_();
    after->set_last_position(result->first_position + result->event_count - 1);
    if (!response->events().empty()) {
      after->set_last_leaf_hash(response->events(response->events_size() - 1).leaf_hash());
    }
    std::move(done)(grpc::Status::OK);
  });
}

std::optional<grpc::Status> CommandProcessor::ReserveOrganisation(const std::string& organisation,
                                                                  const std::string& case_id) {
  // The caller covers `organisation` (the core checked), so it may read a case there.
  const auto listed = [&](const std::string& other) {
    return ErrorStatus(
        grpc::StatusCode::ALREADY_EXISTS, "ORGANISATION_ALREADY_LISTED",
        "organisation.jurisdiction",
        absl::StrCat("the organisation at ", organisation, " is already on the ledger as case ",
                     other,
                     " (one case per organisation; a relapse found in a follow-up review "
                     "reopens that case)"),
        absl::StrCat("组织 ", organisation, " 已列入台账（案件 ", other,
                     "）；每个组织只有一个案件，回头看发现反弹时重新整顿该案件"));
  };
  std::string in_flight;
  {
    absl::MutexLock lock(&organisations_mu_);
    auto [it, inserted] = organisations_in_flight_.try_emplace(organisation, case_id, 0);
    // Another case being created for it now. The same case: a retry, or a second create
    // of that id, which the log answers (replayed, or CASE_ALREADY_EXISTS).
    if (!inserted && it->second.first != case_id) {
      in_flight = it->second.first;
    } else {
      ++it->second.second;
    }
  }
  if (!in_flight.empty()) {
    // That creation may still fail: not final, retry.
    return ErrorStatus(
        grpc::StatusCode::ABORTED, "ORGANISATION_BEING_LISTED", "organisation.jurisdiction",
        absl::StrCat("case ", in_flight, " is being created for the organisation at ", organisation,
                     " right now; retry in a moment (it is then either listed "
                     "there or free)"),
        absl::StrCat("组织 ", organisation, " 正在被列入台账（案件 ", in_flight, "）；请稍后重试"));
  }
  // Read while holding the reservation: a creation that released it before had made its
  // row visible first.
  auto other = log_->GetProjection(kOrganisationCaseTable, organisation);
  if (!other.ok()) {
    ReleaseOrganisation(organisation);
    return FromStoreStatus(other.status());
  }
  if (other->has_value() && **other != case_id) {
    ReleaseOrganisation(organisation);
    return listed(**other);
  }
  return std::nullopt;
}

void CommandProcessor::ReleaseOrganisation(const std::string& organisation) {
  absl::MutexLock lock(&organisations_mu_);
  auto it = organisations_in_flight_.find(organisation);
  if (it != organisations_in_flight_.end() && --it->second.second == 0) {
    organisations_in_flight_.erase(it);
  }
}

}  // namespace casework::shell

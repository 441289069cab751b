#include "services/shell/receipts.h"

#include "absl/time/clock.h"
#include "services/shell/status_mapping.h"
#include "store/checkpoint.h"

namespace casework::shell {

using casework::v1::Command;

bool WantsReceipt(const Command& command) {
  switch (command.kind_case()) {
    case Command::kCreateCase:
      return command.create_case().want_receipt();
    case Command::kReviewListing:
      return command.review_listing().want_receipt();
    case Command::kAmendListing:
      return command.amend_listing().want_receipt();
    case Command::kAssignAssistance:
      return command.assign_assistance().want_receipt();
    case Command::kReplaceAssignment:
      return command.replace_assignment().want_receipt();
    case Command::kRecordFieldVisit:
      return command.record_field_visit().want_receipt();
    case Command::kRecordMeasure:
      return command.record_measure().want_receipt();
    case Command::kRecordFunds:
      return command.record_funds().want_receipt();
    case Command::kRecordInspection:
      return command.record_inspection().want_receipt();
    case Command::kSignOffClosure:
      return command.sign_off_closure().want_receipt();
    case Command::kSendBack:
      return command.send_back().want_receipt();
    case Command::kRecordFollowUpReview:
      return command.record_follow_up_review().want_receipt();
    case Command::kRecordAdmonishmentTalk:
      return command.record_admonishment_talk().want_receipt();
    case Command::kIssueRectificationNotice:
      return command.issue_rectification_notice().want_receipt();
    case Command::KIND_NOT_SET:
      break;
  }
  return false;
}

void ReceiptIssuer::Issue(int64_t position, casework::v1::Receipt* receipt, Done done) {
  worker_.Post([this, position, receipt, done = std::move(done)]() mutable {
    Run(position, receipt, std::move(done));
  });
}

void ReceiptIssuer::Run(int64_t position, casework::v1::Receipt* receipt, Done done) {
  // The head is published before the append's callback runs, so it covers `position`. A
  // retry that found its first attempt can come sooner: the log's writer writes the
  // request id with the events and publishes the new head a moment later. Waited for
  // here, a short while.
  for (int i = 0; i < 1000 && log_->Head().size <= position; ++i) {
    absl::SleepFor(absl::Microseconds(100));
  }
  auto note = log_->SignedCheckpoint();
  if (!note.ok()) {
    std::move(done)(FromStoreStatus(note.status()));
    return;
  }
  absl::StatusOr<store::Note> parsed = store::ParseNote(*note);
  absl::StatusOr<store::Checkpoint> checkpoint =
      parsed.ok() ? store::ParseCheckpoint(parsed->text)
                  : absl::StatusOr<store::Checkpoint>(parsed.status());
  if (!checkpoint.ok()) {
    std::move(done)(FromStoreStatus(OwnCheckpointUnreadable(checkpoint.status())));
    return;
  }
  auto proof = log_->InclusionProof(position, checkpoint->size);
  if (!proof.ok()) {
    std::move(done)(FromStoreStatus(proof.status()));
    return;
  }
  auto event = log_->ReadRange(position, 1);
  if (!event.ok() || event->size() != 1) {
    std::move(done)(FromStoreStatus(
        event.ok() ? absl::DataLossError("the receipt's event is missing") : event.status()));
    return;
  }
  receipt->set_leaf_hash(event->front().leaf_hash.data(), event->front().leaf_hash.size());
  receipt->set_checkpoint(*note);
  receipt->set_leaf_index(position);
  receipt->set_tree_size(checkpoint->size);
  for (const store::Hash& h : *proof) {
    receipt->add_inclusion_proof(reinterpret_cast<const char*>(h.data()), h.size());
  }
  std::move(done)(grpc::Status::OK);
}

}  // namespace casework::shell

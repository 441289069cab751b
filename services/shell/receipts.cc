#include "services/shell/receipts.h"

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

ReceiptIssuer::ReceiptIssuer(store::RocksEventLog* log, size_t queue_max)
    : log_(log), queue_max_(queue_max), thread_([this] { Loop(); }) {}

ReceiptIssuer::~ReceiptIssuer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void ReceiptIssuer::Issue(int64_t position, casework::v1::Receipt* receipt, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < queue_max_) {
      queue_.push_back(Job{position, receipt, std::move(done)});
      return;
    }
  }
  Run(Job{position, receipt, std::move(done)});
}

void ReceiptIssuer::Loop() {
  for (;;) {
    std::deque<Job> jobs;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ReceiptIssuer* self)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return self->stopping_ || !self->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      jobs.swap(queue_);
    }
    for (Job& job : jobs) Run(std::move(job));
  }
}

void ReceiptIssuer::Run(Job job) {
  // The head is published before the append's callback runs, so it covers `position`.
  auto note = log_->SignedCheckpoint();
  absl::StatusOr<store::Note> parsed =
      note.ok() ? store::ParseNote(*note) : absl::StatusOr<store::Note>(note.status());
  absl::StatusOr<store::Checkpoint> checkpoint =
      parsed.ok() ? store::ParseCheckpoint(parsed->text)
                  : absl::StatusOr<store::Checkpoint>(parsed.status());
  if (!checkpoint.ok()) {
    std::move(job.done)(FromStoreStatus(checkpoint.status()));
    return;
  }
  auto proof = log_->InclusionProof(job.position, checkpoint->size);
  if (!proof.ok()) {
    std::move(job.done)(FromStoreStatus(proof.status()));
    return;
  }
  auto event = log_->ReadRange(job.position, 1);
  if (!event.ok() || event->size() != 1) {
    std::move(job.done)(FromStoreStatus(
        event.ok() ? absl::DataLossError("the receipt's event is missing") : event.status()));
    return;
  }
  job.receipt->set_leaf_hash(event->front().leaf_hash.data(), event->front().leaf_hash.size());
  job.receipt->set_checkpoint(*note);
  job.receipt->set_leaf_index(job.position);
  job.receipt->set_tree_size(checkpoint->size);
  for (const store::Hash& h : *proof) {
    job.receipt->add_inclusion_proof(reinterpret_cast<const char*>(h.data()), h.size());
  }
  std::move(job.done)(grpc::Status::OK);
}

}  // namespace casework::shell

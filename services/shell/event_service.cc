#include "services/shell/event_service.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "services/shell/event_view.h"
#include "services/shell/principals.h"
#include "services/shell/projections.h"
#include "services/shell/status_mapping.h"
#include "services/workflow/policy.h"
#include "services/workflow/text.h"
#include "store/checkpoint.h"

namespace casework::shell {
namespace {

using casework::v1::WatchEventsRequest;

// --- The wire form of WatchEventsResponse, written by hand ---------------------------
//
//   WatchEventsResponse := (0x0A len EventRecord)*      field 1, events
//                          [0x12 len checkpoint]         field 2
//                          [0x18 varint scanned_through] field 3
//                          [0x20 0x01]                   field 4, caught_up
//   EventRecord         := [0x08 varint position]        field 1 (omitted when 0)
//                          0x12 len event_bytes          field 2, the stored Event
//                          0x1A 0x20 leaf_hash           field 3, 32 bytes
// Proto3 defaults (0, empty, false) are omitted, as the generated code does.

void PutVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

void PutEventRecord(std::string* out, const store::StoredEvent& event) {
  const uint64_t position = static_cast<uint64_t>(event.position);
  size_t inner = 0;
  if (position != 0) inner += 1 + VarintSize(position);
  inner += 1 + VarintSize(event.bytes.size()) + event.bytes.size();
  inner += 2 + event.leaf_hash.size();
  out->push_back(0x0A);
  PutVarint(out, inner);
  if (position != 0) {
    out->push_back(0x08);
    PutVarint(out, position);
  }
  out->push_back(0x12);
  PutVarint(out, event.bytes.size());
  out->append(event.bytes);
  out->push_back(0x1A);
  out->push_back(static_cast<char>(event.leaf_hash.size()));
  out->append(reinterpret_cast<const char*>(event.leaf_hash.data()), event.leaf_hash.size());
}

void PutTrailer(std::string* out, const std::string& checkpoint, int64_t scanned_through,
                bool caught_up) {
  if (!checkpoint.empty()) {
    out->push_back(0x12);
    PutVarint(out, checkpoint.size());
    out->append(checkpoint);
  }
  if (scanned_through != 0) {
    out->push_back(0x18);
    PutVarint(out, static_cast<uint64_t>(scanned_through));
  }
  if (caught_up) {
    out->push_back(0x20);
    out->push_back(0x01);
  }
}

grpc::ByteBuffer ToByteBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

// A watch refused before it started.
class Refused final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit Refused(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

grpc::Status InvalidArgument(std::string_view field, std::string en, std::string zh) {
  return ErrorStatus(grpc::StatusCode::INVALID_ARGUMENT, "WATCH_REQUEST_INVALID", field,
                     std::move(en), std::move(zh));
}

// The stream families a filter may name (a case's, a county's records, ...).
constexpr std::string_view kStreamFamilies[] = {"cases/",   "counties/",         "registry/",
                                                "samples/", "registry-imports/", "approvers/"};

// A filter's stream: refused when it names no stream at all (a watch for it would stay
// silent for good), or a case outside the caller's jurisdiction (as GetCase refuses it). A
// case not yet listed may be watched.
std::optional<grpc::Status> CheckStreamFilter(store::RocksEventLog* log, const std::string& stream,
                                              const workflow::Principal& caller) {
  bool known = stream == kPrincipalsStream;
  for (std::string_view family : kStreamFamilies) {
    known = known || (stream.size() > family.size() && stream.starts_with(family));
  }
  if (!known) {
    return InvalidArgument(
        "filter.stream",
        absl::StrCat("filter.stream \"", workflow::Shown(stream, 80),
                     "\" names no stream; a case's is \"cases/{case_id}\" (others: "
                     "\"counties/{city}/{county}\", \"registry/{city}/{county}\", "
                     "\"samples/...\", \"registry-imports/...\", \"approvers/{id}\", \"",
                     kPrincipalsStream, "\")"),
        absl::StrCat("filter.stream“", workflow::Shown(stream, 80),
                     "”不是事件流名称；案件的事件流为“cases/{case_id}”"));
  }
  constexpr std::string_view kCases = "cases/";
  if (!stream.starts_with(kCases)) return std::nullopt;
  const std::string case_id = stream.substr(kCases.size());
  auto bytes = log->GetProjection(kCaseTable, case_id);
  if (!bytes.ok()) return FromStoreStatus(bytes.status());
  if (!bytes->has_value()) return std::nullopt;
  casework::v1::Case c;
  if (!c.ParseFromString(**bytes)) {
    return FromStoreStatus(absl::DataLossError(
        absl::StrCat("the projection of case ", case_id, " does not parse; rebuild projections")));
  }
  if (caller.Covers(c.organisation().jurisdiction())) return std::nullopt;
  return ErrorStatus(
      grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "filter.stream",
      absl::StrCat("case ", case_id, " is outside your jurisdiction \"", caller.jurisdiction, "\""),
      absl::StrCat("案件 ", case_id, " 不在您的管辖范围“", caller.jurisdiction, "”内"));
}

// How a watch ends when the server stops (EventServiceImpl::BeginDrain).
grpc::Status ShuttingDown() {
  return ErrorStatus(grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", "",
                     "the server is stopping; watch again, once it is back, from the "
                     "scanned_through of the last message received",
                     "服务正在关闭；待其恢复后，请从最后收到的消息的 scanned_through 处重新订阅");
}

}  // namespace

// One watch. Owned by a shared_ptr held by the service's registry (and by the dispatch
// queue while scheduled); the registry lets go in OnDone.
// What a position a catching-up watch scans counts for its catch-up rate, at least.
constexpr int64_t kScanChargeBytes = 8;

class EventServiceImpl::Watch final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Filter {
    std::string stream;              // empty: all
    std::string jurisdiction;        // the subtree events must lie in
    bool all_jurisdictions = false;  // no jurisdiction test at all
    bool oversight = false;          // receives counties/ records (approver, auditor, admin)
    bool auditor = false;            // receives samples/ (auditor, admin)
    absl::flat_hash_set<int> kinds;  // empty: all
  };

  Watch(EventServiceImpl* service, grpc::CallbackServerContext* ctx, workflow::Principal caller,
        std::shared_ptr<const Principals> principals, int64_t from, Filter filter,
        int events_per_message)
      : service_(service),
        ctx_(ctx),
        caller_(std::move(caller)),
        standing_(service->auth_, caller_, std::move(principals)),
        next_(from),
        filter_(std::move(filter)),
        events_per_message_(events_per_message) {}

  void Start(std::shared_ptr<Watch> self) { self_ = std::move(self); }
  [[nodiscard]] const std::string& principal() const { return caller_.id; }

  // Builds and writes messages until one is in flight and one is prepared, or there is
  // nothing to send. Runs on a dispatcher thread; only one Pump runs at a time per watch.
  // Every write starts here, never in OnWriteDone: gRPC does much of a write's work
  // (framing, the socket write) in the thread that starts it, and the dispatcher threads
  // run below the threads that serve commands and reads, so a flood of watch traffic
  // yields to them.
  void Pump() {
    // A pass from the service (this watch's turn at the catch-up rate) is for this Pump
    // only.
    bool pass = false;
    {
      absl::MutexLock lock(&mu_);
      pass = std::exchange(throttle_pass_, false);
    }
    for (;;) {
      // Before every message, the one prepared before a reload included: a caller the
      // reload removed or changed gets nothing more.
      std::optional<grpc::Status> ended = Revoked();
      if (!ended.has_value() && service_->draining_.load(std::memory_order_acquire)) {
        ended = ShuttingDown();
      }
      if (ended.has_value()) {
        bool finish = false;
        {
          absl::MutexLock lock(&mu_);
          scheduled_ = false;
          if (ready_.has_value()) DropReady();  // never sent: the client resumes before it
          finish = FinishLocked(*std::move(ended));
        }
        // Otherwise OnWriteDone finishes it once the write in flight completes (the
        // dispatcher cancels a write that waits past the grace: DispatchLoop).
        if (finish) Finish(final_status_);
        return;
      }
      bool start_ready = false;
      bool read_ahead = false;
      {
        absl::MutexLock lock(&mu_);
        if (finishing_ || (ready_.has_value() && writing_)) {
          scheduled_ = false;
          return;
        }
        if (!ready_.has_value() && writing_) {
          // Reading ahead only within the budget of all watches; otherwise the next
          // message is built once this write completes (OnWriteDone schedules the watch,
          // and sees it unscheduled: both under mu_).
          if (!service_->ReadAheadFits()) {
            scheduled_ = false;
            // A turn at the catch-up rate given to this Pump is kept for the next.
            throttle_pass_ = throttle_pass_ || pass;
            // Once per write: a watch withheld is looked at again on later turns.
            if (!withheld_counted_) {
              withheld_counted_ = true;
              service_->counters_.read_aheads_withheld.fetch_add(1, std::memory_order_relaxed);
            }
            return;
          }
          read_ahead = true;
        }
        if (ready_.has_value()) {
          current_bytes_ = static_cast<int64_t>(ready_->size());
          current_ = ToByteBuffer(std::move(*ready_));
          ready_.reset();
          service_->counters_.messages_ready.fetch_sub(1, std::memory_order_relaxed);
          writing_ = true;
          write_started_ = absl::Now();
          start_ready = true;
        }
      }
      if (start_ready) {
        StartWrite(&current_);
        continue;
      }
      const bool catching_up =
          service_->options_.catch_up_bytes_per_second > 0 &&
          service_->log_->Size() - next_ > service_->options_.catch_up_lag_positions;
      if (catching_up) {
        const bool go = std::exchange(pass, false) || service_->CatchUpMayProceed();
        if (!go) {
          std::shared_ptr<Watch> self;
          {
            absl::MutexLock lock(&mu_);
            scheduled_ = false;
            if (finishing_) return;  // cancelled meanwhile: nothing more to send
            throttled_ = true;
            self = self_;
          }
          service_->counters_.catch_up_throttled.fetch_add(1, std::memory_order_relaxed);
          service_->Throttle(std::move(self));
          return;
        }
      }
      const int64_t from = next_;
      const size_t bytes_max =
          read_ahead ? service_->options_.message_bytes_max : service_->MessageBytesNow();
      absl::StatusOr<std::optional<std::string>> built = Build(bytes_max);
      if (built.ok() && built->has_value() && bytes_max < service_->options_.message_bytes_max) {
        service_->counters_.messages_cut_to_budget.fetch_add(1, std::memory_order_relaxed);
      }
      if (!built.ok()) {
        bool finish = false;
        {
          absl::MutexLock lock(&mu_);
          scheduled_ = false;
          finish = FinishLocked(FromStoreStatus(built.status()));
        }
        if (finish) Finish(final_status_);
        return;
      }
      if (!built->has_value()) {
        // Read before the watch is unscheduled: once it is, another dispatcher may run
        // Build, which moves next_.
        const int64_t next = next_;
        {
          absl::MutexLock lock(&mu_);
          scheduled_ = false;
        }
        // A commit published between Build's read of the size and the line above saw
        // this watch scheduled and skipped it: look again. So did a drain begun since
        // this Pump looked at it.
        if (service_->log_->Size() > next || service_->draining_.load(std::memory_order_acquire)) {
          service_->Schedule(self_ptr());
        }
        return;
      }
      // A reload that removed or narrowed the caller while the message was built: the
      // message may hold events committed after it, so it is not sent.
      if (service_->built_hook_) service_->built_hook_();
      if (std::optional<grpc::Status> revoked = Revoked()) {
        bool finish = false;
        {
          absl::MutexLock lock(&mu_);
          scheduled_ = false;
          if (ready_.has_value()) DropReady();
          finish = FinishLocked(*std::move(revoked));
        }
        if (finish) Finish(final_status_);
        return;
      }
      const int64_t bytes = static_cast<int64_t>((*built)->size());
      if (catching_up) {
        // A filtered watch may scan many positions for a small message: each position
        // scanned counts as kScanChargeBytes at least.
        const int64_t charge = std::max(bytes, (next_ - from) * kScanChargeBytes);
        service_->ChargeCatchUp(charge);
        service_->counters_.catch_up_bytes.fetch_add(charge, std::memory_order_relaxed);
      }
      AddBuffered(bytes);
      bool start = false;
      {
        absl::MutexLock lock(&mu_);
        if (finishing_) {
          AddBuffered(-bytes);
          scheduled_ = false;
          return;
        }
        if (!writing_) {
          writing_ = true;
          write_started_ = absl::Now();
          start = true;
          current_bytes_ = bytes;
          current_ = ToByteBuffer(std::move(**built));
        } else {
          ready_ = std::move(**built);
          service_->counters_.messages_ready.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (start) StartWrite(&current_);
    }
  }

  // Schedules a Pump unless one is pending or running, or a prepared message waits.
  bool WantsPump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(service_->mu_) {
    absl::MutexLock lock(&mu_);
    if (scheduled_ || throttled_ || finishing_ || (ready_.has_value() && writing_)) return false;
    scheduled_ = true;
    return true;
  }

  // Schedules a Pump for a watch that holds a prepared message behind a write in flight
  // (which WantsPump leaves alone): the Pump looks at the caller's standing again, so that
  // a reload that removed or changed the caller ends it even while its client reads
  // nothing (the grace below then cancels the write).
  bool WantsStandingCheck() ABSL_EXCLUSIVE_LOCKS_REQUIRED(service_->mu_) {
    absl::MutexLock lock(&mu_);
    if (scheduled_ || throttled_ || finishing_ || !ready_.has_value() || !writing_) return false;
    scheduled_ = true;
    return true;
  }

  // Whether the write in flight began before `cutoff` (its client may have stopped
  // reading, its flow-control window full) while the watch is ending (a reload ended it)
  // or the server `draining`.
  bool WriteStuck(absl::Time cutoff, bool draining) {
    absl::MutexLock lock(&mu_);
    return writing_ && !finished_ && write_started_ < cutoff && (draining || finishing_);
  }
  // Cancels the call, unless it is done (gRPC frees the context after OnDone); it then
  // finishes CANCELLED once gRPC gives up the write in flight.
  void Cancel() {
    absl::MutexLock lock(&ctx_mu_);
    if (!done_) ctx_->TryCancel();
  }

  // Ends a wait for the catch-up rate: the next message may go whatever the rate says
  // (the service let this watch have the room there is). The caller then asks WantsPump.
  void Unthrottle() {
    absl::MutexLock lock(&mu_);
    throttled_ = false;
    throttle_pass_ = true;
  }

  void OnWriteDone(bool ok) override {
    service_->counters_.messages_sent.fetch_add(ok ? 1 : 0, std::memory_order_relaxed);
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      withheld_counted_ = false;
      if (ok) service_->counters_.bytes_sent.fetch_add(current_bytes_, std::memory_order_relaxed);
      AddBuffered(-current_bytes_);
      current_bytes_ = 0;
      if (!ok) {
        // The client went away; OnCancel follows (or came first, and then left the finish
        // to this write's completion: finish here either way).
        if (ready_.has_value()) DropReady();
        if (!finishing_) {
          finishing_ = true;
          final_status_ = grpc::Status::CANCELLED;
        }
        finish = !finished_;
        finished_ = true;
      } else if (finishing_) {
        if (ready_.has_value()) DropReady();  // never to be sent
        finish = !finished_;
        finished_ = true;
      }
    }
    if (finish) {
      Finish(final_status_);
      return;
    }
    // The next write (a prepared message, or one to build) starts on a dispatcher thread.
    service_->Schedule(self_ptr());
  }

  void OnCancel() override {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      if (ready_.has_value()) DropReady();
      finish = FinishLocked(grpc::Status::CANCELLED);
    }
    if (finish) Finish(final_status_);
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&ctx_mu_);
      done_ = true;  // before gRPC frees the context
    }
    service_->Unregister(this);
    std::shared_ptr<Watch> self;
    {
      absl::MutexLock lock(&mu_);
      self = std::move(self_);
    }
    // `self` may be the last owner: nothing touches this object after it goes.
  }

 private:
  std::shared_ptr<Watch> self_ptr() {
    absl::MutexLock lock(&mu_);
    return self_;
  }

  void AddBuffered(int64_t bytes) {
    WatchCounters& c = service_->counters_;
    const int64_t now = c.bytes_buffered.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    int64_t peak = c.bytes_buffered_peak.load(std::memory_order_relaxed);
    while (now > peak &&
           !c.bytes_buffered_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  void DropReady() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    AddBuffered(-static_cast<int64_t>(ready_->size()));
    ready_.reset();
    service_->counters_.messages_ready.fetch_sub(1, std::memory_order_relaxed);
  }

  // Marks the watch finishing with `status`. True when the caller must call
  // Finish(final_status_) now, after releasing mu_ (a reaction may run inline); otherwise
  // OnWriteDone finishes once the write in flight completes.
  [[nodiscard]] bool FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return false;
    finishing_ = true;
    final_status_ = std::move(status);
    if (writing_ || finished_) return false;
    finished_ = true;
    return true;
  }

  // Matches, with the scope of the event worked out already (no lookups).
  absl::StatusOr<bool> Matches(const store::StoredEvent& event, const EventScope& scope) const {
    if (!filter_.stream.empty() && event.stream != filter_.stream) return false;
    if (!filter_.kinds.empty() && !filter_.kinds.contains(scope.kind)) return false;
    if (scope.audience == EventAudience::kOversight && !filter_.oversight) return false;
    if (scope.audience == EventAudience::kAuditors && !filter_.auditor) return false;
    if (filter_.all_jurisdictions) return true;
    // Only a watch that needs the jurisdiction fails when it could not be worked out.
    if (!scope.jurisdiction.ok()) return scope.jurisdiction.status();
    // A stream of no jurisdiction (approvers' keys, the principals) only for an overseer of
    // the whole city, served above.
    if (!scope.jurisdiction->has_value()) return false;
    return SubtreeHolds(filter_.jurisdiction, **scope.jurisdiction);
  }

  // The watch was opened under one principals set; after a reload (SIGHUP) its caller must
  // still be there with the same roles and jurisdiction, or the watch ends before it sends
  // anything more: a person removed or narrowed sees nothing new.
  std::optional<grpc::Status> Revoked() { return standing_.Revoked("the watch", "订阅"); }

  // The next message, of at most `bytes_max` bytes (one event may exceed it), or nullopt
  // when there is nothing to send now. Owns next_ (only one Pump runs at a time).
  absl::StatusOr<std::optional<std::string>> Build(size_t bytes_max) {
    const WatchOptions& options = service_->options_;
    store::RocksEventLog* log = service_->log_;
    const absl::Time now = absl::Now();
    int64_t size = log->Size();
    // A checkpoint goes with the message that reaches the head, when one is due: its
    // tree size is then exactly the message's scanned_through.
    std::string checkpoint;
    int64_t end = size;
    const bool due =
        checkpoint_size_ != size &&
        (checkpoint_size_ < 0 || now - checkpoint_time_ >= options.checkpoint_interval);
    if (due && size - next_ <= options.scan_positions_per_message_max) {
      auto note = log->SignedCheckpoint();
      if (!note.ok()) return note.status();
      auto parsed = store::ParseNote(*note);
      if (!parsed.ok()) return OwnCheckpointUnreadable(parsed.status());
      auto body = store::ParseCheckpoint(parsed->text);
      if (!body.ok()) return OwnCheckpointUnreadable(body.status());
      if (body->size >= next_ && body->size <= log->Size()) {
        checkpoint = std::move(*note);
        end = body->size;
      }
    }
    if (next_ >= end && checkpoint.empty() && caught_up_sent_) return std::nullopt;

    std::string out;
    int count = 0;
    int64_t position = next_;
    const int64_t scan_end = std::min(end, next_ + options.scan_positions_per_message_max);
    while (position < scan_end && count < events_per_message_ && out.size() < bytes_max) {
      // A whole chunk of committed events comes from the chunks every watch shares, and
      // so does the part of the chunk the log is still filling (read once per commit, not
      // once per watch).
      std::shared_ptr<const EventRun> run;
      const int64_t chunk = position / kChunkEvents;
      if ((chunk + 1) * kChunkEvents <= size) {
        auto shared = service_->chunks_.Get(chunk);
        if (!shared.ok()) return shared.status();
        run = *std::move(shared);
      } else {
        auto tail = service_->chunks_.GetTail(chunk, size);
        if (!tail.ok()) return tail.status();
        run = *std::move(tail);
      }
      if (run->events.empty()) break;
      const int64_t before = position;
      for (size_t i = 0; i < run->events.size(); ++i) {
        const store::StoredEvent& event = run->events[i];
        if (event.position < position) continue;  // a shared chunk starts before
        if (event.position >= scan_end) break;
        position = event.position + 1;
        auto matches = Matches(event, run->scopes[i]);
        if (!matches.ok()) return matches.status();
        if (!*matches) continue;
        PutEventRecord(&out, event);
        if (++count >= events_per_message_ || out.size() >= bytes_max) break;
      }
      if (position == before) break;  // nothing at or after it (cannot happen below size)
    }
    if (count == 0 && checkpoint.empty() && caught_up_sent_ &&
        (position == next_ || position >= size)) {
      // Nothing new for this watch. At the head, positions it scanned past without a match
      // are not worth a message of their own: the next checkpoint (at most
      // checkpoint_interval away) carries scanned_through, and a client that resumes from
      // an older one only scans them again. (A filtered watch would otherwise get a
      // message for every commit.)
      next_ = position;
      return std::nullopt;
    }
    next_ = position;
    const bool caught_up = next_ >= size;
    if (!checkpoint.empty() && next_ != end) checkpoint.clear();  // did not reach it
    if (!checkpoint.empty()) {
      checkpoint_size_ = end;
      checkpoint_time_ = now;
    }
    if (caught_up) caught_up_sent_ = true;
    PutTrailer(&out, checkpoint, next_, caught_up);
    return out;
  }

  EventServiceImpl* service_;
  grpc::CallbackServerContext* const ctx_;  // valid until OnDone (done_)
  absl::Mutex ctx_mu_;                      // taken alone, never with mu_ or the service's
  bool done_ ABSL_GUARDED_BY(ctx_mu_) = false;
  const workflow::Principal caller_;  // the identity that opened it, as it was then
  // Whether caller_ still stands after reloads; only Pump checks it (one Pump at a time
  // per watch).
  CallerStanding standing_;

  // Owned by the running Pump.
  int64_t next_;
  Filter filter_;
  int events_per_message_;
  int64_t checkpoint_size_ = -1;
  absl::Time checkpoint_time_ = absl::InfinitePast();
  bool caught_up_sent_ = false;

  absl::Mutex mu_;
  std::shared_ptr<Watch> self_ ABSL_GUARDED_BY(mu_);
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool throttled_ ABSL_GUARDED_BY(mu_) = false;         // held by the service for the catch-up rate
  bool withheld_counted_ ABSL_GUARDED_BY(mu_) = false;  // this write's withheld read-ahead
  bool throttle_pass_ ABSL_GUARDED_BY(mu_) = false;     // let go by the service: may send one
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_;  // set once, under mu_, before finishing_
  std::optional<std::string> ready_ ABSL_GUARDED_BY(mu_);
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);  // of the write in flight
  grpc::ByteBuffer current_;  // the message in flight (touched only by who set writing_)
  int64_t current_bytes_ = 0;
};

bool EventServiceImpl::Chunks::Cacheable(const EventRun& run) {
  // A jurisdiction that could not be read (an I/O error, say) is read again by the next
  // watch that needs it, not served from the cache to every watch that reaches it until
  // the chunk ages out; one whose record does not parse (DATA_LOSS) stays as it is.
  for (const EventScope& scope : run.scopes) {
    if (!scope.jurisdiction.ok() &&
        scope.jurisdiction.status().code() != absl::StatusCode::kDataLoss) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::shared_ptr<const EventServiceImpl::EventRun>> EventServiceImpl::Chunks::Get(
    int64_t chunk) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = map_.find(chunk); it != map_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.run;
    }
  }
  // Read outside the lock; two watches missing the same chunk read it twice, harmlessly.
  auto read = Read(chunk * kChunkEvents, (chunk + 1) * kChunkEvents);
  if (!read.ok()) return read.status();
  std::shared_ptr<const EventRun> shared = *std::move(read);
  if (!Cacheable(*shared)) return shared;
  absl::MutexLock lock(&mu_);
  if (map_.contains(chunk)) return shared;
  lru_.push_front(chunk);
  map_[chunk] = Entry{shared, lru_.begin()};
  while (map_.size() > chunks_max_) {
    map_.erase(lru_.back());
    lru_.pop_back();
  }
  return shared;
}

absl::StatusOr<std::shared_ptr<const EventServiceImpl::EventRun>> EventServiceImpl::Chunks::GetTail(
    int64_t chunk, int64_t size) {
  auto cached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> std::shared_ptr<const EventRun> {
    if (tail_ != nullptr && tail_chunk_ == chunk && tail_end_ >= size) return tail_;
    return nullptr;
  };
  {
    absl::MutexLock lock(&mu_);
    if (auto run = cached()) return run;
  }
  // One reader at a time: the watches woken by a commit wait for the first one's read.
  absl::MutexLock reading(&tail_read_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (auto run = cached()) return run;
  }
  auto read = Read(chunk * kChunkEvents, size);
  if (!read.ok()) return read.status();
  std::shared_ptr<const EventRun> shared = *std::move(read);
  if (!Cacheable(*shared)) return shared;
  absl::MutexLock lock(&mu_);
  if (tail_ == nullptr || chunk > tail_chunk_ || (chunk == tail_chunk_ && size > tail_end_)) {
    tail_ = shared;
    tail_chunk_ = chunk;
    tail_end_ = size;
  }
  return shared;
}

absl::StatusOr<std::shared_ptr<const EventServiceImpl::EventRun>> EventServiceImpl::Chunks::Read(
    int64_t first, int64_t end) {
  auto read = log_->ReadRange(first, static_cast<size_t>(end - first));
  if (!read.ok()) return read.status();
  if (static_cast<int64_t>(read->size()) != end - first) {
    return absl::DataLossError(
        absl::StrCat("positions ", first, " to ", end - 1, " read back ", read->size(), " events"));
  }
  auto run = std::make_shared<EventRun>();
  run->events = *std::move(read);
  AddScopes(run.get());
  return run;
}

void EventServiceImpl::Chunks::AddScopes(EventRun* run) {
  // Each event's kind and jurisdiction, once for every watch that will scan the run.
  JurisdictionResolver resolver(log_, cache_);
  run->scopes.reserve(run->events.size());
  for (const store::StoredEvent& event : run->events) {
    resolver.Learn(event.stream, event.bytes);
    // An error stays with its event: it fails only the watches that filter by
    // jurisdiction and reach it, as when each watch looked the jurisdiction up itself.
    run->scopes.push_back(EventScope{.kind = EventBodyField(event.bytes),
                                     .audience = AudienceOf(event.stream),
                                     .jurisdiction = resolver.Of(event.stream, event.bytes)});
  }
}

EventServiceImpl::EventServiceImpl(store::RocksEventLog* log, const Authenticator* auth,
                                   CommitBroadcaster* commits, WatchOptions options)
    : log_(log),
      auth_(auth),
      commits_(commits),
      options_(std::move(options)),
      jurisdiction_cache_(options_.jurisdiction_cache_entries_max),
      chunks_(log, options_.shared_chunks_max, &jurisdiction_cache_) {
  {
    absl::MutexLock lock(&mu_);
    committed_size_ = dispatched_size_ = log_->Size();
    next_tick_ = absl::Now() + options_.checkpoint_interval;
  }
  token_ = commits_->Subscribe([this](int64_t size) {
    // On the log's commit thread: record and wake, nothing more.
    absl::MutexLock lock(&mu_);
    committed_size_ = std::max(committed_size_, size);
  });
  for (int i = 0; i < std::max(1, options_.dispatcher_threads); ++i) {
    threads_.emplace_back([this] { DispatchLoop(); });
  }
}

EventServiceImpl::~EventServiceImpl() {
  commits_->Unsubscribe(token_);
  Stop();
}

void EventServiceImpl::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void EventServiceImpl::BeginDrain() {
  draining_.store(true, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  // Throttled watches too: they end now, not at their turn at the catch-up rate.
  while (!throttled_.empty()) {
    std::shared_ptr<Watch> w = std::move(throttled_.front());
    throttled_.pop_front();
    w->Unthrottle();
  }
  throttled_until_ = absl::InfiniteFuture();
  // A watch with a write in flight ends when it completes (OnWriteDone schedules it); one
  // whose write waits longer than options_.drain_write_grace is cancelled (DispatchLoop).
  for (const auto& w : watches_) {
    if (w->WantsPump()) queue_.push_back(w);
  }
  next_drain_check_ = absl::Now();
  throttle_kick_ = true;  // a dispatcher waiting for a later deadline looks now
}

void EventServiceImpl::Schedule(const std::shared_ptr<Watch>& watch) {
  if (watch == nullptr) return;
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  if (watch->WantsPump()) queue_.push_back(watch);
}

absl::Time EventServiceImpl::CatchUpAllowedAt() {
  absl::MutexLock lock(&rate_mu_);
  return catch_up_tat_ - options_.catch_up_burst;
}

bool EventServiceImpl::CatchUpMayProceed() {
  absl::MutexLock lock(&mu_);
  // Watches already waiting go first.
  return throttled_.empty() && CatchUpAllowedAt() <= absl::Now();
}

void EventServiceImpl::ChargeCatchUp(int64_t bytes) {
  const double seconds =
      static_cast<double>(bytes) / static_cast<double>(options_.catch_up_bytes_per_second);
  {
    absl::MutexLock lock(&rate_mu_);
    catch_up_tat_ = std::max(catch_up_tat_, absl::Now()) + absl::Seconds(seconds);
  }
  absl::MutexLock lock(&mu_);
  // The first waiting watch goes when the rate has room for it (read again under mu_, so
  // that of two charges at once the later one sets the time).
  if (!throttled_.empty()) {
    const absl::Time allowed = CatchUpAllowedAt();
    throttle_kick_ = throttle_kick_ || allowed < throttled_until_;
    throttled_until_ = allowed;
  }
}

void EventServiceImpl::Throttle(std::shared_ptr<Watch> watch) {
  if (watch == nullptr) return;
  absl::MutexLock lock(&mu_);
  if (draining_.load(std::memory_order_acquire)) {
    // A drain began after this watch's Pump looked: it ends now, not at its turn.
    watch->Unthrottle();
    if (watch->WantsPump()) queue_.push_back(std::move(watch));
    return;
  }
  if (throttled_.empty()) {
    throttled_until_ = CatchUpAllowedAt();
    throttle_kick_ = true;  // a dispatcher may be waiting for a later time
  }
  throttled_.push_back(std::move(watch));
}

bool EventServiceImpl::ReadAheadFits() const {
  if (options_.buffered_bytes_max <= 0) return true;
  return counters_.bytes_buffered.load(std::memory_order_relaxed) +
             static_cast<int64_t>(options_.message_bytes_max) <=
         options_.buffered_bytes_max;
}

size_t EventServiceImpl::MessageBytesNow() const {
  const size_t cap = options_.message_bytes_max;
  if (options_.buffered_bytes_max <= 0) return cap;
  const int64_t room =
      options_.buffered_bytes_max - counters_.bytes_buffered.load(std::memory_order_relaxed);
  // At least a byte: a message holds one event at least, whatever its size.
  const size_t floor = std::max<size_t>(1, std::min(options_.budget_message_bytes_min, cap));
  if (room <= static_cast<int64_t>(floor)) return floor;
  return std::min(cap, static_cast<size_t>(room));
}

void EventServiceImpl::Register(const std::shared_ptr<Watch>& watch) {
  absl::MutexLock lock(&mu_);
  watches_.push_back(watch);
  counters_.watches.store(static_cast<int64_t>(watches_.size()), std::memory_order_relaxed);
  if (watch->WantsPump()) queue_.push_back(watch);
}

void EventServiceImpl::Unregister(Watch* watch) {
  absl::MutexLock lock(&mu_);
  std::erase_if(watches_, [watch](const auto& w) { return w.get() == watch; });
  if (auto it = watches_by_principal_.find(watch->principal()); it != watches_by_principal_.end()) {
    if (--it->second == 0) watches_by_principal_.erase(it);
  }
  if (watches_admitted_ > 0) --watches_admitted_;
  counters_.watches.store(static_cast<int64_t>(watches_.size()), std::memory_order_relaxed);
}

void EventServiceImpl::DispatchLoop() {
  // Building messages (catching watches up, most of all) yields the CPU to commands and
  // reads: a storm of new watches must not starve the callers (tests/e2e_abuse_test.cc).
  if (options_.dispatcher_nice > 0) {
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), options_.dispatcher_nice);
  }
  std::vector<std::shared_ptr<Watch>> stuck;
  for (;;) {
    // Cancelled outside the lock: watches whose write waited past the grace of a drain.
    for (const auto& w : stuck) w->Cancel();
    stuck.clear();
    std::shared_ptr<Watch> watch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        // New events matter only to watches: with none, a commit wakes no thread.
        return stopping_ || !queue_.empty() ||
               (committed_size_ != dispatched_size_ && !watches_.empty()) || throttle_kick_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready),
                            std::min({next_tick_, throttled_until_, next_drain_check_}));
      if (stopping_) return;
      throttle_kick_ = false;
      const absl::Time now = absl::Now();
      if (now >= next_drain_check_) {
        // A watch that is ending (a reload ended it, or the server drains) but whose write
        // waited past the grace goes to a client that stopped reading (its flow-control
        // window full), which would hold the watch's place, and a stop, to its deadline: it
        // is cancelled. A healthy watch's write completes well within the grace, and the
        // watch ends with its status.
        // A watch that holds a prepared message behind its write is not pumped until the
        // write completes: it looks at its caller's standing now, so that a reload ends it
        // (and the grace cancels it) while its client reads nothing.
        const bool draining = draining_.load(std::memory_order_acquire);
        next_drain_check_ =
            now + (draining ? absl::Milliseconds(100) : options_.checkpoint_interval);
        for (const auto& w : watches_) {
          if (w->WriteStuck(now - options_.drain_write_grace, draining)) {
            stuck.push_back(w);
          } else if (w->WantsStandingCheck()) {
            queue_.push_back(w);
          }
        }
        if (!stuck.empty()) continue;
      }
      if (now >= throttled_until_) {
        // The catch-up rate has room again: the watch that has waited longest goes (its
        // charge sets when the next may; should it send nothing, the next goes in 10 ms).
        throttled_until_ = absl::InfiniteFuture();
        while (!throttled_.empty()) {
          std::shared_ptr<Watch> w = std::move(throttled_.front());
          throttled_.pop_front();
          w->Unthrottle();
          if (w->WantsPump()) {
            queue_.push_back(std::move(w));
            if (!throttled_.empty()) throttled_until_ = now + absl::Milliseconds(10);
            break;
          }
        }
      }
      if ((committed_size_ != dispatched_size_ && !watches_.empty()) || now >= next_tick_) {
        // New events, or time for checkpoints: every idle watch looks at the log.
        dispatched_size_ = committed_size_;
        if (now >= next_tick_) next_tick_ = now + options_.checkpoint_interval;
        for (const auto& w : watches_) {
          if (w->WantsPump()) queue_.push_back(w);
        }
      }
      if (queue_.empty()) continue;
      watch = std::move(queue_.front());
      queue_.pop_front();
    }
    watch->Pump();
  }
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* EventServiceImpl::WatchEvents(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request_bytes) {
  // The set first, then the caller: a reload in between shows as a change at the first
  // message (Watch::Revoked), never as a change missed.
  std::shared_ptr<const Principals> principals = auth_->CurrentPrincipals();
  workflow::Principal caller;
  if (auto status = auth_->Authenticate(ctx, &caller); !status.ok()) return new Refused(status);
  WatchEventsRequest request;
  {
    grpc::ByteBuffer copy = *request_bytes;
    grpc::ProtoBufferReader reader(&copy);
    if (!request.ParseFromZeroCopyStream(&reader)) {
      return new Refused(InvalidArgument("", "the request does not parse as WatchEventsRequest",
                                         "请求无法解析为 WatchEventsRequest"));
    }
  }
  const int64_t size = log_->Size();
  if (request.from_position() < 0) {
    return new Refused(InvalidArgument(
        "from_position", absl::StrCat("from_position must be >= 0; got ", request.from_position()),
        "from_position 不能为负数"));
  }
  if (request.from_position() > size) {
    return new Refused(ErrorStatus(
        grpc::StatusCode::OUT_OF_RANGE, "POSITION_BEYOND_LOG", "from_position",
        absl::StrCat("from_position ", request.from_position(), " is beyond the log, which holds ",
                     size, " events; resume from a position this server sent"),
        absl::StrCat("from_position ", request.from_position(), " 超出日志长度 ", size)));
  }
  if (request.max_events_per_message() < 0) {
    return new Refused(InvalidArgument("max_events_per_message",
                                       "max_events_per_message must not be negative",
                                       "max_events_per_message 不能为负数"));
  }
  const int per_message =
      request.max_events_per_message() == 0
          ? options_.events_per_message_default
          : std::min(request.max_events_per_message(), options_.events_per_message_max);

  Watch::Filter filter;
  filter.stream = request.filter().stream();
  if (!filter.stream.empty()) {
    if (std::optional<grpc::Status> refused = CheckStreamFilter(log_, filter.stream, caller)) {
      return new Refused(*std::move(refused));
    }
  }
  for (int i = 0; i < request.filter().kinds_size(); ++i) {
    const std::string& kind = request.filter().kinds(i);
    std::optional<int> field = EventKindField(kind);
    if (!field.has_value()) {
      return new Refused(InvalidArgument(
          absl::StrCat("filter.kinds[", i, "]"),
          absl::StrCat("\"", kind,
                       "\" is not an event kind; use the names of Event's body fields, e.g. "
                       "\"inspection_passed\""),
          absl::StrCat("\"", kind, "\" 不是事件类型")));
    }
    filter.kinds.insert(*field);
  }
  const bool overseer =
      caller.HasRole(workflow::Role::kAuditor) || caller.HasRole(workflow::Role::kAdmin);
  filter.auditor = overseer;
  filter.oversight = overseer || caller.HasRole(workflow::Role::kApprover);
  if (!request.filter().jurisdiction().empty()) {
    if (!SubtreeHolds(caller.jurisdiction, request.filter().jurisdiction())) {
      return new Refused(ErrorStatus(
          grpc::StatusCode::PERMISSION_DENIED, "JURISDICTION_NOT_COVERED", "filter.jurisdiction",
          absl::StrCat("filter.jurisdiction \"", request.filter().jurisdiction(),
                       "\" is outside your jurisdiction \"", caller.jurisdiction, "\""),
          absl::StrCat("filter.jurisdiction \"", request.filter().jurisdiction(),
                       "\" 不在您的管辖范围 \"", caller.jurisdiction, "\" 内")));
    }
    filter.jurisdiction = request.filter().jurisdiction();
  } else {
    filter.jurisdiction = caller.jurisdiction;
    // An auditor or admin of the whole city (a one-segment jurisdiction, the root of every
    // path in a deployment) sees every stream: no lookups at all.
    filter.all_jurisdictions = overseer && !caller.jurisdiction.empty() &&
                               caller.jurisdiction.find('/') == std::string::npos;
  }

  {
    absl::MutexLock lock(&mu_);
    if (watches_admitted_ >= options_.watches_max) {
      return new Refused(ErrorStatus(grpc::StatusCode::RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES", "",
                                     absl::StrCat("the server already serves ", watches_admitted_,
                                                  " watches; retry later or share one watch"),
                                     "当前订阅数已达上限，请稍后重试"));
    }
    // One identity cannot take the server's whole share: every watch costs a part of the
    // threads that also serve commands (a caught-up watch is cheap, one catching up is not).
    size_t& mine = watches_by_principal_[caller.id];
    if (mine >= options_.watches_per_principal_max) {
      return new Refused(ErrorStatus(
          grpc::StatusCode::RESOURCE_EXHAUSTED, "TOO_MANY_WATCHES", "",
          absl::StrCat(caller.id, " already has ", mine,
                       " watches open, the most one identity may ",
                       "hold; close one, or follow several cases with one watch and a filter"),
          absl::StrCat(
              caller.id, " 已打开 ", mine,
              " 个订阅，达到单个身份上限；请关闭一个，或用一个带过滤条件的订阅跟踪多个案件")));
    }
    ++mine;  // given back by Unregister, with the place in all
    ++watches_admitted_;
  }
  auto watch = std::make_shared<Watch>(this, ctx, caller, std::move(principals),
                                       request.from_position(), std::move(filter), per_message);
  watch->Start(watch);
  Register(watch);
  return watch.get();
}

}  // namespace casework::shell

// casework.v1.EventService: follow the log (WatchEvents).
//
// A watch reads from the log only: catch-up and live are the same loop (read the next
// positions, filter, pack, write), so there is no seam to get wrong: every position is
// examined exactly once, in order. Flow control: per watch at most one message in
// flight and one prepared (each at most `message_bytes_max`), nothing else buffered, and
// all watches together within a budget (`buffered_bytes_max`: under it a watch reads
// ahead no more and its messages shrink). A consumer that stops reading therefore holds
// at most two messages of server memory and its watch simply stops reading the log; when it reads
// again, the watch resumes reading from where it stopped. Writers never wait on a watch: the commit
// listener only records the new size and wakes the dispatcher.
//
// Messages are encoded by hand from the stored event bytes (the wire form of
// WatchEventsResponse, byte for byte what the generated code would produce up to field
// order), so a watch never parses and re-serializes events it merely forwards.
//
// Who sees what: every authenticated principal may watch, and sees the events of cases
// inside its jurisdiction subtree (narrowed further by filter.jurisdiction, which must
// lie inside it); so are a county's registry records (registry/{county}, to anyone
// covering it), its oversight records (counties/{county}, only to approvers, auditors and
// admins) and inspection samples (samples/..., by the scope drawn from, only to auditors
// and admins).
// Streams that belong to no jurisdiction (approvers/..., config/principals) are sent only
// to auditors and admins of the whole city (a one-segment jurisdiction, the root of every
// path of a deployment) watching without a jurisdiction filter, who are served without
// any per-stream lookup; for the others, each event's
// jurisdiction is worked out once for every watch, with the chunk of events it comes in
// (one case-projection read per case stream, remembered; a case's first event spares
// even that).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "services/shell/auth.h"
#include "services/shell/commit_broadcaster.h"
#include "services/shell/event_view.h"
#include "services/shell/watch_counters.h"
#include "store/rocks_event_log.h"

namespace casework::shell {

struct WatchOptions {
  int events_per_message_default = 256;
  int events_per_message_max = 4096;
  // A message is closed once it holds this many bytes (one event may exceed it).
  size_t message_bytes_max = 2u << 20;
  // Positions one message may examine (filtered watches send progress at least this often).
  int64_t scan_positions_per_message_max = 65536;
  // Bytes of messages in flight and prepared, for all watches together. A watch reads
  // ahead (prepares its next message while one is in flight) only while the total stays
  // within it; a message it is about to send is cut to the room left, but to no less than
  // `budget_message_bytes_min`, so that no watch waits on another's slow client. So at most
  // about this plus watches_max * (budget_message_bytes_min + one event) is held, whatever
  // the clients read; 0: no budget (each watch alone holds at most two messages).
  int64_t buffered_bytes_max = 64 << 20;
  size_t budget_message_bytes_min = 64u << 10;
  // Concurrent watches; beyond: RESOURCE_EXHAUSTED.
  size_t watches_max = 1024;
  // Concurrent watches of one identity; beyond: RESOURCE_EXHAUSTED.
  size_t watches_per_principal_max = 32;
  // Threads that read the log and build messages for all watches, and their nice value
  // (Linux, per thread): they yield the CPU to the threads that serve commands and reads.
  int dispatcher_threads = 2;
  int dispatcher_nice = 19;
  // Case jurisdictions remembered, for all watches together (cleared when full): a case's
  // jurisdiction is read once, not once per watch, and a watch that scans past cases
  // outside its jurisdiction holds nothing of its own.
  size_t jurisdiction_cache_entries_max = 262144;
  // Chunks of committed events (kChunkEvents each) kept for all watches (least recently
  // used out): watches catching up from the same place read the log once.
  size_t shared_chunks_max = 128;
  // Bytes a second that watches catching up (far behind the head, below) may
  // be sent, all together; 0: no limit. Messages to watches at the head are not counted;
  // a position a catching-up watch scans counts as 8 bytes at least (a filtered watch
  // may scan many for a small message).
  // Sending is work for gRPC's own threads, at the priority of the threads that serve
  // commands: without a limit, hundreds of subscribers catching up at once from position
  // 0 take the CPU from callers (docs/reliability.md, "Slow readers, subscribers").
  int64_t catch_up_bytes_per_second = 32 << 20;
  // A watch is catching up while more than this many positions behind the head; nearer,
  // it is live (not limited), whatever its message size.
  int64_t catch_up_lag_positions = 4096;
  // How far ahead of the rate the catch-up traffic may run in a burst.
  absl::Duration catch_up_burst = absl::Milliseconds(250);
  // A caught-up watch receives a signed checkpoint at least this often when the log grew.
  absl::Duration checkpoint_interval = absl::Seconds(1);
  // A watch that is ending (a reload ended it, or a drain: BeginDrain) and whose write has
  // waited this long for its client (which stopped reading) is cancelled; others end with
  // their status once the write completes.
  absl::Duration drain_write_grace = absl::Seconds(2);
};

class EventServiceImpl final : public casework::v1::EventService::WithRawCallbackMethod_WatchEvents<
                                   casework::v1::EventService::Service> {
 public:
  // `log`, `auth` and `commits` must outlive the service. Subscribes to `commits`.
  EventServiceImpl(store::RocksEventLog* log, const Authenticator* auth, CommitBroadcaster* commits,
                   WatchOptions options = {});
  // Call after the gRPC server has stopped (no watch left).
  ~EventServiceImpl() override;

  // Stops the dispatcher threads and waits for them: a dispatcher may still be building a
  // message from the log for a watch that was cancelled and finished meanwhile, so the
  // log must not go before this returns. Call after the gRPC server has stopped and
  // before the log is closed; the destructor calls it too. Idempotent.
  void Stop();

  // The server is stopping: every open watch ends at its next turn with UNAVAILABLE
  // SHUTTING_DOWN (after the message being written, if any; a watch whose write waits
  // longer than options.drain_write_grace for its client, which stopped reading, is
  // cancelled), so that a graceful stop does not wait out its whole drain for watches that
  // never end by themselves; their clients resume from the last `scanned_through` they
  // received. A watch opened meanwhile ends
  // the same way at once. Call before the gRPC server's Shutdown.
  void BeginDrain();

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchEvents(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request) override;

  [[nodiscard]] const WatchCounters& counters() const { return counters_; }
  // Called by a watch after it built a message and before it looks at its caller's
  // standing again (tests: a reload at that moment). Set before any watch opens.
  void SetBuiltHookForTesting(std::function<void()> hook) { built_hook_ = std::move(hook); }

  class Watch;

 private:
  friend class Watch;
  void Schedule(const std::shared_ptr<Watch>& watch);
  void Register(const std::shared_ptr<Watch>& watch);
  void Unregister(Watch* watch);
  void DispatchLoop();
  // The catch-up rate (options_.catch_up_bytes_per_second) as a generic cell rate
  // algorithm: the time from which the next catch-up message may be sent, and the charge
  // for one that was built.
  // Watches wait in turn (first in, first out): at each opening one goes, so a crowd of
  // them costs one wake-up per message sent, not one per watch.
  absl::Time CatchUpAllowedAt() ABSL_LOCKS_EXCLUDED(rate_mu_);
  bool CatchUpMayProceed() ABSL_LOCKS_EXCLUDED(mu_);
  void ChargeCatchUp(int64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Holds `watch` until its turn; the dispatcher schedules it again then.
  void Throttle(std::shared_ptr<Watch> watch) ABSL_LOCKS_EXCLUDED(mu_);
  // The buffer budget (options_.buffered_bytes_max): whether a watch whose message is in
  // flight may prepare the next, and the size a message about to be sent may take.
  [[nodiscard]] bool ReadAheadFits() const;
  [[nodiscard]] size_t MessageBytesNow() const;

  store::RocksEventLog* log_;
  const Authenticator* auth_;
  CommitBroadcaster* commits_;
  const WatchOptions options_;
  WatchCounters counters_;
  JurisdictionResolver::Cache jurisdiction_cache_;

  // Positions per shared chunk of events.
  static constexpr int64_t kChunkEvents = 256;
  // What a watch's filter looks at in an event, worked out once for all watches.
  struct EventScope {
    int kind = 0;  // the Event body field
    EventAudience audience = EventAudience::kAnyone;
    // nullopt: the stream has none; an error when it could not be worked out (a watch
    // that needs it fails with it).
    absl::StatusOr<std::optional<std::string>> jurisdiction;
  };
  // Events read for watches, each with its scope.
  struct EventRun {
    std::vector<store::StoredEvent> events;
    std::vector<EventScope> scopes;
  };
  // The shared chunks of committed events, with their scopes. Thread-safe.
  class Chunks {
   public:
    Chunks(store::RocksEventLog* log, size_t chunks_max, JurisdictionResolver::Cache* cache)
        : log_(log), chunks_max_(chunks_max), cache_(cache) {}
    // The events at positions [chunk * kChunkEvents, (chunk + 1) * kChunkEvents), all of
    // which must be committed.
    absl::StatusOr<std::shared_ptr<const EventRun>> Get(int64_t chunk);
    // The committed events of `chunk`, the one the log is still filling, up to position
    // `size` (exclusive) at least: the last such read is kept for every watch.
    absl::StatusOr<std::shared_ptr<const EventRun>> GetTail(int64_t chunk, int64_t size);

   private:
    struct Entry {
      std::shared_ptr<const EventRun> run;
      std::list<int64_t>::iterator lru;
    };
    store::RocksEventLog* const log_;
    const size_t chunks_max_;
    JurisdictionResolver::Cache* const cache_;
    absl::Mutex mu_;
    absl::flat_hash_map<int64_t, Entry> map_ ABSL_GUARDED_BY(mu_);
    std::list<int64_t> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
    absl::Mutex tail_read_mu_ ABSL_ACQUIRED_BEFORE(mu_);
    std::shared_ptr<const EventRun> tail_ ABSL_GUARDED_BY(mu_);
    int64_t tail_chunk_ ABSL_GUARDED_BY(mu_) = -1;
    int64_t tail_end_ ABSL_GUARDED_BY(mu_) = 0;

    // The committed events at positions [first, end), all of them, with their scopes.
    absl::StatusOr<std::shared_ptr<const EventRun>> Read(int64_t first, int64_t end);
    void AddScopes(EventRun* run);
    // Whether `run` may be kept for other watches: not when a scope holds an error that a
    // later read may not meet.
    static bool Cacheable(const EventRun& run);
  };
  Chunks chunks_;
  CommitBroadcaster::Token token_ = 0;

  absl::Mutex mu_;
  std::deque<std::shared_ptr<Watch>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Watch>> watches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> watches_by_principal_ ABSL_GUARDED_BY(mu_);
  // Watches admitted (counted when admitted, under the same lock as the check, so that
  // handlers admitting at once cannot all pass it; given back by Unregister).
  size_t watches_admitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t committed_size_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dispatched_size_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_tick_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Watch>> throttled_ ABSL_GUARDED_BY(mu_);
  absl::Time throttled_until_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool throttle_kick_ ABSL_GUARDED_BY(mu_) = false;  // throttled_until_ came sooner: look again
  // When the dispatcher next looks for ending watches whose write waited past the grace
  // (every checkpoint_interval; every 100 ms while draining).
  absl::Time next_drain_check_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();

  absl::Mutex rate_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::Time catch_up_tat_ ABSL_GUARDED_BY(rate_mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> draining_{false};
  std::function<void()> built_hook_;
  std::vector<std::thread> threads_;
};

}  // namespace casework::shell

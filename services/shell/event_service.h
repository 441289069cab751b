// casework.v1.EventService: follow the log (WatchEvents).
//
// A watch reads from the log only: catch-up and live are the same loop (read the next
// positions, filter, pack, write), so there is no seam to get wrong: every position is
// examined exactly once, in order. Flow control: per watch at most one message in
// flight and one prepared (each at most `message_bytes_max`), nothing else buffered. A
// consumer that stops reading therefore holds at most two messages of server memory and
// its watch simply stops reading the log; when it reads again, the watch resumes
// reading from where it stopped. Writers never wait on a watch: the commit listener only
// records the new size and wakes the dispatcher.
//
// Messages are encoded by hand from the stored event bytes (the wire form of
// WatchEventsResponse, byte for byte what the generated code would produce up to field
// order), so a watch never parses and re-serializes events it merely forwards.
//
// Who sees what: every authenticated principal may watch, and sees the events of cases
// inside its jurisdiction subtree (narrowed further by filter.jurisdiction, which must
// lie inside it). Streams that belong to no jurisdiction (approvers/..., samples/...) are
// sent only to auditors and admins watching without a jurisdiction filter. An auditor or
// admin of the whole city (a one-segment jurisdiction, the root of every path of a
// deployment) is served without any per-stream lookup; others pay one case-projection
// read per case stream, remembered per watch (a case's first event spares even that).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
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
#include "store/rocks_event_log.h"

namespace casework::shell {

struct WatchOptions {
  int events_per_message_default = 256;
  int events_per_message_max = 4096;
  // A message is closed once it holds this many bytes (one event may exceed it).
  size_t message_bytes_max = 2u << 20;
  // Positions one message may examine (filtered watches send progress at least this often).
  int64_t scan_positions_per_message_max = 65536;
  // Concurrent watches; beyond: RESOURCE_EXHAUSTED.
  size_t watches_max = 1024;
  // Concurrent watches of one identity; beyond: RESOURCE_EXHAUSTED.
  size_t watches_per_principal_max = 32;
  // Threads that read the log and build messages for all watches, and their nice value
  // (Linux, per thread): they yield the CPU to the threads that serve commands and reads.
  int dispatcher_threads = 2;
  int dispatcher_nice = 10;
  // Case jurisdictions remembered, for all watches together (cleared when full): a case's
  // jurisdiction is read once, not once per watch, and a watch that scans past cases
  // outside its jurisdiction holds nothing of its own.
  size_t jurisdiction_cache_entries_max = 262144;
  // Chunks of committed events (kChunkEvents each) kept for all watches (least recently
  // used out): watches catching up from the same place read the log once.
  size_t shared_chunks_max = 128;
  // A caught-up watch receives a signed checkpoint at least this often when the log grew.
  absl::Duration checkpoint_interval = absl::Seconds(1);
};

// Counters for tests and metrics.
struct WatchCounters {
  std::atomic<int64_t> watches{0};         // open now
  std::atomic<int64_t> messages_sent{0};   // written to clients
  std::atomic<int64_t> messages_ready{0};  // prepared and waiting for the write slot, now
  std::atomic<int64_t> bytes_buffered{0};  // bytes of messages in flight or prepared, now
  std::atomic<int64_t> bytes_buffered_peak{0};
};

class EventServiceImpl final : public casework::v1::EventService::WithRawCallbackMethod_WatchEvents<
                                   casework::v1::EventService::Service> {
 public:
  // `log`, `auth` and `commits` must outlive the service. Subscribes to `commits`.
  EventServiceImpl(store::RocksEventLog* log, const Authenticator* auth, CommitBroadcaster* commits,
                   WatchOptions options = {});
  // Call after the gRPC server has stopped (no watch left).
  ~EventServiceImpl() override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchEvents(grpc::CallbackServerContext* ctx,
                                                          const grpc::ByteBuffer* request) override;

  [[nodiscard]] const WatchCounters& counters() const { return counters_; }

  class Watch;

 private:
  friend class Watch;
  void Schedule(const std::shared_ptr<Watch>& watch);
  void Register(const std::shared_ptr<Watch>& watch);
  void Unregister(Watch* watch);
  void DispatchLoop();

  store::RocksEventLog* log_;
  const Authenticator* auth_;
  CommitBroadcaster* commits_;
  const WatchOptions options_;
  WatchCounters counters_;
  JurisdictionResolver::Cache jurisdiction_cache_;

  // Positions per shared chunk of events.
  static constexpr int64_t kChunkEvents = 256;
  // The shared chunks of committed events. Thread-safe.
  class Chunks {
   public:
    Chunks(store::RocksEventLog* log, size_t chunks_max) : log_(log), chunks_max_(chunks_max) {}
    // The events at positions [chunk * kChunkEvents, (chunk + 1) * kChunkEvents), all of
    // which must be committed.
    absl::StatusOr<std::shared_ptr<const std::vector<store::StoredEvent>>> Get(int64_t chunk);

   private:
    struct Entry {
      std::shared_ptr<const std::vector<store::StoredEvent>> events;
      std::list<int64_t>::iterator lru;
    };
    store::RocksEventLog* const log_;
    const size_t chunks_max_;
    absl::Mutex mu_;
    absl::flat_hash_map<int64_t, Entry> map_ ABSL_GUARDED_BY(mu_);
    std::list<int64_t> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  };
  Chunks chunks_;
  CommitBroadcaster::Token token_ = 0;

  absl::Mutex mu_;
  std::deque<std::shared_ptr<Watch>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Watch>> watches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> watches_by_principal_ ABSL_GUARDED_BY(mu_);
  int64_t committed_size_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dispatched_size_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_tick_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace casework::shell

// Prometheus metrics: requests by method and code, latency histograms by method, append
// batch sizes, log size, refused attempts, and the memory of the event log (by part) and
// of the process (resident, malloc). Rendered in the Prometheus text format
// (version 0.0.4) and served over HTTP on a separate port (cpp-httplib).
//
// Hot-path cost: one reader-locked map lookup per RPC (at interceptor creation), then
// relaxed atomic increments; no allocation after a method's first call.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "services/shell/tls.h"
#include "services/shell/watch_counters.h"

namespace httplib {
class Server;
}

namespace casework::shell {

// Latency bucket upper bounds, in seconds.
inline constexpr std::array<double, 14> kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5};
// Events-per-batch bucket upper bounds.
inline constexpr std::array<double, 10> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 512, 4096};

class Histogram {
 public:
  template <size_t N>
  void Observe(double value, const std::array<double, N>& bounds) {
    size_t i = 0;
    while (i < N && value > bounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_micros_.fetch_add(static_cast<int64_t>(value * 1e6), std::memory_order_relaxed);
  }
  template <size_t N>
  void Render(std::string* out, const std::string& name, const std::string& labels,
              const std::array<double, N>& bounds) const;

 private:
  static constexpr size_t kBucketsMax = 16;
  std::array<std::atomic<int64_t>, kBucketsMax> buckets_{};
  std::atomic<int64_t> sum_micros_{0};
};

class Metrics {
 public:
  // Records a finished RPC.
  void RecordRpc(const std::string& method, int code, double seconds);
  // Records a durable append batch of `events` events, the log then holding `log_size`.
  void RecordBatch(int64_t events, int64_t log_size);
  // Records the event log's size without a batch (at start).
  void RecordLogSize(int64_t log_size) { log_size_.store(log_size, std::memory_order_relaxed); }
  // Records the event log's write mode (0 writable, 1 disk full, 2 failed until restart)
  // and how often the disk was found full since start.
  void RecordWriteMode(int mode, int64_t disk_full_count);
  // Records whether the last write of the checkpoint file succeeded.
  void RecordCheckpointFile(bool written) {
    checkpoint_file_current_.store(written ? 1 : 0, std::memory_order_relaxed);
  }
  // Records the end of validity (Unix seconds) of the server certificate that new
  // connections get; rendered only once one is recorded (mutual TLS).
  void RecordTlsCertificate(int64_t not_after_unix_seconds) {
    tls_not_after_.store(not_after_unix_seconds, std::memory_order_relaxed);
  }
  // Counts a certificate reload on SIGHUP: applied, or refused (the old set kept).
  void RecordTlsReload(bool applied) {
    (applied ? tls_reloads_applied_ : tls_reloads_refused_).fetch_add(1, std::memory_order_relaxed);
  }
  // Counts a refused attempt (reason: e.g. "PERMISSION_DENIED", "IDENTITY_UNKNOWN").
  void RecordRefusal(const std::string& reason);
  // The event log's memory by part (name, bytes), read at each scrape on the metrics
  // thread and rendered as casework_log_memory_bytes{part="..."}. Once this returns, no
  // scrape calls the previous source (nullptr: none), so a source can be cleared before
  // what it reads is destroyed.
  using MemorySource = std::function<std::vector<std::pair<std::string, int64_t>>()>;
  void SetLogMemorySource(MemorySource source);
  // The event stream's counters, read at each scrape; they must outlive the metrics
  // server's scrapes, or be cleared (nullptr) before they go.
  void SetWatchCounters(const WatchCounters* counters);

  // The Prometheus text exposition.
  [[nodiscard]] std::string Render() const;

 private:
  static constexpr int kCodesMax = 17;
  struct MethodStats {
    std::array<std::atomic<int64_t>, kCodesMax> by_code{};
    Histogram latency;
  };
  MethodStats* StatsFor(const std::string& method);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<MethodStats>> methods_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> refusals_ ABSL_GUARDED_BY(mu_);
  MemorySource log_memory_ ABSL_GUARDED_BY(mu_);
  const WatchCounters* watches_ ABSL_GUARDED_BY(mu_) = nullptr;
  Histogram batch_events_;
  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> log_size_{0};
  std::atomic<int> write_mode_{0};
  std::atomic<int64_t> disk_full_count_{0};
  std::atomic<int> checkpoint_file_current_{1};
  std::atomic<int64_t> tls_not_after_{0};  // 0: no TLS
  std::atomic<int64_t> tls_reloads_applied_{0};
  std::atomic<int64_t> tls_reloads_refused_{0};
};

// A server interceptor factory that times every RPC and counts it by status code.
class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `certificate_identity`: where the refusal log takes a TLS caller's identity from, as
  // the Authenticator does.
  explicit MetricsInterceptorFactory(Metrics* metrics, CertificateIdentity certificate_identity =
                                                           CertificateIdentity::kUriOrCommonName)
      : metrics_(metrics), certificate_identity_(certificate_identity) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* metrics_;
  CertificateIdentity certificate_identity_;
};

// Serves GET /metrics on its own thread until destroyed.
class MetricsServer {
 public:
  MetricsServer(const Metrics* metrics, const std::string& host, int port);
  ~MetricsServer();
  // The bound port (useful with port 0), or -1 when binding failed.
  [[nodiscard]] int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = -1;
};

}  // namespace casework::shell

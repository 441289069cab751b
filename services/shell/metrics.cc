#include "services/shell/metrics.h"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/server_context.h"
#include "httplib.h"
#include "services/shell/auth.h"
#include "services/shell/status_mapping.h"
#include "spdlog/spdlog.h"

namespace casework::shell {
namespace {

constexpr const char* kCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

// A status code's name; "UNKNOWN" for a number outside gRPC's codes.
const char* CodeName(grpc::StatusCode code) {
  const int n = static_cast<int>(code);
  return n >= 0 && n < static_cast<int>(std::size(kCodeNames)) ? kCodeNames[n] : "UNKNOWN";
}

std::string Bound(double b) { return absl::StrFormat("%g", b); }

// The reason code inside a status's google.rpc.ErrorInfo, or the code's name.
std::string ReasonOf(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!status.error_details().empty() && rich.ParseFromString(status.error_details())) {
    for (const auto& any : rich.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) return info.reason();
    }
  }
  return CodeName(status.error_code());
}

// A refused signature or key (SIGNATURE_INVALID, SIGNATURE_MALFORMED, KEY_REVOKED,
// KEY_ALREADY_REGISTERED, ...), counted as a refused attempt whatever its status code,
// except ABORTED: a key in use by a sign-off while it is revoked (KEY_IN_USE,
// KEY_BEING_REVOKED) is contention to retry, not an attempt refused.
bool IsSignatureRefusal(const grpc::Status& status, const std::string& reason) {
  return status.error_code() != grpc::StatusCode::ABORTED &&
         (reason.rfind("SIGNATURE_", 0) == 0 || reason.rfind("KEY_", 0) == 0);
}

// Whether `path` ("/package.Service/Method") names a method of a service compiled into
// this server (its descriptor is in the generated pool), or of gRPC's health service.
// Clients choose the path, and gRPC runs interceptors for unknown methods as well (it
// answers them UNIMPLEMENTED), so the metrics record such calls under "unknown": a table
// keyed by any path would grow without bound, and a quote in one would break the text
// format of every later scrape.
bool KnownMethod(std::string_view path) {
  if (path == "/grpc.health.v1.Health/Check" || path == "/grpc.health.v1.Health/Watch") {
    return true;
  }
  if (path.size() < 4 || path[0] != '/') return false;
  const size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash + 1 == path.size()) return false;
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(path.substr(1, slash - 1)));
  return service != nullptr &&
         service->FindMethodByName(std::string(path.substr(slash + 1))) != nullptr;
}

grpc::Status RequestMalformed(const std::string& method) {
  return ErrorStatus(
      grpc::StatusCode::INVALID_ARGUMENT, "REQUEST_MALFORMED", "",
      absl::StrCat("the request of ", method,
                   " could not be decoded as that method's request message (malformed protobuf "
                   "bytes, or a string field that is not valid UTF-8); nothing was done"),
      absl::StrCat(
          method,
          " 的请求无法解码为该方法的请求消息（protobuf 字节格式错误，或字符串字段不是有效的 "
          "UTF-8）；未执行任何操作"));
}

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(Metrics* metrics, grpc::experimental::ServerRpcInfo* info,
                     CertificateIdentity certificate_identity)
      : metrics_(metrics),
        certificate_identity_(certificate_identity),
        info_(info),
        method_(info->method()),
        start_(std::chrono::steady_clock::now()),
        one_request_(info->type() == grpc::experimental::ServerRpcInfo::Type::UNARY ||
                     info->type() == grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A request whose bytes do not decode as the method's request message (malformed
    // protobuf, a string field that is not UTF-8) is handed to the interceptors as no
    // message at all, and never reaches a handler: gRPC then answers it UNIMPLEMENTED with
    // no message, as if the method did not exist. The client is told what was wrong.
    // (Only where the one request is read before the handler: at the end of a client's
    // stream this hook comes without a message as well.)
    if (one_request_ &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      undecodable_ = true;
    }
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      auto status = methods->GetSendStatus();
      // (Not for a call its client cancelled, or reset: nobody reads its status, and a
      // flood of reset streams is no time to build rich ones.)
      if (undecodable_ && status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          !info_->server_context()->IsCancelled()) {
        status = RequestMalformed(method_);
        methods->ModifySendStatus(status);
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->RecordRpc(method_, static_cast<int>(status.error_code()), seconds);
      const bool denied = status.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                          status.error_code() == grpc::StatusCode::UNAUTHENTICATED;
      // Any refusal's reason: a key or signature refused as ALREADY_EXISTS or NOT_FOUND
      // (KEY_ALREADY_REGISTERED, KEY_UNKNOWN) counts as well (IsSignatureRefusal).
      const std::string reason = status.ok() ? std::string() : ReasonOf(status);
      if (denied || IsSignatureRefusal(status, reason)) {
        metrics_->RecordRefusal(reason);
        const std::string identity = IdentityForLog(info_->server_context(), certificate_identity_);
        spdlog::warn("refused method={} identity={} code={} reason={}", method_, identity,
                     CodeName(status.error_code()), reason);
      }
    }
    methods->Proceed();
  }

 private:
  Metrics* metrics_;
  CertificateIdentity certificate_identity_;
  grpc::experimental::ServerRpcInfo* info_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  const bool one_request_;    // unary or server streaming: one request, read first
  bool undecodable_ = false;  // the request did not decode (POST_RECV_MESSAGE)
};

}  // namespace

template <size_t N>
void Histogram::Render(std::string* out, const std::string& name, const std::string& labels,
                       const std::array<double, N>& bounds) const {
  int64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < N; ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    absl::StrAppend(out, name, "_bucket{", labels, sep, "le=\"", Bound(bounds[i]), "\"} ",
                    cumulative, "\n");
  }
  cumulative += buckets_[N].load(std::memory_order_relaxed);
  absl::StrAppend(out, name, "_bucket{", labels, sep, "le=\"+Inf\"} ", cumulative, "\n");
  absl::StrAppend(out, name, "_sum{", labels, "} ",
                  absl::StrFormat("%.6f", sum_micros_.load(std::memory_order_relaxed) / 1e6), "\n");
  absl::StrAppend(out, name, "_count{", labels, "} ", cumulative, "\n");
}

Metrics::MethodStats* Metrics::StatsFor(const std::string& method) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = methods_.find(method);
    if (it != methods_.end()) return it->second.get();
  }
  // A method's first call (or a call of no known method, every time).
  static const std::string kUnknown = "unknown";
  const std::string& key = KnownMethod(method) ? method : kUnknown;
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[key];
  if (!slot) slot = std::make_unique<MethodStats>();
  return slot.get();
}

void Metrics::RecordRpc(const std::string& method, int code, double seconds) {
  MethodStats* stats = StatsFor(method);
  if (code < 0 || code >= kCodesMax) code = 2;  // UNKNOWN
  stats->by_code[code].fetch_add(1, std::memory_order_relaxed);
  stats->latency.Observe(seconds, kLatencyBuckets);
}

void Metrics::RecordBatch(int64_t events, int64_t log_size) {
  batch_events_.Observe(static_cast<double>(events), kBatchBuckets);
  batches_.fetch_add(1, std::memory_order_relaxed);
  log_size_.store(log_size, std::memory_order_relaxed);
}

void Metrics::RecordWriteMode(int mode, int64_t disk_full_count) {
  write_mode_.store(mode, std::memory_order_relaxed);
  disk_full_count_.store(disk_full_count, std::memory_order_relaxed);
}

void Metrics::SetLogMemorySource(MemorySource source) {
  absl::MutexLock lock(&mu_);
  log_memory_ = std::move(source);
}

void Metrics::SetWatchCounters(const WatchCounters* counters) {
  absl::MutexLock lock(&mu_);
  watches_ = counters;
}

namespace {

// The process's resident memory now and at its peak (VmRSS, VmHWM), in bytes; -1 when
// /proc is not there.
std::pair<int64_t, int64_t> ResidentBytes() {
  std::ifstream status("/proc/self/status");
  int64_t rss = -1, peak = -1;
  std::string line;
  while (std::getline(status, line)) {
    long long kib = 0;  // NOLINT(google-runtime-int): sscanf's %lld
    if (std::sscanf(line.c_str(), "VmRSS: %lld kB", &kib) == 1) rss = int64_t{kib} * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %lld kB", &kib) == 1) peak = int64_t{kib} * 1024;
  }
  return {rss, peak};
}

}  // namespace

void Metrics::RecordRefusal(const std::string& reason) {
  absl::MutexLock lock(&mu_);
  ++refusals_[reason];
}

std::string Metrics::Render() const {
  std::string out;
  absl::ReaderMutexLock lock(&mu_);
  out +=
      "# HELP casework_rpc_requests_total RPCs finished, by method and status code.\n"
      "# TYPE casework_rpc_requests_total counter\n";
  for (const auto& [method, stats] : methods_) {
    for (int code = 0; code < kCodesMax; ++code) {
      const int64_t n = stats->by_code[code].load(std::memory_order_relaxed);
      if (n == 0) continue;
      absl::StrAppend(&out, "casework_rpc_requests_total{method=\"", method, "\",code=\"",
                      kCodeNames[code], "\"} ", n, "\n");
    }
  }
  out +=
      "# HELP casework_rpc_latency_seconds Time from the call's arrival to its status.\n"
      "# TYPE casework_rpc_latency_seconds histogram\n";
  for (const auto& [method, stats] : methods_) {
    stats->latency.Render(&out, "casework_rpc_latency_seconds",
                          absl::StrCat("method=\"", method, "\""), kLatencyBuckets);
  }
  out +=
      "# HELP casework_append_batch_events Events per durable (synced) append batch.\n"
      "# TYPE casework_append_batch_events histogram\n";
  batch_events_.Render(&out, "casework_append_batch_events", "", kBatchBuckets);
  absl::StrAppend(&out,
                  "# HELP casework_log_events Events in the log.\n"
                  "# TYPE casework_log_events gauge\n"
                  "casework_log_events ",
                  log_size_.load(std::memory_order_relaxed), "\n");
  {
    const int mode = write_mode_.load(std::memory_order_relaxed);
    absl::StrAppend(&out,
                    "# HELP casework_log_writable 1 when the event log takes appends; 0 when it "
                    "is read-only (see casework_log_read_only).\n"
                    "# TYPE casework_log_writable gauge\n"
                    "casework_log_writable ",
                    mode == 0 ? 1 : 0,
                    "\n"
                    "# HELP casework_log_read_only 1 for the reason the event log is read-only: "
                    "disk_full resumes by itself when space returns, write_failed needs a "
                    "restart.\n"
                    "# TYPE casework_log_read_only gauge\n"
                    "casework_log_read_only{reason=\"disk_full\"} ",
                    mode == 1 ? 1 : 0,
                    "\n"
                    "casework_log_read_only{reason=\"write_failed\"} ",
                    mode == 2 ? 1 : 0,
                    "\n"
                    "# HELP casework_log_disk_full_total Times the event log found the disk full.\n"
                    "# TYPE casework_log_disk_full_total counter\n"
                    "casework_log_disk_full_total ",
                    disk_full_count_.load(std::memory_order_relaxed),
                    "\n"
                    "# HELP casework_checkpoint_file_current 1 while the signed checkpoint "
                    "file beside the log is written as the log grows; 0 when writing it fails "
                    "(it lags, and a rollback would not be caught at the next start).\n"
                    "# TYPE casework_checkpoint_file_current gauge\n"
                    "casework_checkpoint_file_current ",
                    checkpoint_file_current_.load(std::memory_order_relaxed), "\n");
  }
  if (const int64_t not_after = tls_not_after_.load(std::memory_order_relaxed); not_after != 0) {
    absl::StrAppend(
        &out,
        "# HELP casework_tls_certificate_expiry_timestamp_seconds When the server certificate "
        "that new connections get stops being valid (Unix time): renew it and send SIGHUP "
        "before then.\n"
        "# TYPE casework_tls_certificate_expiry_timestamp_seconds gauge\n"
        "casework_tls_certificate_expiry_timestamp_seconds ",
        not_after,
        "\n"
        "# HELP casework_tls_reloads_total Certificate reloads on SIGHUP: applied, or refused "
        "(the set in use kept; the server log says why).\n"
        "# TYPE casework_tls_reloads_total counter\n"
        "casework_tls_reloads_total{outcome=\"applied\"} ",
        tls_reloads_applied_.load(std::memory_order_relaxed),
        "\n"
        "casework_tls_reloads_total{outcome=\"refused\"} ",
        tls_reloads_refused_.load(std::memory_order_relaxed), "\n");
  }
  out +=
      "# HELP casework_refused_attempts_total Refused attempts (identity, permission, "
      "signature), by reason.\n"
      "# TYPE casework_refused_attempts_total counter\n";
  for (const auto& [reason, n] : refusals_) {
    absl::StrAppend(&out, "casework_refused_attempts_total{reason=\"", reason, "\"} ", n, "\n");
  }
  if (log_memory_) {
    out +=
        "# HELP casework_log_memory_bytes Memory the event log holds, by part: block_cache "
        "(bounded by --block-cache-mib), block_cache_pinned (of it, held by reads in "
        "progress), memtables (bounded by --memtable-mib, plus one waiting for its flush), "
        "table_readers (index and filter blocks, which grow with the log).\n"
        "# TYPE casework_log_memory_bytes gauge\n";
    for (const auto& [part, bytes] : log_memory_()) {
      absl::StrAppend(&out, "casework_log_memory_bytes{part=\"", part, "\"} ", bytes, "\n");
    }
  }
  if (watches_ != nullptr) {
    const WatchCounters& w = *watches_;
    const auto gauge = [&out](const char* name, const char* help, int64_t value) {
      absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " ",
                      value, "\n");
    };
    const auto counter = [&out](const char* name, const char* help, int64_t value) {
      absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n", name, " ",
                      value, "\n");
    };
    gauge("casework_watches_open", "WatchEvents streams open now.", w.watches.load());
    gauge("casework_watch_buffered_bytes",
          "Bytes of WatchEvents messages in flight or prepared, all streams together (bounded "
          "by --watch-buffer-mib).",
          w.bytes_buffered.load());
    gauge("casework_watch_buffered_bytes_peak",
          "The highest casework_watch_buffered_bytes since start.", w.bytes_buffered_peak.load());
    counter("casework_watch_messages_sent_total", "WatchEvents messages written to clients.",
            w.messages_sent.load());
    counter("casework_watch_sent_bytes_total", "Bytes of those messages.", w.bytes_sent.load());
    counter("casework_watch_read_aheads_withheld_total",
            "Writes during which a stream prepared no next message because the buffer budget "
            "was spent.",
            w.read_aheads_withheld.load());
    counter("casework_watch_messages_cut_to_budget_total",
            "Messages built smaller than their cap because the buffer budget was short.",
            w.messages_cut_to_budget.load());
    counter("casework_watch_catch_up_throttled_total",
            "Times a stream catching up waited for the catch-up rate.",
            w.catch_up_throttled.load());
  }
  const auto [rss, peak] = ResidentBytes();
  if (rss >= 0) {
    absl::StrAppend(&out,
                    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                    "# TYPE process_resident_memory_bytes gauge\n"
                    "process_resident_memory_bytes ",
                    rss, "\n");
  }
  if (peak >= 0) {
    absl::StrAppend(&out,
                    "# HELP casework_process_resident_memory_peak_bytes The highest resident "
                    "memory since start (VmHWM), in bytes.\n"
                    "# TYPE casework_process_resident_memory_peak_bytes gauge\n"
                    "casework_process_resident_memory_peak_bytes ",
                    peak, "\n");
  }
  // What malloc holds: in use, and freed but kept in its arenas (not given back to the
  // system). Only glibc's malloc answers mallinfo2; under another allocator (a sanitizer's,
  // a preloaded one) it reports nothing, and the gauges are left out rather than shown as 0.
  const struct mallinfo2 info = mallinfo2();
  if (info.uordblks + info.hblkhd > 0) {
    absl::StrAppend(&out,
                    "# HELP casework_malloc_bytes Heap memory by state: in_use (allocated), free "
                    "(freed, kept by malloc and not yet returned to the system).\n"
                    "# TYPE casework_malloc_bytes gauge\n"
                    "casework_malloc_bytes{state=\"in_use\"} ",
                    info.uordblks + info.hblkhd,
                    "\n"
                    "casework_malloc_bytes{state=\"free\"} ",
                    info.fordblks, "\n");
  }
  return out;
}

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(metrics_, info, certificate_identity_);
}

MetricsServer::MetricsServer(const Metrics* metrics, const std::string& host, int port)
    : server_(std::make_unique<httplib::Server>()) {
  server_->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics->Render(), "text/plain; version=0.0.4");
  });
  port_ =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ > 0) thread_ = std::thread([this] { server_->listen_after_bind(); });
}

MetricsServer::~MetricsServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace casework::shell

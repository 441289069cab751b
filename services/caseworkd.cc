// caseworkd: the casework engine's server.
//
// Serves casework.v1 over gRPC on an embedded RocksDB log in a data folder. Flags and a
// config file (TOML/INI, same names, --config) configure it. SIGTERM/SIGINT drain
// gracefully; SIGHUP reloads the principals file, and the TLS certificates for new
// connections, without dropping connections.
#include <malloc.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "casework/v1/audit_service.grpc.pb.h"
#include "casework/v1/event_service.grpc.pb.h"
#include "casework/v1/oversight_service.grpc.pb.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "services/shell/admin_service.h"
#include "services/shell/audit_service.h"
#include "services/shell/auth.h"
#include "services/shell/case_service.h"
#include "services/shell/command_processor.h"
#include "services/shell/commit_broadcaster.h"
#include "services/shell/event_service.h"
#include "services/shell/event_view.h"
#include "services/shell/health.h"
#include "services/shell/metrics.h"
#include "services/shell/oversight_service.h"
#include "services/shell/principals.h"
#include "services/shell/projections.h"
#include "services/shell/receipts.h"
#include "services/shell/server_limits.h"
#include "services/shell/tls.h"
#include "spdlog/spdlog.h"
#include "store/checkpoint.h"
#include "store/rocks_event_log.h"
#include "store/wal_tail.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:7070";
  std::string data_dir = "./data";
  std::string principals;
  bool insecure_plaintext = false;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string tls_identity = "uri-or-cn";
  casework::shell::ServerLimits limits;
  int max_connection_idle_seconds = 300;
  int max_connection_age_seconds = 1800;
  int memory_quota_mib = 512;
  int drain_seconds = 10;
  std::string log_level = "info";
  std::string port_file;
  std::string metrics_listen = "127.0.0.1:9464";
  int closure_approvers_min = 2;
  int closure_city_approvers_min = 0;
  int closure_county_approvers_min = 1;
  bool record_principals = true;
  std::string backup_dir;
  uint32_t backups_kept = 0;
  std::string restore_backup;
  bool rebuild_projections = false;
  bool start_without_checkpoint = false;
  bool verify_offline = false;
  bool repair_wal = false;
  bool print_verifier_key = false;
  uint32_t restore_backup_id = 0;
  int64_t absence_flag_days = 30;
  int64_t stale_case_days = 3 * 365;
  int64_t block_cache_mib = 64;
  int64_t memtable_mib = 64;
  int64_t wal_mib = 64;
  int64_t wal_spare_mib = 64;
  int64_t version_cache_streams = 1 << 18;
  bool direct_commit = true;
  int64_t disk_full_retry_ms = 250;
  int64_t disk_reserve_mib = 0;
  int64_t fold_state_mib = 128;
  int64_t watches_per_identity_max = 32;
  int64_t watch_catch_up_mib_per_second = 32;
  int64_t watch_buffer_mib = 64;
  int64_t follow_up_review_days = 365;
};

// Opens the log in `data_dir` to read it only: never created, nothing written.
casework::store::RocksEventLog::Options InspectOptions(const std::string& data_dir) {
  casework::store::RocksEventLog::Options inspect;
  inspect.path = (std::filesystem::path(data_dir) / "log").string();
  inspect.create_if_missing = false;
  inspect.inspect_only = true;
  inspect.request_id_of_event = casework::shell::EventRequestId;
  return inspect;
}

// The options of the log as the server opens it to serve it (and to rebuild its
// projections, which it may then serve).
casework::store::RocksEventLog::Options ServingLogOptions(const Flags& flags) {
  casework::store::RocksEventLog::Options log_options;
  log_options.path = (std::filesystem::path(flags.data_dir) / "log").string();
  log_options.block_cache_bytes = static_cast<size_t>(flags.block_cache_mib) << 20;
  log_options.memtable_bytes_max = static_cast<size_t>(flags.memtable_mib) << 20;
  log_options.wal_bytes_max = static_cast<size_t>(flags.wal_mib) << 20;
  log_options.wal_spare_bytes = static_cast<uint64_t>(flags.wal_spare_mib) << 20;
  log_options.version_cache_entries_max = static_cast<size_t>(flags.version_cache_streams);
  log_options.direct_commit = flags.direct_commit;
  // The request-id index is checked against the request ids the events carry (backups,
  // restores; --verify-offline uses InspectOptions).
  log_options.request_id_of_event = casework::shell::EventRequestId;
  // The writer answers each synced batch itself (each answer sends a gRPC response): the
  // next batch then holds the commands those answers released, and the server switches
  // threads less per command (docs/benchmarks.md, "the writer answers").
  log_options.answer_thread = false;
  log_options.disk_full_retry_ms = flags.disk_full_retry_ms;
  log_options.disk_reserve_bytes = static_cast<uint64_t>(flags.disk_reserve_mib) << 20;
  log_options.projection_layout = casework::shell::kProjectionLayout;
  log_options.start_without_anchor = flags.start_without_checkpoint;
  if (flags.start_without_checkpoint) {
    spdlog::warn(
        "--start-without-checkpoint: a log without its checkpoint file or key is "
        "opened as it is, and signed anew");
  }
  return log_options;
}

// Re-derives every projection of the opened log; false (logged) when that failed.
bool RebuildProjections(casework::store::RocksEventLog& log) {
  const auto started = std::chrono::steady_clock::now();
  if (auto rebuilt = casework::shell::BringProjectionsUpToDate(log, /*force=*/true);
      !rebuilt.ok()) {
    spdlog::error(
        "rebuilding the projections failed: {}; nothing is served until a rebuild "
        "completes",
        rebuilt.status().ToString());
    return false;
  }
  spdlog::info("projections rebuilt from {} events in {:.1f} s", log.Size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the signals we handle before any thread starts (gRPC starts some as soon as it
  // is first used, e.g. by the TLS flags' checks), so that only the waiter below sees
  // them: a thread that left SIGHUP unblocked would take a reload signal with the default
  // action and end the process.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
#if defined(__GLIBC__)
  // Blocks of 256 KiB and more (RocksDB's memtable arena blocks) are mapped and unmapped
  // one by one. glibc's default raises that threshold to the size of the largest mapped
  // block freed, after which such blocks come from malloc's heaps, and a flushed
  // memtable's blocks stay there as freed memory the process keeps (60-70 MiB under
  // sustained writes at 10 M events; docs/benchmarks.md). MALLOC_MMAP_THRESHOLD_ in the
  // environment still decides.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 256 << 10);
#endif

  Flags flags;
  CLI::App app{
      "caseworkd: the casework engine server (event-sourced rectification ledger over gRPC).\n"
      "Stores an append-only, tamper-evident event log in RocksDB under --data-dir."};
  app.set_config("--config", "", "read flags from this TOML/INI file (same names as the flags)");
  app.add_option("--listen", flags.listen,
                 "address:port to serve gRPC on (or unix:PATH, a Unix domain socket)")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir,
                 "data folder: the RocksDB log and the server's signing key live here")
      ->capture_default_str();
  app.add_option("--principals", flags.principals,
                 "principals file (JSON): identities, roles and jurisdictions; reloaded on "
                 "SIGHUP. Needed to serve (not for --restore-backup, --verify-offline or "
                 "--rebuild-projections)")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure-plaintext", flags.insecure_plaintext,
               "serve without TLS and take the caller's identity from the x-casework-identity "
               "metadata header (local use and tests only)");
  app.add_option("--tls-cert", flags.tls_cert,
                 "server certificate chain (PEM) for mutual TLS; the three --tls-* files are read "
                 "again on SIGHUP, for new connections")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", flags.tls_key, "server private key (PEM)")->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "CA certificate(s) (PEM) that issue client certificates; a client certificate "
                 "is required, and its identity is its URI SAN urn:casework:principal:<id>, "
                 "else its CN (--tls-identity)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-identity", flags.tls_identity,
                 "where a client certificate's identity comes from: uri-or-cn (its principal URI "
                 "name, else its one common name) or uri (the URI name only: a certificate the "
                 "client CA issued for another use cannot act as a person by its common name)")
      ->capture_default_str()
      ->check(CLI::IsMember({"uri-or-cn", "uri"}));
  app.add_option("--max-receive-message-bytes", flags.limits.receive_message_bytes_max,
                 "largest request accepted, in bytes (our largest legal request is under 128 KiB)")
      ->capture_default_str()
      ->check(CLI::Range(4096, 4 << 20));
  app.add_option("--max-metadata-bytes", flags.limits.metadata_bytes_max,
                 "largest request metadata (headers) per call, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024, 64 * 1024));
  app.add_option("--max-concurrent-streams", flags.limits.concurrent_streams_max,
                 "concurrent calls per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  app.add_option("--max-connection-idle-seconds", flags.max_connection_idle_seconds,
                 "close connections without calls after this long")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-connection-age-seconds", flags.max_connection_age_seconds,
                 "ask every connection to go away after this long (clients reconnect)")
      ->capture_default_str()
      ->check(CLI::Range(10, 7 * 86400));
  app.add_option("--memory-quota-mib", flags.memory_quota_mib,
                 "memory for transport buffers across all connections, in MiB")
      ->capture_default_str()
      ->check(CLI::Range(16, 64 * 1024));
  app.add_option("--drain-seconds", flags.drain_seconds,
                 "on SIGTERM, how long in-flight calls may take to finish; 2 s before its end "
                 "(halfway through a drain under 4 s) a backup still being taken is stopped "
                 "and keeps nothing, and verifications, exports, reports, draws and imports "
                 "still running end UNAVAILABLE SHUTTING_DOWN")
      ->capture_default_str()
      ->check(CLI::Range(0, 600));
  app.add_option("--metrics-listen", flags.metrics_listen,
                 "host:port for Prometheus metrics over HTTP (GET /metrics); port 0 picks a free "
                 "port; \"off\" disables")
      ->capture_default_str();
  app.add_option("--port-file", flags.port_file,
                 "once serving, write the bound port here (useful with --listen host:0; "
                 "1 for a unix: address)");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--closure-approvers-min", flags.closure_approvers_min,
                 "closure policy: distinct approvers whose sign-off closes a case")
      ->capture_default_str()
      ->check(CLI::Range(1, 9));
  app.add_option("--closure-city-approvers-min", flags.closure_city_approvers_min,
                 "closure policy: of which at least this many at city level")
      ->capture_default_str()
      ->check(CLI::Range(0, 9));
  app.add_option("--backup-dir", flags.backup_dir,
                 "where AdminService.CreateBackup puts verified backups (default: "
                 "<data-dir>/backups)");
  app.add_option("--backups-kept", flags.backups_kept,
                 "once a backup is kept, keep only this many newest backups in --backup-dir, "
                 "deleting the older ones with their checkpoints; 0: keep them all")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  CLI::Option* restore_option =
      app.add_option("--restore-backup", flags.restore_backup,
                     "restore the newest verified backup in this directory (one with its "
                     "checkpoint beside it) into <data-dir> (which must hold no log yet, only "
                     "the server's log.key), verified against its signed checkpoint, then exit "
                     "(2: the server's log.key is not in <data-dir> yet; 3: the backup is "
                     "damaged; 4: the restore failed otherwise)")
          ->check(CLI::ExistingDirectory);
  app.add_option("--restore-backup-id", flags.restore_backup_id,
                 "with --restore-backup: restore this backup (casectl admin backup names it) "
                 "instead of the newest verified one")
      ->needs(restore_option);
  CLI::Option* rebuild_option = app.add_flag(
      "--rebuild-projections", flags.rebuild_projections,
      "drop the read models (case table, indexes, counters, approver keys, "
      "organisation to case, organisation to county) and "
      "re-derive them from the log, then exit (the server must be stopped); done at start "
      "without asking when the stored read models are of another layout than this "
      "build writes");
  CLI::Option* verify_offline_option =
      app.add_flag("--verify-offline", flags.verify_offline,
                   "verify the log in <data-dir> without serving it, then exit: every event "
                   "against the stored tree and the signed checkpoint, naming the first position "
                   "that does not match and what keeps the server from starting, and the "
                   "stream and request-id indexes against the events; writes nothing "
                   "(exit 0 intact, 3 not intact, 4 could not be read)");
  CLI::Option* repair_wal_option = app.add_flag(
      "--repair-wal", flags.repair_wal,
      "with the server stopped: rewrite the damaged length or type field of each "
      "write-ahead log (or RocksDB manifest) record that the start refused as whole behind "
      "it (its checksum shows the true value), keeping each file as it was beside it "
      "(<file>.damaged-<us>), "
      "then exit (0 repaired or nothing to repair, 3 damage that cannot be repaired in "
      "place, 4 failed); start the server again afterwards");
  CLI::Option* print_key_option = app.add_flag(
      "--print-verifier-key", flags.print_verifier_key,
      "print the verifier key of the log's checkpoints (name+hash+key, what auditors check "
      "signed checkpoints and exports against), read from the log in <data-dir>, then exit; "
      "writes nothing (exit 0, or 4 when there is no log to read)");
  // The offline actions each do one thing and exit: given together, one would be skipped.
  repair_wal_option->excludes(verify_offline_option)
      ->excludes(restore_option)
      ->excludes(rebuild_option)
      ->excludes(print_key_option);
  verify_offline_option->excludes(restore_option)
      ->excludes(rebuild_option)
      ->excludes(print_key_option);
  restore_option->excludes(rebuild_option)->excludes(print_key_option);
  rebuild_option->excludes(print_key_option);
  app.add_flag("--start-without-checkpoint", flags.start_without_checkpoint,
               "open a log that holds events although its checkpoint file (log.checkpoint) or "
               "its key (log.key) is missing, which is otherwise refused as a possible "
               "rollback; only once you have checked the log against a checkpoint kept "
               "elsewhere (an auditor's, a verified backup's). A missing key is made anew, so "
               "earlier checkpoints and exports no longer verify against it, and a checkpoint "
               "file the lost key signed is kept, renamed log.checkpoint.set-aside-<us>");
  app.add_flag("--record-principals,!--no-record-principals", flags.record_principals,
               "record the principals file in the log (stream config/principals) at start and "
               "on each reload, and stamp every event with the version its actor was "
               "authorised under, so an audit re-checks roles from the log alone")
      ->capture_default_str();
  app.add_option("--absence-flag-days", flags.absence_flag_days,
                 "flag assigned people with no field visit for longer than this (stationed but "
                 "absent)")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  app.add_option("--stale-case-days", flags.stale_case_days,
                 "flag open cases older than this (three years without change)")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  app.add_option("--follow-up-review-days", flags.follow_up_review_days,
                 "closed cases come due for a follow-up review after this long")
      ->capture_default_str()
      ->check(CLI::Range(1, 36500));
  app.add_option("--block-cache-mib", flags.block_cache_mib,
                 "the event log's block cache (data blocks), MiB")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--memtable-mib", flags.memtable_mib,
                 "all of the event log's memtables together, MiB")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  app.add_option("--wal-mib", flags.wal_mib,
                 "the event log's write-ahead log before the oldest file is flushed away, MiB "
                 "(a restart after a crash replays at most this much)")
      ->capture_default_str()
      ->check(CLI::Range(8, 1 << 20));
  app.add_option("--wal-spare-mib", flags.wal_spare_mib,
                 "each write-ahead log file is written into this many MiB of zeros prepared "
                 "ahead, which makes its synced writes cheaper (0: files grow from empty)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--version-cache-streams", flags.version_cache_streams,
                 "cases whose version the event log keeps in memory to check commands without "
                 "a read (about 100 bytes each; emptied when full)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--direct-commit", flags.direct_commit,
                 "write a lone command (nothing else queued or being written) on the thread "
                 "that handles it instead of handing it to the log's sequencer and writer "
                 "threads; under concurrency commands are batched either way")
      ->capture_default_str();
  app.add_option("--disk-reserve-mib", flags.disk_reserve_mib,
                 "free space kept for the event log's own flushes, MiB (0: --memtable-mib): "
                 "below it appends are refused (RESOURCE_EXHAUSTED, DISK_FULL) and nothing is "
                 "written; they resume once a quarter more is free")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--disk-full-retry-ms", flags.disk_full_retry_ms,
                 "how often a log refusing appends for lack of space looks whether it may "
                 "take them again (free space above the reserve, or RocksDB recovered from a "
                 "flush that found the disk full: it checks every 5 s); a write whose own WAL "
                 "append found the disk full leaves the log read-only until restart")
      ->capture_default_str()
      ->check(CLI::Range(10, 600000));
  app.add_option("--max-watches-per-identity", flags.watches_per_identity_max,
                 "WatchEvents streams one identity may hold open at once (beyond: "
                 "RESOURCE_EXHAUSTED, TOO_MANY_WATCHES); the server holds 1,024 in all")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--watch-buffer-mib", flags.watch_buffer_mib,
                 "MiB of WatchEvents messages the server holds for its clients, in flight and "
                 "prepared, all streams together: beyond it a stream reads ahead no more and "
                 "its messages shrink to 64 KiB, so clients that stop reading cannot take the "
                 "server's memory; 0: no budget (each stream alone holds at most two messages "
                 "of up to 2 MiB)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  app.add_option("--watch-catch-up-mib-per-second", flags.watch_catch_up_mib_per_second,
                 "MiB a second sent to WatchEvents streams catching up (more than 4,096 "
                 "positions behind the head), all together, so that subscribers reading the "
                 "log from the start do not take the CPU from commands and reads; streams "
                 "at the head are not limited; 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  app.add_option("--fold-state-mib", flags.fold_state_mib,
                 "case states one fold over the whole log keeps (deep verification, the "
                 "ledger as of a position), MiB; beyond, they are dropped and refolded from "
                 "the log, so memory stays bounded however many cases there are")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--closure-county-approvers-min", flags.closure_county_approvers_min,
                 "closure policy: of which at least this many at county level")
      ->capture_default_str()
      ->check(CLI::Range(0, 9));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every usage error exits 2 (CLI11's own codes, 100 and
    // up, say nothing more to a supervisor or a script).
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::logic_error& e) {
    // CLI11 2.3 reads the value of a negated flag (--no-record-principals=N, on the
    // command line or in --config) with std::stoll, whose std::out_of_range escapes its
    // own errors: a usage error, not std::terminate (found by fuzz/config_fuzz.cc).
    (void)app.exit(CLI::ConversionError(std::string("a flag value is out of range: ") + e.what()));
    return 2;
  }
  // Abseil's mutex deadlock detection (a lock-order graph on every acquisition) is a
  // debugging aid; the sanitizer test build keeps it, the server does not pay for it.
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  spdlog::set_level(spdlog::level::from_str(flags.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l caseworkd %v", spdlog::pattern_time_type::utc);

  // An offline action ends by itself and has no drain: Ctrl-C and SIGTERM end it at once
  // (what it writes is synced, and each is safe to run again).
  if (!flags.restore_backup.empty() || flags.repair_wal || flags.verify_offline ||
      flags.rebuild_projections || flags.print_verifier_key) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  }

  if (flags.print_verifier_key) {
    // Read from the key file alone (the log is not opened), so this works beside a running
    // server as well; a missing key is said, never made.
    const casework::store::RocksEventLog::Options inspect = InspectOptions(flags.data_dir);
    const std::string key_path = inspect.path + ".key";
    absl::StatusOr<casework::store::NoteSigner> signer =
        casework::store::LoadSigningKey(key_path, inspect.checkpoint_origin);
    if (!signer.ok()) {
      spdlog::error(
          "the log in {} has no readable checkpoint key: {}{}", inspect.path,
          std::string(signer.status().message()),
          signer.status().code() == absl::StatusCode::kNotFound ? " (is --data-dir right?)" : "");
      return 4;
    }
    std::printf("%s\n", signer->verifier().VerifierKey().c_str());
    return 0;
  }

  // An offline restore needs neither TLS nor principals: it happens before either.
  if (!flags.restore_backup.empty()) {
    casework::store::RocksEventLog::Options restore_options;
    restore_options.path = (std::filesystem::path(flags.data_dir) / "log").string();
    // The restored log is checked against checkpoints signed with the server's key, and
    // the server must go on signing with it: the operator puts it in place first.
    restore_options.signing_key_path = restore_options.path + ".key";
    restore_options.request_id_of_event = casework::shell::EventRequestId;
    std::error_code key_error;  // no permission to look: said as missing, not a crash
    if (!std::filesystem::exists(restore_options.signing_key_path, key_error)) {
      spdlog::error(
          "restore: copy the server's signing key (log.key of the data folder the backups came "
          "from) to {} first; a restored server must verify and sign with the same key{}",
          restore_options.signing_key_path,
          key_error ? " (it cannot be looked at: " + key_error.message() + ")" : std::string());
      return 2;
    }
    uint32_t restored_id = 0;
    if (auto restored = casework::store::RocksEventLog::Restore(
            flags.restore_backup, restore_options, flags.restore_backup_id, &restored_id);
        !restored.ok()) {
      if (restored.code() == absl::StatusCode::kDataLoss) {
        // The backup is bad; an older one may not be (--restore-backup-id).
        spdlog::error("restore from {} into {} refused: {}", flags.restore_backup,
                      restore_options.path, restored.ToString());
        return 3;
      }
      spdlog::error("could not restore from {} into {} (the backup itself was not found bad): {}",
                    flags.restore_backup, restore_options.path, restored.ToString());
      return 4;
    }
    spdlog::info("restored backup {} of {} into {}, verified against its checkpoint", restored_id,
                 flags.restore_backup, restore_options.path);
    // The log goes back to the backup's size, and the server signs on from there under the
    // same key: checkpoints of larger sizes signed before (kept by auditors and approvers)
    // are not prefixes of what it signs next, which is a fork to anyone who checks.
    std::ifstream note_in(restore_options.path + ".checkpoint", std::ios::binary);
    const std::string note((std::istreambuf_iterator<char>(note_in)),
                           std::istreambuf_iterator<char>());
    auto parsed = casework::store::ParseNote(note);
    auto body = parsed.ok() ? casework::store::ParseCheckpoint(parsed->text)
                            : absl::StatusOr<casework::store::Checkpoint>(parsed.status());
    spdlog::warn(
        "the restored log holds {} events: any checkpoint of a larger size that the server "
        "signed before (an auditor's, or an approver's --checkpoint-file) will not be extended "
        "by the checkpoints it signs from now on, and its holders will see the log as forked. "
        "Tell them of the restore and give them the restored checkpoint ({}) before serving",
        body.ok() ? absl::StrCat(body->size) : std::string("(unknown)"),
        restore_options.path + ".checkpoint");
    return 0;
  }

  // Nor does an offline repair of the write-ahead log (store/wal_tail.h).
  if (flags.repair_wal) {
    const std::string path = (std::filesystem::path(flags.data_dir) / "log").string();
    std::error_code dir_error;
    if (!std::filesystem::is_directory(path, dir_error)) {
      spdlog::error("there is no event log in {} to repair (is --data-dir right?){}", path,
                    dir_error ? ": " + dir_error.message() : std::string());
      return 4;
    }
    // Each rewrite is logged as it is made, so that it is known even if a later one fails.
    auto repairs = casework::store::wal::RepairWalFiles(
        path, [](const casework::store::wal::WalRepair& repair) {
          const bool length =
              repair.damage.field == casework::store::wal::HiddenDamage::Field::kLength;
          spdlog::warn(
              "rewrote the {} field of the record at byte {} of {} from {} to {} (the file as "
              "it was is kept as {})",
              length ? "length" : "type", repair.damage.offset, repair.file, repair.damage.stated,
              repair.damage.whole.value_or(0), repair.kept);
        });
    if (!repairs.ok() && repairs.status().code() == absl::StatusCode::kFailedPrecondition) {
      spdlog::error("the write-ahead log in {} was not repaired, and no file was changed: {}", path,
                    repairs.status().ToString());
      return 3;
    }
    if (!repairs.ok()) {
      spdlog::error("repairing the write-ahead log in {} failed: {}", path,
                    repairs.status().ToString());
      return 4;
    }
    if (repairs->empty()) {
      spdlog::info(
          "no write-ahead log record in {} is whole behind a damaged field: nothing to "
          "repair",
          path);
    }
    return 0;
  }

  // An offline verification, too, needs neither TLS nor principals.
  if (flags.verify_offline) {
    const casework::store::RocksEventLog::Options inspect = InspectOptions(flags.data_dir);
    auto log = casework::store::RocksEventLog::Open(inspect);
    if (!log.ok() && log.status().code() == absl::StatusCode::kDataLoss) {
      spdlog::error("NOT INTACT: the event log in {} is damaged where it opens: {}", inspect.path,
                    log.status().ToString());
      return 3;
    }
    if (!log.ok()) {
      spdlog::error("cannot open the event log in {} to verify it: {}", inspect.path,
                    log.status().ToString());
      return 4;
    }
    const int64_t size = (*log)->Size();
    const std::string anchor = (*log)->AnchorProblem();
    // Not intact (3) wins over could not be read (4): a finding stands whatever could not
    // be read besides it.
    const absl::StatusCode anchor_code = (*log)->AnchorProblemCode();
    const bool anchor_finding =
        !anchor.empty() && (anchor_code == absl::StatusCode::kDataLoss ||
                            anchor_code == absl::StatusCode::kFailedPrecondition);
    if (!anchor.empty()) {
      spdlog::error("the server would refuse to start on this log: {}", anchor);
    }
    auto report = (*log)->Verify(0, size);
    if (!report.ok()) {
      spdlog::error("verifying the event log in {} failed: {}", inspect.path,
                    report.status().ToString());
      return anchor_finding ? 3 : 4;
    }
    if (report->first_mismatch.has_value()) {
      spdlog::error("NOT INTACT: the first position that does not verify is {}: {}",
                    *report->first_mismatch, report->detail);
    } else {
      spdlog::info("every one of the {} events verifies against the stored tree{}", size,
                   anchor.empty() ? " and the signed checkpoint" : "");
    }
    // The indexes that find events by stream and by request id, against the events.
    const absl::Status indexes = (*log)->CheckIndexes();
    if (indexes.ok()) {
      spdlog::info("the stream and request-id indexes match the events");
    } else if (indexes.code() == absl::StatusCode::kDataLoss) {
      spdlog::error("NOT INTACT: an index does not match the events: {}",
                    std::string(indexes.message()));
    } else {
      spdlog::error("checking the indexes of the event log in {} failed: {}", inspect.path,
                    indexes.ToString());
    }
    if (anchor_finding || report->first_mismatch.has_value() ||
        indexes.code() == absl::StatusCode::kDataLoss) {
      return 3;
    }
    return anchor.empty() && indexes.ok() ? 0 : 4;
  }

  if (flags.rebuild_projections) {
    // Offline: no transport or principals needed, as for the other offline actions.
    const casework::store::RocksEventLog::Options log_options = ServingLogOptions(flags);
    std::error_code dir_error;
    if (!std::filesystem::is_directory(log_options.path, dir_error)) {
      spdlog::error(
          "there is no event log in {} to rebuild the projections of (is --data-dir right?){}",
          flags.data_dir, dir_error ? ": " + dir_error.message() : std::string());
      return 4;
    }
    auto log = casework::store::RocksEventLog::Open(log_options);
    if (!log.ok()) {
      spdlog::error("cannot open the event log in {}: {}", log_options.path,
                    log.status().ToString());
      return 3;
    }
    return RebuildProjections(**log) ? 0 : 3;
  }

  const bool tls =
      !flags.tls_cert.empty() || !flags.tls_key.empty() || !flags.tls_client_ca.empty();
  if (tls && flags.insecure_plaintext) {
    spdlog::error("refusing to start: give either --insecure-plaintext or the --tls-* flags");
    return 2;
  }
  if (!tls && !flags.insecure_plaintext) {
    spdlog::error(
        "refusing to start: mutual TLS needs --tls-cert, --tls-key and --tls-client-ca; for "
        "local use only, start with --insecure-plaintext");
    return 2;
  }
  if (!tls && !casework::shell::IsLocalOnlyAddress(flags.listen)) {
    spdlog::error(
        "refusing to start: --insecure-plaintext serves only a loopback address (127.0.0.1, "
        "[::1], localhost) or a unix: socket, not {}: without TLS every caller names its own "
        "identity in a header, so anyone who reaches the port could act as anyone. Serve other "
        "addresses with mutual TLS (--tls-cert, --tls-key, --tls-client-ca) "
        "明文模式仅可监听本机回环地址或 unix 套接字",
        flags.listen);
    return 2;
  }
  if (tls && (flags.tls_cert.empty() || flags.tls_key.empty() || flags.tls_client_ca.empty())) {
    spdlog::error(
        "refusing to start: mutual TLS needs all of --tls-cert, --tls-key and "
        "--tls-client-ca");
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  // Read again on SIGHUP: new connections get the new set, open ones keep theirs.
  std::shared_ptr<casework::shell::ReloadableTls> tls_set;
  if (tls) {
    auto loaded = casework::shell::ReloadableTls::Load(
        {.cert = flags.tls_cert, .key = flags.tls_key, .client_ca = flags.tls_client_ca});
    if (!loaded.ok()) {
      spdlog::error("mutual TLS: {}", loaded.status().ToString());
      return 2;
    }
    tls_set = *std::move(loaded);
    credentials = tls_set->Credentials();
  }

  if (flags.principals.empty()) {
    spdlog::error("refusing to start: give the principals file (--principals)");
    return 2;
  }
  auto principals = casework::shell::Principals::Load(flags.principals);
  if (!principals.ok()) {
    spdlog::error("cannot load principals: {}", principals.status().ToString());
    return 2;
  }
  casework::shell::PrincipalsHolder principals_holder(*principals);

  std::error_code ec;
  std::filesystem::create_directories(flags.data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data folder {}: {}", flags.data_dir, ec.message());
    return 2;
  }
  const casework::store::RocksEventLog::Options log_options = ServingLogOptions(flags);
  // Declared before the log: the log's listeners (below) report into it from the log's
  // threads until the log is closed, on every return.
  casework::shell::Metrics metrics;
  if (tls_set != nullptr) metrics.RecordTlsCertificate(tls_set->NotAfterUnixSeconds());
  auto log = casework::store::RocksEventLog::Open(log_options);
  if (!log.ok()) {
    spdlog::error("cannot open the event log in {}: {}", log_options.path, log.status().ToString());
    return 3;
  }

  // Projections an earlier build wrote in another layout are rebuilt before serving, so
  // that no command is decided on a case row that lacks what this build's rules read.
  if (const uint32_t stored = (*log)->ProjectionLayout();
      stored != casework::shell::kProjectionLayout) {
    spdlog::warn(
        "the projections were written in layout {}, this build writes layout {}: "
        "rebuilding them from the {} events of the log before serving",
        stored, casework::shell::kProjectionLayout, (*log)->Size());
    if (!RebuildProjections(**log)) return 3;
    // A stop asked for during the rebuild (it can take minutes): honoured before serving.
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1) {
      spdlog::info("a stop was asked for during the rebuild: stopping before serving");
      return 0;
    }
  }
  if (flags.record_principals) {
    if (auto recorded = casework::shell::RecordPrincipals(log->get(), **principals,
                                                          casework::shell::SystemClockMicros());
        !recorded.ok()) {
      spdlog::error("cannot record the principals in the log: {}", recorded.ToString());
      return 3;
    }
    principals_holder.Set((*principals)->Stamped());
    spdlog::info("principals version {} recorded on {}", (*principals)->version(),
                 casework::shell::kPrincipalsStream);
  }

  casework::workflow::Policy policy;
  policy.closure.approvers_min = flags.closure_approvers_min;
  policy.closure.city_approvers_min = flags.closure_city_approvers_min;
  policy.closure.county_approvers_min = flags.closure_county_approvers_min;
  policy.absence_flag_days = flags.absence_flag_days;
  policy.stale_case_days = flags.stale_case_days;
  policy.follow_up_review_days = flags.follow_up_review_days;

  if (auto valid = casework::workflow::ValidatePolicy(policy); !valid.ok()) {
    spdlog::error("closure policy: {}", valid.ToString());
    return 2;
  }
  casework::shell::CommandProcessor processor(log->get(), policy,
                                              casework::shell::SystemClockMicros);
  const casework::shell::CertificateIdentity certificate_identity =
      flags.tls_identity == "uri" ? casework::shell::CertificateIdentity::kUriOnly
                                  : casework::shell::CertificateIdentity::kUriOrCommonName;
  casework::shell::Authenticator auth(
      &principals_holder,
      tls ? casework::shell::Transport::kMutualTls : casework::shell::Transport::kPlaintext,
      certificate_identity);
  casework::shell::CaseServiceImpl case_service(&processor, &auth);
  // Every durable batch is published to the metrics and the event stream.
  casework::shell::CommitBroadcaster commits;
  (*log)->SetCommitListener([&commits](int64_t size) { commits.Publish(size); });
  casework::shell::ReceiptIssuer receipts(log->get());
  processor.set_receipts([&receipts](int64_t position, casework::v1::Receipt* receipt,
                                     casework::shell::CommandProcessor::Done done) {
    receipts.Issue(position, receipt, std::move(done));
  });
  casework::shell::EventServiceImpl event_service(
      log->get(), &auth, &commits,
      casework::shell::WatchOptions{
          .buffered_bytes_max = flags.watch_buffer_mib << 20,
          .watches_per_principal_max = static_cast<size_t>(flags.watches_per_identity_max),
          .catch_up_bytes_per_second = flags.watch_catch_up_mib_per_second << 20});
  metrics.SetWatchCounters(&event_service.counters());
  casework::shell::AuditServiceImpl audit_service(
      log->get(), &auth, casework::shell::DeepVerifyOptions{.policy = policy},
      casework::shell::AuditOptions{.fold_state_bytes_max =
                                        static_cast<size_t>(flags.fold_state_mib) << 20});
  casework::shell::OversightServiceImpl oversight_service(log->get(), &auth, policy,
                                                          casework::shell::SystemClockMicros);
  casework::shell::PrincipalsReloader principals_reloader(
      {.path = flags.principals,
       .log = flags.record_principals ? log->get() : nullptr,
       .clock = casework::shell::SystemClockMicros},
      &principals_holder);
  casework::shell::AdminServiceImpl admin_service(log->get(), &auth, &principals_holder,
                                                  casework::shell::SystemClockMicros);
  processor.set_approver_keys(&admin_service.keys());
  admin_service.set_principals_reloader(&principals_reloader);
  const std::string backup_dir = flags.backup_dir.empty()
                                     ? (std::filesystem::path(flags.data_dir) / "backups").string()
                                     : flags.backup_dir;
  admin_service.set_backup(
      [&log, backup_dir, kept = flags.backups_kept](casework::v1::CreateBackupResponse* resp) {
        auto id = (*log)->Backup(backup_dir, kept);
        if (!id.ok()) {
          // For the operator too: a copy that does not verify says the live log may be
          // damaged (and the copy is gone); a full disk or a stop says why none was kept.
          spdlog::error("backup into {} failed: {}{}", backup_dir, id.status().ToString(),
                        id.status().code() == absl::StatusCode::kDataLoss
                            ? "; the copy of the live log did not verify: stop the server and run "
                              "caseworkd --verify-offline on its data directory"
                            : "");
          return id.status();
        }
        // The checkpoint the backup was verified against, kept beside it.
        const std::filesystem::path note_path =
            std::filesystem::path(backup_dir) / ("checkpoint-" + std::to_string(*id));
        std::ifstream in(note_path, std::ios::binary);
        std::string note((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto opened = in.bad() || note.empty()
                          ? absl::StatusOr<casework::store::Checkpoint>(absl::UnavailableError(
                                absl::StrCat("cannot read ", note_path.string(), " back")))
                          : casework::store::OpenCheckpoint(note, (*log)->CheckpointVerifier(),
                                                            (*log)->CheckpointVerifier().name());
        if (!opened.ok()) {
          // The backup was kept and verified; only its answer could not be made.
          spdlog::error(
              "backup {} in {} was taken and verified, but its checkpoint could not be "
              "read back: {}",
              *id, backup_dir, opened.status().ToString());
          return absl::InternalError(absl::StrCat(
              "backup ", *id, " in ", backup_dir,
              " was taken and verified, but its checkpoint file could not be read back (",
              opened.status().message(), "); look for checkpoint-", *id, " there"));
        }
        resp->set_backup_id(*id);
        resp->set_checkpoint(note);
        resp->set_tree_size(opened->size);
        resp->set_directory(backup_dir);
        spdlog::info("backup {} in {}: {} events, verified", *id, backup_dir, opened->size);
        return absl::OkStatus();
      });

  // The write mode, in the metrics, the health status and the log (the listener runs on a
  // store thread).
  casework::shell::HealthFollower health;
  (*log)->SetWriteStateListener([&metrics,
                                 &health](const casework::store::RocksEventLog::WriteState& state) {
    using Mode = casework::store::RocksEventLog::WriteState::Mode;
    metrics.RecordWriteMode(static_cast<int>(state.mode), state.disk_full_count);
    health.OnWriteState(state);
    switch (state.mode) {
      case Mode::kWritable:
        spdlog::warn("the event log takes appends again (disk space returned; {} time(s) so far)",
                     state.resumed_count);
        break;
      case Mode::kDiskFull:
        spdlog::error(
            "the disk is full: appends are refused (RESOURCE_EXHAUSTED, DISK_FULL) "
            "until space returns; reads keep working: {}",
            state.detail);
        break;
      case Mode::kFailed:
        spdlog::critical("a write failed: the event log is read-only until restart: {}",
                         state.detail);
        break;
    }
  });
  // A write that failed before the listener was set is in the health status too.
  health.OnWriteState((*log)->GetWriteState());
  (*log)->SetCheckpointFileListener([&metrics](const absl::Status& written) {
    metrics.RecordCheckpointFile(written.ok());
    if (written.ok()) {
      spdlog::warn("the checkpoint file is written again");
    } else {
      spdlog::error(
          "cannot write the checkpoint file (retried every second): {}. Until it is written, a "
          "rollback of the log would not be refused at the next start; check the data "
          "folder's permissions and free space",
          written.ToString());
    }
  });
  metrics.SetLogMemorySource([store = log->get()] {
    const auto usage = store->GetMemoryUsage();
    return std::vector<std::pair<std::string, int64_t>>{
        {"block_cache", usage.block_cache},
        {"block_cache_pinned", usage.block_cache_pinned},
        {"memtables", usage.memtables},
        {"table_readers", usage.table_readers}};
  });
  metrics.RecordLogSize((*log)->Size());  // from the start, not from the first batch
  commits.Subscribe([&metrics, last = (*log)->Size()](int64_t size) mutable {
    metrics.RecordBatch(size - last, size);
    last = size;
  });
  std::unique_ptr<casework::shell::MetricsServer> metrics_server;
  if (flags.metrics_listen != "off") {
    const size_t colon = flags.metrics_listen.rfind(':');
    int metrics_port = -1;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(flags.metrics_listen.substr(colon + 1), &metrics_port)) {
      spdlog::error("--metrics-listen must be host:port, got {}", flags.metrics_listen);
      log->reset();  // before the health and commit listeners' targets go
      return 2;
    }
    metrics_server = std::make_unique<casework::shell::MetricsServer>(
        &metrics, flags.metrics_listen.substr(0, colon), metrics_port);
    if (metrics_server->port() <= 0) {
      spdlog::error("cannot serve metrics on {}", flags.metrics_listen);
      log->reset();  // before the health and commit listeners' targets go
      return 4;
    }
    spdlog::info("metrics on http://{}:{}/metrics", flags.metrics_listen.substr(0, colon),
                 metrics_server->port());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(flags.listen, credentials, &bound_port);
  flags.limits.connection_idle_ms_max = flags.max_connection_idle_seconds * 1000;
  flags.limits.connection_age_ms_max = flags.max_connection_age_seconds * 1000;
  flags.limits.memory_quota_bytes = int64_t{flags.memory_quota_mib} * 1024 * 1024;
  casework::shell::ApplyServerLimits(flags.limits, &builder);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(
      std::make_unique<casework::shell::MetricsInterceptorFactory>(&metrics, certificate_identity));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&case_service);
  builder.RegisterService(&event_service);
  builder.RegisterService(&audit_service);
  builder.RegisterService(&oversight_service);
  builder.RegisterService(&admin_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    spdlog::error(
        "cannot listen on {}: the port may be in use or need privileges, or the TLS "
        "certificate and key may not be a pair (gRPC's own message above says which)",
        flags.listen);
    metrics.SetLogMemorySource(nullptr);  // the metrics server may be serving
    metrics.SetWatchCounters(nullptr);
    log->reset();  // before the health and commit listeners' targets go
    return 4;
  }
  health.Attach(server->GetHealthCheckService());
  int exit_code = 0;
  if (!flags.port_file.empty()) {
    const std::string tmp = flags.port_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    bool written = f != nullptr && std::fprintf(f, "%d\n", bound_port) > 0;
    if (f != nullptr) written = std::fclose(f) == 0 && written;
    if (!written || std::rename(tmp.c_str(), flags.port_file.c_str()) != 0) {
      spdlog::error("cannot write the port file {}: {}; stopping", flags.port_file,
                    std::strerror(errno));
      exit_code = 4;
    }
  }
  if (exit_code == 0) {
    if (tls) {
      spdlog::info("mutual TLS: client certificates required, issued by {}; {}",
                   flags.tls_client_ca, tls_set->Describe());
    } else {
      spdlog::warn(
          "PLAINTEXT MODE: no TLS; callers name themselves in the x-casework-identity header; "
          "for local use and tests only");
    }
    spdlog::info("serving casework.v1 on {} (data {}, {} events, {} principals)", flags.listen,
                 flags.data_dir, (*log)->Size(), (*principals)->size());
    spdlog::info("checkpoints are signed for the verifier key {}",
                 (*log)->CheckpointVerifier().VerifierKey());
  }

  while (exit_code == 0) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (tls_set != nullptr) {
        // The same paths read again, checked whole before anything changes.
        absl::Status reloaded = tls_set->Reload();
        metrics.RecordTlsReload(reloaded.ok());
        if (reloaded.ok()) {
          metrics.RecordTlsCertificate(tls_set->NotAfterUnixSeconds());
          spdlog::info("reloaded mutual TLS for new connections: {}", tls_set->Describe());
        } else {
          spdlog::error("mutual TLS not reloaded, keeping the certificates in use: {}",
                        reloaded.ToString());
        }
      }
      // Recorded before anyone is authorised under it; fails closed if it cannot be
      // (SIGHUP again once the cause is fixed).
      auto reloaded = principals_reloader.Reload(nullptr);
      if (!reloaded.ok() && casework::shell::PrincipalsReloader::FileNotLoaded(reloaded.status())) {
        spdlog::error("principals not reloaded, keeping the old set: {}",
                      std::string(reloaded.status().message()));
      } else if (!reloaded.ok()) {
        spdlog::error("principals not reloaded: {}", std::string(reloaded.status().message()));
      } else if (reloaded->record.has_value()) {
        spdlog::info(
            "reloaded principals on SIGHUP: {} identities, version {}, {} at position {}{}",
            reloaded->set->size(), reloaded->set->version(),
            reloaded->record->recorded_now ? "recorded" : "recorded before",
            reloaded->record->position,
            reloaded->record->reinstated_at >= 0
                ? absl::StrCat(", in force again from position ", reloaded->record->reinstated_at)
                : std::string());
      } else {
        spdlog::info("reloaded principals on SIGHUP: {} identities", reloaded->set->size());
      }
      continue;
    }
    spdlog::info("signal {}: draining for up to {} s", sig, flags.drain_seconds);
    break;
  }
  health.Shutdown();  // NOT_SERVING first: health watchers see the server going
  // Watches never end by themselves: told to end now (UNAVAILABLE, resume later), they do
  // not hold the stop for the whole drain.
  event_service.BeginDrain();
  const int drain_seconds = exit_code == 0 ? flags.drain_seconds : 0;
  // A backup holds its call open until its copy is verified, which takes a while on a
  // large log, and so may a verification, an export or a report: they drain like any call,
  // then are stopped (a backup keeps nothing; a draw or an import records nothing), so
  // that they cannot hold the stop past the drain. They are stopped a little before the
  // drain ends (2 s, or half of a shorter drain), so that their calls still answer
  // UNAVAILABLE SHUTTING_DOWN before gRPC cuts off the calls left at the end.
  absl::Notification drained;
  const absl::Duration jobs_stop_after =
      absl::Seconds(drain_seconds) - std::min(absl::Seconds(2), absl::Seconds(drain_seconds) / 2);
  std::thread job_stopper([&drained, &log, &auth, jobs_stop_after] {
    if (!drained.WaitForNotificationWithTimeout(jobs_stop_after) &&
        jobs_stop_after > absl::ZeroDuration()) {
      spdlog::info(
          "drain nearly over: stopping backups, verifications, exports, reports, draws and "
          "imports");
    }
    auth.BeginStopping();
    (*log)->StopBackups();
  });
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(drain_seconds));
  server->Wait();
  drained.Notify();
  job_stopper.join();
  // No watch is left, but a dispatcher may still be reading the log for one that was
  // cancelled: stop them before the log closes.
  event_service.Stop();
  // The metrics server outlives the log: it must stop asking the log for its memory first
  // (a scrape holds the metrics' lock while it asks).
  metrics.SetLogMemorySource(nullptr);
  metrics.SetWatchCounters(nullptr);  // before the event service goes
  // Answers handed off the log's commit thread (racing retries, then receipts, which a
  // retry's answer may ask for): none is left once every call has finished, but they
  // read the log, so they are stopped before it closes.
  processor.Stop();
  receipts.Stop();
  log->reset();
  spdlog::info("stopped");
  return exit_code;
}

// Fuzz target: the server's config file (caseworkd --config, TOML or INI), read by CLI11.
//
// Feeds: the input as a config file to CLI::App::parse_from_stream, the path caseworkd's
// --config takes (CLI11's TOML/INI reader, then each value to its option). caseworkd
// builds its options inside main(), so this App declares options of the same kinds
// (strings, integers with CLI::Range, a CLI::IsMember choice, flags, a negatable flag, a
// file that must exist), under caseworkd's names. The input also goes to CLI11's INI
// reader on its own.
// Asserts: no crash and no sanitizer report; nothing but CLI::Error, or the
// std::out_of_range / std::invalid_argument of CLI11's own number conversions, leaves
// parsing (caseworkd turns those into a usage message and a non-zero exit status; any
// other exception would end the server with std::terminate); accepted integers are
// within their ranges. Finding: CLI11 2.3 reads the value of a negated flag with
// std::stoll, and its std::out_of_range ended caseworkd with std::terminate (corpus
// regression-negated-flag-out-of-range.toml; caseworkd.cc now catches it).
#include <sstream>
#include <stdexcept>

#include "CLI/CLI.hpp"
#include "fuzz/fuzz_support.h"

namespace {

struct Values {
  std::string listen, data_dir, principals, log_level = "info", metrics_listen, backup_dir;
  bool insecure_plaintext = false, record_principals = true;
  int receive_bytes = 4 << 20, concurrent_streams = 100, drain_seconds = 10;
  int closure_approvers_min = 2;
  int64_t absence_flag_days = 30;
};

void Declare(CLI::App& app, Values& v) {
  app.set_config("--config", "", "config file");
  app.add_option("--listen", v.listen);
  app.add_option("--data-dir", v.data_dir);
  app.add_option("--principals", v.principals)->check(CLI::ExistingFile);
  app.add_flag("--insecure-plaintext", v.insecure_plaintext);
  app.add_option("--max-receive-message-bytes", v.receive_bytes)->check(CLI::Range(4096, 4 << 20));
  app.add_option("--max-concurrent-streams", v.concurrent_streams)->check(CLI::Range(1, 10000));
  app.add_option("--drain-seconds", v.drain_seconds)->check(CLI::Range(0, 600));
  app.add_option("--metrics-listen", v.metrics_listen);
  app.add_option("--log-level", v.log_level)
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--closure-approvers-min", v.closure_approvers_min)->check(CLI::Range(1, 9));
  app.add_option("--backup-dir", v.backup_dir);
  app.add_flag("--record-principals,!--no-record-principals", v.record_principals);
  app.add_option("--absence-flag-days", v.absence_flag_days)->check(CLI::Range(1, 36500));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(casework::fuzz::AsText(data, size));
  CLI::App app{"caseworkd"};
  Values v;
  Declare(app, v);
  bool parsed = false;
  try {
    std::istringstream in(text);
    app.parse_from_stream(in);
    parsed = true;
  } catch (const CLI::Error&) {
  } catch (const std::out_of_range&) {
  } catch (const std::invalid_argument&) {
  }
  if (parsed) {
    FUZZ_CHECK(v.receive_bytes >= 4096 && v.receive_bytes <= (4 << 20) &&
                   v.concurrent_streams >= 1 && v.concurrent_streams <= 10000 &&
                   v.drain_seconds >= 0 && v.drain_seconds <= 600 && v.closure_approvers_min >= 1 &&
                   v.closure_approvers_min <= 9 && v.absence_flag_days >= 1 &&
                   v.absence_flag_days <= 36500,
               "accepted integers are within their ranges");
  }
  try {
    std::istringstream in(text);
    (void)CLI::ConfigINI().from_config(in);
  } catch (const CLI::Error&) {
  } catch (const std::out_of_range&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

// Runs the real caseworkd binary on 127.0.0.1 for end-to-end tests: start on a free
// port, wait until it serves, kill -9 or stop it, restart it on the same data folder.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace casework::testing {

class ServerProcess {
 public:
  // `data_dir` and `principals_file` must exist; `extra_args` are appended (a --listen among
  // them replaces 127.0.0.1:0).
  ServerProcess(std::filesystem::path data_dir, std::filesystem::path principals_file,
                std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // Starts the server and waits (bounded) until it listens; false with a message in
  // `error()` when it exited or did not come up (with its log, and every thread's stack
  // when gdb is installed).
  bool Start();
  // Whether Start passes --insecure-plaintext (default true); false for servers given
  // --tls-* flags in `extra_args`.
  void set_plaintext(bool plaintext) { plaintext_ = plaintext; }
  // Whether the server records its principals in the log (default false here, so that a
  // test's own events start at position 0; caseworkd's default is true).
  void set_record_principals(bool record) { record_principals_ = record; }
  // Where the server's stdout and stderr go (default: caseworkd.log in the data folder).
  void set_log_file(std::filesystem::path path) { log_file_ = std::move(path); }
  // SIGKILL and reap.
  void Kill();
  // SIGTERM, wait (bounded) and reap; returns the exit status (-1 on timeout, then kills,
  // with the threads' stacks in `error()`).
  int Stop();

  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] std::string log() const;
  // The Prometheus text of the server's /metrics (its port is in its log); "" when it
  // serves none or does not answer.
  [[nodiscard]] std::string MetricsText() const;

 private:
  std::filesystem::path data_dir_;
  std::filesystem::path principals_file_;
  std::vector<std::string> extra_args_;
  bool plaintext_ = true;
  bool record_principals_ = false;
  std::filesystem::path log_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string error_;
};

// Runs `caseworkd --verify-offline` on `data_dir` (the server stopped) and returns its exit
// status (0 intact, 3 not, 4 unreadable; -1 when it did not exit), with what it printed in
// `output`.
int VerifyOffline(const std::filesystem::path& data_dir, std::string* output);

// Stops `server` (SIGTERM) and verifies its log offline, indexes included: "" when it
// stopped cleanly and its log is intact, else what went wrong (with caseworkd's output).
std::string StopAndVerifyOffline(ServerProcess& server, const std::filesystem::path& data_dir);

// A fresh temporary folder, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Writes the principals used by end-to-end tests: one identity per role in the city
// "jiangcheng" (named after the role), "outsider" (lister of the county
// "jiangcheng/xihe"), "lister.b" (a second lister), "lister.reviewer" (both roles),
// "reviewer.township" (a reviewer below county level), "assister.inspector", one identity
// per role in the county "jiangcheng/xihe" ("<role>.xihe") and "approver.dongshan" (a
// county approver of "jiangcheng/dongshan").
std::filesystem::path WriteTestPrincipals(const std::filesystem::path& dir);

}  // namespace casework::testing

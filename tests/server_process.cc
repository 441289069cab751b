#include "tests/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "httplib.h"

#ifndef CASEWORKD_PATH
#error "CASEWORKD_PATH must name the caseworkd binary"
#endif

namespace casework::testing {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);

// Every thread's stack of a running process, through gdb when the machine has it (bounded
// by `timeout`): a server that hangs leaves evidence of where, not only that it did.
std::string ThreadStacks(pid_t pid) {
  if (access("/usr/bin/gdb", X_OK) != 0) return "(no /usr/bin/gdb here to show its threads)\n";
  const std::string command = "timeout 60 /usr/bin/gdb -p " + std::to_string(pid) +
                              " -batch -nx -ex 'thread apply all bt' 2>&1";
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n = 0;
    while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
    pclose(pipe);
  }
  return out;
}

}  // namespace

ServerProcess::ServerProcess(std::filesystem::path data_dir, std::filesystem::path principals,
                             std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)),
      principals_file_(std::move(principals)),
      extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

int VerifyOffline(const std::filesystem::path& data_dir, std::string* output) {
  const std::filesystem::path out = data_dir.parent_path() / "verify-offline.out";
  const std::string command = std::string(CASEWORKD_PATH) + " --verify-offline --data-dir '" +
                              data_dir.string() + "' > '" + out.string() + "' 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(out);
  std::stringstream s;
  s << in.rdbuf();
  *output = s.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string StopAndVerifyOffline(ServerProcess& server, const std::filesystem::path& data_dir) {
  if (const int stopped = server.Stop(); stopped != 0) {
    return "the server did not stop cleanly (" + std::to_string(stopped) + "): " + server.error();
  }
  std::string output;
  const int verified = VerifyOffline(data_dir, &output);
  if (verified != 0 ||
      output.find("the stream and request-id indexes match the events") == std::string::npos) {
    return "caseworkd --verify-offline exited " + std::to_string(verified) + ":\n" + output;
  }
  return "";
}

std::string ServerProcess::log() const {
  std::ifstream in(log_file_.empty() ? data_dir_ / "caseworkd.log" : log_file_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string ServerProcess::MetricsText() const {
  std::smatch m;
  const std::string text = log();
  if (!std::regex_search(text, m,
                         std::regex("metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics"))) {
    return "";
  }
  httplib::Client http("127.0.0.1", std::stoi(m[1]));
  http.set_connection_timeout(5);
  auto res = http.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

bool ServerProcess::Start() {
  const auto port_file = data_dir_ / "port";
  std::filesystem::remove(port_file);
  // 127.0.0.1 on a free port, unless `extra_args` give an address of their own.
  const bool listen_given =
      std::any_of(extra_args_.begin(), extra_args_.end(),
                  [](const std::string& a) { return a.starts_with("--listen"); });
  std::vector<std::string> args = {CASEWORKD_PATH,
                                   listen_given ? "" : "--listen=127.0.0.1:0",
                                   "--data-dir=" + data_dir_.string(),
                                   "--principals=" + principals_file_.string(),
                                   "--port-file=" + port_file.string(),
                                   "--metrics-listen=127.0.0.1:0"};
  if (plaintext_) args.push_back("--insecure-plaintext");
  if (!record_principals_) args.push_back("--no-record-principals");
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::erase(args, std::string());
  // Everything the child needs is made before fork(): this process has other threads (gRPC's,
  // the sanitizers'), and one of them may hold an allocator lock at the moment of the fork,
  // which the child would then wait for forever. So the child only calls async-signal-safe
  // functions (open, dup2, execv, _exit) and allocates nothing.
  const std::string log_file =
      (log_file_.empty() ? data_dir_ / "caseworkd.log" : log_file_).string();
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "caseworkd exited during start-up; its log:\n" + log();
      return false;
    }
    std::ifstream in(port_file);
    if (in >> port_ && port_ > 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  error_ = "caseworkd did not start within the time limit; its log:\n" + log() +
           "\nits threads:\n" + ThreadStacks(pid_);
  Kill();
  return false;
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  error_ = "caseworkd did not stop within the time limit; its threads:\n" + ThreadStacks(pid_);
  Kill();
  return -1;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "casework-XXXXXX").string();
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  if (std::getenv("CW_KEEP_TEST_DIR") != nullptr) return;  // for post-mortems
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path WriteTestPrincipals(const std::filesystem::path& dir) {
  const auto path = dir / "principals.json";
  std::ofstream out(path);
  out << R"({"principals": [
  {"id": "lister", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "reviewer", "roles": ["reviewer"], "jurisdiction": "jiangcheng"},
  {"id": "assister", "roles": ["assister"], "jurisdiction": "jiangcheng"},
  {"id": "inspector", "roles": ["inspector"], "jurisdiction": "jiangcheng"},
  {"id": "approver", "roles": ["approver"], "jurisdiction": "jiangcheng", "approval_level": "city"},
  {"id": "auditor", "roles": ["auditor"], "jurisdiction": "jiangcheng"},
  {"id": "admin", "roles": ["admin"], "jurisdiction": "jiangcheng"},
  {"id": "outsider", "roles": ["lister"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "lister.b", "roles": ["lister"], "jurisdiction": "jiangcheng"},
  {"id": "lister.reviewer", "roles": ["lister", "reviewer"], "jurisdiction": "jiangcheng"},
  {"id": "reviewer.township", "roles": ["reviewer"], "jurisdiction": "jiangcheng/dongshan/t01"},
  {"id": "assister.inspector", "roles": ["assister", "inspector"], "jurisdiction": "jiangcheng"},
  {"id": "lister.xihe", "roles": ["lister"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "reviewer.xihe", "roles": ["reviewer"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "assister.xihe", "roles": ["assister"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "inspector.xihe", "roles": ["inspector"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "approver.xihe", "roles": ["approver"], "jurisdiction": "jiangcheng/xihe", "approval_level": "county"},
  {"id": "auditor.xihe", "roles": ["auditor"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "admin.xihe", "roles": ["admin"], "jurisdiction": "jiangcheng/xihe"},
  {"id": "approver.dongshan", "roles": ["approver"], "jurisdiction": "jiangcheng/dongshan", "approval_level": "county"}
]})";
  return path;
}

}  // namespace casework::testing

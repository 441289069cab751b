// Replays a fuzz target without libFuzzer (docs/reliability.md, "Hostile input: fuzzing").
//
// The test build (GCC, ASan + UBSan) links each target's LLVMFuzzerTestOneInput with this
// driver into <target>_replay, and ctest runs it (label "fuzz"):
//   1. every file of the corpus directories given (fuzz/corpus/<target>/, the regression
//      inputs included) goes through the target once;
//   2. then a bounded number of cheap random mutations of those files (bit flips, bytes
//      set, truncations, erased, inserted and duplicated ranges, splices and insertions of
//      another entry, decimal numbers replaced), from a fixed seed, stopping early after
//      -max_seconds.
// No coverage guidance: this is a regression net that runs in CI in seconds, not a
// fuzzer (scripts/fuzz.sh runs libFuzzer). A crash, a FUZZ_CHECK or a sanitizer report
// aborts the process, so the test fails; before it dies the driver writes the input to
// -artifact (by default replay-crash-<target> in the working directory) and names it, so
// that `<target>_replay <file>` or the libFuzzer binary reproduces it.
//
//   <target>_replay [-seed=N] [-mutations=N] [-max_seconds=S] [-artifact=PATH] PATH...
//
// A PATH is a file or a directory (its regular files, recursively, in name order).
// CW_FUZZ_SEED in the environment overrides the seed.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
// Optional in a target, as with libFuzzer; absent, the weak reference is null.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
// Present only in a sanitizer build.
extern "C" void __sanitizer_set_death_callback(void (*callback)()) __attribute__((weak));

namespace {

using Bytes = std::string;

// The input being run, for the death report (read from a signal handler or the sanitizer's
// death callback: plain globals, written before each run).
const uint8_t* g_data = nullptr;
size_t g_size = 0;
char g_what[512] = "";
char g_artifact[1024] = "";
volatile std::sig_atomic_t g_reported = 0;

void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd, p, size);
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void WriteText(int fd, const char* text) { WriteAll(fd, text, std::strlen(text)); }

// Async-signal-safe: open, write, close.
void ReportInput() {
  if (g_reported || g_data == nullptr) return;
  g_reported = 1;
  const int fd = open(g_artifact, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    WriteAll(fd, g_data, g_size);
    close(fd);
  }
  WriteText(2, "\nreplay: FAILED on ");
  WriteText(2, g_what);
  WriteText(2, fd >= 0 ? "; the input is in " : "; could not write the input to ");
  WriteText(2, g_artifact);
  WriteText(2, "\n");
}

void OnAbort(int) {
  ReportInput();
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

// Runs one input from a heap block of exactly its size, so that ASan sees a read past it.
void Run(const Bytes& input) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[input.size() + (input.empty() ? 1 : 0)]);
  std::memcpy(copy.get(), input.data(), input.size());
  g_data = copy.get();
  g_size = input.size();
  LLVMFuzzerTestOneInput(copy.get(), input.size());
  g_data = nullptr;
}

// splitmix64: small, fast, and the same sequence everywhere for a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
  bool OneIn(size_t n) { return Below(n) == 0; }

 private:
  uint64_t state_;
};

// Bytes that mean something to the formats under test (framing, JSON, CSV, notes, TOML).
constexpr uint8_t kInterestingBytes[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, '\n', '\r', ' ',  '"',
                                         ',',  '=',  '[',  ']',  '{',  '}',  ':',  '\\', 0xE2};
constexpr const char* kInterestingNumbers[] = {"0",
                                               "1",
                                               "-1",
                                               "2",
                                               "255",
                                               "256",
                                               "65536",
                                               "2147483647",
                                               "-2147483648",
                                               "4294967296",
                                               "9223372036854775807",
                                               "-9223372036854775808",
                                               "9223372036854775808",
                                               "18446744073709551616",
                                               "99999999999999999999999",
                                               "1e9",
                                               "01",
                                               "+1",
                                               ""};

size_t ChunkLength(Rng& rng, size_t max) {
  if (max == 0) return 0;
  // Mostly short ranges, sometimes long ones.
  return 1 + (rng.OneIn(4) ? rng.Below(max) : rng.Below(std::min<size_t>(max, 8)));
}

// Replaces the run of decimal digits around a random position with another number.
void ReplaceNumber(Rng& rng, Bytes& b) {
  std::vector<size_t> digits;
  for (size_t i = 0; i < b.size(); ++i) {
    if (b[i] >= '0' && b[i] <= '9' && (i == 0 || b[i - 1] < '0' || b[i - 1] > '9')) {
      digits.push_back(i);
    }
  }
  if (digits.empty()) return;
  const size_t begin = digits[rng.Below(digits.size())];
  size_t end = begin;
  while (end < b.size() && b[end] >= '0' && b[end] <= '9') ++end;
  std::string number;
  if (rng.OneIn(2)) {
    number = kInterestingNumbers[rng.Below(std::size(kInterestingNumbers))];
  } else {
    number = std::to_string(rng.Next() >> rng.Below(64));
  }
  b.replace(begin, end - begin, number);
}

// One mutation of `b`; `other` is another corpus entry for splices.
void MutateOnce(Rng& rng, Bytes& b, const Bytes& other, size_t max_size) {
  switch (rng.Below(11)) {
    case 0:  // flip a bit
      if (!b.empty()) b[rng.Below(b.size())] ^= static_cast<char>(1u << rng.Below(8));
      break;
    case 1:  // set a byte to a random or meaningful value
      if (!b.empty()) {
        b[rng.Below(b.size())] = static_cast<char>(
            rng.OneIn(2) ? rng.Below(256)
                         : kInterestingBytes[rng.Below(std::size(kInterestingBytes))]);
      }
      break;
    case 2:  // truncate the tail
      b.resize(rng.Below(b.size() + 1));
      break;
    case 3:  // drop a head
      b.erase(0, rng.Below(b.size() + 1));
      break;
    case 4: {  // erase a range
      if (b.empty()) break;
      const size_t at = rng.Below(b.size());
      b.erase(at, ChunkLength(rng, b.size() - at));
      break;
    }
    case 5: {  // insert random bytes
      const size_t at = rng.Below(b.size() + 1);
      std::string bytes(1 + rng.Below(8), '\0');
      for (char& c : bytes) c = static_cast<char>(rng.Below(256));
      b.insert(at, bytes);
      break;
    }
    case 6: {  // insert a repeated byte
      const size_t at = rng.Below(b.size() + 1);
      b.insert(at, 1 + rng.Below(rng.OneIn(8) ? 4096 : 16),
               static_cast<char>(kInterestingBytes[rng.Below(std::size(kInterestingBytes))]));
      break;
    }
    case 7: {  // duplicate a range of itself elsewhere
      if (b.empty()) break;
      const size_t from = rng.Below(b.size());
      const std::string chunk = b.substr(from, ChunkLength(rng, b.size() - from));
      b.insert(rng.Below(b.size() + 1), chunk);
      break;
    }
    case 8: {  // splice: a head of this entry, a tail of another
      const size_t keep = rng.Below(b.size() + 1);
      b = b.substr(0, keep) + other.substr(rng.Below(other.size() + 1));
      break;
    }
    case 9: {  // insert a range of another entry
      if (other.empty()) break;
      const size_t from = rng.Below(other.size());
      b.insert(rng.Below(b.size() + 1), other.substr(from, ChunkLength(rng, other.size() - from)));
      break;
    }
    default:
      ReplaceNumber(rng, b);
      break;
  }
  if (b.size() > max_size) b.resize(max_size);
}

bool ReadFile(const std::filesystem::path& path, Bytes* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// "-name=value": the value, or nullptr when `arg` is another flag.
const char* Flag(const char* arg, const char* name) {
  const size_t n = std::strlen(name);
  if (arg[0] != '-' || std::strncmp(arg + 1, name, n) != 0 || arg[1 + n] != '=') return nullptr;
  return arg + 2 + n;
}

int Usage(const char* self) {
  std::fprintf(stderr,
               "usage: %s [-seed=N] [-mutations=N] [-max_seconds=S] [-artifact=PATH] PATH...\n",
               self);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string target = std::filesystem::path(argv[0]).filename().string();
  uint64_t seed = 0x6361736577726B31ULL;  // "casewrk1"
  long mutations = 20000;
  double max_seconds = 5;
  std::string artifact = "replay-crash-" + target;
  std::vector<std::filesystem::path> paths;
  for (int i = 1; i < argc; ++i) {
    if (const char* v = Flag(argv[i], "seed")) {
      seed = std::strtoull(v, nullptr, 0);
    } else if (const char* v = Flag(argv[i], "mutations")) {
      mutations = std::strtol(v, nullptr, 10);
    } else if (const char* v = Flag(argv[i], "max_seconds")) {
      max_seconds = std::strtod(v, nullptr);
    } else if (const char* v = Flag(argv[i], "artifact")) {
      artifact = v;
    } else if (argv[i][0] == '-') {
      return Usage(argv[0]);
    } else {
      paths.emplace_back(argv[i]);
    }
  }
  if (const char* v = std::getenv("CW_FUZZ_SEED"); v != nullptr && *v != '\0') {
    seed = std::strtoull(v, nullptr, 0);
  }
  if (paths.empty()) return Usage(argv[0]);
  std::snprintf(g_artifact, sizeof(g_artifact), "%s", artifact.c_str());

  // Inputs, in a fixed order.
  std::vector<std::filesystem::path> files;
  for (const std::filesystem::path& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else if (std::filesystem::is_regular_file(p, ec)) {
      files.push_back(p);
    } else {
      std::fprintf(stderr, "%s: no such file or directory: %s\n", target.c_str(), p.c_str());
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "%s: no inputs\n", target.c_str());
    return 2;
  }
  std::vector<Bytes> corpus(files.size());
  size_t largest = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!ReadFile(files[i], &corpus[i])) {
      std::fprintf(stderr, "%s: cannot read %s\n", target.c_str(), files[i].c_str());
      return 2;
    }
    largest = std::max(largest, corpus[i].size());
  }

  std::signal(SIGABRT, OnAbort);
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(ReportInput);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  const auto start = std::chrono::steady_clock::now();
  const auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::printf("%s: seed 0x%016llx, %zu corpus files, up to %ld mutations or %.1f s\n",
              target.c_str(), static_cast<unsigned long long>(seed), files.size(), mutations,
              max_seconds);
  std::fflush(stdout);

  for (size_t i = 0; i < corpus.size(); ++i) {
    std::snprintf(g_what, sizeof(g_what), "corpus file %s", files[i].c_str());
    Run(corpus[i]);
  }
  const double replay_seconds = elapsed();

  // Mutants: mostly one to four stacked mutations of an entry, sometimes more.
  Rng rng(seed);
  const size_t max_size = std::max<size_t>(4096, 2 * largest);
  long done = 0;
  Bytes input;
  for (; done < mutations; ++done) {
    if ((done & 63) == 0 && elapsed() >= max_seconds) break;
    const size_t from = rng.Below(corpus.size());
    input = corpus[from];
    const size_t count = rng.OneIn(16) ? 5 + rng.Below(12) : 1 + rng.Below(4);
    for (size_t m = 0; m < count; ++m) {
      MutateOnce(rng, input, corpus[rng.Below(corpus.size())], max_size);
    }
    std::snprintf(g_what, sizeof(g_what), "mutation %ld (seed 0x%016llx, of corpus file %s)", done,
                  static_cast<unsigned long long>(seed), files[from].c_str());
    Run(input);
  }

  std::printf("%s: ok: %zu corpus files in %.2f s, %ld of %ld mutations in %.2f s\n",
              target.c_str(), files.size(), replay_seconds, done, mutations,
              elapsed() - replay_seconds);
  return 0;
}

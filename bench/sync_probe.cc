// The cost of one synced write on this disk, two ways (docs/benchmarks.md, "a WAL in
// zero-filled space"): `pwrite` of N bytes then `fdatasync`, repeated, into a file that
// grows with each write (what an appended WAL does) and into a file of zeros written and
// synced beforehand (what the log's WAL does, store/zero_filled_wal.h). Prints p50, p90
// and p99 of each.
//
//   casework-sync-probe [--dir DIR] [--writes 2000] [--bytes 3000] [--rounds 3]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace {

struct Percentiles {
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
};

// Microseconds of each pwrite + fdatasync; `zeros`: the file holds zeros beforehand.
Percentiles Probe(const std::string& path, bool zeros, int writes, size_t bytes) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  if (zeros) {
    const std::string chunk(1 << 20, '\0');
    const size_t total = static_cast<size_t>(writes) * bytes + chunk.size();
    for (size_t written = 0; written < total; written += chunk.size()) {
      if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) {
        std::perror("writing zeros");
        std::exit(1);
      }
    }
    if (::fsync(fd) != 0) std::exit(1);
  }
  const std::string record(bytes, 'x');
  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(writes));
  off_t offset = 0;
  for (int i = 0; i < writes; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (::pwrite(fd, record.data(), record.size(), offset) != static_cast<ssize_t>(bytes) ||
        ::fdatasync(fd) != 0) {
      std::perror("pwrite or fdatasync");
      std::exit(1);
    }
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    offset += static_cast<off_t>(bytes);
  }
  ::close(fd);
  ::unlink(path.c_str());
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) { return micros[static_cast<size_t>(q * (micros.size() - 1))]; };
  return Percentiles{at(0.5), at(0.9), at(0.99)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("the cost of a synced write: appended, and over zeros written beforehand");
  std::string dir = ".";
  int writes = 2000;
  size_t bytes = 3000;
  int rounds = 3;
  app.add_option("--dir", dir, "a directory on the disk to measure")->capture_default_str();
  app.add_option("--writes", writes, "synced writes per probe")->capture_default_str();
  app.add_option("--bytes", bytes, "bytes per write")->capture_default_str();
  app.add_option("--rounds", rounds, "probes of each kind, alternating")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const std::string path = dir + "/casework-sync-probe.dat";
  for (int round = 1; round <= rounds; ++round) {
    for (const bool zeros : {false, true}) {
      const Percentiles p = Probe(path, zeros, writes, bytes);
      std::printf("round %d %-11s p50 %6.1f us  p90 %6.1f us  p99 %6.1f us\n", round,
                  zeros ? "over zeros" : "appended", p.p50, p.p90, p.p99);
    }
  }
  return 0;
}

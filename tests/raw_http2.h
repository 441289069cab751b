// A raw HTTP/2 client over a plain TCP connection to 127.0.0.1, for tests that must send
// what gRPC's own client never sends (pings without calls, streams reset at once): frame
// bytes, a minimal HPACK encoding (literals without indexing, no Huffman), and a
// connection that sends bytes and reads frames with deadlines.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace casework::testing {

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
};

inline constexpr uint8_t kData = 0x0;
inline constexpr uint8_t kHeaders = 0x1;
inline constexpr uint8_t kRstStream = 0x3;
inline constexpr uint8_t kSettings = 0x4;
inline constexpr uint8_t kPing = 0x6;
inline constexpr uint8_t kGoaway = 0x7;
inline constexpr uint8_t kWindowUpdate = 0x8;
inline constexpr uint8_t kAck = 0x1;
inline constexpr uint8_t kEndStream = 0x1;
inline constexpr uint8_t kEndHeaders = 0x4;
inline constexpr uint32_t kCancel = 0x8;
inline constexpr uint32_t kEnhanceYourCalm = 0xb;

// The client connection preface and an empty SETTINGS frame.
[[nodiscard]] std::string ClientPreface();

// A SETTINGS frame setting SETTINGS_INITIAL_WINDOW_SIZE (the window of each new stream).
[[nodiscard]] std::string InitialWindowSettings(uint32_t bytes);

// A WINDOW_UPDATE frame granting `increment` more bytes on `stream` (0: the connection).
[[nodiscard]] std::string WindowUpdate(uint32_t stream, uint32_t increment);

// One frame: 9-byte header (length, type, flags, stream) and the payload.
[[nodiscard]] std::string FrameBytes(uint8_t type, uint8_t flags, const std::string& payload,
                                     uint32_t stream = 0);

// A header block (HPACK, RFC 7541): every field a literal without indexing, with a new
// name, no Huffman coding. Pseudo-headers first, as given.
[[nodiscard]] std::string HeaderBlock(
    const std::vector<std::pair<std::string, std::string>>& fields);

// The header block of a unary gRPC request to `path` (e.g. "/pkg.Service/Method") on
// `authority`, with extra fields (e.g. {"x-casework-identity", "auditor"}).
[[nodiscard]] std::string GrpcRequestHeaders(
    const std::string& authority, const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& extra);

class RawConnection {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }
  // Sends every byte; false when the connection failed.
  bool Send(const std::string& bytes);
  // The next frame, or nullopt when the peer closed or nothing came by `deadline`.
  std::optional<Frame> Read(Clock::time_point deadline);
  // True once the peer has closed the connection (bounded by `deadline`).
  bool ClosedBy(Clock::time_point deadline);
  // Reads and drops whatever has arrived, without waiting; false once the peer closed.
  bool Drain();
  // True once a read found the connection closed by the peer.
  [[nodiscard]] bool closed() const { return closed_; }

 private:
  // 1: read some bytes; 0: the peer closed; -1: timeout or error.
  int Fill(Clock::time_point deadline);
  // True once n bytes wait in the buffer (bounded by `deadline`).
  bool Await(size_t n, Clock::time_point deadline);
  void Consume(size_t n);

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
  size_t consumed_ = 0;  // bytes at the front of buffer_ already taken
};

}  // namespace casework::testing

#include "tests/raw_http2.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace casework::testing {
namespace {

// An HPACK integer with an `prefix_bits`-bit prefix, the byte's other bits `first`.
void AppendInteger(std::string* out, uint8_t first, int prefix_bits, size_t value) {
  const size_t max = (size_t{1} << prefix_bits) - 1;
  if (value < max) {
    out->push_back(static_cast<char>(first | value));
    return;
  }
  out->push_back(static_cast<char>(first | max));
  value -= max;
  while (value >= 128) {
    out->push_back(static_cast<char>((value % 128) | 0x80));
    value /= 128;
  }
  out->push_back(static_cast<char>(value));
}

void AppendString(std::string* out, const std::string& s) {
  AppendInteger(out, 0x00, 7, s.size());  // H = 0: no Huffman coding
  out->append(s);
}

}  // namespace

std::string ClientPreface() {
  return std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + FrameBytes(kSettings, 0, "");
}

namespace {

void AppendU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

}  // namespace

std::string InitialWindowSettings(uint32_t bytes) {
  std::string payload{'\0', '\x04'};  // SETTINGS_INITIAL_WINDOW_SIZE
  AppendU32(&payload, bytes);
  return FrameBytes(kSettings, 0, payload);
}

std::string WindowUpdate(uint32_t stream, uint32_t increment) {
  std::string payload;
  AppendU32(&payload, increment & 0x7fffffffu);
  return FrameBytes(kWindowUpdate, 0, payload, stream);
}

std::string FrameBytes(uint8_t type, uint8_t flags, const std::string& payload, uint32_t stream) {
  std::string out;
  const auto n = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>((stream >> 24) & 0x7f));
  out.push_back(static_cast<char>(stream >> 16));
  out.push_back(static_cast<char>(stream >> 8));
  out.push_back(static_cast<char>(stream));
  return out + payload;
}

std::string HeaderBlock(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    out.push_back('\0');  // literal header field without indexing, new name
    AppendString(&out, name);
    AppendString(&out, value);
  }
  return out;
}

std::string GrpcRequestHeaders(const std::string& authority, const std::string& path,
                               const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {":method", "POST"},
      {":scheme", "http"},
      {":path", path},
      {":authority", authority},
      {"content-type", "application/grpc"},
      {"te", "trailers"},
  };
  fields.insert(fields.end(), extra.begin(), extra.end());
  return HeaderBlock(fields);
}

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::Send(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::optional<Frame> RawConnection::Read(Clock::time_point deadline) {
  // Takes nothing from the buffer until the whole frame is there, so a frame that a
  // deadline cuts short is read whole by the next call.
  if (!Await(9, deadline)) return std::nullopt;
  const auto b = [&](int i) {
    return static_cast<uint8_t>(buffer_[consumed_ + static_cast<size_t>(i)]);
  };
  Frame f;
  const size_t length = (size_t{b(0)} << 16) | (size_t{b(1)} << 8) | b(2);
  f.type = b(3);
  f.flags = b(4);
  f.stream =
      ((uint32_t{b(5)} & 0x7f) << 24) | (uint32_t{b(6)} << 16) | (uint32_t{b(7)} << 8) | b(8);
  if (!Await(9 + length, deadline)) return std::nullopt;
  f.payload.assign(buffer_, consumed_ + 9, length);
  Consume(9 + length);
  return f;
}

bool RawConnection::ClosedBy(Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    if (buffer_.size() > consumed_) {
      buffer_.clear();
      consumed_ = 0;
      continue;
    }
    const int r = Fill(deadline);
    if (r == 0) return true;
    if (r < 0) return false;
  }
  return false;
}

bool RawConnection::Drain() {
  for (;;) {
    char chunk[65536];
    const ssize_t n = recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

int RawConnection::Fill(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return -1;
  pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
  char chunk[65536];
  const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) {
    closed_ = true;
    return 0;
  }
  if (n < 0) return -1;
  buffer_.append(chunk, static_cast<size_t>(n));
  return 1;
}

bool RawConnection::Await(size_t n, Clock::time_point deadline) {
  while (buffer_.size() - consumed_ < n) {
    if (consumed_ > 0) {
      buffer_.erase(0, consumed_);
      consumed_ = 0;
    }
    if (Fill(deadline) <= 0) return false;
  }
  return true;
}

void RawConnection::Consume(size_t n) {
  consumed_ += n;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
}

}  // namespace casework::testing

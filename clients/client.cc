#include "clients/client.h"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace casework::client {

namespace {

// Reads a small PEM file; empty with `error` set when it cannot.
std::string ReadPemFile(const std::string& path, std::string* error) {
  constexpr std::streamsize kBytesMax = 1 << 20;
  std::ifstream in(path, std::ios::binary);
  std::string text(static_cast<size_t>(kBytesMax), '\0');
  if (in) in.read(text.data(), kBytesMax);
  text.resize(in ? static_cast<size_t>(kBytesMax) : static_cast<size_t>(in.gcount()));
  if (text.find("-----BEGIN ") == std::string::npos && error->empty()) {
    *error = "cannot read a PEM file at " + path;
  }
  return text;
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options_.tls_ca.empty() || !options_.tls_cert.empty() || !options_.tls_key.empty() ||
      !options_.tls_server_name.empty()) {
    grpc::SslCredentialsOptions ssl;
    if (options_.tls_ca.empty()) {
      credentials_error_ =
          "--tls-cert, --tls-key and --tls-server-name need --tls-ca (the CA of the server)";
    } else {
      ssl.pem_root_certs = ReadPemFile(options_.tls_ca, &credentials_error_);
    }
    if (!options_.tls_cert.empty() || !options_.tls_key.empty()) {
      ssl.pem_cert_chain = ReadPemFile(options_.tls_cert, &credentials_error_);
      // A private key readable by others is a key others may have: refused, as the
      // signing key and the server's key are.
      struct stat st {};
      if (stat(options_.tls_key.c_str(), &st) == 0 && (st.st_mode & 077) != 0 &&
          credentials_error_.empty()) {
        credentials_error_ =
            "--tls-key " + options_.tls_key + " is readable by group or others; chmod 600 it";
      }
      ssl.pem_private_key = ReadPemFile(options_.tls_key, &credentials_error_);
    }
    if (!options_.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options_.tls_server_name);
    }
    if (credentials_error_.empty()) {
      credentials = grpc::SslCredentials(ssl);
    } else {
      // Fail closed: TLS was asked for and cannot be set up; never fall back to plaintext.
      credentials = grpc::SslCredentials(grpc::SslCredentialsOptions{.pem_root_certs = "-"});
    }
  }
  channel_ = grpc::CreateCustomChannel(options_.server, credentials, args);
  cases_ = casework::v1::CaseService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.identity.empty()) context->AddMetadata("x-casework-identity", options_.identity);
  context->set_deadline(std::chrono::system_clock::now() + options_.timeout);
  return context;
}

std::unique_ptr<grpc::ClientContext> Client::NewLongContext() const {
  auto context = NewContext();
  context->set_deadline(options_.long_call_timeout.count() > 0
                            ? std::chrono::system_clock::now() + options_.long_call_timeout
                            : std::chrono::system_clock::time_point::max());
  return context;
}

ErrorDetails DecodeError(const grpc::Status& status) {
  ErrorDetails out;
  google::rpc::Status rich;
  if (status.error_details().empty() || !rich.ParseFromString(status.error_details())) return out;
  for (const auto& any : rich.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::LocalizedMessage localized;
    if (any.UnpackTo(&info)) {
      out.reason = info.reason();
      auto it = info.metadata().find("field");
      if (it != info.metadata().end()) out.field = it->second;
    } else if (any.UnpackTo(&localized) && localized.locale() == "zh-CN") {
      out.message_zh = localized.message();
    }
  }
  return out;
}

bool IsConnectionFailure(const grpc::Status& status) {
  // An UNAVAILABLE that carries a reason was sent by caseworkd itself (read-only, shutting
  // down): the server was reached and refused.
  return (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
          DecodeError(status).reason.empty()) ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::string NewRequestId() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) std::abort();
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

}  // namespace casework::client

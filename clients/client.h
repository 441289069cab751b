// The C++ client library: a channel to caseworkd and the caller's identity, plus helpers
// that turn a gRPC status into what a person or a script needs.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "casework/v1/case_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace casework::client {

struct ClientOptions {
  // host:port of caseworkd.
  std::string server = "127.0.0.1:7070";
  // The identity to act as (plaintext mode: sent as x-casework-identity; with mutual
  // TLS the server takes the identity from the client certificate and ignores this).
  std::string identity;
  // Mutual TLS: when tls_ca is set the channel uses TLS, trusting only these CA
  // certificates (PEM file), and presents tls_cert/tls_key (PEM files) as the client
  // certificate. Without tls_ca the channel is plaintext.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Overrides the name checked in the server's certificate (default: the host of server).
  std::string tls_server_name;
  // Per-call deadline.
  std::chrono::milliseconds timeout{10000};
  // Deadline of a call that may run long (a report or verification over the whole log, an
  // export, a backup); zero: none, the caller waits as long as it takes.
  std::chrono::milliseconds long_call_timeout{0};
};

class Client {
 public:
  explicit Client(ClientOptions options);

  // A context with the identity header and the deadline set.
  [[nodiscard]] std::unique_ptr<grpc::ClientContext> NewContext() const;
  // The same for a call that may run long: its deadline is long_call_timeout, if any.
  [[nodiscard]] std::unique_ptr<grpc::ClientContext> NewLongContext() const;

  [[nodiscard]] casework::v1::CaseService::Stub& cases() { return *cases_; }
  [[nodiscard]] const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  [[nodiscard]] const ClientOptions& options() const { return options_; }
  // Not OK when a TLS file could not be read; the channel then never connects (it
  // never falls back to plaintext).
  [[nodiscard]] const std::string& credentials_error() const { return credentials_error_; }

 private:
  ClientOptions options_;
  std::string credentials_error_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<casework::v1::CaseService::Stub> cases_;
};

// What a failed call means to the caller.
struct ErrorDetails {
  // google.rpc.ErrorInfo.reason, e.g. "INSPECTOR_MUST_NOT_HAVE_ASSISTED"; empty if none.
  std::string reason;
  // The offending field, from the ErrorInfo metadata.
  std::string field;
  // The Chinese message (google.rpc.LocalizedMessage zh-CN), if sent.
  std::string message_zh;
};

// Decodes the google.rpc.Status details of a failed call.
[[nodiscard]] ErrorDetails DecodeError(const grpc::Status& status);

// True when no answer came from the server (connect failure, connection lost, deadline
// before an answer): the exit code tells this apart from a refusal. An UNAVAILABLE the
// server sent with a reason (read-only, shutting down) is an answer.
[[nodiscard]] bool IsConnectionFailure(const grpc::Status& status);

// A fresh random request id (UUID v4 text).
[[nodiscard]] std::string NewRequestId();

}  // namespace casework::client

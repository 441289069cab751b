// casectl's approver-key commands: keygen, sign, sign-off, admin register-key and
// admin revoke-key. Registered on the application by AddKeyCommands; the rest of casectl
// supplies the client, the output mode and the error reporting through the hooks.
#pragma once

#include <functional>
#include <memory>

#include "CLI/CLI.hpp"
#include "casework/v1/case_service.pb.h"
#include "clients/client.h"

namespace casework::client {

struct KeyCommandHooks {
  // A client for the globally configured server and identity.
  std::function<std::unique_ptr<Client>()> client;
  // --json was given (read when a command runs).
  const bool* json = nullptr;
  // Where a command leaves casectl's exit code.
  int* exit_code = nullptr;
  // Prints a failed call and returns the exit code for it.
  std::function<int(const grpc::Status&)> report_error;
  // Prints a command's result (or its failure) and returns the exit code.
  std::function<int(const grpc::Status&, const casework::v1::CaseCommandResponse&)> print_result;
};

void AddKeyCommands(CLI::App* app, KeyCommandHooks hooks);

}  // namespace casework::client

// casectl's audit subcommands: watch, verify, as-of, proof, export, verify-export.
#pragma once

#include <functional>
#include <memory>

#include "CLI/CLI.hpp"
#include "clients/client.h"
#include "grpcpp/support/status.h"

namespace casework::client {

struct AuditCommandContext {
  // A connected client (made when a command runs).
  std::function<std::unique_ptr<Client>()> client;
  const bool* json = nullptr;
  int* exit_code = nullptr;
  // Prints a failed call and returns the exit code for it.
  std::function<int(const grpc::Status&)> report_error;
};

// Registers the subcommands on `app`. Exit codes: as casectl's, and 4 when a
// verification ran and found a problem.
void AddAuditCommands(CLI::App* app, AuditCommandContext context);

}  // namespace casework::client

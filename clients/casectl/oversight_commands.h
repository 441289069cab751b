// casectl's oversight subcommands: registry import, report, flags, accountability,
// sample, county-talk, county-notice.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "clients/casectl/audit_commands.h"
#include "clients/client.h"

namespace casework::client {

// Registers the subcommands on `app` (same hooks as the audit commands).
void AddOversightCommands(CLI::App* app, AuditCommandContext context);

struct RegistryImportTotals {
  int64_t rows = 0;
  int64_t requests = 0;
  int64_t imported = 0;
  int64_t updated = 0;
  int64_t unchanged = 0;
  // Counties the server recorded or answered for, and those of them it answered only from
  // an earlier import with the same request id (nothing recorded there now).
  std::set<std::string> counties;
  std::set<std::string> replayed_counties;
  // Requests answered whole from an earlier import with the same request id.
  int64_t replayed_requests = 0;
  // Counties some request recorded rows in now.
  int64_t recorded_counties = 0;
};

// Imports a registry file through ImportRegistry: checks it locally first (a bad row is
// reported with its line before anything is sent), then sends it grouped by county in
// requests of at most ~192 KiB, request ids "<request_id>/<n>". Running it again with
// the same file and request id records nothing new. On a local error sets `error` (the
// English message, then the Chinese one on an indented line of its own) and returns
// INVALID_ARGUMENT without calling the server.
grpc::Status ImportRegistryFile(Client& admin, std::string_view csv, const std::string& request_id,
                                RegistryImportTotals* totals, std::string* error);

}  // namespace casework::client

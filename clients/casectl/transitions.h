// casectl's remaining transition commands: amend, replace, talk and notice. Registered on
// the application by AddTransitionCommands with the same hooks as the key commands.
#pragma once

#include "clients/casectl/keys.h"

namespace casework::client {

void AddTransitionCommands(CLI::App* app, KeyCommandHooks hooks);

}  // namespace casework::client

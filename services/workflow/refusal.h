// Refusals: a command the rules do not admit, as a value with a stable reason.
#pragma once

#include <string>
#include <string_view>

namespace casework::workflow {

// The category a refusal maps to in the shell (one gRPC status each, DESIGN.md).
enum class Category {
  kInvalidArgument,     // a bad field: INVALID_ARGUMENT
  kFailedPrecondition,  // not in this state: FAILED_PRECONDITION
  kPermissionDenied,    // role, jurisdiction, separation of duties: PERMISSION_DENIED
  kAborted,             // stale expected version: ABORTED
  kNotFound,            // no such case: NOT_FOUND
  kAlreadyExists,       // the case exists: ALREADY_EXISTS
};

// Why a command is refused, in order of precedence (checked first = listed first).
// DO NOT CHANGE the codes ReasonCode returns: clients match on them.
enum class Reason {
  kStaleExpectedVersion,
  // ... one value per rule; see reasons in refusal.cc.
};

// The stable code of a reason: google.rpc.ErrorInfo.reason, UPPER_SNAKE_CASE, e.g.
// "INSPECTOR_MUST_NOT_HAVE_ASSISTED".
[[nodiscard]] std::string_view ReasonCode(Reason reason);

// A refusal. `field` names the offending request field where there is one; the messages
// say what would make the call succeed, in English and Chinese.
struct Refusal {
  Reason reason;
  Category category = Category::kFailedPrecondition;
  std::string field;
  std::string message_en;
  std::string message_zh;
};

}  // namespace casework::workflow

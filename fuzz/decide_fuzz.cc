// Fuzz target: the pure core's decision on hostile commands (services/workflow/decider.h).
//
// Feeds: a sequence of parsed casework.v1.Command messages (format in decide_input.h),
// each from an actor of a fixed cast at an advancing clock. Like the shell, each command
// is decided against the state of the case it names (a default Case while that case does
// not exist), and the events of an acceptance are folded into that state.
// Asserts: no crash and no sanitizer report: Decide never fails other than by a refusal
// on any parsed command, in any state reached by accepted commands; the events it emits
// always fold (Evolve checks every event against its state and aborts on an impossible
// one, so an abort here means Decide emitted an event its own fold calls impossible);
// they carry the case's next versions; folding a case's events again from scratch gives
// the same state (the fold is deterministic).
#include <map>

#include "casework/v1/case.pb.h"
#include "casework/v1/events.pb.h"
#include "fuzz/decide_input.h"
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "services/workflow/decider.h"
#include "services/workflow/statement.h"

namespace {

namespace v1 = ::casework::v1;
namespace workflow = ::casework::workflow;
using casework::fuzz::DeterministicBytes;

// The case a command acts on, as the shell finds it: CreateCase names its case id, every
// other request a resource name "cases/{case_id}" (the shell refuses other names before
// the core; those commands are decided here against the state of "" all the same).
std::string CaseKey(const v1::Command& command) {
  if (command.has_create_case()) return command.create_case().case_id();
  const google::protobuf::Message* request = nullptr;
  const auto* reflection = command.GetReflection();
  const auto* oneof = command.GetDescriptor()->FindOneofByName("kind");
  if (const auto* field = reflection->GetOneofFieldDescriptor(command, oneof)) {
    request = &reflection->GetMessage(command, field);
  }
  if (request == nullptr) return "";
  const auto* name_field = request->GetDescriptor()->FindFieldByName("name");
  if (name_field == nullptr) return "";
  const std::string name = request->GetReflection()->GetString(*request, name_field);
  constexpr std::string_view kPrefix = "cases/";
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) return "";
  std::string id = name.substr(kPrefix.size());
  return id.find('/') == std::string::npos ? id : "";
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  google::protobuf::io::CodedInputStream in(data, static_cast<int>(size));
  static const workflow::Policy policy;
  std::map<std::string, v1::Case> cases;
  std::map<std::string, std::vector<v1::Event>> histories;
  int64_t now = casework::fuzz::kDecideStartMicros;
  casework::fuzz::Step step;
  for (size_t n = 0; n < casework::fuzz::kDecideStepsMax && ReadStep(&in, &step); ++n) {
    now += step.months * casework::fuzz::kMonthMicros + casework::fuzz::kHourMicros;
    if (!step.parsed) continue;
    workflow::Context context{.actor = *step.actor, .now_micros = now, .policy = &policy};
    if (step.actor->HasRole(workflow::Role::kApprover)) {
      // As the shell sets them once the sign-off's signature verified with this key.
      context.verified_key_id = "key-" + step.actor->id;
      context.verified_level = step.actor->approval_level;
      context.verified_latest_leaf_hash = std::string(workflow::kLeafHashBytes, '\x5a');
    }
    const std::string key = CaseKey(step.command);
    v1::Case& state = cases[key];
    workflow::Decision decision = workflow::Decide(state, step.command, context);
    auto* events = std::get_if<workflow::Events>(&decision);
    if (events == nullptr) continue;
    const int64_t before = state.version();
    for (const v1::Event& event : *events) {
      workflow::Evolve(state, event);  // aborts on an event impossible in its state
      histories[key].push_back(event);
    }
    FUZZ_CHECK(state.version() == before + static_cast<int64_t>(events->size()),
               "an acceptance moves the case by one version per event");
  }
  for (const auto& [key, history] : histories) {
    FUZZ_CHECK(DeterministicBytes(workflow::Replay(history)) == DeterministicBytes(cases[key]),
               "replaying a case's events gives the state built step by step");
  }
  return 0;
}

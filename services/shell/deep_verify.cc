#include "services/shell/deep_verify.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/shell/ed25519.h"
#include "services/shell/principals.h"
#include "services/workflow/decider.h"
#include "services/workflow/names.h"
#include "services/workflow/readmit.h"
#include "services/workflow/statement.h"

namespace casework::shell {
namespace {

namespace v1 = ::casework::v1;

constexpr std::string_view kCasePrefix = "cases/";
constexpr std::string_view kApproverPrefix = "approvers/";
constexpr std::string_view kRegistryPrefix = "registry/";
constexpr std::string_view kCountyPrefix = "counties/";
constexpr std::string_view kSamplePrefix = "samples/";
constexpr std::string_view kImportPrefix = "registry-imports/";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The version of a principals record: hex of the first 8 bytes of SHA-256 of the
// deterministic serialization of its principals alone (principals.h).
std::string PrincipalsVersionOf(const casework::v1::PrincipalsRecorded& recorded) {
  casework::v1::PrincipalsRecorded content;
  *content.mutable_principals() = recorded.principals();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    content.SerializeToCodedStream(&coded);
  }
  unsigned char digest[32];
  EVP_Digest(bytes.data(), bytes.size(), digest, nullptr, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

// The first two segments of a jurisdiction path ("city/county").
std::string CountyOf(const std::string& jurisdiction) {
  const size_t first = jurisdiction.find('/');
  if (first == std::string::npos) return jurisdiction;
  const size_t second = jurisdiction.find('/', first + 1);
  return second == std::string::npos ? jurisdiction : jurisdiction.substr(0, second);
}

}  // namespace

void DeepVerifier::AddKeyEvent(const v1::Event& event) {
  const std::string person = event.stream().substr(kApproverPrefix.size());
  if (event.has_approver_key_registered()) {
    const v1::ApproverKeyRegistered& r = event.approver_key_registered();
    keys_[r.key_id()] = Key{.person = person, .public_key = r.public_key(), .level = r.level()};
  } else if (event.has_approver_key_revoked()) {
    auto it = keys_.find(event.approver_key_revoked().key_id());
    if (it != keys_.end() && it->second.person == person) it->second.revoked = true;
  }
}

std::optional<DeepVerifier::Problem> DeepVerifier::AddPrincipals(int64_t position,
                                                                 const v1::Event& event) {
  if (!event.has_principals_recorded()) {
    return Problem{position, absl::StrCat("an event on ", kPrincipalsStream,
                                          " that is not a PrincipalsRecorded")};
  }
  if (event.actor() != kServerActor) {
    // Reloaded on an administrator's request: by an administrator of the whole city, as
    // the set recorded before it says.
    std::optional<workflow::Principal> actor;
    if (auto p = Authority(position, event, &actor)) return p;
    if (!actor.has_value() || !MayRecordPrincipals(*actor)) {
      return Problem{
          position,
          absl::StrCat("the principals were recorded by ", event.actor(),
                       actor.has_value() ? absl::StrCat(", administrator of ", actor->jurisdiction)
                                         : std::string(" under no recorded set"),
                       ", not by the server or an administrator of the whole city")};
    }
  }
  const v1::PrincipalsRecorded& part = event.principals_recorded();
  // A set recorded in parts (one append, in order): gathered, then checked whole.
  const bool open = principal_parts_.parts() > 0;
  if (part.reinstated() && !open) {
    // A set recorded earlier, in force again.
    if (part.principals_size() > 0 || part.parts() != 0 || !part.exclusive()) {
      return Problem{position, absl::StrCat("a reinstatement of principals version \"",
                                            part.principals_version(),
                                            "\" holds principals or parts, or does not claim "
                                            "to stand alone")};
    }
    if (!principal_sets_.contains(part.principals_version())) {
      return Problem{position, absl::StrCat("principals version \"", part.principals_version(),
                                            "\" is reinstated, but the log did not record it "
                                            "before")};
    }
    in_force_ = part.principals_version();
    in_force_position_ = position;
    return std::nullopt;
  }
  v1::PrincipalsRecorded gathered;
  if (part.parts() > 1 || open) {
    const int32_t expected = open ? principal_parts_.part() + 1 : 0;
    if (open && (event.actor() != principal_parts_actor_ ||
                 event.request_id() != principal_parts_request_id_)) {
      // One append by one actor: a part by someone else is not of this record.
      return Problem{position, absl::StrCat("part ", part.part(), " of a principals record by ",
                                            principal_parts_actor_, " names ", event.actor(),
                                            " and request id \"", event.request_id(), "\"")};
    }
    if (part.part() != expected ||
        (open && (part.parts() != principal_parts_.parts() ||
                  part.principals_version() != principal_parts_.principals_version() ||
                  part.exclusive() != principal_parts_.exclusive() || part.reinstated()))) {
      return Problem{position,
                     absl::StrCat("a principals record in parts is out of order here: part ",
                                  part.part(), " of ", part.parts(), " of version \"",
                                  part.principals_version(), "\", after ",
                                  open ? absl::StrCat("part ", principal_parts_.part(), " of ",
                                                      principal_parts_.parts())
                                       : std::string("no open record"))};
    }
    if (!open) {
      principal_parts_.set_parts(part.parts());
      principal_parts_.set_principals_version(part.principals_version());
      principal_parts_.set_exclusive(part.exclusive());
      principal_parts_actor_ = event.actor();
      principal_parts_request_id_ = event.request_id();
    }
    principal_parts_.set_part(part.part());
    for (const v1::PrincipalRecord& r : part.principals()) *principal_parts_.add_principals() = r;
    if (part.part() + 1 < part.parts()) return std::nullopt;
    gathered = std::exchange(principal_parts_, v1::PrincipalsRecorded());
  }
  const v1::PrincipalsRecorded& recorded = gathered.parts() > 0 ? gathered : part;
  const std::string version = PrincipalsVersionOf(recorded);
  if (version != recorded.principals_version()) {
    return Problem{position,
                   absl::StrCat("the principals recorded as version \"",
                                recorded.principals_version(), "\" hash to \"", version, "\"")};
  }
  absl::flat_hash_map<std::string, workflow::Principal> set;
  for (const v1::PrincipalRecord& r : recorded.principals()) {
    workflow::Principal p{.id = r.id(),
                          .jurisdiction = r.jurisdiction(),
                          .approval_level = r.approval_level(),
                          .principals_version = version};
    for (const std::string& name : r.roles()) {
      auto role = workflow::RoleFromName(name);
      if (!role.has_value()) {
        return Problem{position,
                       absl::StrCat("principal ", r.id(), " has an unknown role \"", name, "\"")};
      }
      p.roles.push_back(*role);
    }
    set.emplace(r.id(), std::move(p));
  }
  principal_sets_[version] = std::move(set);
  if (part.exclusive()) {
    in_force_ = version;
    in_force_position_ = position;
  } else if (!in_force_.empty()) {
    // A server that claimed it once claims it in every record after: without it, events
    // after this record could not be held to it.
    return Problem{position,
                   absl::StrCat("principals version \"", version,
                                "\" is recorded without claiming to stand alone, after version \"",
                                in_force_, "\" claimed it at position ", in_force_position_)};
  }
  return std::nullopt;
}

std::optional<DeepVerifier::Problem> DeepVerifier::Authority(
    int64_t position, const v1::Event& event, std::optional<workflow::Principal>* actor) const {
  actor->reset();
  if (event.principals_version().empty()) return std::nullopt;
  auto set = principal_sets_.find(event.principals_version());
  if (set == principal_sets_.end()) {
    return Problem{position,
                   absl::StrCat("the event names principals version \"", event.principals_version(),
                                "\", which the log did not record before it")};
  }
  auto who = set->second.find(event.actor());
  if (who == set->second.end()) {
    return Problem{position, absl::StrCat(event.actor(), " is not a principal of version \"",
                                          event.principals_version(), "\"")};
  }
  *actor = who->second;
  if (!in_force_.empty() && event.principals_version() != in_force_) {
    // Authorised under an earlier set: the actor must stand in the set in force as in that
    // one, as the server checked just before the append (the record of the set in force
    // came before the check).
    const auto& now = principal_sets_.at(in_force_);
    auto there = now.find(event.actor());
    if (there == now.end()) {
      return Problem{position, absl::StrCat(event.actor(), " acted under principals version \"",
                                            event.principals_version(), "\" after version \"",
                                            in_force_, "\", recorded at position ",
                                            in_force_position_, ", had removed them")};
    }
    if (!StandsAlike(there->second, who->second)) {
      return Problem{position,
                     absl::StrCat(event.actor(), " acted under principals version \"",
                                  event.principals_version(), "\" after version \"", in_force_,
                                  "\", recorded at position ", in_force_position_,
                                  ", had changed their roles or jurisdiction")};
    }
  }
  return std::nullopt;
}

std::optional<DeepVerifier::Problem> DeepVerifier::CheckServiceEvent(
    int64_t position, const v1::Event& event, const workflow::Principal& actor) const {
  using workflow::Role;
  std::vector<Role> roles;
  std::string place;
  const std::string& stream = event.stream();
  if (StartsWith(stream, kApproverPrefix)) {
    roles = {Role::kAdmin};
    const std::string approver = stream.substr(kApproverPrefix.size());
    // The approver as the server looked them up just before the append: in the set in force
    // once records claim to stand alone (the set the administrator's event names before).
    const auto& set =
        principal_sets_.at(in_force_.empty() ? event.principals_version() : in_force_);
    auto it = set.find(approver);
    if (event.has_approver_key_registered() &&
        (it == set.end() || !it->second.HasRole(Role::kApprover))) {
      return Problem{position, absl::StrCat("a key was registered for ", approver,
                                            ", who was not an approver then")};
    }
    if (it != set.end()) place = it->second.jurisdiction;
  } else if (StartsWith(stream, kRegistryPrefix)) {
    roles = {Role::kAdmin};
    place = event.organisation_registered().organisation().jurisdiction();
  } else if (StartsWith(stream, kCountyPrefix)) {
    roles = {Role::kApprover, Role::kAuditor, Role::kAdmin};
    place = stream.substr(kCountyPrefix.size());
  } else if (StartsWith(stream, kSamplePrefix)) {
    roles = {Role::kAuditor};
    place = event.inspection_sample_drawn().scope();
  } else if (StartsWith(stream, kImportPrefix)) {
    roles = {Role::kAdmin};
    if (!event.has_registry_imported()) {
      return Problem{position,
                     absl::StrCat(stream, " holds an event that is not a registry import")};
    }
    // The scope holds the counties of the import's rows, and the importer covers every
    // row: it covers the scope, or the scope is the one county its jurisdiction lies in.
    const std::string& scope = event.registry_imported().scope();
    const workflow::Principal scope_holder{.jurisdiction = scope};
    const bool one_county =
        std::count(scope.begin(), scope.end(), '/') == 1 && scope_holder.Covers(actor.jurisdiction);
    if (!scope.empty() && !actor.Covers(scope) && !one_county) {
      return Problem{position, absl::StrCat(actor.id, " recorded an import of ", scope,
                                            ", apart from the jurisdiction ", actor.jurisdiction)};
    }
  } else {
    return std::nullopt;
  }
  bool allowed = false;
  for (Role role : roles) allowed = allowed || actor.HasRole(role);
  if (!allowed) {
    return Problem{position,
                   absl::StrCat(actor.id, " wrote to ", stream, " without the role that requires")};
  }
  if (!place.empty() && !actor.Covers(place)) {
    return Problem{position, absl::StrCat(actor.id, " wrote to ", stream, " about ", place,
                                          ", outside the jurisdiction ", actor.jurisdiction)};
  }
  return std::nullopt;
}

SignatureChecks::~SignatureChecks() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void SignatureChecks::Submit(Check check) {
  if (failed_.load(std::memory_order_acquire)) return;  // the verdict is known
  std::unique_lock<std::mutex> lock(mu_);
  if (background_ && !started_) {
    started_ = true;
    try {
      worker_ = std::thread([this] { Run(); });
    } catch (...) {  // std::system_error, std::bad_alloc
      // No thread: checked inline below, as without the background.
    }
  }
  if (!worker_.joinable()) {
    lock.unlock();
    if (!VerifyEd25519Strict(check.public_key, check.statement, check.signature)) {
      std::lock_guard<std::mutex> relock(mu_);
      if (!failure_.has_value()) failure_ = Failure{check.position, std::move(check.problem)};
      failed_.store(true, std::memory_order_release);
    }
    return;
  }
  changed_.wait(lock, [this] { return queue_.size() < kQueued || stopping_; });
  queue_.push_back(std::move(check));
  changed_.notify_all();
}

void SignatureChecks::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (stopping_) return;
    Check check = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    const bool skip = failure_.has_value();  // checks after a failure decide nothing
    lock.unlock();
    const bool ok = skip || VerifyEd25519Strict(check.public_key, check.statement, check.signature);
    lock.lock();
    busy_ = false;
    if (!ok && !failure_.has_value()) {
      failure_ = Failure{check.position, std::move(check.problem)};
      failed_.store(true, std::memory_order_release);
    }
    changed_.notify_all();
  }
}

std::optional<SignatureChecks::Failure> SignatureChecks::FailedSoFar() {
  if (!failed_.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  return failure_;
}

std::optional<SignatureChecks::Failure> SignatureChecks::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [this] { return (queue_.empty() && !busy_) || stopping_; });
  return failure_;
}

std::optional<DeepVerifier::Problem> DeepVerifier::Settle(std::optional<Problem> fold_problem) {
  std::optional<SignatureChecks::Failure> failed =
      fold_problem.has_value() ? signatures_.Drain() : signatures_.FailedSoFar();
  if (failed.has_value()) return Problem{failed->position, std::move(failed->detail)};
  return fold_problem;
}

std::optional<DeepVerifier::Problem> DeepVerifier::Add(const store::StoredEvent& stored) {
  return Settle(AddEvent(stored));
}

std::optional<DeepVerifier::Problem> DeepVerifier::SignatureFailure() {
  std::optional<SignatureChecks::Failure> failed = signatures_.Drain();
  if (failed.has_value()) return Problem{failed->position, std::move(failed->detail)};
  return std::nullopt;
}

std::optional<DeepVerifier::Problem> DeepVerifier::Finish() {
  std::optional<Problem> problem = Settle(CheckPending());
  return problem.has_value() ? problem : SignatureFailure();
}

std::optional<DeepVerifier::Problem> DeepVerifier::AddEvent(const store::StoredEvent& stored) {
  if (stored.position != next_position_) {
    return Problem{next_position_, absl::StrCat("position ", next_position_, " is missing")};
  }
  ++next_position_;
  v1::Event event;
  if (!event.ParseFromString(stored.bytes)) {
    return Problem{stored.position, "the event does not parse as casework.v1.Event"};
  }
  if (event.stream() != stored.stream || event.version() != stored.version) {
    return Problem{stored.position,
                   absl::StrCat("the event names ", event.stream(), " version ", event.version(),
                                " but is stored as ", stored.stream, " version ", stored.version)};
  }
  if (first_naming_leaf_ < 0 && workflow::KnownRulesVersion(event.rules_version()) &&
      workflow::SignOffNamesLatestLeaf(event.rules_version())) {
    first_naming_leaf_ = stored.position;
  }
  std::optional<Problem> problem;
  const bool continues = !pending_.empty() && pending_.front().stream() == event.stream() &&
                         pending_.front().request_id() == event.request_id();
  if (!continues) {
    problem = CheckPending();
    if (problem.has_value()) return problem;
  }
  if (event.stream() == kPrincipalsStream) return AddPrincipals(stored.position, event);
  if (principal_parts_.parts() > 0) {
    return Problem{stored.position,
                   absl::StrCat("the principals record of version \"",
                                principal_parts_.principals_version(), "\" ends after part ",
                                principal_parts_.part(), " of ", principal_parts_.parts())};
  }
  std::optional<workflow::Principal> actor;
  if (auto p = Authority(stored.position, event, &actor)) return p;
  if (!StartsWith(event.stream(), kCasePrefix)) {
    // Approver keys, registry, county records, draws: no rules of the core apply; the
    // role and jurisdiction their service requires do.
    if (actor.has_value()) {
      if (auto p = CheckServiceEvent(stored.position, event, *actor)) return p;
    }
    if (StartsWith(event.stream(), kApproverPrefix)) AddKeyEvent(event);
    return std::nullopt;
  }
  if (pending_.empty()) {
    pending_position_ = stored.position;
    pending_actor_ = std::move(actor);
  }
  pending_.push_back(std::move(event));
  pending_last_leaf_ = stored.leaf_hash;
  return std::nullopt;
}

std::optional<DeepVerifier::Problem> DeepVerifier::CheckPending() {
  if (pending_.empty()) return std::nullopt;
  std::vector<v1::Event> events = std::move(pending_);
  pending_.clear();
  const v1::Event& first = events.front();
  const int64_t position = pending_position_;
  ++commands_checked_;
  for (const v1::Event& e : events) {
    if (!workflow::KnownRulesVersion(e.rules_version()) ||
        e.rules_version() != first.rules_version()) {
      return Problem{
          position,
          absl::StrCat("admitted under rules \"", e.rules_version(),
                       "\", which this build cannot re-run (it knows ",
                       workflow::kRulesVersion2026_1, ", ", workflow::kRulesVersion2026_2, ", ",
                       workflow::kRulesVersion2026_3, " and ", workflow::kRulesVersion, ")")};
    }
  }
  const int64_t at = cases_.Version(first.stream());
  if (at != first.version() - 1) {
    return Problem{position, absl::StrCat(first.stream(), " is at version ", at,
                                          " but the event has version ", first.version())};
  }
  absl::StatusOr<v1::Case*> opened = cases_.Open(first.stream());
  if (!opened.ok()) return Problem{position, std::string(opened.status().message())};
  v1::Case& state = **opened;
  const std::string jurisdiction = first.has_organisation_listed()
                                       ? first.organisation_listed().organisation().jurisdiction()
                                       : state.organisation().jurisdiction();
  workflow::Context context{
      .actor =
          pending_actor_.has_value()
              ? *pending_actor_
              : workflow::Principal{.id = first.actor(),
                                    .roles = {workflow::Role::kLister, workflow::Role::kReviewer,
                                              workflow::Role::kAssister, workflow::Role::kInspector,
                                              workflow::Role::kApprover, workflow::Role::kAuditor,
                                              workflow::Role::kAdmin},
                                    .jurisdiction = CountyOf(jurisdiction)},
      .now_micros = MicrosOf(first.time()),
      .policy = &options_.policy,
      .rules = first.rules_version(),  // the rule set that admitted it
  };
  if (first.has_closure_signed_off()) {
    const v1::SignOff& s = first.closure_signed_off().sign_off();
    ++signatures_checked_;
    auto key = keys_.find(s.key_id());
    if (key == keys_.end() || key->second.person != first.actor()) {
      return Problem{position,
                     absl::StrCat("the sign-off by ", first.actor(), " names key \"", s.key_id(),
                                  "\", which ", first.actor(), " had not registered before it")};
    }
    if (key->second.revoked) {
      return Problem{position, absl::StrCat("the sign-off by ", first.actor(), " uses key \"",
                                            s.key_id(), "\", revoked before it")};
    }
    const std::string_view case_id = std::string_view(first.stream()).substr(kCasePrefix.size());
    std::string statement;
    if (workflow::SignOffNamesLatestLeaf(first.rules_version())) {
      // The statement names the leaf hash of the case's event before the sign-off, which
      // the event keeps: it must be that event's, as this log holds it.
      if (s.latest_leaf_hash() != state.last_leaf_hash()) {
        return Problem{position,
                       absl::StrCat("the sign-off by ", first.actor(), " names the latest leaf ",
                                    absl::BytesToHexString(s.latest_leaf_hash()), ", but event ",
                                    first.version() - 1, " of ", first.stream(), " has leaf ",
                                    absl::BytesToHexString(state.last_leaf_hash()))};
      }
      statement = workflow::SignOffStatement(case_id, first.version() - 1, s.inspection_id(),
                                             s.latest_leaf_hash());
      context.verified_latest_leaf_hash = s.latest_leaf_hash();
    } else if (first_naming_leaf_ >= 0 && first_naming_leaf_ < position) {
      // Rules only move forward: a sign-off of the first form after the log's first event
      // under rules that name the leaf binds no history, as a log rewritten after it was
      // shown to the approver could present.
      return Problem{
          position, absl::StrCat("the sign-off by ", first.actor(), " was admitted under ",
                                 first.rules_version(),
                                 ", whose statement names no leaf hash, "
                                 "after position ",
                                 first_naming_leaf_, " was admitted under rules that require one")};
    } else {
      statement = workflow::SignOffStatementV1(case_id, first.version() - 1, s.inspection_id());
    }
    // Checked beside the fold; the rules below are re-run as if it verified, and a
    // failure is reported in its place in position order (Settle).
    signatures_.Submit(SignatureChecks::Check{
        .position = position,
        .public_key = key->second.public_key,
        .statement = statement,
        .signature = s.signature(),
        .problem = absl::StrCat("the sign-off signature of ", first.actor(), " with key \"",
                                s.key_id(), "\" does not verify over the canonical statement")});
    context.verified_key_id = s.key_id();
    context.verified_level = key->second.level;
  }
  if (auto why = workflow::Readmit(state, events, context); why.has_value()) {
    return Problem{position, *why};
  }
  // A closure admitted under a closure policy weaker than this server's: no rule was
  // broken then (the policy was the server's), but an auditor hears of it.
  if (events.size() == 2 && events[1].has_case_closed() &&
      first.closure_signed_off().has_policy()) {
    const v1::ClosurePolicyApplied& then = first.closure_signed_off().policy();
    const workflow::ClosurePolicy& now = options_.policy.closure;
    if (then.approvers_min() < now.approvers_min ||
        then.city_approvers_min() < now.city_approvers_min ||
        then.county_approvers_min() < now.county_approvers_min) {
      if (closures_under_weaker_policy_++ == 0) first_closure_under_weaker_policy_ = position;
    }
  }
  for (const v1::Event& e : events) workflow::Evolve(state, e);
  state.set_last_position(position + static_cast<int64_t>(events.size()) - 1);
  state.set_last_leaf_hash(pending_last_leaf_.data(), pending_last_leaf_.size());
  cases_.Updated(first.stream());
  return std::nullopt;
}

}  // namespace casework::shell

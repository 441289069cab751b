#include "services/shell/principals.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "services/workflow/decider.h"
#include "services/workflow/names.h"
#include "services/workflow/text.h"

namespace casework::shell {
namespace {

constexpr size_t kPrincipalsMax = 100000;
// An identity: from a certificate's URI name or common name, or the plaintext header.

}  // namespace

absl::StatusOr<std::shared_ptr<const Principals>> Principals::Parse(std::string_view text) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("principals file is not a JSON object");
  }
  auto list = doc.find("principals");
  if (list == doc.end() || !list->is_array()) {
    return absl::InvalidArgumentError("principals file needs an array \"principals\"");
  }
  if (list->size() > kPrincipalsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("principals file lists ", list->size(), " entries; at most ", kPrincipalsMax));
  }
  auto out = std::make_shared<Principals>();
  size_t index = 0;
  std::string city;  // the first segment every jurisdiction shares
  for (const auto& entry : *list) {
    const std::string where = absl::StrCat("principals[", index++, "]");
    if (!entry.is_object()) return absl::InvalidArgumentError(where + " is not an object");
    workflow::Principal p;
    auto id = entry.find("id");
    if (id == entry.end() || !id->is_string() || id->get<std::string>().empty()) {
      return absl::InvalidArgumentError(where + ".id must be a non-empty string");
    }
    p.id = id->get<std::string>();
    // An id as people are named in commands (an approver's, an inspector's, ...): one that
    // could log in but never be named would fail later, far from its cause.
    if (!workflow::IsValidId(p.id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".id \"", workflow::Shown(p.id, 80),
          "\" is not a valid identity: 1 to 64 bytes, without spaces, control characters or '/'"));
    }
    if (p.id == kServerActor) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".id \"", kServerActor,
          "\" is the server's own name in the log (the events it records itself); choose "
          "another"));
    }
    auto jur = entry.find("jurisdiction");
    if (jur == entry.end() || !jur->is_string() || jur->get<std::string>().empty()) {
      return absl::InvalidArgumentError(where + ".jurisdiction must be a non-empty path");
    }
    p.jurisdiction = jur->get<std::string>();
    // A path of the deployment's city, checked here: a mistyped one ("xihe" for
    // "jiangcheng/xihe") would cover no case yet pass as a whole city where one segment
    // means that (exports, backups, watches of everything).
    if (!workflow::IsValidJurisdiction(p.jurisdiction)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".jurisdiction \"", p.jurisdiction.substr(0, 300),
          "\" is not a path of one to four segments (city/county/township/organisation), "
          "each 1-64 bytes without spaces, and no '/' at either end"));
    }
    const std::string_view root =
        std::string_view(p.jurisdiction).substr(0, p.jurisdiction.find('/'));
    if (city.empty()) {
      city = std::string(root);
    } else if (root != city) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".jurisdiction \"", p.jurisdiction, "\" is not under \"", city,
                       "\", the city of the principals before it; one file serves one city"));
    }
    auto roles = entry.find("roles");
    if (roles == entry.end() || !roles->is_array() || roles->empty()) {
      return absl::InvalidArgumentError(where + ".roles must be a non-empty array");
    }
    for (const auto& r : *roles) {
      if (!r.is_string()) return absl::InvalidArgumentError(where + ".roles holds a non-string");
      auto role = workflow::RoleFromName(r.get<std::string>());
      if (!role) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".roles: unknown role \"", r.get<std::string>(),
                         "\"; use lister, reviewer, assister, inspector, approver, auditor "
                         "or admin"));
      }
      p.roles.push_back(*role);
    }
    if (auto level = entry.find("approval_level"); level != entry.end()) {
      const std::string v = level->is_string() ? level->get<std::string>() : "";
      if (v == "county") {
        p.approval_level = casework::v1::APPROVAL_LEVEL_COUNTY;
      } else if (v == "city") {
        p.approval_level = casework::v1::APPROVAL_LEVEL_CITY;
      } else {
        return absl::InvalidArgumentError(where + ".approval_level must be \"county\" or \"city\"");
      }
      // A level is a department's: a city approval belongs to the city department (a
      // jurisdiction of one segment), a county one to a county's or the city's. A township
      // principal with a level would count towards the closure policy's minimums.
      const auto depth = 1 + std::count(p.jurisdiction.begin(), p.jurisdiction.end(), '/');
      if (p.approval_level == casework::v1::APPROVAL_LEVEL_CITY && depth != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ".approval_level \"city\" is for an approver of the whole city (a "
                         "jurisdiction of one segment), not of \"",
                         p.jurisdiction, "\""));
      }
      if (p.approval_level == casework::v1::APPROVAL_LEVEL_COUNTY && depth > 2) {
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ".approval_level \"county\" is for an approver of a county or of the city "
                         "(a jurisdiction of one or two segments), not of \"",
                         p.jurisdiction, "\""));
      }
    }
    if (!out->by_id_.emplace(p.id, p).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".id \"", p.id, "\" appears twice; each identity once"));
    }
  }
  // The record of this set for the log, and its version (principals.h).
  std::vector<const workflow::Principal*> sorted;
  for (const auto& [id, p] : out->by_id_) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->id < b->id; });
  for (const workflow::Principal* p : sorted) {
    casework::v1::PrincipalRecord* r = out->record_.add_principals();
    r->set_id(p->id);
    std::vector<workflow::Role> roles = p->roles;
    std::sort(roles.begin(), roles.end());
    roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
    for (workflow::Role role : roles) r->add_roles(std::string(workflow::RoleName(role)));
    r->set_jurisdiction(p->jurisdiction);
    r->set_approval_level(p->approval_level);
  }
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    out->record_.SerializeToCodedStream(&coded);
  }
  if (bytes.size() > kPrincipalsRecordBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("the principals make a record of ", bytes.size(),
                                                   " bytes for the log; at most ",
                                                   kPrincipalsRecordBytesMax));
  }
  unsigned char digest[32];
  EVP_Digest(bytes.data(), bytes.size(), digest, nullptr, EVP_sha256(), nullptr);
  out->record_.set_principals_version(
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), 8)));
  return out;
}

absl::StatusOr<std::shared_ptr<const Principals>> Principals::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read principals file ", path));
  // Whoever may write it decides who may do what: not everyone.
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 002) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("principals file %s is writable by every user (mode %o): anyone could "
                        "make themselves an administrator; run chmod o-w on it",
                        path, st.st_mode & 0777));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto parsed = Parse(buffer.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

const workflow::Principal* Principals::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : &it->second;
}

namespace {

// An identity without letter case and the punctuation people drop or change in names;
// full-width forms (ｚｈａｎｇ．ｗｅｉ, as Chinese input methods type them) as their ASCII
// letters, and the middle dots of transcribed names (·, ・) as punctuation.
std::string Folded(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  auto add = [&out](char c) {
    if (c == '.' || c == '-' || c == '_' || c == ' ') return;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  };
  for (size_t i = 0; i < id.size(); ++i) {
    const auto b = [&id](size_t at) { return static_cast<unsigned char>(id[at]); };
    if (b(i) == 0xC2 && i + 1 < id.size() && (b(i + 1) == 0xB7 || b(i + 1) == 0xA0)) {
      ++i;  // U+00B7 ·, U+00A0 no-break space
      continue;
    }
    if ((b(i) & 0xF0) == 0xE0 && i + 2 < id.size()) {
      const uint32_t cp = ((b(i) & 0x0Fu) << 12) | ((b(i + 1) & 0x3Fu) << 6) | (b(i + 2) & 0x3Fu);
      if (cp >= 0xFF01 && cp <= 0xFF5E) {  // full-width ASCII
        add(static_cast<char>(cp - 0xFEE0));
        i += 2;
        continue;
      }
      if (cp == 0x30FB || cp == 0xFF65 || cp == 0x3000) {  // ・, ･, the ideographic space
        i += 2;
        continue;
      }
    }
    add(id[i]);
  }
  return out;
}

}  // namespace

const workflow::Principal* Principals::Resembling(std::string_view id) const {
  if (Find(id) != nullptr) return nullptr;
  const std::string folded = Folded(id);
  if (folded.empty()) return nullptr;
  // A scan: assignments are rare commands and a set holds some thousands at most.
  const workflow::Principal* found = nullptr;
  for (const auto& [other, principal] : by_id_) {
    if (Folded(other) == folded && (found == nullptr || other < found->id)) found = &principal;
  }
  return found;
}

std::shared_ptr<const Principals> Principals::Stamped() const {
  auto out = std::make_shared<Principals>(*this);
  for (auto& [id, p] : out->by_id_) p.principals_version = version();
  return out;
}

std::shared_ptr<const Principals> Principals::WithoutChangesIn(const Principals& next) const {
  std::unordered_map<std::string, std::string> theirs;
  for (const casework::v1::PrincipalRecord& r : next.record_.principals()) {
    theirs.emplace(r.id(), r.SerializeAsString());
  }
  auto out = std::make_shared<Principals>(*this);
  for (const casework::v1::PrincipalRecord& r : record_.principals()) {
    auto it = theirs.find(r.id());
    if (it == theirs.end() || it->second != r.SerializeAsString()) out->by_id_.erase(r.id());
  }
  // Who `next` names and this set does not serve (new or changed there), as of the last
  // file: said so when they call.
  out->withheld_.clear();
  for (const auto& [id, record] : theirs) {
    if (!out->by_id_.contains(id)) out->withheld_.insert(id);
  }
  return out;
}

absl::Status RecordPrincipals(store::EventLog* log, const Principals& set, int64_t now_micros) {
  auto recorded = RecordPrincipalsBy(log, set, now_micros, nullptr);
  return recorded.ok() ? absl::OkStatus() : recorded.status();
}

namespace {

// The actor of the event at `position`; "" when it cannot be read (it only informs the
// answer: the set is recorded whatever it says).
std::string ActorAt(store::EventLog* log, int64_t position) {
  auto stored = log->ReadRange(position, 1);
  casework::v1::Event event;
  if (!stored.ok() || stored->empty() || !event.ParseFromString(stored->front().bytes)) return "";
  return event.actor();
}

constexpr absl::string_view kReloadPayloadUrl = "type.casework.dev/casework.shell.Reload";

absl::Status WithReloadReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kReloadPayloadUrl, absl::Cord(reason));
  return status;
}

bool HasReloadReason(const absl::Status& status, absl::string_view reason) {
  const auto payload = status.GetPayload(kReloadPayloadUrl);
  return payload.has_value() && *payload == reason;
}

}  // namespace

bool StandsAlike(const workflow::Principal& a, const workflow::Principal& b) {
  const auto role_set = [](std::vector<workflow::Role> roles) {
    std::sort(roles.begin(), roles.end());
    roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
    return roles;
  };
  return a.jurisdiction == b.jurisdiction && role_set(a.roles) == role_set(b.roles);
}

bool MayRecordPrincipals(const workflow::Principal& p) {
  return p.HasRole(workflow::Role::kAdmin) && workflow::JurisdictionDepth(p.jurisdiction) <= 1;
}

absl::StatusOr<PrincipalsRecord> RecordPrincipalsBy(store::EventLog* log, const Principals& set,
                                                    int64_t now_micros,
                                                    const workflow::Principal* by) {
  const std::string request_id = absl::StrCat("principals-", set.version());
  auto first = log->FindRequest(kPrincipalsStream, request_id);
  if (!first.ok()) return first.status();
  auto version = log->StreamVersion(kPrincipalsStream);
  if (!version.ok()) return version.status();
  // An event of the record, at `stream_version`: the server's or, naming the set they acted
  // under (the one recorded before), the administrator's.
  const auto envelope = [&](int64_t stream_version, const std::string& id) {
    casework::v1::Event event;
    event.set_stream(kPrincipalsStream);
    event.set_version(stream_version);
    event.set_actor(by != nullptr ? by->id : kServerActor);
    if (by != nullptr) event.set_principals_version(by->principals_version);
    *event.mutable_time() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(now_micros);
    event.set_request_id(id);
    event.set_rules_version(workflow::kRulesVersion);
    return event;
  };
  if (first->has_value()) {
    // Recorded before: by whom, from the record's first event.
    const int64_t position = (*first)->first_position;
    PrincipalsRecord record{
        .recorded_now = false, .position = position, .recorded_by = ActorAt(log, position)};
    // In force in the log's view already when the stream's last event is this set's
    // (its record's last part, or a reinstatement), claiming it stands alone.
    auto last = log->ReadStream(kPrincipalsStream, *version, 1);
    if (!last.ok()) return last.status();
    casework::v1::Event event;
    if (last->size() != 1 || !event.ParseFromString(last->front().bytes)) {
      return absl::DataLossError(absl::StrCat("the last event of ", kPrincipalsStream, " (version ",
                                              *version, ") cannot be read"));
    }
    if (event.principals_recorded().principals_version() == set.version() &&
        event.principals_recorded().exclusive()) {
      return record;
    }
    // A return to an earlier set (or the first start since records claim to stand alone):
    // recorded, so that what follows is held to this set.
    store::AppendRequest append;
    append.stream = kPrincipalsStream;
    append.expected_version = *version;
    append.request_id = absl::StrCat("principals-", set.version(), "-again-", *version + 1);
    append.request_fingerprint = set.version();
    casework::v1::Event again = envelope(*version + 1, append.request_id);
    casework::v1::PrincipalsRecorded* body = again.mutable_principals_recorded();
    body->set_principals_version(set.version());
    body->set_exclusive(true);
    body->set_reinstated(true);
    append.events.push_back(again.SerializeAsString());
    auto result = log->Append(std::move(append));
    if (!result.ok()) return result.status();
    record.reinstated_at = result->first_position;
    return record;
  }
  // The principals in parts of at most kPrincipalsPartBytesMax, in order.
  std::vector<casework::v1::PrincipalsRecorded> parts(1);
  size_t part_bytes = 0;
  for (const casework::v1::PrincipalRecord& r : set.record().principals()) {
    const size_t size = r.ByteSizeLong();
    // With its tag (one byte) and length.
    const size_t bytes = 1 + google::protobuf::io::CodedOutputStream::VarintSize64(size) + size;
    if (part_bytes + bytes > kPrincipalsPartBytesMax && parts.back().principals_size() > 0) {
      parts.emplace_back();
      part_bytes = 0;
    }
    *parts.back().add_principals() = r;
    part_bytes += bytes;
  }
  store::AppendRequest append;
  append.stream = kPrincipalsStream;
  append.expected_version = *version;
  append.request_id = request_id;
  append.request_fingerprint = set.version();
  for (size_t i = 0; i < parts.size(); ++i) {
    casework::v1::Event event = envelope(*version + 1 + static_cast<int64_t>(i), request_id);
    casework::v1::PrincipalsRecorded* part = event.mutable_principals_recorded();
    *part = std::move(parts[i]);
    part->set_principals_version(set.version());
    part->set_exclusive(true);
    if (parts.size() > 1) {
      part->set_part(static_cast<int32_t>(i));
      part->set_parts(static_cast<int32_t>(parts.size()));
    }
    append.events.push_back(event.SerializeAsString());
  }
  auto result = log->Append(std::move(append));
  if (!result.ok()) return result.status();
  if (result->replayed) {  // another reload of the same file recorded it first
    return PrincipalsRecord{.recorded_now = false,
                            .position = result->first_position,
                            .recorded_by = ActorAt(log, result->first_position)};
  }
  return PrincipalsRecord{.recorded_now = true,
                          .position = result->first_position,
                          .recorded_by = by != nullptr ? by->id : kServerActor};
}

bool PrincipalsReloader::FileNotLoaded(const absl::Status& status) {
  return HasReloadReason(status, "file");
}

bool PrincipalsReloader::CallerChanged(const absl::Status& status) {
  return HasReloadReason(status, "caller");
}

absl::StatusOr<PrincipalsReloader::Result> PrincipalsReloader::Reload(
    const workflow::Principal* by) {
  absl::MutexLock lock(&mu_);
  // The caller as the set in use has them now: a reload may have changed them while this
  // one waited. They record under the version they hold now.
  std::optional<workflow::Principal> caller;
  if (by != nullptr) {
    const workflow::Principal* now = holder_->Get()->Find(by->id);
    if (now == nullptr || !MayRecordPrincipals(*now)) {
      return WithReloadReason(
          absl::PermissionDeniedError(absl::StrCat(
              by->id, " is no longer an administrator of the whole city in the principals in use")),
          "caller");
    }
    caller = *now;
    by = &*caller;
  }
  auto loaded = Principals::Load(options_.path);
  if (!loaded.ok()) {
    return WithReloadReason(
        absl::FailedPreconditionError(
            absl::StrCat("the principals file ", options_.path,
                         " was not loaded, so the set in use stays: ", loaded.status().message())),
        "file");
  }
  Result result{.set = *loaded};
  if (options_.log == nullptr) {  // not recorded (--record-principals=false)
    holder_->Set(*loaded);
    return result;
  }
  // No append checked against the set in force is under way from here to the switch, so
  // none lands after this record (PrincipalsHolder::append_gate).
  absl::WriterMutexLock gate(holder_->append_gate());
  auto recorded = RecordPrincipalsBy(options_.log, **loaded, options_.clock(), by);
  if (!recorded.ok()) {
    // Fail closed: whoever the new file removes or changes stops acting now; the rest act
    // as before, under the version the log holds.
    std::shared_ptr<const Principals> current = holder_->Get();
    std::shared_ptr<const Principals> kept = current->WithoutChangesIn(**loaded);
    holder_->Set(kept);
    absl::Status closed(
        recorded.status().code(),
        absl::StrCat(
            "the principals were not recorded, so not reloaded: ", recorded.status().message(),
            ". Until a reload records them, the ",
            static_cast<size_t>(current->record().principals_size()) - kept->size(),
            " identities of the recorded set that the new file removes or changes are refused, "
            "its new identities are not admitted, and the other ",
            kept->size(), " act as before (version ", kept->version(), ")"));
    // The store's reason (DISK_FULL, READ_ONLY, ...) goes with it.
    recorded.status().ForEachPayload([&closed](absl::string_view url, const absl::Cord& payload) {
      closed.SetPayload(url, payload);
    });
    return closed;
  }
  result.set = (*loaded)->Stamped();
  result.record = *std::move(recorded);
  holder_->Set(result.set);
  return result;
}

}  // namespace casework::shell

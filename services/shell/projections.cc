#include "services/shell/projections.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/time_util.h"
#include "services/oversight/oversight.h"
#include "services/shell/approver_keys.h"
#include "services/workflow/decider.h"

namespace casework::shell {
namespace {

using casework::v1::Case;
using store::ProjectionWrite;

int64_t DeadlineMicros(const Case& c) {
  return google::protobuf::util::TimeUtil::TimestampToMicroseconds(c.deadline());
}

void Put(std::vector<ProjectionWrite>* out, const char* table, std::string key,
         std::string value = {}) {
  out->push_back({.op = ProjectionWrite::Op::kPut,
                  .table = table,
                  .key = std::move(key),
                  .value = std::move(value)});
}

void Delete(std::vector<ProjectionWrite>* out, const char* table, std::string key) {
  out->push_back({.op = ProjectionWrite::Op::kDelete, .table = table, .key = std::move(key)});
}

// The counters a case contributes to: "a/b/c/d" counts under "a", "a/b" and "a/b/c" (the
// organisation itself is not a level of the report), a jurisdiction without '/' under
// itself. The prefixes are views of the jurisdiction: only the keys are allocated.
void AddCount(std::vector<ProjectionWrite>* out, std::string_view jurisdiction,
              casework::v1::CaseState state, int64_t delta) {
  auto add = [&](std::string_view prefix) {
    out->push_back({.op = ProjectionWrite::Op::kAddInt64,
                    .table = kCountsTable,
                    .key = CountKey(prefix, state),
                    .delta = delta});
  };
  size_t slash = jurisdiction.find('/');
  if (slash == std::string_view::npos) {
    add(jurisdiction);
    return;
  }
  for (; slash != std::string_view::npos; slash = jurisdiction.find('/', slash + 1)) {
    add(jurisdiction.substr(0, slash));
  }
}

void AppendBigEndian64(std::string* s, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) s->push_back(static_cast<char>(v >> shift));
}

}  // namespace

std::string SerializeCase(const Case& c) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    c.SerializeToCodedStream(&coded);
  }
  return bytes;
}

std::string StateKey(casework::v1::CaseState state, std::string_view case_id) {
  std::string key(1, static_cast<char>(state));
  key.append(case_id);
  return key;
}

std::string DeadlineKey(int64_t deadline_micros, std::string_view case_id) {
  std::string key;
  AppendBigEndian64(&key, static_cast<uint64_t>(deadline_micros) ^ (uint64_t{1} << 63));
  key.append(case_id);
  return key;
}

std::string JurisdictionKey(std::string_view jurisdiction, std::string_view case_id) {
  std::string key(jurisdiction);
  key.push_back('\0');
  key.append(case_id);
  return key;
}

std::string CountKey(std::string_view prefix, casework::v1::CaseState state) {
  std::string key(prefix);
  key.push_back('\0');
  key.push_back(static_cast<char>(state));
  return key;
}

CaseRowBefore CaseRowBefore::Of(const Case& c) {
  return {.version = c.version(),
          .state = c.state(),
          .deadline_micros = DeadlineMicros(c),
          .jurisdiction = c.organisation().jurisdiction()};
}

void ProjectCase(const CaseRowBefore& before, const Case& after,
                 std::vector<ProjectionWrite>* out) {
  const std::string& id = after.case_id();
  const bool is_new = before.version == 0;
  Put(out, kCaseTable, id, SerializeCase(after));
  if (is_new || before.state != after.state()) {
    if (!is_new) Delete(out, kByStateTable, StateKey(before.state, id));
    Put(out, kByStateTable, StateKey(after.state(), id));
    if (!is_new) AddCount(out, before.jurisdiction, before.state, -1);
    AddCount(out, after.organisation().jurisdiction(), after.state(), +1);
  }
  if (is_new) {
    Put(out, kByJurisdictionTable, JurisdictionKey(after.organisation().jurisdiction(), id));
    Put(out, kOrganisationCaseTable, after.organisation().jurisdiction(), id);
  }
  if (is_new || before.deadline_micros != DeadlineMicros(after)) {
    if (!is_new) Delete(out, kByDeadlineTable, DeadlineKey(before.deadline_micros, id));
    Put(out, kByDeadlineTable, DeadlineKey(DeadlineMicros(after), id));
  }
}

void ProjectCase(const Case& before, const Case& after, std::vector<ProjectionWrite>* out) {
  ProjectCase(CaseRowBefore::Of(before), after, out);
}

absl::StatusOr<std::vector<ProjectionWrite>> ProjectionReplayer::Project(
    const store::StoredEvent& stored) {
  casework::v1::Event event;
  if (!event.ParseFromString(stored.bytes)) {
    return absl::DataLossError(
        absl::StrCat("the event at position ", stored.position, " does not parse"));
  }
  std::vector<ProjectionWrite> out;
  if (stored.stream.rfind("cases/", 0) == 0) {
    Case& state = cases_[stored.stream];
    Case after = state;
    workflow::Evolve(after, event);
    ProjectCase(state, after, &out);
    state = std::move(after);
  } else if (stored.stream.rfind(kApproverStreamPrefix, 0) == 0) {
    out = ProjectApproverKeyEvent(event);
  } else if (stored.stream.rfind(oversight::kRegistryStreamPrefix, 0) == 0 &&
             event.has_organisation_registered()) {
    ProjectRegistration(
        event.organisation_registered().organisation().organisation_id(),
        stored.stream.substr(std::string_view(oversight::kRegistryStreamPrefix).size()), &out);
  }
  return out;
}

void ProjectRegistration(const std::string& id, const std::string& county,
                         std::vector<store::ProjectionWrite>* out) {
  out->push_back({.op = store::ProjectionWrite::Op::kPut,
                  .table = kRegistryCountyTable,
                  .key = id,
                  .value = county});
}

absl::StatusOr<bool> BringProjectionsUpToDate(store::RocksEventLog& log, bool force) {
  if (!force && log.ProjectionLayout() == kProjectionLayout) return false;
  ProjectionReplayer replayer;
  absl::Status rebuilt = log.RebuildProjections(
      [&replayer](const store::StoredEvent& e) { return replayer.Project(e); });
  if (!rebuilt.ok()) return rebuilt;
  if (log.ProjectionLayout() != kProjectionLayout) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the log was opened with projection layout ", log.ProjectionLayout(), ", not this build's ",
        kProjectionLayout, " (RocksEventLog::Options::projection_layout)"));
  }
  return true;
}

}  // namespace casework::shell

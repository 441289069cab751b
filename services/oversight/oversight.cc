#include "services/oversight/oversight.h"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/workflow/decider.h"
#include "services/workflow/text.h"

namespace casework::oversight {
namespace {

namespace v1 = ::casework::v1;
using workflow::Cat;

constexpr std::string_view kCasePrefix = "cases/";

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

google::protobuf::Timestamp ToTimestamp(int64_t micros) {
  google::protobuf::Timestamp t;
  int64_t seconds = micros / 1'000'000;
  int64_t rest = micros % 1'000'000;
  if (rest < 0) {
    rest += 1'000'000;
    --seconds;
  }
  t.set_seconds(seconds);
  t.set_nanos(static_cast<int32_t>(rest * 1000));
  return t;
}

std::string Date(int64_t micros) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The people answerable for an open case: the current assignment's first secretary,
// stationed cadres and whoever assigned them; the lister when nobody is assigned.
std::vector<std::string> Answerable(const v1::Case& state) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& who) {
    if (!who.empty() && std::find(out.begin(), out.end(), who) == out.end()) out.push_back(who);
  };
  if (state.has_assignment() && state.state() != v1::CASE_STATE_REOPENED) {
    add(state.assignment().first_secretary().person_id());
    for (const v1::Person& p : state.assignment().stationed_cadres()) add(p.person_id());
    add(state.assignment().assigned_by());
  }
  if (out.empty()) add(state.listed_by());
  return out;
}

// "LISTED" for CASE_STATE_LISTED.
std::string StateName(v1::CaseState state) {
  const std::string& name = v1::CaseState_Name(state);
  return name.substr(0, 11) == "CASE_STATE_" ? name.substr(11) : name;
}

bool IsOpen(v1::CaseState state) {
  return state == v1::CASE_STATE_LISTED || state == v1::CASE_STATE_ASSISTED ||
         state == v1::CASE_STATE_VERIFIED || state == v1::CASE_STATE_REOPENED;
}

v1::Flag MakeFlag(std::string_view rule, std::string subject, std::string county,
                  int64_t since_micros, std::vector<std::string> responsible,
                  std::vector<int64_t> positions, std::string detail, std::string detail_zh) {
  v1::Flag flag;
  flag.set_rule(std::string(rule));
  flag.set_subject(std::move(subject));
  flag.set_county(std::move(county));
  *flag.mutable_since_time() = ToTimestamp(since_micros);
  for (std::string& who : responsible) flag.add_responsible(std::move(who));
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  for (int64_t p : positions) flag.add_evidence_positions(p);
  flag.set_detail(std::move(detail));
  flag.set_detail_zh(std::move(detail_zh));
  return flag;
}

void SetPeople(CaseRecord& record, const v1::Assignment& assignment, int64_t micros,
               int64_t position) {
  std::map<std::string, Presence> next;
  auto keep = [&](const std::string& person) {
    if (person.empty()) return;
    auto it = record.presence.find(person);
    next[person] = it != record.presence.end()
                       ? it->second
                       : Presence{.since_micros = micros, .since_position = position};
  };
  keep(assignment.first_secretary().person_id());
  for (const v1::Person& p : assignment.stationed_cadres()) keep(p.person_id());
  record.presence = std::move(next);
}

std::string Percent(int64_t bp) {
  return Cat(bp / 100, ".", bp % 100 < 10 ? "0" : "", bp % 100, "%");
}

}  // namespace

std::string CountyOf(std::string_view jurisdiction) {
  const size_t first = jurisdiction.find('/');
  if (first == std::string_view::npos) return std::string(jurisdiction);
  const size_t second = jurisdiction.find('/', first + 1);
  return std::string(second == std::string_view::npos ? jurisdiction
                                                      : jurisdiction.substr(0, second));
}

std::string ImportStream(std::string_view request_id) {
  unsigned char digest[32];
  EVP_Digest(request_id.data(), request_id.size(), digest, nullptr, EVP_sha256(), nullptr);
  return absl::StrCat(kImportStreamPrefix,
                      absl::BytesToHexString(std::string(reinterpret_cast<char*>(digest), 8)));
}

std::string CommonScope(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  std::string_view common = paths.front();
  for (std::string_view path : paths) {
    // Shorten `common` to its segments that start `path`.
    while (!InSubtree(common, path)) {
      const size_t slash = common.rfind('/');
      if (slash == std::string_view::npos) return "";
      common = common.substr(0, slash);
    }
  }
  return std::string(common);
}

bool InSubtree(std::string_view root, std::string_view path) {
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  if (root.empty()) return true;
  if (path.size() < root.size() || path.substr(0, root.size()) != root) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

bool RanksBelow(const RegistryEntry& a, const RegistryEntry& b) {
  if (a.grade != b.grade) return a.grade > b.grade;
  return a.stars < b.stars;
}

std::optional<int64_t> RequestTimeMicros(const google::protobuf::Timestamp& t) {
  constexpr int64_t kLastSecond = 253402300799;  // 9999-12-31T23:59:59Z
  if (t.seconds() < 0 || t.seconds() > kLastSecond || t.nanos() < 0 || t.nanos() > 999'999'999) {
    return std::nullopt;
  }
  return t.seconds() * 1'000'000 + t.nanos() / 1000;
}

namespace {

// Whether the case's listing counts toward the listed ratio: confirmed by a reviewer (a
// listing returned for correction, or not yet reviewed, does not; a case past LISTED was
// confirmed before assistance could start).
bool ListingConfirmed(const v1::Case& state) {
  return state.state() != v1::CASE_STATE_LISTED || state.listing_review().confirmed();
}

// The registry record (in `orgs`, the case's county) that the case's listing counts for:
// its organisation id's, when that names the place the case was listed in, as registered
// when the case was listed (or now, if it was registered only later). A case that gives
// another place's organisation id counts for none: an id alone would let a good
// organisation be listed under a poor one's id (以好充次).
const RegistryEntry* CountsFor(const CaseRecord& record,
                               const std::map<std::string, RegistryEntry>& orgs) {
  auto it = orgs.find(record.state.organisation().organisation_id());
  if (it == orgs.end()) return nullptr;
  const RegistryEntry& then =
      record.registered_at_listing.has_value() ? *record.registered_at_listing : it->second;
  if (then.organisation.jurisdiction() != record.state.organisation().jurisdiction()) {
    return nullptr;
  }
  return &it->second;
}

}  // namespace

void Ledger::Add(int64_t position, const v1::Event& event) {
  through_position_ = position + 1;
  const std::string& stream = event.stream();
  const int64_t micros = Micros(event.time());
  if (StartsWith(stream, kRegistryStreamPrefix)) {
    if (!event.has_organisation_registered()) return;
    const v1::OrganisationRegistered& r = event.organisation_registered();
    const std::string county = CountyOf(r.organisation().jurisdiction());
    const std::string& id = r.organisation().organisation_id();
    // Moved: out of the county it was registered in before (the county stays known).
    std::optional<std::string> left;
    if (auto [was, inserted] = registry_county_.try_emplace(id, county);
        !inserted && was->second != county) {
      registry_[was->second].erase(id);
      left = was->second;
      was->second = county;
    }
    registry_[county][id] = RegistryEntry{.organisation = r.organisation(),
                                          .grade = r.grade(),
                                          .stars = r.stars(),
                                          .position = position,
                                          .time_micros = micros,
                                          .actor = event.actor()};
    if (left.has_value()) Recount(*left, id, micros);
    Recount(county, id, micros);
    return;
  }
  if (StartsWith(stream, kCountyStreamPrefix)) {
    const std::string county = stream.substr(std::string_view(kCountyStreamPrefix).size());
    county_streams_[county] = true;
    Occurrence o{.subject = stream,
                 .county = county,
                 .position = position,
                 .time_micros = micros,
                 .actor = event.actor()};
    if (event.has_admonishment_talk_recorded()) {
      const v1::AdmonishmentTalkRecorded& t = event.admonishment_talk_recorded();
      o.kind = Occurrence::Kind::kTalk;
      for (const v1::Person& p : t.talked_with()) o.people.push_back(p.person_id());
      o.detail = t.subject();
      o.detail_zh = Cat("约谈：", t.subject());
    } else if (event.has_rectification_notice_issued()) {
      const v1::RectificationNoticeIssued& n = event.rectification_notice_issued();
      o.kind = Occurrence::Kind::kNotice;
      o.detail = Cat(n.notice_id(), ": ", n.content());
      o.detail_zh = Cat("通报整改 ", n.notice_id(), "：", n.content());
    } else {
      return;
    }
    occurrences_.push_back(std::move(o));
    return;
  }
  if (!StartsWith(stream, kCasePrefix)) return;

  CaseRecord& record = cases_[stream];
  workflow::Evolve(record.state, event);
  record.state.set_last_position(position);
  const v1::Case& state = record.state;
  switch (event.body_case()) {
    case v1::Event::kOrganisationListed:
      cases_by_organisation_[state.organisation().organisation_id()].push_back(stream);
      record.county = CountyOf(state.organisation().jurisdiction());
      record.listed_position = position;
      record.opened_position = position;
      record.deadline_position = position;
      record.open_spans.emplace_back(micros, INT64_MAX);
      if (auto county = registry_.find(record.county); county != registry_.end()) {
        if (auto entry = county->second.find(state.organisation().organisation_id());
            entry != county->second.end()) {
          record.registered_at_listing = entry->second;
        }
      }
      break;
    case v1::Event::kListingAmended:
      record.deadline_position = position;
      break;
    case v1::Event::kAssistanceAssigned:
      SetPeople(record, event.assistance_assigned().assignment(), micros, position);
      break;
    case v1::Event::kAssignmentReplaced:
      SetPeople(record, event.assignment_replaced().assignment(), micros, position);
      break;
    case v1::Event::kFieldVisitRecorded: {
      const v1::FieldVisitRecorded& visit = event.field_visit_recorded();
      const int64_t visit_micros = Micros(visit.visit_time());
      for (const std::string& who : visit.visitors()) {
        auto it = record.presence.find(who);
        if (it != record.presence.end() && visit_micros > it->second.since_micros) {
          it->second = Presence{.since_micros = visit_micros, .since_position = position};
        }
      }
      break;
    }
    case v1::Event::kCaseSentBack:
      // Back to ASSISTED: visits could not be recorded while the case was VERIFIED, so
      // the assigned people's clocks start again at the send-back.
      for (auto& [person, presence] : record.presence) {
        presence = Presence{.since_micros = micros, .since_position = position};
      }
      break;
    case v1::Event::kCaseClosed: {
      record.closed_position = position;
      record.reviewed_position = -1;
      record.reviewed_micros = 0;
      if (!record.open_spans.empty()) record.open_spans.back().second = micros;
      Occurrence o{.kind = Occurrence::Kind::kConversion,
                   .subject = stream,
                   .county = record.county,
                   .position = position,
                   .time_micros = micros,
                   .actor = event.actor()};
      for (const std::string& who : event.case_closed().approvers()) o.people.push_back(who);
      o.detail = Cat("closed on inspection ", event.case_closed().inspection_id());
      o.detail_zh = Cat("依据检查 ", event.case_closed().inspection_id(), " 销号");
      occurrences_.push_back(std::move(o));
      break;
    }
    case v1::Event::kFollowUpReviewHeld:
      record.reviewed_position = position;
      record.reviewed_micros = micros;
      break;
    case v1::Event::kRelapseFound: {
      record.opened_position = position;
      record.deadline_position = position;
      record.closed_position = -1;
      record.reviewed_position = -1;
      record.presence.clear();
      record.open_spans.emplace_back(micros, INT64_MAX);
      occurrences_.push_back(
          Occurrence{.kind = Occurrence::Kind::kRelapse,
                     .subject = stream,
                     .county = record.county,
                     .position = position,
                     .time_micros = micros,
                     .actor = event.actor(),
                     .detail = event.relapse_found().findings(),
                     .detail_zh = Cat("回头看发现反弹：", event.relapse_found().findings())});
      break;
    }
    case v1::Event::kAdmonishmentTalkRecorded: {
      Occurrence o{.kind = Occurrence::Kind::kTalk,
                   .subject = stream,
                   .county = record.county,
                   .position = position,
                   .time_micros = micros,
                   .actor = event.actor()};
      for (const v1::Person& p : event.admonishment_talk_recorded().talked_with()) {
        o.people.push_back(p.person_id());
      }
      o.detail = event.admonishment_talk_recorded().subject();
      o.detail_zh = Cat("约谈：", event.admonishment_talk_recorded().subject());
      occurrences_.push_back(std::move(o));
      break;
    }
    case v1::Event::kRectificationNoticeIssued: {
      const v1::RectificationNoticeIssued& n = event.rectification_notice_issued();
      occurrences_.push_back(
          Occurrence{.kind = Occurrence::Kind::kNotice,
                     .subject = stream,
                     .county = record.county,
                     .position = position,
                     .time_micros = micros,
                     .actor = event.actor(),
                     .detail = Cat(n.notice_id(), ": ", n.content()),
                     .detail_zh = Cat("通报整改 ", n.notice_id(), "：", n.content())});
      break;
    }
    default:
      break;
  }
  // What a confirmed listing counts for can change with these (the listing review, an
  // amendment that sends it back for review or moves its place).
  if (event.has_organisation_listed() || event.has_listing_reviewed() ||
      event.has_listing_amended()) {
    Recount(record.county, state.organisation().organisation_id(), micros);
  }
}

std::vector<std::string> Ledger::Counties() const {
  std::set<std::string> out;
  for (const auto& [county, orgs] : registry_) out.insert(county);
  for (const auto& [stream, record] : cases_) out.insert(record.county);
  for (const auto& [county, unused] : county_streams_) out.insert(county);
  return {out.begin(), out.end()};
}

std::optional<int64_t> Ledger::RatioBelowSince(const std::string& county) const {
  auto it = below_since_.find(county);
  if (it == below_since_.end()) return std::nullopt;
  return it->second;
}

const std::set<std::string>& Ledger::CountedListings(const std::string& county) const {
  static const std::set<std::string> kNone;
  auto it = counted_.find(county);
  return it == counted_.end() ? kNone : it->second;
}

void Ledger::Recount(const std::string& county, const std::string& organisation_id,
                     int64_t micros) {
  bool counted = false;
  auto orgs = registry_.find(county);
  auto listing = cases_by_organisation_.find(organisation_id);
  if (orgs != registry_.end() && listing != cases_by_organisation_.end()) {
    for (const std::string& stream : listing->second) {
      const CaseRecord& record = cases_.at(stream);
      if (record.county == county && ListingConfirmed(record.state) &&
          CountsFor(record, orgs->second) != nullptr) {
        counted = true;
        break;
      }
    }
  }
  if (counted) {
    counted_[county].insert(organisation_id);
  } else if (auto it = counted_.find(county); it != counted_.end()) {
    it->second.erase(organisation_id);
  }
  RecheckRatio(county, micros);
}

void Ledger::RecheckRatio(const std::string& county, int64_t micros) {
  auto orgs = registry_.find(county);
  // A county with no registry has no ratio (ComputeFlags judges registries only).
  const int64_t total = orgs == registry_.end() ? 0 : static_cast<int64_t>(orgs->second.size());
  auto counted = counted_.find(county);
  const int64_t count =
      counted == counted_.end() ? 0 : static_cast<int64_t>(counted->second.size());
  const bool below = orgs != registry_.end() && count * 10 < total;
  if (!below) {
    below_since_.erase(county);
  } else {
    below_since_.try_emplace(county, micros);
  }
}

AsOfCut::Verdict AsOfCut::Judge(std::string_view stream, int64_t event_micros) {
  if (event_micros > cut_micros_) {
    if (cut_micros_ <= INT64_MAX - kSkewMicros && event_micros > cut_micros_ + kSkewMicros) {
      return Verdict::kEnd;
    }
    past_.emplace(stream);
    return Verdict::kSkip;
  }
  if (!past_.empty() && past_.find(stream) != past_.end()) return Verdict::kSkip;
  return Verdict::kTake;
}

std::vector<v1::Flag> ComputeFlags(const Ledger& ledger, const workflow::Policy& policy,
                                   int64_t now, std::string_view scope) {
  std::vector<v1::Flag> flags;
  const int64_t absence = policy.absence_flag_days * kMicrosPerDay;
  const int64_t stale = policy.stale_case_days * kMicrosPerDay;
  const int64_t review = policy.follow_up_review_days * kMicrosPerDay;

  // Case flags.
  for (const auto& [stream, record] : ledger.cases()) {
    const v1::Case& state = record.state;
    if (!InSubtree(scope, state.organisation().jurisdiction())) continue;
    const std::string& org = state.organisation().display_name();
    if (state.state() == v1::CASE_STATE_ASSISTED) {
      for (const auto& [person, presence] : record.presence) {
        const int64_t limit = presence.since_micros + absence;
        if (now <= limit) continue;
        flags.push_back(MakeFlag(
            kStationedButAbsent, stream, record.county, limit, {person}, {presence.since_position},
            Cat(person, " is assigned to ", org, " and has no recorded field visit since ",
                Date(presence.since_micros), " (more than ", policy.absence_flag_days, " days)"),
            Cat(person, " 帮扶", org, "，自 ", Date(presence.since_micros), " 起无走访记录（超过 ",
                policy.absence_flag_days, " 天）")));
      }
    }
    if (IsOpen(state.state())) {
      const int64_t opened = Micros(state.opened_time());
      if (now > opened + stale) {
        flags.push_back(
            MakeFlag(kThreeYearsWithoutChange, stream, record.county, opened + stale,
                     Answerable(state), {record.opened_position},
                     Cat(org, " has been on the ledger since ", Date(opened),
                         " without being struck off (", "limit ", policy.stale_case_days, " days)"),
                     Cat(org, " 自 ", Date(opened), " 列入台账，超过 ", policy.stale_case_days,
                         " 天仍未销号")));
      }
      if (state.has_deadline()) {
        const int64_t deadline = Micros(state.deadline());
        if (now > deadline) {
          flags.push_back(MakeFlag(kOverdue, stream, record.county, deadline, Answerable(state),
                                   {record.deadline_position},
                                   Cat(org, " is past its rectification deadline ", Date(deadline),
                                       " in state ", v1::CaseState_Name(state.state())),
                                   Cat(org, " 已超过整改期限 ", Date(deadline))));
        }
      }
    }
    if (state.state() == v1::CASE_STATE_CLOSED) {
      const int64_t base =
          record.reviewed_position >= 0 ? record.reviewed_micros : Micros(state.closed_time());
      if (now > base + review) {
        std::vector<std::string> approvers;
        for (const v1::SignOff& s : state.sign_offs()) approvers.push_back(s.approver());
        std::vector<int64_t> evidence = {record.closed_position};
        if (record.reviewed_position >= 0) evidence.push_back(record.reviewed_position);
        flags.push_back(
            MakeFlag(kFollowUpReviewDue, stream, record.county, base + review, std::move(approvers),
                     std::move(evidence),
                     Cat(org, " was ", record.reviewed_position >= 0 ? "last reviewed" : "closed",
                         " on ", Date(base), "; a follow-up review is due every ",
                         policy.follow_up_review_days, " days"),
                     Cat(org, " 于 ", Date(base),
                         record.reviewed_position >= 0 ? " 最近一次回头看" : " 销号", "，已超过 ",
                         policy.follow_up_review_days, " 天未开展回头看")));
      }
    }
  }

  // County flags: the listed ratio and the order of listing (倒排).
  for (const auto& [county, orgs] : ledger.registry()) {
    if (!InSubtree(scope, county) && !InSubtree(county, scope)) continue;
    if (!InSubtree(scope, county)) continue;  // a scope below a county: no county flags
    // Organisation ids with a counted listing (confirmed, counting for that organisation).
    const std::set<std::string>& listed = ledger.CountedListings(county);
    // The best-ranked confirmed listing, by its organisation's rank when it was listed.
    const CaseRecord* best_listing = nullptr;
    const RegistryEntry* best = nullptr;
    std::vector<std::string> listers;
    std::vector<int64_t> listing_positions;
    for (const auto& [stream, record] : ledger.cases()) {
      if (record.county != county) continue;
      const RegistryEntry* now_registered = CountsFor(record, orgs);
      if (now_registered == nullptr) continue;
      if (!ListingConfirmed(record.state)) continue;  // a listing is reviewed (逐个过筛子)
      const RegistryEntry& rank = record.registered_at_listing.has_value()
                                      ? *record.registered_at_listing
                                      : *now_registered;
      if (best == nullptr || RanksBelow(*best, rank)) {
        best = &rank;
        best_listing = &record;
      }
      listing_positions.push_back(record.listed_position);
      const std::string& who = record.state.listed_by();
      if (std::find(listers.begin(), listers.end(), who) == listers.end()) listers.push_back(who);
    }
    int64_t latest_registry_position = 0;
    int64_t latest_registry_micros = 0;
    std::vector<std::string> importers;
    for (const auto& [id, entry] : orgs) {
      if (entry.position >= latest_registry_position) {
        latest_registry_position = entry.position;
        latest_registry_micros = entry.time_micros;
      }
      if (std::find(importers.begin(), importers.end(), entry.actor) == importers.end()) {
        importers.push_back(entry.actor);
      }
    }
    const int64_t total = static_cast<int64_t>(orgs.size());
    const int64_t count = static_cast<int64_t>(listed.size());
    const std::vector<std::string>& responsible = listers.empty() ? importers : listers;
    const std::string subject = Cat(kCountyStreamPrefix, county);
    if (count * 10 < total) {
      std::vector<int64_t> evidence = listing_positions;
      evidence.push_back(latest_registry_position);
      const int64_t bp = total == 0 ? 0 : count * 10000 / total;
      // Since the ratio went below, as the fold saw it (not the county's latest registry
      // edit, which may have left it below all along).
      const int64_t since = ledger.RatioBelowSince(county).value_or(latest_registry_micros);
      flags.push_back(MakeFlag(
          kListedRatioBelow10Percent, subject, county, since, responsible, std::move(evidence),
          Cat(county, " listed ", count, " of its ", total, " registered organisations (",
              Percent(bp), "); at least 10% (", (total + 9) / 10, ") must be listed"),
          Cat(county, " 列入台账 ", count, " 个，登记组织 ", total, " 个（", Percent(bp),
              "），低于 10% 的倒排比例（至少 ", (total + 9) / 10, " 个）")));
    }
    if (best != nullptr) {
      // Every organisation ranked below the best-ranked listed one (as it was ranked when
      // listed) should have been listed before it.
      std::vector<const RegistryEntry*> skipped;
      for (const auto& [id, entry] : orgs) {
        if (!listed.contains(id) && RanksBelow(entry, *best)) skipped.push_back(&entry);
      }
      if (!skipped.empty()) {
        std::sort(skipped.begin(), skipped.end(),
                  [](const RegistryEntry* a, const RegistryEntry* b) {
                    if (RanksBelow(*a, *b) != RanksBelow(*b, *a)) return RanksBelow(*a, *b);
                    return a->organisation.organisation_id() < b->organisation.organisation_id();
                  });
        std::string names;
        std::string names_zh;
        std::vector<int64_t> evidence = {best_listing->listed_position, best->position};
        for (size_t i = 0; i < skipped.size(); ++i) {
          evidence.push_back(skipped[i]->position);
          if (i < 10) {
            const RegistryEntry& e = *skipped[i];
            workflow::Append(&names, i == 0 ? "" : ", ", e.organisation.organisation_id(),
                             " (grade ", e.grade, ", ", e.stars, " stars)");
            workflow::Append(&names_zh, i == 0 ? "" : "、", e.organisation.organisation_id(), "（",
                             e.grade, " 类，", e.stars, " 星）");
          }
        }
        if (skipped.size() > 10) {
          workflow::Append(&names, ", and ", skipped.size() - 10, " more");
          workflow::Append(&names_zh, " 等 ", skipped.size(), " 个");
        }
        const std::string& best_id = best->organisation.organisation_id();
        flags.push_back(MakeFlag(
            kLowerRankedSkipped, subject, county, Micros(best_listing->state.listed_time()),
            responsible, std::move(evidence),
            Cat(county, " listed ", best_id, " (grade ", best->grade, ", ", best->stars,
                " stars when listed) but not ", skipped.size(),
                " organisation(s) ranked below it: ", names),
            Cat(county, " 已将 ", best_id, "（列入时 ", best->grade, " 类，", best->stars,
                " 星）列入台账，却未列入排名更靠后的 ", skipped.size(), " 个组织：", names_zh)));
      }
    }
  }

  std::sort(flags.begin(), flags.end(), [](const v1::Flag& a, const v1::Flag& b) {
    if (a.county() != b.county()) return a.county() < b.county();
    if (a.rule() != b.rule()) return a.rule() < b.rule();
    if (a.subject() != b.subject()) return a.subject() < b.subject();
    return a.responsible_size() > 0 && b.responsible_size() > 0 &&
           a.responsible(0) < b.responsible(0);
  });
  return flags;
}

std::vector<v1::CountyLine> CountyReport(const Ledger& ledger, const workflow::Policy& policy,
                                         int64_t now, int64_t period_start,
                                         std::string_view scope) {
  std::map<std::string, v1::CountyLine> lines;
  std::map<std::string, std::set<std::string>> listed_orgs;  // county -> organisation ids
  std::map<std::string, int64_t> open_in_period;
  std::map<std::string, int64_t> cases_listed;                   // county -> cases
  std::map<std::string, std::set<std::string>> converted_cases;  // county -> cases closed in period
  for (const std::string& county : ledger.Counties()) {
    if (InSubtree(scope, county)) lines[county].set_jurisdiction(county);
  }
  for (const auto& [county, orgs] : ledger.registry()) {
    if (lines.contains(county)) lines[county].set_organisations(static_cast<int64_t>(orgs.size()));
  }
  for (const auto& [stream, record] : ledger.cases()) {
    if (!InSubtree(scope, record.state.organisation().jurisdiction())) continue;
    auto it = lines.find(record.county);
    if (it == lines.end()) continue;
    v1::CountyLine& line = it->second;
    const std::string& org = record.state.organisation().organisation_id();
    listed_orgs[record.county].insert(org);
    ++cases_listed[record.county];
    switch (record.state.state()) {
      case v1::CASE_STATE_LISTED:
        line.set_awaiting_assistance(line.awaiting_assistance() + 1);
        break;
      case v1::CASE_STATE_ASSISTED:
        line.set_assisted(line.assisted() + 1);
        break;
      case v1::CASE_STATE_VERIFIED:
        line.set_verified(line.verified() + 1);
        break;
      case v1::CASE_STATE_CLOSED:
        line.set_closed(line.closed() + 1);
        break;
      case v1::CASE_STATE_REOPENED:
        line.set_reopened(line.reopened() + 1);
        break;
      default:
        break;
    }
    for (const auto& [opened, closed] : record.open_spans) {
      if (opened <= now && closed >= period_start) {
        ++open_in_period[record.county];
        break;
      }
    }
  }
  for (const Occurrence& o : ledger.occurrences()) {
    auto it = lines.find(o.county);
    if (it == lines.end() || o.time_micros < period_start || o.time_micros > now) continue;
    if (StartsWith(o.subject, kCasePrefix)) {
      auto c = ledger.cases().find(o.subject);
      if (c == ledger.cases().end() ||
          !InSubtree(scope, c->second.state.organisation().jurisdiction())) {
        continue;
      }
    }
    v1::CountyLine& line = it->second;
    switch (o.kind) {
      case Occurrence::Kind::kConversion:
        line.set_conversions_in_period(line.conversions_in_period() + 1);
        converted_cases[o.county].insert(o.subject);
        break;
      case Occurrence::Kind::kRelapse:
        line.set_relapses_in_period(line.relapses_in_period() + 1);
        break;
      case Occurrence::Kind::kTalk:
        line.set_talks_in_period(line.talks_in_period() + 1);
        break;
      case Occurrence::Kind::kNotice:
        line.set_notices_in_period(line.notices_in_period() + 1);
        break;
    }
  }
  for (const v1::Flag& flag : ComputeFlags(ledger, policy, now, scope)) {
    auto it = lines.find(flag.county());
    if (it != lines.end()) it->second.set_flags(it->second.flags() + 1);
  }
  std::vector<v1::CountyLine> out;
  for (auto& [county, line] : lines) {
    line.set_listed(static_cast<int64_t>(listed_orgs[county].size()));
    const int64_t in_registry = static_cast<int64_t>(ledger.CountedListings(county).size());
    line.set_listed_ratio_bp(
        line.organisations() == 0 ? 0 : in_registry * 10000 / line.organisations());
    // Cases over cases: an organisation with two cases, or a case closed twice in the
    // period (closed, relapsed, closed again), never lifts a rate above 100%.
    const int64_t listed_cases = cases_listed[county];
    line.set_conversion_rate_bp(listed_cases == 0 ? 0 : line.closed() * 10000 / listed_cases);
    const int64_t open = open_in_period[county];
    const int64_t converted = static_cast<int64_t>(converted_cases[county].size());
    line.set_period_conversion_rate_bp(open == 0 ? 0 : converted * 10000 / open);
    out.push_back(std::move(line));
  }
  return out;
}

v1::GetAccountabilityReportResponse AccountabilityReport(const Ledger& ledger,
                                                         const workflow::Policy& policy,
                                                         std::string_view county, int64_t start,
                                                         int64_t end) {
  v1::GetAccountabilityReportResponse report;
  report.set_county(std::string(county));
  report.set_through_position(ledger.through_position());
  const int64_t last = end - 1;  // the period is [start, end)
  for (v1::CountyLine& line : CountyReport(ledger, policy, last, start, county)) {
    if (line.jurisdiction() == county) *report.mutable_summary() = std::move(line);
  }
  if (report.summary().jurisdiction().empty())
    report.mutable_summary()->set_jurisdiction(std::string(county));

  std::vector<v1::AccountabilityLine> lines;
  auto add = [&lines](std::string section, std::string subject, std::string detail,
                      std::string detail_zh, int64_t micros, std::vector<std::string> people,
                      std::vector<int64_t> positions) {
    v1::AccountabilityLine line;
    line.set_section(std::move(section));
    line.set_subject(std::move(subject));
    line.set_detail(std::move(detail));
    line.set_detail_zh(std::move(detail_zh));
    *line.mutable_time() = ToTimestamp(micros);
    for (std::string& p : people) line.add_people(std::move(p));
    for (int64_t p : positions) line.add_positions(p);
    lines.push_back(std::move(line));
  };
  for (const auto& [stream, record] : ledger.cases()) {
    if (record.county != county || !IsOpen(record.state.state())) continue;
    const v1::Case& s = record.state;
    add("OPEN_CASE", stream,
        Cat(s.organisation().display_name(), ": ", StateName(s.state()), ", opened ",
            Date(Micros(s.opened_time())),
            s.has_deadline() ? Cat(", deadline ", Date(Micros(s.deadline()))) : std::string()),
        Cat(s.organisation().display_name(), "：", workflow::CaseStateNameZh(s.state()), "，",
            Date(Micros(s.opened_time())), " 起在册",
            s.has_deadline() ? Cat("，整改期限 ", Date(Micros(s.deadline()))) : std::string()),
        Micros(s.opened_time()), Answerable(s), {record.opened_position, s.last_position()});
  }
  for (const Occurrence& o : ledger.occurrences()) {
    if (o.county != county || o.time_micros < start || o.time_micros >= end) continue;
    std::vector<std::string> people = o.people;
    if (o.kind == Occurrence::Kind::kTalk || o.kind == Occurrence::Kind::kNotice ||
        o.kind == Occurrence::Kind::kRelapse) {
      people.insert(people.begin(), o.actor);
    }
    const char* section = "";
    switch (o.kind) {
      case Occurrence::Kind::kConversion:
        section = "CONVERSION";
        break;
      case Occurrence::Kind::kRelapse:
        section = "RELAPSE";
        break;
      case Occurrence::Kind::kTalk:
        section = "TALK";
        break;
      case Occurrence::Kind::kNotice:
        section = "NOTICE";
        break;
    }
    add(section, o.subject, o.detail, o.detail_zh, o.time_micros, std::move(people), {o.position});
  }
  for (const v1::Flag& flag : ComputeFlags(ledger, policy, last, county)) {
    add("FLAG", flag.subject(), Cat(flag.rule(), ": ", flag.detail()),
        Cat(flag.rule(), "：", flag.detail_zh()), Micros(flag.since_time()),
        {flag.responsible().begin(), flag.responsible().end()},
        {flag.evidence_positions().begin(), flag.evidence_positions().end()});
  }
  auto rank = [](const std::string& section) {
    static const std::vector<std::string> order = {"OPEN_CASE", "CONVERSION", "RELAPSE",
                                                   "FLAG",      "TALK",       "NOTICE"};
    return std::find(order.begin(), order.end(), section) - order.begin();
  };
  std::stable_sort(lines.begin(), lines.end(),
                   [&rank](const v1::AccountabilityLine& a, const v1::AccountabilityLine& b) {
                     if (a.section() != b.section()) return rank(a.section()) < rank(b.section());
                     if (Micros(a.time()) != Micros(b.time())) {
                       return Micros(a.time()) < Micros(b.time());
                     }
                     return a.subject() < b.subject();
                   });
  for (v1::AccountabilityLine& line : lines) *report.add_lines() = std::move(line);
  return report;
}

}  // namespace casework::oversight

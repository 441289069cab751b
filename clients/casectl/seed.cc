#include "clients/casectl/seed.h"

#include <openssl/sha.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "clients/casectl/oversight_commands.h"
#include "clients/client.h"
#include "clients/signing.h"
#include "services/workflow/statement.h"

namespace casework::client {
namespace {

using casework::v1::CaseCommandResponse;

constexpr const char* kCity = "jiangcheng";
constexpr const char* kCounties[] = {"dongshan", "xihe",    "nanping",   "beiling", "qingshui",
                                     "baiyun",   "longtan", "fenghuang", "taoyuan", "songlin"};
constexpr const char* kCountyNames[] = {"东山县", "西河县", "南平县", "北岭县", "清水县",
                                        "白云区", "龙潭区", "凤凰县", "桃源县", "松林县"};
constexpr int kTownshipsPerCounty = 15;
// Organisations of the sample city: 10 counties of 15 townships of 20.
constexpr int kSampleOrganisations = 10 * kTownshipsPerCounty * 20;
constexpr const char* kVillageWords[] = {"东", "西", "南", "北", "上", "下", "前", "后",
                                         "新", "老", "大", "小", "石", "柳", "杨", "李"};
constexpr const char* kVillageWords2[] = {"山", "河", "湾", "坪", "岭", "溪", "岗", "桥",
                                          "塘", "庄", "沟", "营", "寨", "林", "田", "坝"};

struct Plan {
  std::string case_id;
  std::string org_id;
  std::string org_name;
  std::string jurisdiction;
  casework::v1::CaseType type;
  std::vector<casework::v1::ProblemCategory> categories;
  casework::v1::CaseState target;
  int visits;
  bool failed_inspection_first;
  std::string county;
  bool follow_up_holds = false;
};

// The sample approvers' signing keys are derived from their names, so that a second run
// (and anyone reproducing the sample) signs with the same keys. Sample data only: real
// approvers generate their keys with `casectl keygen` and keep them to themselves.
casework::client::SigningKey SampleKey(const std::string& approver) {
  const std::string label = "casework sample approver key: " + approver;
  unsigned char seed[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(label.data()), label.size(), seed);
  auto key = casework::client::SigningKey::FromSeed(
      std::string_view(reinterpret_cast<const char*>(seed), sizeof seed));
  if (!key.ok()) std::abort();
  return std::move(*key);
}

std::string CountyApprover(const std::string& county) { return "approver." + county; }

casework::v1::DepartmentKind KindFor(casework::v1::CaseType t) {
  switch (t) {
    case casework::v1::CASE_TYPE_WEAK:
      return casework::v1::DEPARTMENT_KIND_PARTY_GOVERNMENT;
    case casework::v1::CASE_TYPE_POOR:
      return casework::v1::DEPARTMENT_KIND_ECONOMIC;
    case casework::v1::CASE_TYPE_DISORDERLY:
      return casework::v1::DEPARTMENT_KIND_POLITICAL_LEGAL;
    default:
      return casework::v1::DEPARTMENT_KIND_AGRICULTURAL_TECH;
  }
}

std::vector<Plan> MakePlans(const SeedOptions& o) {
  std::mt19937_64 rng(o.seed);
  // Each organisation once (one case per organisation): a Fisher-Yates shuffle of every
  // organisation of the sample city, drawn with this generator so that a seed gives the
  // same data everywhere.
  std::vector<int> organisations(kSampleOrganisations);
  for (int i = 0; i < kSampleOrganisations; ++i) organisations[i] = i;
  for (int i = kSampleOrganisations - 1; i > 0; --i) {
    std::swap(organisations[i], organisations[rng() % static_cast<uint64_t>(i + 1)]);
  }
  std::vector<Plan> plans;
  plans.reserve(o.cases);
  for (int i = 0; i < o.cases && i < kSampleOrganisations; ++i) {
    Plan p;
    const int county = organisations[i] / (kTownshipsPerCounty * 20);
    const int township = organisations[i] / 20 % kTownshipsPerCounty;
    const int org = organisations[i] % 20;
    p.case_id = absl::StrFormat("c-%05d", i + 1);
    p.org_id = absl::StrFormat("org-%02d%02d%02d", county, township, org);
    p.org_name = absl::StrCat(kCountyNames[county], kVillageWords[rng() % 16],
                              kVillageWords2[rng() % 16], "村党支部");
    p.jurisdiction =
        absl::StrFormat("%s/%s/t%02d/%s", kCity, kCounties[county], township, p.org_id);
    p.type = static_cast<casework::v1::CaseType>(1 + rng() % 4);
    const int ncat = 1 + static_cast<int>(rng() % 3);
    for (int c = 1; c <= 6 && static_cast<int>(p.categories.size()) < ncat; ++c) {
      if (rng() % 3 == 0 || 6 - c < ncat - static_cast<int>(p.categories.size())) {
        p.categories.push_back(static_cast<casework::v1::ProblemCategory>(c));
      }
    }
    const int r = static_cast<int>(rng() % 100);
    p.target = r < 15   ? casework::v1::CASE_STATE_LISTED
               : r < 50 ? casework::v1::CASE_STATE_ASSISTED
               : r < 65 ? casework::v1::CASE_STATE_VERIFIED
               : r < 90 ? casework::v1::CASE_STATE_CLOSED
                        : casework::v1::CASE_STATE_REOPENED;
    p.county = kCounties[county];
    p.follow_up_holds = rng() % 3 == 0;
    p.visits = static_cast<int>(rng() % 4);
    p.failed_inspection_first = rng() % 4 == 0;
    plans.push_back(std::move(p));
  }
  return plans;
}

// Runs one case's history; returns the failing status or OK. A case that exists already
// (a second run) is skipped.
grpc::Status RunPlan(const Plan& p, const SeedOptions& o, uint64_t seed) {
  auto make = [&](const char* who) {
    return std::make_unique<Client>(
        ClientOptions{.server = o.server, .identity = who, .timeout = o.timeout});
  };
  auto lister = make(kSeedLister);
  auto reviewer = make(kSeedReviewer);
  auto assigner = make(kSeedAssigner);
  auto assister = make(kSeedAssister);
  auto inspector = make(kSeedInspector);
  const std::string rid_base = absl::StrCat("seed-", seed, "-", p.case_id, "-");
  CaseCommandResponse resp;
  int64_t version = 0;
  std::string latest_leaf;  // of the case's event at `version`, which a sign-off names
  auto step = [&](Client& c, auto method, auto& req) -> grpc::Status {
    resp.Clear();
    auto ctx = c.NewContext();
    grpc::Status s = (c.cases().*method)(ctx.get(), req, &resp);
    if (s.ok()) {
      version = resp.case_().version();
      latest_leaf = resp.case_().last_leaf_hash();
    }
    return s;
  };

  {  // A case loaded by an earlier run is left as it is.
    casework::v1::GetCaseRequest get;
    get.set_name("cases/" + p.case_id);
    casework::v1::Case existing;
    auto ctx = lister->NewContext();
    grpc::Status s = lister->cases().GetCase(ctx.get(), get, &existing);
    if (s.ok()) return grpc::Status::OK;
    if (s.error_code() != grpc::StatusCode::NOT_FOUND) return s;
  }

  casework::v1::CreateCaseRequest create;
  create.set_case_id(p.case_id);
  create.set_request_id(rid_base + "create");
  auto* org = create.mutable_organisation();
  org->set_organisation_id(p.org_id);
  org->set_display_name(p.org_name);
  org->set_jurisdiction(p.jurisdiction);
  org->set_kind(casework::v1::ORGANISATION_KIND_VILLAGE);
  create.set_case_type(p.type);
  for (auto c : p.categories) create.add_problem_categories(c);
  create.set_findings("摸底排查发现的问题 findings of the investigation");
  create.mutable_deadline()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count() +
                                         365 * 86400);
  if (auto s = step(*lister, &casework::v1::CaseService::Stub::CreateCase, create); !s.ok()) {
    // The case from an earlier run under another seed: skipped. Anything else (an
    // organisation listed by another case, say) is a failure, not a quiet skip.
    return DecodeError(s).reason == "CASE_ALREADY_EXISTS" ? grpc::Status::OK : s;
  }
  if (resp.replayed()) return grpc::Status::OK;  // loaded by an earlier run

  casework::v1::ReviewListingRequest review;
  review.set_name("cases/" + p.case_id);
  review.set_request_id(rid_base + "review");
  review.set_expected_version(version);
  review.set_confirmed(true);
  review.set_comment("逐个过筛子 reviewed");
  if (auto s = step(*reviewer, &casework::v1::CaseService::Stub::ReviewListing, review); !s.ok())
    return s;
  if (p.target == casework::v1::CASE_STATE_LISTED) return grpc::Status::OK;

  casework::v1::AssignAssistanceRequest assign;
  assign.set_name("cases/" + p.case_id);
  assign.set_request_id(rid_base + "assign");
  assign.set_expected_version(version);
  auto* a = assign.mutable_assignment();
  a->mutable_paired_department()->set_department_id(absl::StrCat("dept-", p.type));
  a->mutable_paired_department()->set_display_name("市直结对部门");
  a->mutable_paired_department()->set_kind(KindFor(p.type));
  a->mutable_first_secretary()->set_person_id(kSeedAssister);
  a->mutable_first_secretary()->set_display_name("王强");
  auto* cadre = a->add_stationed_cadres();
  cadre->set_person_id(absl::StrCat("cadre-", p.org_id));
  cadre->set_display_name("驻村干部");
  a->set_plan("一村一策：配强班子、发展集体经济 strengthen leadership, build collective income");
  if (auto s = step(*assigner, &casework::v1::CaseService::Stub::AssignAssistance, assign); !s.ok())
    return s;

  for (int v = 0; v < p.visits; ++v) {
    casework::v1::RecordFieldVisitRequest visit;
    visit.set_name("cases/" + p.case_id);
    visit.set_request_id(absl::StrCat(rid_base, "visit-", v));
    visit.set_expected_version(version);
    visit.add_visitors(kSeedAssister);
    visit.mutable_visit_time()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count() -
                                            60);
    visit.set_notes("入村走访 field visit");
    if (auto s = step(*assister, &casework::v1::CaseService::Stub::RecordFieldVisit, visit);
        !s.ok())
      return s;
  }
  casework::v1::RecordMeasureRequest measure;
  measure.set_name("cases/" + p.case_id);
  measure.set_request_id(rid_base + "measure");
  measure.set_expected_version(version);
  measure.set_description("调整充实村党组织班子 strengthened the branch committee");
  measure.set_problem_category(p.categories.front());
  if (auto s = step(*assister, &casework::v1::CaseService::Stub::RecordMeasure, measure); !s.ok())
    return s;
  if (p.target == casework::v1::CASE_STATE_ASSISTED) return grpc::Status::OK;

  int inspection = 0;
  auto inspect = [&](bool passed) {
    casework::v1::RecordInspectionRequest req;
    req.set_name("cases/" + p.case_id);
    req.set_request_id(absl::StrCat(rid_base, "inspect-", inspection));
    req.set_expected_version(version);
    req.set_inspection_id(absl::StrCat("insp-", p.case_id, "-", ++inspection));
    req.set_passed(passed);
    req.set_findings(passed ? "问题已解决 problems solved" : "仍有问题 problems remain");
    if (!passed) req.set_further_measures("再行会诊 stronger measures");
    return step(*inspector, &casework::v1::CaseService::Stub::RecordInspection, req);
  };
  if (p.failed_inspection_first) {
    if (auto s = inspect(false); !s.ok()) return s;
  }
  if (auto s = inspect(true); !s.ok()) return s;
  if (p.target == casework::v1::CASE_STATE_VERIFIED) return grpc::Status::OK;

  // Closure: the county approver signs, then the city approver (default policy: two
  // approvers, at least one at county level).
  const std::string inspection_id = absl::StrCat("insp-", p.case_id, "-", inspection);
  for (const std::string& approver : {CountyApprover(p.county), std::string(kSeedCityApprover)}) {
    casework::v1::SignOffClosureRequest req;
    req.set_name("cases/" + p.case_id);
    req.set_request_id(rid_base + "sign-" + approver);
    req.set_expected_version(version);
    req.set_inspection_id(inspection_id);
    const casework::client::SigningKey key = SampleKey(approver);
    req.set_key_id(key.key_id());
    auto statement = casework::workflow::SignOffStatementFor(req, latest_leaf);
    if (!statement) return grpc::Status(grpc::StatusCode::INTERNAL, "no statement");
    auto signature = key.Sign(*statement);
    if (!signature.ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string(signature.status().message()));
    }
    req.set_signature(*signature);
    auto signer = make(approver.c_str());
    if (auto s = step(*signer, &casework::v1::CaseService::Stub::SignOffClosure, req); !s.ok())
      return s;
  }
  if (p.target == casework::v1::CASE_STATE_CLOSED && !p.follow_up_holds) {
    return grpc::Status::OK;
  }

  // Follow-up review (回头看): holds, or a relapse reopens the case.
  casework::v1::RecordFollowUpReviewRequest review_after;
  review_after.set_name("cases/" + p.case_id);
  review_after.set_request_id(rid_base + "follow-up");
  review_after.set_expected_version(version);
  const bool relapsed = p.target == casework::v1::CASE_STATE_REOPENED;
  review_after.set_relapsed(relapsed);
  review_after.set_findings(relapsed ? "反弹回潮 relapse: meetings stopped again"
                                     : "整改成果巩固 the result holds");
  if (relapsed) {
    review_after.add_problem_categories(p.categories.front());
    review_after.mutable_deadline()->set_seconds(
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count() +
        180 * 86400);
  }
  return step(*inspector, &casework::v1::CaseService::Stub::RecordFollowUpReview, review_after);
}

// The registry of the sample city: every organisation of every county (10 x 15 x 20),
// ranked so that the listed ones are at the bottom (grade 4, 0-1 stars), except in the
// last county, whose first listing skips worse-ranked organisations (a flag to find).
std::string SampleRegistryCsv(const std::vector<Plan>& plans) {
  std::map<std::string, const Plan*> listed;
  for (const Plan& p : plans) listed.emplace(p.org_id, &p);
  std::mt19937_64 rng(7);
  std::string csv = std::string("organisation_id,display_name,jurisdiction,kind,grade,stars\n");
  bool misranked = false;
  for (int county = 0; county < 10; ++county) {
    for (int township = 0; township < kTownshipsPerCounty; ++township) {
      for (int org = 0; org < 20; ++org) {
        const std::string id = absl::StrFormat("org-%02d%02d%02d", county, township, org);
        const uint64_t h = rng();
        auto it = listed.find(id);
        int grade = 1 + static_cast<int>(h % 4);
        int stars = static_cast<int>((h >> 8) % 6);
        if (it != listed.end()) {
          grade = 4;
          stars = static_cast<int>((h >> 8) % 2);
          if (county == 9 && !misranked) {
            grade = 3;
            stars = 3;
            misranked = true;
          }
        } else if (grade == 4) {
          stars = 2 + static_cast<int>((h >> 8) % 4);
        }
        const std::string name =
            it != listed.end() ? it->second->org_name
                               : absl::StrCat(kCountyNames[county], kVillageWords[(h >> 16) % 16],
                                              kVillageWords2[(h >> 20) % 16],
                                              org >= 17 ? "社区党支部" : "村党支部");
        absl::StrAppend(&csv, id, ",", name, ",",
                        absl::StrFormat("%s/%s/t%02d/%s", kCity, kCounties[county], township, id),
                        org >= 17 && it == listed.end() ? ",community," : ",village,", grade, ",",
                        stars, "\n");
      }
    }
  }
  return csv;
}

// Registers the sample approvers' keys as the admin (idempotent: fixed request ids).
grpc::Status RegisterSampleKeys(const SeedOptions& o) {
  Client admin(ClientOptions{.server = o.server, .identity = kSeedAdmin, .timeout = o.timeout});
  auto stub = casework::v1::AdminService::NewStub(admin.channel());
  std::vector<std::pair<std::string, casework::v1::ApprovalLevel>> approvers = {
      {kSeedCityApprover, casework::v1::APPROVAL_LEVEL_CITY}};
  for (const char* county : kCounties) {
    approvers.push_back({CountyApprover(county), casework::v1::APPROVAL_LEVEL_COUNTY});
  }
  for (const auto& [approver, level] : approvers) {
    casework::v1::RegisterApproverKeyRequest req;
    req.set_request_id("seed-key-" + approver);
    req.set_approver(approver);
    req.set_public_key(SampleKey(approver).public_key());
    req.set_level(level);
    casework::v1::RegisterApproverKeyResponse resp;
    auto ctx = admin.NewContext();
    if (auto s = stub->RegisterApproverKey(ctx.get(), req, &resp); !s.ok()) return s;
  }
  return grpc::Status::OK;
}

// A failed call of the seed, on stderr: what it was, in English and Chinese, the server's
// message, its reason, and its Chinese message when it sent one.
// One write, so that failures of several workers do not interleave; `lead` before it (a
// new line after the progress line).
void PrintFailure(const std::string& what, const std::string& what_zh, const grpc::Status& s,
                  const char* lead = "") {
  const auto d = DecodeError(s);
  std::string text = absl::StrCat(lead, "seed: ", what, " ", what_zh, ": ", s.error_message());
  if (!d.reason.empty()) absl::StrAppend(&text, " [", d.reason, "]");
  absl::StrAppend(&text, "\n");
  if (!d.message_zh.empty()) absl::StrAppend(&text, "  ", d.message_zh, "\n");
  std::cerr << text;
}

}  // namespace

int RunSeed(const SeedOptions& options, bool json) {
  if (options.cases < 0 || options.cases > kSampleOrganisations) {
    std::cerr << "seed: --cases must be 0 to " << kSampleOrganisations
              << ", one case per organisation of the sample city 示例城市共有 "
              << kSampleOrganisations << " 个组织，每个组织一个案件（--cases 须为 0 至 "
              << kSampleOrganisations << "）\n";
    return 2;
  }
  if (auto s = RegisterSampleKeys(options); !s.ok()) {
    PrintFailure("registering the sample approvers' keys", "登记示例审批人密钥", s);
    return IsConnectionFailure(s) ? 3 : 1;
  }
  const std::vector<Plan> plans = MakePlans(options);
  {
    Client admin(ClientOptions{
        .server = options.server, .identity = kSeedAdmin, .timeout = options.timeout});
    RegistryImportTotals totals;
    std::string local_error;
    // The request id names the rows, not only the seed: another --cases makes another
    // registry, which must not reuse the first one's id.
    const std::string csv = SampleRegistryCsv(plans);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(csv.data()), csv.size(), digest);
    std::string id = absl::StrCat("seed-registry-", options.seed, "-");
    for (int i = 0; i < 8; ++i) absl::StrAppendFormat(&id, "%02x", digest[i]);
    grpc::Status s = ImportRegistryFile(admin, csv, id, &totals, &local_error);
    if (!s.ok()) {
      PrintFailure("importing the sample registry", "导入示例组织名册", s);
      return IsConnectionFailure(s) ? 3 : 1;
    }
  }
  const bool progress = !json && isatty(STDERR_FILENO);
  std::atomic<int> next{0}, done{0}, failed{0};
  std::atomic<bool> unreachable{false};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < options.concurrency; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        const int i = next.fetch_add(1);
        if (i >= static_cast<int>(plans.size()) || unreachable.load()) return;
        grpc::Status s = RunPlan(plans[i], options, options.seed);
        if (!s.ok()) {
          if (IsConnectionFailure(s)) unreachable = true;
          if (failed.fetch_add(1) < 5) PrintFailure("case " + plans[i].case_id, "案件", s, "\n");
        }
        done.fetch_add(1);
      }
    });
  }
  if (progress) {
    while (done.load() < static_cast<int>(plans.size()) && !unreachable.load()) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::fprintf(stderr, "\rloading sample data 载入示例数据: %d/%zu cases, %.0f cases/s   ",
                   done.load(), plans.size(), secs > 0 ? done.load() / secs : 0.0);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  for (auto& t : workers) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // What was attempted, not what was planned: once the server is unreachable the workers
  // stop, and the cases never tried are counted apart.
  const int attempted = done.load();
  const int untried = static_cast<int>(plans.size()) - attempted;
  if (json) {
    std::cout << "{\"cases\":" << attempted - failed.load() << ",\"failed\":" << failed.load()
              << ",\"not_tried\":" << untried << ",\"seconds\":" << secs << "}\n";
  } else {
    std::fprintf(stderr,
                 "\rloaded sample data 已载入示例数据: %d cases, %d failed 失败, %d not tried "
                 "未尝试, %.1f s%20s\n",
                 attempted - failed.load(), failed.load(), untried, secs, "");
  }
  if (unreachable) return 3;
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace casework::client

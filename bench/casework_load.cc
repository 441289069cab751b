// casework-load: drives a running caseworkd with a realistic mix of commands and reads
// at a chosen concurrency, for a bounded time or count, and reports throughput, p50, p99
// and p99.9 latency and errors per method and overall, as a table or as JSON.
//
// Each of the --concurrency workers keeps one call in flight (gRPC callback client API,
// no thread per call) and walks cases through their life: create -> review -> assign ->
// field visits and measures -> inspection -> closure sign-offs (a county and a city
// approver, or --sign-offs 1 the county one alone, each with a real Ed25519 signature over
// the canonical statement; keys made and registered at start; --no-sign-off leaves them
// out), with GetCase and ListCases
// pages mixed in (--read-percent). Identities come from deploy/principals.sample.json.
//
// --existing reads instead of writing: it first collects the names of the cases already
// in the log from ListCases pages (all, or a uniform sample of --existing-max), then every
// worker calls GetCase on one of them chosen at random, so that reads reach old cases as
// well as new ones (the read side of a log of millions of events).
//
// Closed loop: a worker sends its next call when the last answer arrives, so latencies
// are service times at that concurrency, not response times at an offered rate. The
// window starts once every channel is connected; percentiles are nearest-rank over the
// answered calls, and failed calls (errors, with their codes) are reported with their own
// p50 and p99. Exit status 1 when any call failed, 2 when the run could not start.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "casework/v1/admin_service.grpc.pb.h"
#include "clients/client.h"
#include "clients/signing.h"
#include "nlohmann/json.hpp"
#include "services/workflow/statement.h"

namespace {

// Calls one method of the callback client API (the async stub's methods are overloaded,
// so a member pointer cannot name one).
#define CW_ASYNC(Method)                                                                   \
  [](casework::v1::CaseService::StubInterface::async_interface* a, grpc::ClientContext* c, \
     const auto* q, auto* r,                                                               \
     std::function<void(grpc::Status)> f) { a->Method(c, q, r, std::move(f)); }

using Clock = std::chrono::steady_clock;
using casework::client::Client;
using casework::client::ClientOptions;

struct Options {
  std::string server = "127.0.0.1:7070";
  int concurrency = 32;
  double duration_s = 10;
  int64_t count = 0;  // 0: bounded by duration only
  int read_percent = 20;
  uint64_t seed = 1;
  std::string run_id;
  bool json = false;
  bool no_sign_off = false;
  int sign_offs = 2;       // approvers who sign each closure: the county one, then the city one
  std::string record_dir;  // keep the first answer of each method here (casework-echo)
  int channels = 4;        // connections the workers are spread over
  bool existing = false;   // GetCase on random cases already in the log, nothing else
  int64_t existing_max = 2'000'000;  // a uniform sample of this many case names, at most
};

// The case names --existing reads from.
const std::vector<std::string>* existing_cases = nullptr;

// The approvers who sign closures, with their keys (registered at start).
struct Signer {
  const char* identity;
  casework::v1::ApprovalLevel level;
  std::unique_ptr<casework::client::SigningKey> key;
};
std::vector<Signer>* signers = nullptr;

// Latencies of one method, in microseconds.
struct Series {
  std::vector<int64_t> micros;         // answered calls
  std::vector<int64_t> failed_micros;  // calls that failed (a deadline, a refusal)
  int64_t errors = 0;
  std::map<std::string, int64_t> error_codes;
};

class Recorder {
 public:
  void Record(const std::string& method, int64_t micros, const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    Series& s = series_[method];
    if (status.ok()) {
      s.micros.push_back(micros);
    } else {
      // Kept apart, so that a deadline's 10 s does not hide in the answered calls'
      // percentiles, nor vanish: their own figures are reported beside.
      s.failed_micros.push_back(micros);
      ++s.errors;
      ++s.error_codes[std::to_string(static_cast<int>(status.error_code())) + " " +
                      casework::client::DecodeError(status).reason];
    }
  }
  // Writes the first successful answer of `method` to dir/<method>.pb (the answers
  // casework-echo sends back).
  void Keep(const std::string& dir, const std::string& method,
            const google::protobuf::Message& answer) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!kept_.insert(method).second) return;
    }
    std::ofstream out(dir + "/" + method + ".pb", std::ios::binary | std::ios::trunc);
    out << answer.SerializeAsString();
    if (!out)
      std::fprintf(stderr, "casework-load: cannot write %s/%s.pb\n", dir.c_str(), method.c_str());
  }
  std::map<std::string, Series> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(series_);
  }

 private:
  std::mutex mu_;
  std::map<std::string, Series> series_;
  std::set<std::string> kept_;
};

// The nearest-rank percentile: the smallest sample with at least p of the samples at or
// below it (p99 of 100 samples is the 99th, not the largest).
int64_t Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  const size_t i = std::min(v.size() - 1, rank == 0 ? 0 : rank - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One worker: one call in flight, walking its own cases through the workflow.
class Worker {
 public:
  Worker(int index, const Options& o, Recorder* rec, std::atomic<int64_t>* budget,
         Clock::time_point stop_at, std::shared_ptr<grpc::Channel> channel)
      : index_(index),
        o_(o),
        rec_(rec),
        budget_(budget),
        stop_at_(stop_at),
        rng_(o.seed * 7919 + static_cast<uint64_t>(index)),
        stub_(casework::v1::CaseService::NewStub(channel)) {}

  void Start() { Next(); }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  enum class Step { kCreate, kReview, kAssign, kVisit, kMeasure, kInspect, kSignOff };

  std::unique_ptr<grpc::ClientContext> Context(const char* identity) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("x-casework-identity", identity);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  std::string Name() const { return "cases/" + case_id_; }
  std::string RequestId() {
    return o_.run_id + "-" + std::to_string(index_) + "-" + std::to_string(++requests_);
  }

  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  // Issues the next call, or finishes when the time or count budget is spent. A call's
  // answer may arrive, and the next call start, on another thread before the statement
  // after the one that issued it: the worker's state is set before a call, never after.
  void Next() {
    if (Clock::now() >= stop_at_ || (o_.count > 0 && budget_->fetch_sub(1) <= 0)) {
      Finish();
      return;
    }
    if (existing_cases != nullptr) {
      GetExisting();
      return;
    }
    const bool read = version_ > 0 && static_cast<int>(rng_() % 100) < o_.read_percent;
    if (read) {
      if (rng_() % 4 == 0) {
        List();
      } else {
        Get();
      }
      return;
    }
    switch (step_) {
      case Step::kCreate:
        Create();
        break;
      case Step::kReview:
        Command<casework::v1::ReviewListingRequest>(
            "ReviewListing", "zhao.min", [&](auto* r) { r->set_confirmed(true); },
            CW_ASYNC(ReviewListing), Step::kAssign);
        break;
      case Step::kAssign:
        Command<casework::v1::AssignAssistanceRequest>(
            "AssignAssistance", "li.na",
            [&](auto* r) {
              auto* a = r->mutable_assignment();
              a->mutable_paired_department()->set_department_id("dept-econ");
              a->mutable_paired_department()->set_display_name("市发改委");
              a->mutable_paired_department()->set_kind(casework::v1::DEPARTMENT_KIND_ECONOMIC);
              a->mutable_first_secretary()->set_person_id("wang.qiang");
              a->mutable_first_secretary()->set_display_name("王强");
              auto* c = a->add_stationed_cadres();
              c->set_person_id("cadre-1");
              c->set_display_name("驻村干部");
              a->set_plan("build collective income");
            },
            CW_ASYNC(AssignAssistance), Step::kVisit);
        break;
      case Step::kVisit:
        Command<casework::v1::RecordFieldVisitRequest>(
            "RecordFieldVisit", "wang.qiang",
            [&](auto* r) {
              r->add_visitors("wang.qiang");
              r->mutable_visit_time()->set_seconds(NowSeconds() - 60);
              r->set_notes("field visit");
            },
            CW_ASYNC(RecordFieldVisit), ++activities_ < 3 ? Step::kVisit : Step::kMeasure);
        break;
      case Step::kMeasure:
        Command<casework::v1::RecordMeasureRequest>(
            "RecordMeasure", "wang.qiang",
            [&](auto* r) {
              r->set_description("strengthened the branch committee");
              r->set_problem_category(casework::v1::PROBLEM_CATEGORY_DEVELOPMENT);
            },
            CW_ASYNC(RecordMeasure), Step::kInspect);
        break;
      case Step::kInspect:
        signed_ = 0;
        Command<casework::v1::RecordInspectionRequest>(
            "RecordInspection", "chen.jing",
            [&](auto* r) {
              r->set_inspection_id("insp-1");
              r->set_passed(true);
              r->set_findings("problems solved");
            },
            CW_ASYNC(RecordInspection), o_.no_sign_off ? Step::kCreate : Step::kSignOff);
        break;
      case Step::kSignOff: {
        const Signer& signer = (*signers)[static_cast<size_t>(signed_)];
        auto signature = signer.key->Sign(
            casework::workflow::SignOffStatement(case_id_, version_, "insp-1", latest_leaf_));
        if (!signature.ok()) {
          std::fprintf(stderr, "signing failed: %s\n", signature.status().ToString().c_str());
          std::abort();
        }
        const bool last = static_cast<size_t>(signed_ + 1) == signers->size();
        ++signed_;
        Command<casework::v1::SignOffClosureRequest>(
            "SignOffClosure", signer.identity,
            [&](auto* r) {
              r->set_inspection_id("insp-1");
              r->set_key_id(signer.key->key_id());
              r->set_signature(*signature);
            },
            CW_ASYNC(SignOffClosure), last ? Step::kCreate : Step::kSignOff);
        break;
      }
    }
  }

  void Create() {
    case_id_ = "ld-" + o_.run_id + "-" + std::to_string(index_) + "-" + std::to_string(++cases_);
    auto req = std::make_shared<casework::v1::CreateCaseRequest>();
    req->set_case_id(case_id_);
    req->set_request_id(RequestId());
    auto* org = req->mutable_organisation();
    org->set_organisation_id("org-" + case_id_);
    org->set_display_name("负载测试村党支部");
    org->set_jurisdiction("jiangcheng/dongshan/t01/org-" + case_id_);
    org->set_kind(casework::v1::ORGANISATION_KIND_VILLAGE);
    req->set_case_type(casework::v1::CASE_TYPE_POOR);
    req->add_problem_categories(casework::v1::PROBLEM_CATEGORY_DEVELOPMENT);
    req->set_findings("no collective income");
    req->mutable_deadline()->set_seconds(NowSeconds() + 365 * 86400);
    activities_ = 0;
    Call<casework::v1::CreateCaseRequest, casework::v1::CaseCommandResponse>(
        "CreateCase", "li.na", req, CW_ASYNC(CreateCase),
        [this](const grpc::Status& s, const casework::v1::CaseCommandResponse& r) {
          if (s.ok()) {
            version_ = r.case_().version();
            latest_leaf_ = r.case_().last_leaf_hash();
            step_ = Step::kReview;
          }
        });
  }

  void Get() {
    auto req = std::make_shared<casework::v1::GetCaseRequest>();
    req->set_name(Name());
    Call<casework::v1::GetCaseRequest, casework::v1::Case>(
        "GetCase", "zhou.hua", req, CW_ASYNC(GetCase),
        [](const grpc::Status&, const casework::v1::Case&) {});
  }

  void GetExisting() {
    auto req = std::make_shared<casework::v1::GetCaseRequest>();
    req->set_name((*existing_cases)[rng_() % existing_cases->size()]);
    Call<casework::v1::GetCaseRequest, casework::v1::Case>(
        "GetCase", "zhou.hua", req, CW_ASYNC(GetCase),
        [](const grpc::Status&, const casework::v1::Case&) {});
  }

  void List() {
    auto req = std::make_shared<casework::v1::ListCasesRequest>();
    req->set_page_size(20);
    req->set_filter("state = ASSISTED");
    Call<casework::v1::ListCasesRequest, casework::v1::ListCasesResponse>(
        "ListCases", "zhou.hua", req, CW_ASYNC(ListCases),
        [](const grpc::Status&, const casework::v1::ListCasesResponse&) {});
  }

  template <typename Req, typename Fill, typename Method>
  void Command(const char* method, const char* identity, Fill fill, Method m, Step next) {
    auto req = std::make_shared<Req>();
    req->set_name(Name());
    req->set_request_id(RequestId());
    req->set_expected_version(version_);
    fill(req.get());
    Call<Req, casework::v1::CaseCommandResponse>(
        method, identity, req, m,
        [this, next](const grpc::Status& s, const casework::v1::CaseCommandResponse& r) {
          if (s.ok()) {
            version_ = r.case_().version();
            latest_leaf_ = r.case_().last_leaf_hash();
            step_ = next;
          } else {
            step_ = Step::kCreate;  // start a fresh case after an error
          }
        });
  }

  template <typename Req, typename Resp, typename Method, typename After>
  void Call(const char* method, const char* identity, std::shared_ptr<Req> req, Method m,
            After after) {
    auto ctx = std::shared_ptr<grpc::ClientContext>(Context(identity));
    auto resp = std::make_shared<Resp>();
    const auto start = Clock::now();
    m(stub_->async(), ctx.get(), req.get(), resp.get(),
      [this, ctx, req, resp, start, method, after](grpc::Status s) mutable {
        const auto micros =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        rec_->Record(method, micros, s);
        if (s.ok() && !o_.record_dir.empty()) rec_->Keep(o_.record_dir, method, *resp);
        after(s, *resp);
        // The context holds a reference to the channel. Dropped after Next() (which may
        // let main go on and release its channels), it could be the channel's last one:
        // the channel would then be destroyed on this gRPC thread, which joins the threads
        // of gRPC's callback queue, this one among them, and frees the queue it is still
        // running (a double free at exit, seen under AddressSanitizer).
        ctx.reset();
        Next();
      });
  }

  const int index_;
  const Options& o_;
  Recorder* rec_;
  std::atomic<int64_t>* budget_;
  const Clock::time_point stop_at_;
  std::mt19937_64 rng_;
  std::unique_ptr<casework::v1::CaseService::Stub> stub_;
  std::string case_id_;
  int64_t version_ = 0;
  std::string latest_leaf_;  // the leaf hash of the case's event at version_
  int64_t cases_ = 0;
  int64_t requests_ = 0;
  int activities_ = 0;
  int signed_ = 0;  // sign-offs sent for the current case
  Step step_ = Step::kCreate;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

// Collects the names of the cases in the log from ListCases pages (blocking calls, before
// the run): all of them, or a uniform random sample of --existing-max when there are more
// (reservoir sampling over every page, so that old and new cases are equally likely).
absl::StatusOr<std::vector<std::string>> CollectCases(const Options& o) {
  casework::client::Client reader(
      casework::client::ClientOptions{.server = o.server, .identity = "zhou.hua"});
  auto stub = casework::v1::CaseService::NewStub(reader.channel());
  std::vector<std::string> names;
  std::mt19937_64 rng(o.seed);
  int64_t seen = 0;
  casework::v1::ListCasesRequest req;
  req.set_page_size(1000);
  do {
    casework::v1::ListCasesResponse resp;
    auto ctx = reader.NewContext();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    grpc::Status s = stub->ListCases(ctx.get(), req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError("ListCases: " + s.error_message());
    }
    for (const auto& c : resp.cases()) {
      ++seen;
      if (static_cast<int64_t>(names.size()) < o.existing_max) {
        names.push_back(c.name());
      } else if (const uint64_t slot = rng() % static_cast<uint64_t>(seen);
                 slot < static_cast<uint64_t>(o.existing_max)) {
        names[slot] = c.name();
      }
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  if (names.empty()) return absl::FailedPreconditionError("the log holds no case to read");
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  // As in caseworkd: Abseil's deadlock detection keeps a lock-order graph on every
  // acquisition of every absl::Mutex (gRPC's own included) when Abseil is built without
  // NDEBUG, as Debian's is. The load tool measures the server; it must not pay for that.
#ifdef NDEBUG
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  Options o;
  CLI::App app{
      "casework-load: drives caseworkd with a realistic mix of commands and reads and reports "
      "throughput and latency percentiles."};
  app.add_option("--server", o.server, "caseworkd host:port")->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "calls in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  auto* duration = app.add_option("--duration", o.duration_s,
                                  "seconds to run (with --count and no --duration: up to an "
                                  "hour, until the count is done)")
                       ->capture_default_str()
                       ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--count", o.count, "stop after this many calls (0: duration only)")
      ->capture_default_str();
  app.add_option("--read-percent", o.read_percent, "share of GetCase/ListCases calls")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_option("--seed", o.seed, "random seed")->capture_default_str();
  app.add_option("--run-id", o.run_id, "prefix of case and request ids (default: random)");
  app.add_flag("--json", o.json, "print JSON");
  app.add_flag("--no-sign-off", o.no_sign_off,
               "leave closure sign-offs out of the mix (no approver keys are registered)");
  app.add_option("--sign-offs", o.sign_offs,
                 "sign-offs per closure: 2 (a county and a city approver, caseworkd's default "
                 "policy) or 1 (the county approver; for a server run with "
                 "--closure-approvers-min 1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 2));
  app.add_option("--channels", o.channels,
                 "gRPC channels (connections) the workers are spread over")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--record-responses", o.record_dir,
                 "write the first answer of each method to DIR/<Method>.pb (for casework-echo)")
      ->check(CLI::ExistingDirectory);
  app.add_flag("--existing", o.existing,
               "read only: collect the names of the cases already in the log (ListCases pages), "
               "then call GetCase on them at random");
  app.add_option("--existing-max", o.existing_max,
                 "--existing reads from all cases, or from a uniform random sample of this many")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  CLI11_PARSE(app, argc, argv);
  // A count alone bounds the run, not the default duration.
  if (o.count > 0 && duration->count() == 0) o.duration_s = 3600.0;
  if (o.run_id.empty()) o.run_id = casework::client::NewRequestId().substr(0, 8);

  // Approver keys for the sign-offs: made now, registered by the admin (a request id per
  // run and approver, so a rerun with the same --run-id registers nothing new).
  std::vector<Signer> signer_list;
  std::vector<std::string> existing;
  if (o.existing) {
    const auto t0 = Clock::now();
    auto names = CollectCases(o);
    if (!names.ok()) {
      std::fprintf(stderr, "casework-load: %s\n", names.status().ToString().c_str());
      return 2;
    }
    existing = *std::move(names);
    existing_cases = &existing;
    std::fprintf(stderr, "casework-load: %zu existing cases collected in %.1f s\n", existing.size(),
                 std::chrono::duration<double>(Clock::now() - t0).count());
  } else if (!o.no_sign_off) {
    signer_list.push_back({"approver.dongshan", casework::v1::APPROVAL_LEVEL_COUNTY, nullptr});
    if (o.sign_offs == 2) {
      signer_list.push_back({"sun.li", casework::v1::APPROVAL_LEVEL_CITY, nullptr});
    }
    casework::client::Client admin(
        casework::client::ClientOptions{.server = o.server, .identity = "admin"});
    auto stub = casework::v1::AdminService::NewStub(admin.channel());
    for (Signer& signer : signer_list) {
      auto key = casework::client::SigningKey::Generate();
      if (!key.ok()) {
        std::fprintf(stderr, "casework-load: %s\n", key.status().ToString().c_str());
        return 2;
      }
      casework::v1::RegisterApproverKeyRequest req;
      req.set_request_id("load-" + o.run_id + "-key-" + signer.identity);
      req.set_approver(signer.identity);
      req.set_public_key(key->public_key());
      req.set_level(signer.level);
      casework::v1::RegisterApproverKeyResponse resp;
      auto ctx = admin.NewContext();
      grpc::Status s = stub->RegisterApproverKey(ctx.get(), req, &resp);
      if (!s.ok()) {
        std::fprintf(stderr,
                     "casework-load: cannot register the signing key of %s: %s (use "
                     "--no-sign-off against a server without these approvers)\n",
                     signer.identity, s.error_message().c_str());
        return 2;
      }
      signer.key = std::make_unique<casework::client::SigningKey>(*std::move(key));
    }
  }
  signers = &signer_list;

  // A few channels spread the load over connections and completion threads.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  const int channel_count = std::min(o.concurrency, o.channels);
  for (int i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("casework.load.channel", i);  // distinct channels, not one shared subchannel
    channels.push_back(
        grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args));
  }
  // Connected before the clock starts: the window measures calls, not TCP and HTTP/2
  // set-up (pgbench's figure, the peer's, also leaves its connections out).
  for (const auto& channel : channels) {
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "casework-load: cannot connect to %s\n", o.server.c_str());
      return 2;
    }
  }
  Recorder rec;
  std::atomic<int64_t> budget{o.count};
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(o.duration_s));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.concurrency; ++i) {
    workers.push_back(std::make_unique<Worker>(i, o, &rec, &budget, stop_at,
                                               channels[static_cast<size_t>(i) % channels.size()]));
  }
  for (auto& w : workers) w->Start();
  for (auto& w : workers) w->Wait();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  auto series = rec.Take();
  Series all;
  for (auto& [name, s] : series) {
    all.micros.insert(all.micros.end(), s.micros.begin(), s.micros.end());
    all.failed_micros.insert(all.failed_micros.end(), s.failed_micros.begin(),
                             s.failed_micros.end());
    all.errors += s.errors;
  }
  nlohmann::json out;
  out["server"] = o.server;
  out["concurrency"] = o.concurrency;
  out["seconds"] = elapsed;
  if (o.existing) out["existing_cases"] = existing.size();
  auto row = [&](const std::string& name, Series& s) {
    nlohmann::json j;
    j["method"] = name;
    j["ok"] = s.micros.size();
    j["errors"] = s.errors;
    j["per_second"] = static_cast<double>(s.micros.size()) / elapsed;
    j["p50_us"] = Percentile(s.micros, 0.50);
    j["p99_us"] = Percentile(s.micros, 0.99);
    j["p999_us"] = Percentile(s.micros, 0.999);
    if (!s.error_codes.empty()) j["error_codes"] = s.error_codes;
    if (!s.failed_micros.empty()) {
      j["failed_p50_us"] = Percentile(s.failed_micros, 0.50);
      j["failed_p99_us"] = Percentile(s.failed_micros, 0.99);
    }
    return j;
  };
  for (auto& [name, s] : series) out["methods"].push_back(row(name, s));
  out["total"] = row("total", all);
  if (o.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::printf("casework-load: %s, %d in flight, %.1f s\n", o.server.c_str(), o.concurrency,
                elapsed);
    std::printf("%-18s %10s %8s %12s %10s %10s %10s\n", "method", "ok", "errors", "per second",
                "p50 us", "p99 us", "p99.9 us");
    auto print = [](const nlohmann::json& j) {
      std::printf("%-18s %10lld %8lld %12.0f %10lld %10lld %10lld\n",
                  j["method"].get<std::string>().c_str(), j["ok"].get<long long>(),
                  j["errors"].get<long long>(), j["per_second"].get<double>(),
                  j["p50_us"].get<long long>(), j["p99_us"].get<long long>(),
                  j["p999_us"].get<long long>());
    };
    for (const auto& j : out["methods"]) print(j);
    print(out["total"]);
    for (const auto& j : out["methods"]) {
      if (j.contains("error_codes")) {
        for (const auto& [code, n] : j["error_codes"].items()) {
          std::printf("  %s errors: %s x %lld\n", j["method"].get<std::string>().c_str(),
                      code.c_str(), n.get<long long>());
        }
        std::printf("  %s failed calls took p50 %lld us, p99 %lld us\n",
                    j["method"].get<std::string>().c_str(), j["failed_p50_us"].get<long long>(),
                    j["failed_p99_us"].get<long long>());
      }
    }
  }
  return all.errors == 0 ? 0 : 1;
}

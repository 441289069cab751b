// Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/) from real data:
// commands the core accepts, the events it decides, appended to a real RocksEventLog that
// signs with the corpus key (fuzz_keys.h); that log's checkpoints and exports, made as
// AuditService.ExportLog makes them; the sample principals file; registry files; config
// files; and signed notes copied from store/testdata/merkle/note/vectors.json.
//
//   fuzz_make_corpus <source root> <corpus dir>
//
// Deterministic: a fixed clock and key give the same bytes on every run. Files are
// named by what they hold; regression inputs (named regression-*) are left alone.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "casework/v1/case_service.pb.h"
#include "fuzz/decide_input.h"
#include "fuzz/fuzz_keys.h"
#include "nlohmann/json.hpp"
#include "services/oversight/registry_csv.h"
#include "services/shell/page_token.h"
#include "services/shell/principals.h"
#include "services/shell/projections.h"
#include "services/workflow/decider.h"
#include "services/workflow/statement.h"
#include "services/workflow/workflow_testing.h"
#include "store/base64.h"
#include "store/export.h"
#include "store/log_format.h"
#include "store/rocks_event_log.h"
#include "store/wal_tail.h"

namespace {

namespace v1 = ::casework::v1;
namespace store = ::casework::store;
namespace shell = ::casework::shell;
namespace workflow = ::casework::workflow;
namespace wt = ::casework::workflow::testing;
namespace format = ::casework::store::format;
using casework::fuzz::AppendStep;
using casework::fuzz::CastIndex;

std::filesystem::path corpus_root;
int files_written = 0;

void Fail(const std::string& what) {
  std::cerr << "fuzz_make_corpus: " << what << "\n";
  std::exit(1);
}

template <typename T>
T Must(absl::StatusOr<T> value, const std::string& what) {
  if (!value.ok()) Fail(absl::StrCat(what, ": ", value.status().ToString()));
  return *std::move(value);
}

void Write(const std::string& target, const std::string& name, std::string_view bytes) {
  const std::filesystem::path dir = corpus_root / target;
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Fail("cannot write " + (dir / name).string());
  ++files_written;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Drives cases through the core exactly as decide_fuzz reads its input (same cast, same
// clock, same context), recording the input and the appends the shell would make.
class Driver {
 public:
  explicit Driver(std::string case_id) : case_id_(std::move(case_id)) {}

  int64_t version() const { return Find(case_id_).version(); }
  // The time the next step is decided at, `months` ahead.
  int64_t next(int months = 0) const {
    return now_ + months * casework::fuzz::kMonthMicros + casework::fuzz::kHourMicros;
  }
  const std::string& input() const { return input_; }
  std::vector<store::AppendRequest>& appends() { return appends_; }

  // Decides `command` as `actor`; true when accepted.
  bool Do(const std::string& actor, const v1::Command& command, int months = 0) {
    const int index = CastIndex(actor);
    if (index < 0) Fail("unknown actor " + actor);
    now_ = next(months);
    AppendStep(&input_, index, months, command);
    const workflow::Principal& principal = casework::fuzz::Cast()[static_cast<size_t>(index)];
    workflow::Context context{.actor = principal, .now_micros = now_, .policy = &policy_};
    if (principal.HasRole(workflow::Role::kApprover)) {
      context.verified_key_id = "key-" + principal.id;
      context.verified_level = principal.approval_level;
      context.verified_latest_leaf_hash = std::string(workflow::kLeafHashBytes, '\x5a');
    }
    const std::string key = command.has_create_case() ? command.create_case().case_id() : case_id_;
    v1::Case& state = cases_[key];
    workflow::Decision decision = workflow::Decide(state, command, context);
    auto* events = std::get_if<workflow::Events>(&decision);
    if (events == nullptr || events->empty()) return false;
    store::AppendRequest append;
    append.stream = "cases/" + key;
    append.expected_version = state.version();
    append.request_id = absl::StrCat("req-", key, "-", state.version());
    append.request_fingerprint = append.request_id;
    const v1::Case before = state;
    for (const v1::Event& event : *events) {
      workflow::Evolve(state, event);
      append.events.push_back(event.SerializeAsString());
    }
    shell::ProjectCase(before, state, &append.projections);
    appends_.push_back(std::move(append));
    return true;
  }

  void Expect(bool accepted, const std::string& what) {
    if (!accepted) Fail("the core refused " + what);
  }

 private:
  const v1::Case& Find(const std::string& key) const {
    static const v1::Case none;
    auto it = cases_.find(key);
    return it == cases_.end() ? none : it->second;
  }

  std::string case_id_;
  workflow::Policy policy_;
  std::map<std::string, v1::Case> cases_;
  std::vector<store::AppendRequest> appends_;
  std::string input_;
  int64_t now_ = casework::fuzz::kDecideStartMicros;
};

v1::Command CreateCase(const Driver& d, const std::string& case_id) {
  v1::Command command = wt::CreateCase(d.next(), case_id);
  // The builders address "cases/c1"; the other cases get their own names below.
  return command;
}

template <typename Request>
v1::Command Named(v1::Command command, Request* (v1::Command::*mutable_request)(),
                  const std::string& case_id) {
  (command.*mutable_request)()->set_name("cases/" + case_id);
  return command;
}

// The life of case c1: listed, returned, amended, confirmed, assisted (visits, measures,
// funds, a replaced assignment), a failed and a passed inspection, signed off by two
// approvers and closed, reopened on relapse, assisted again; talks and notices.
Driver LifeOfC1(std::vector<std::string>* prefixes) {
  Driver d("c1");
  auto cut = [&] { prefixes->push_back(d.input()); };
  d.Expect(d.Do("li.na", CreateCase(d, "c1")), "create");
  cut();
  d.Expect(d.Do("wang.fang", wt::ReviewListing(d.version(), false)), "return");
  d.Expect(d.Do("li.na", wt::AmendListing(d.version(), d.next())), "amend");
  d.Expect(d.Do("wang.fang", wt::ReviewListing(d.version(), true)), "confirm");
  cut();
  d.Expect(d.Do("li.na", wt::AssignAssistance(d.version())), "assign");
  d.Expect(d.Do("zhang.wei", wt::RecordFieldVisit(d.version(), d.next(1)), 1), "visit");
  d.Expect(d.Do("zhang.wei", wt::RecordMeasure(d.version())), "measure");
  d.Expect(d.Do("chen.jie", wt::RecordFunds(d.version())), "funds");
  d.Expect(d.Do("li.na", wt::ReplaceAssignment(d.version())), "replace");
  cut();
  d.Expect(d.Do("zhao.lei", wt::RecordInspection(d.version(), "insp-1", false), 2), "fail");
  d.Expect(d.Do("zhao.lei", wt::RecordInspection(d.version(), "insp-2", true), 1), "pass");
  cut();
  d.Expect(d.Do("sun.li", wt::SignOffClosure(d.version(), "insp-2", "key-sun.li")), "sign 1");
  d.Expect(d.Do("zhou.min", wt::SignOffClosure(d.version(), "insp-2", "key-zhou.min")), "sign 2");
  cut();
  d.Expect(d.Do("zhao.lei", wt::RecordFollowUpReview(d.version(), true, d.next(12)), 12),
           "relapse");
  d.Expect(d.Do("root", wt::RecordAdmonishmentTalk(d.version())), "talk");
  d.Expect(d.Do("qian.hui", wt::IssueRectificationNotice(d.version())), "notice");
  d.Expect(d.Do("li.na", wt::AssignAssistance(d.version())), "reassign");
  cut();
  return d;
}

// Case c2: listed, confirmed, assisted, verified and sent back; a refused command of an
// outsider and one of a stale version on the way.
Driver LifeOfC2(std::vector<std::string>* prefixes) {
  Driver d("c2");
  const std::string id = "c2";
  d.Expect(d.Do("chief", CreateCase(d, id)), "create c2");
  d.Do("wu.gang", Named(wt::ReviewListing(d.version(), true), &v1::Command::mutable_review_listing,
                        id));  // outside: refused
  d.Expect(d.Do("wang.fang", Named(wt::ReviewListing(d.version(), true),
                                   &v1::Command::mutable_review_listing, id)),
           "confirm c2");
  d.Expect(d.Do("li.na", Named(wt::AssignAssistance(d.version()),
                               &v1::Command::mutable_assign_assistance, id)),
           "assign c2");
  d.Do("zhang.wei", Named(wt::RecordMeasure(d.version() - 1), &v1::Command::mutable_record_measure,
                          id));  // stale: refused
  d.Expect(d.Do("zhao.lei",
                Named(wt::RecordInspection(d.version(), "insp-1", true),
                      &v1::Command::mutable_record_inspection, id),
                3),
           "pass c2");
  d.Expect(d.Do("ma.lin", Named(wt::SendBack(d.version()), &v1::Command::mutable_send_back, id)),
           "send back c2");
  prefixes->push_back(d.input());
  return d;
}

std::string ExportOf(store::RocksEventLog& log, int64_t from, int64_t to, const std::string& note,
                     const store::Checkpoint& checkpoint) {
  // As AuditService.ExportLog writes it.
  store::ExportHeader header{.origin = checkpoint.origin,
                             .from = from,
                             .to = to,
                             .tree_size = checkpoint.size,
                             .checkpoint = note,
                             .verifier_key = log.CheckpointVerifier().VerifierKey()};
  header.left_edge = Must(log.EdgeHashes(from), "edge");
  if (to > 0 && to < checkpoint.size) {
    header.consistency_proof = Must(log.ConsistencyProof(to, checkpoint.size), "proof");
  }
  std::string out;
  store::AppendExportHeader(&out, header);
  if (to > from) {
    for (const store::StoredEvent& e :
         Must(log.ReadRange(from, static_cast<size_t>(to - from)), "read")) {
      store::AppendExportRecord(&out, e);
    }
  }
  store::AppendExportEnd(&out);
  std::istringstream in(out);
  auto verdict = Must(store::VerifyExport(in, casework::fuzz::FuzzVerifier()), "verify export");
  if (!verdict.ok) Fail("a seed export does not verify: " + verdict.problem);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: fuzz_make_corpus <source root> <corpus dir>\n";
    return 2;
  }
  const std::filesystem::path source = argv[1];
  corpus_root = argv[2];

  // --- decide: the commands, as decide_fuzz reads them ---
  std::vector<std::string> prefixes;
  Driver c1 = LifeOfC1(&prefixes);
  Driver c2 = LifeOfC2(&prefixes);
  for (size_t i = 0; i < prefixes.size(); ++i) {
    Write("decide_fuzz", absl::StrCat(i < prefixes.size() - 1 ? "c1-" : "c2-", i), prefixes[i]);
  }
  Write("decide_fuzz", "c1-then-c2", c1.input() + c2.input());

  // --- a real log: the events of both cases and the principals, signed with the corpus key
  std::string dir = (std::filesystem::temp_directory_path() / "cw-corpus-XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) Fail("mkdtemp");
  store::RocksEventLog::Options options;
  options.path = dir + "/log";
  // The WAL is read below while the log is open: its file grows from empty, so that its
  // last block is the last thing written (store/zero_filled_wal.h writes into zeros).
  options.wal_spare_bytes = 0;
  options.signing_key_path = dir + "/log.key";
  {
    std::ofstream key(options.signing_key_path, std::ios::binary);
    key << casework::fuzz::FuzzKeySeed();
  }
  chmod(options.signing_key_path.c_str(), 0600);
  std::vector<std::pair<std::string, std::string>> notes;  // name, signed checkpoint
  {
    auto log = Must(store::RocksEventLog::Open(options), "open");
    const auto principals = Must(
        shell::Principals::Parse(ReadFile(source / "deploy/principals.sample.json")), "principals");
    if (auto s =
            shell::RecordPrincipals(log.get(), *principals, casework::fuzz::kDecideStartMicros);
        !s.ok()) {
      Fail(s.ToString());
    }
    std::vector<store::AppendRequest> appends;
    for (Driver* d : {&c1, &c2}) {
      for (auto& a : d->appends()) appends.push_back(std::move(a));
    }
    for (auto& append : appends) {
      Must(log->Append(std::move(append)), "append");
      const int64_t size = log->Size();
      if (size == 1 || size == 4 || size == 16) {
        notes.emplace_back(absl::StrCat("checkpoint-", size),
                           Must(log->SignedCheckpoint(), "note"));
      }
    }
    const std::string note = Must(log->SignedCheckpoint(), "note");
    const int64_t n = log->Size();
    notes.emplace_back(absl::StrCat("checkpoint-", n), note);
    const store::Checkpoint checkpoint = Must(
        store::OpenCheckpoint(note, casework::fuzz::FuzzVerifier(), casework::fuzz::kFuzzOrigin),
        "own checkpoint");

    // --- export: ranges as an auditor takes them ---
    for (auto [from, to] : std::vector<std::pair<int64_t, int64_t>>{
             {0, n}, {0, 1}, {0, 7}, {5, n}, {16, n}, {3, 12}, {n, n}}) {
      Write("export_fuzz", absl::StrCat("export-", from, "-", to),
            ExportOf(*log, from, to, note, checkpoint));
    }

    // --- event bytes: stored events, their records, and the keys and values around them
    const auto events = Must(log->ReadRange(0, static_cast<size_t>(n)), "read");
    std::map<std::string, int> kinds_seen;
    for (const store::StoredEvent& e : events) {
      v1::Event event;
      if (!event.ParseFromString(e.bytes)) Fail("stored event does not parse");
      const std::string kind =
          event.GetReflection()
              ->GetOneofFieldDescriptor(event, v1::Event::descriptor()->FindOneofByName("body"))
              ->name();
      if (kinds_seen[kind]++ > 0) continue;  // one of each kind
      std::string record;
      format::AppendEventRecord(&record, e.stream, e.version, e.bytes);
      Write("event_bytes_fuzz", "event-" + kind, e.bytes);
      Write("event_bytes_fuzz", "record-" + kind, record);
    }
    const store::StoredEvent& last = events.back();
    Write("event_bytes_fuzz", "key-position", format::PositionKey(last.position));
    Write("event_bytes_fuzz", "key-stream", format::StreamKey(last.stream, last.version));
    Write("event_bytes_fuzz", "value-stream-extent",
          format::EncodeStreamExtent(
              {.first_version = last.version, .first_position = last.position}));
    Write("event_bytes_fuzz", "value-request",
          format::EncodeRequestRecord({.first_position = last.position,
                                       .event_count = 1,
                                       .version = last.version,
                                       .fingerprint = "req-c2-5"}));
    Write("event_bytes_fuzz", "value-counter", format::EncodeInt64(2));
    Write("event_bytes_fuzz", "key-tree-node", format::NodeKey(4, 1));

    // --- wal_tail: the log's write-ahead log as RocksDB wrote it (its last block), and
    // the two damages the check finds in it: a length past the end, a recyclable type.
    int wal_files = 0;
    for (const std::filesystem::directory_entry& entry :
         std::filesystem::directory_iterator(options.path)) {
      if (entry.path().extension() != ".log" || entry.file_size() == 0) continue;
      const std::string wal = ReadFile(entry.path());
      const std::string block =
          wal.substr((wal.size() - 1) / store::wal::kBlockSize * store::wal::kBlockSize);
      if (block.size() < store::wal::kHeaderSize || block[6] < 1 || block[6] > 3) {
        Fail("the WAL's last block does not start with a full, first or middle record");
      }
      Write("wal_tail_fuzz", "last-block", block);
      std::string damaged = block;
      damaged[5] = static_cast<char>(damaged[5] ^ 0x80);
      bool in_fragment = false;
      if (!store::wal::WalkBlock(damaged, 0, &in_fragment).stop.has_value()) {
        Fail("length damage not found");
      }
      Write("wal_tail_fuzz", "length-past-the-end", damaged);
      damaged = block;
      damaged[6] = static_cast<char>(damaged[6] ^ 0x04);
      in_fragment = false;
      if (!store::wal::WalkBlock(damaged, 0, &in_fragment).stop.has_value()) {
        Fail("type damage not found");
      }
      Write("wal_tail_fuzz", "recyclable-type", damaged);
      // A write torn inside zeros (store/zero_filled_wal.h; the target puts zeros after its
      // input): the second half of the block's last record, zeros.
      uint64_t last = 0;
      for (uint64_t at = 0; at + store::wal::kHeaderSize <= block.size();) {
        const uint32_t length = static_cast<uint8_t>(block[at + 4]) |
                                (static_cast<uint32_t>(static_cast<uint8_t>(block[at + 5])) << 8);
        if (block[at + 6] == 0 && length == 0) break;
        last = at;
        at += store::wal::kHeaderSize + length;
      }
      damaged = block;
      for (uint64_t i = last + store::wal::kHeaderSize + (block.size() - last) / 2;
           i < damaged.size(); ++i) {
        damaged[i] = '\0';
      }
      Write("wal_tail_fuzz", "torn-over-zeros", damaged);
      ++wal_files;
    }
    if (wal_files != 1) Fail("expected one write-ahead log file");

    // --- base64: what the store writes in base64
    const std::string vkey_bytes =
        std::string(1, '\x01') + casework::fuzz::FuzzVerifier().public_key();
    Write("base64_fuzz", "root",
          store::EncodeBase64(std::string_view(
              reinterpret_cast<const char*>(checkpoint.root.data()), checkpoint.root.size())));
    Write("base64_fuzz", "verifier-key", store::EncodeBase64(vkey_bytes));
    Write("base64_fuzz", "edge", store::EncodeBase64(std::string(64, '\x5a')));
    Write("base64_fuzz", "one-byte", store::EncodeBase64("\xff"));
    Write("base64_fuzz", "two-bytes", store::EncodeBase64("\xff\xee"));
    Write("base64_fuzz", "empty", "");

    // --- page tokens: requests as casectl sends them, with tokens the server issued
    const std::string c1_deadline_key = shell::DeadlineKey(
        int64_t{1798761600} * 1000000, "c1");  // an index key of the shape the server writes
    struct Request {
      std::string name, filter, order_by, key;
    };
    for (const Request& r : std::vector<Request>{
             {"first-page", "", "", ""},
             {"case-id", "", "", "c1"},
             {"state", "state = ASSISTED", "", shell::StateKey(v1::CASE_STATE_ASSISTED, "c1")},
             {"deadline", "case_type = POOR", "deadline", c1_deadline_key},
             {"jurisdiction", "jurisdiction = \"city/east\"", "jurisdiction",
              shell::JurisdictionKey("city/east/hill/dongshan", "c2")},
             {"deadline-range",
              "deadline > \"2026-01-01T00:00:00Z\" AND deadline < \"2030-01-01T00:00:00+08:00\"",
              "deadline", c1_deadline_key},
         }) {
      v1::ListCasesRequest req;
      req.set_page_size(10);
      req.set_filter(r.filter);
      req.set_order_by(r.order_by);
      if (!r.key.empty()) {
        req.set_page_token(
            shell::EncodePageToken(r.key, shell::ListCasesQueryTag(r.filter, r.order_by)));
      }
      Write("page_token_fuzz", "list-" + r.name, req.SerializeAsString());
    }
    v1::ListCasesRequest events_req;
    events_req.set_filter("c-1");
    events_req.set_page_token(shell::EncodeEventsPageToken("c-1", last.version));
    Write("page_token_fuzz", "events-token", events_req.SerializeAsString());
  }
  std::filesystem::remove_all(dir);

  // --- checkpoint notes: the log's, and published vectors (with their keys' lines)
  for (const auto& [name, note] : notes) Write("checkpoint_fuzz", name, note);
  const nlohmann::json vectors =
      nlohmann::json::parse(ReadFile(source / "store/testdata/merkle/note/vectors.json"));
  for (const auto& entry : vectors["notes"]) {
    const std::string name = entry["name"];
    if (name == "sumdb-checkpoint" || name == "sumdb-checkpoint-cosigned" ||
        name == "c2sp-signed-note-example" ||
        name == "c2sp-cosigned-checkpoint-example-untrusted" ||
        name == "go-note-peter-enoch-both-trusted") {
      Write("checkpoint_fuzz", "vector-" + name, entry["note"].get<std::string>());
    }
  }
  Write("checkpoint_fuzz", "vkey-corpus", casework::fuzz::FuzzVerifier().VerifierKey());
  Write("checkpoint_fuzz", "vkey-sumdb", vectors["vkeys"][3]["vkey"].get<std::string>());
  Write("checkpoint_fuzz", "skey-peter", vectors["signers"][0]["skey"].get<std::string>());

  // --- list filters: the grammar's forms
  const std::vector<std::string> filters = {
      "state = ASSISTED",
      "state = ASSISTED AND jurisdiction = \"city/east\"",
      "case_type = POOR AND problem_category = 3",
      "jurisdiction = city/east/hill",
      "deadline < \"2027-01-01T00:00:00Z\"",
      "deadline > \"2026-06-30T12:00:00.5+08:00\" AND state = REOPENED",
      "problem_category = 6 AND case_type = INDUSTRY AND state = CLOSED",
  };
  for (size_t i = 0; i < filters.size(); ++i) {
    Write("list_filter_fuzz", absl::StrCat("filter-", i), filters[i]);
  }

  // --- principals files
  Write("principals_fuzz", "sample", ReadFile(source / "deploy/principals.sample.json"));
  Write("principals_fuzz", "small",
        R"({"principals": [)"
        R"({"id": "li.na", "display_name": "李娜", "roles": ["lister", "reviewer"], )"
        R"("jurisdiction": "city/east"},)"
        R"({"id": "zhou.min", "roles": ["approver"], "jurisdiction": "city", )"
        R"("approval_level": "city"},)"
        R"({"id": "sun.li", "roles": ["approver", "inspector"], "jurisdiction": "city/east", )"
        R"("approval_level": "county"},)"
        R"({"id": "root", "roles": ["admin", "auditor", "assister"], "jurisdiction": "city"}]})");
  Write("principals_fuzz", "empty", R"({"principals": []})");

  // --- registry files
  std::string registry = casework::oversight::kRegistryCsvHeader;
  registry += "\n";
  for (const std::string& line : {
           std::string("org-010203,东山村党支部,jiangcheng/dongshan/t02/org-010203,village,3,1"),
           std::string("org-010204,\"西山社区, 第一支部\",jiangcheng/dongshan/t02/org-010204,"
                       "community,4,0"),
           std::string("org-020101,南湖村党总支,jiangcheng/songlin/t01/org-020101,村,1,5"),
       }) {
    registry += line + "\n";
  }
  Write("registry_csv_fuzz", "county", registry);
  Write("registry_csv_fuzz", "bom-crlf-quoted",
        "\xEF\xBB\xBForganisation_id,display_name,jurisdiction,kind,grade,stars\r\n"
        "o1,\"东山村, 党支部\",c/k/t/o1,village,3,1\r\n"
        "\r\n"
        "o2,\"say \"\"hi\"\"\",c/k/t/o2,社区,4,0\n"
        "o3,\"two\nlines\",c/k/t/o3,村,1,5");
  Write("registry_csv_fuzz", "columns-reordered",
        "stars,grade,kind,jurisdiction,display_name,organisation_id\n"
        "2,4,community,c/k/t/x,X,x\n");

  // --- config files for caseworkd --config (TOML and INI)
  Write("config_fuzz", "server.toml",
        "# caseworkd\n"
        "listen = \"127.0.0.1:7070\"\n"
        "data-dir = \"/var/lib/casework\"\n"
        "insecure-plaintext = true\n"
        "max-concurrent-streams = 200\n"
        "log-level = \"warn\"\n"
        "closure-approvers-min = 3\n"
        "record-principals = false\n"
        "absence-flag-days = 45\n");
  Write("config_fuzz", "server.ini",
        "; caseworkd\n"
        "[default]\n"
        "listen=0.0.0.0:7070\n"
        "drain-seconds=30\n"
        "metrics-listen=off\n"
        "max-receive-message-bytes=131072\n"
        "backup-dir='/srv/backups'\n");

  std::cout << "wrote " << files_written << " files under " << corpus_root.string() << "\n";
  return 0;
}

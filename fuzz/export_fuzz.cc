// Fuzz target: export files (store/export.h), as `casectl verify-export` and an auditor's
// tools read them, through VerifyExport over a std::istream.
//
// Feeds: the input as an export file, verified with the corpus log's key (the corpus
// holds real exports of a small log signed with it, so mutations reach the records and
// proofs behind the signed checkpoint); every record's event bytes are parsed as a
// casework.v1.Event, as the verifiers do.
// Asserts: no crash and no sanitizer report; a verdict that says ok has read exactly
// to - from records, at consecutive positions from `from`, under a checkpoint of
// tree-size; and the canonical export rebuilt from what was read (header, records, end)
// verifies too, with the same records.
#include <sstream>

#include "casework/v1/events.pb.h"
#include "fuzz/fuzz_keys.h"
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "store/export.h"
#include "store/log_format.h"

namespace {

namespace store = ::casework::store;

struct Read {
  std::vector<store::StoredEvent> records;
  bool positions_consecutive = true;
};

absl::StatusOr<store::ExportVerdict> Verify(const std::string& bytes, Read* read) {
  std::istringstream in(bytes);
  return store::VerifyExport(
      in, casework::fuzz::FuzzVerifier(),
      [read](const store::ExportRecord& r) -> std::optional<std::string> {
        if (!read->records.empty() && r.position != read->records.back().position + 1) {
          read->positions_consecutive = false;
        }
        read->records.push_back(
            {.position = r.position, .stream = r.stream, .version = r.version, .bytes = r.event});
        casework::v1::Event event;
        if (!event.ParseFromString(r.event)) return "the event does not parse";
        return std::nullopt;
      });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Read read;
  auto verdict = Verify(std::string(casework::fuzz::AsText(data, size)), &read);
  if (!verdict.ok() || !verdict->ok) return 0;
  const store::ExportHeader& h = verdict->header;
  FUZZ_CHECK(verdict->records == h.to - h.from &&
                 static_cast<int64_t>(read.records.size()) == verdict->records,
             "an export that verifies holds exactly its range");
  FUZZ_CHECK(read.positions_consecutive &&
                 (read.records.empty() || read.records.front().position == h.from),
             "records are at consecutive positions from `from`");
  FUZZ_CHECK(verdict->checkpoint.size == h.tree_size && h.to <= h.tree_size,
             "the checkpoint is of tree-size");

  std::string canonical;
  store::AppendExportHeader(&canonical, h);
  for (const store::StoredEvent& e : read.records) store::AppendExportRecord(&canonical, e);
  store::AppendExportEnd(&canonical);
  Read reread;
  auto again = Verify(canonical, &reread);
  FUZZ_CHECK(again.ok() && again->ok && again->records == verdict->records,
             "the canonical export of what verified verifies");
  for (size_t i = 0; i < reread.records.size(); ++i) {
    FUZZ_CHECK(reread.records[i].position == read.records[i].position &&
                   reread.records[i].stream == read.records[i].stream &&
                   reread.records[i].version == read.records[i].version &&
                   reread.records[i].bytes == read.records[i].bytes,
               "the canonical export holds the same records");
  }
  return 0;
}

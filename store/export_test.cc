// The export format's verifier (store/export.h) on exports of a real log: every range
// verifies, at the sizes where the tree's edges change (0, 1, 16, 32 against a tree of
// 33), and every way of altering one is refused: bytes after the end, a record's position,
// a dropped or altered record, the header's from, to and tree-size, a left-edge or
// consistency-proof hash, a proof where none belongs, and a checkpoint by another key.
#include "store/export.h"

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/checkpoint.h"
#include "store/rocks_event_log.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::TempDir;

constexpr char kOrigin[] = "casework.test/export";
constexpr int64_t kEvents = 33;  // two stored 16-event subtrees and one event beyond

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RocksEventLog::Options options;
    options.path = dir_.Sub("log");
    options.checkpoint_origin = kOrigin;
    auto log = RocksEventLog::Open(options);
    ASSERT_THAT(log, IsOk());
    log_ = *std::move(log);
    for (int64_t i = 0; i < kEvents; ++i) {
      const std::string stream = absl::StrCat("s", i % 3);
      ASSERT_THAT(
          log_->Append(
              {.stream = stream, .expected_version = i / 3, .events = {absl::StrCat("event ", i)}}),
          IsOk());
    }
  }

  // The export of [from, to) under the log's signed checkpoint, as the audit service
  // writes it.
  ExportHeader Header(int64_t from, int64_t to) {
    auto note = log_->SignedCheckpoint();
    EXPECT_THAT(note, IsOk());
    ExportHeader h{.origin = kOrigin,
                   .from = from,
                   .to = to,
                   .tree_size = kEvents,
                   .checkpoint = *note,
                   .verifier_key = log_->CheckpointVerifier().VerifierKey()};
    auto edge = log_->EdgeHashes(from);
    EXPECT_THAT(edge, IsOk());
    h.left_edge = *edge;
    if (to > 0 && to < kEvents) {
      auto proof = log_->ConsistencyProof(to, kEvents);
      EXPECT_THAT(proof, IsOk());
      h.consistency_proof = *proof;
    }
    return h;
  }
  std::vector<StoredEvent> Records(int64_t from, int64_t to) {
    auto events = log_->ReadRange(from, static_cast<size_t>(to - from));
    EXPECT_THAT(events, IsOk());
    return *events;
  }
  static std::string Write(const ExportHeader& h, const std::vector<StoredEvent>& records) {
    std::string out;
    AppendExportHeader(&out, h);
    for (const StoredEvent& e : records) AppendExportRecord(&out, e);
    AppendExportEnd(&out);
    return out;
  }
  std::string Export(int64_t from, int64_t to) {
    return Write(Header(from, to), Records(from, to));
  }

  // True when `bytes` verify as an export under the log's key.
  bool Verifies(const std::string& bytes, std::string* problem = nullptr) {
    std::istringstream in(bytes);
    auto verdict = VerifyExport(in, log_->CheckpointVerifier());
    if (!verdict.ok()) {
      if (problem != nullptr) *problem = std::string(verdict.status().message());
      return false;
    }
    if (problem != nullptr) *problem = verdict->problem;
    return verdict->ok && verdict->records == verdict->header.to - verdict->header.from;
  }

  TempDir dir_;
  std::unique_ptr<RocksEventLog> log_;
};

TEST_F(ExportTest, EveryRangeVerifies) {
  for (const auto& [from, to] : std::vector<std::pair<int64_t, int64_t>>{{0, 0},
                                                                         {0, 1},
                                                                         {0, 16},
                                                                         {0, 32},
                                                                         {0, 33},
                                                                         {1, 2},
                                                                         {1, 16},
                                                                         {5, 20},
                                                                         {16, 32},
                                                                         {16, 33},
                                                                         {31, 33},
                                                                         {32, 33},
                                                                         {33, 33},
                                                                         {1, 33},
                                                                         {15, 17}}) {
    std::string problem;
    EXPECT_TRUE(Verifies(Export(from, to), &problem))
        << "[" << from << ", " << to << "): " << problem;
  }
}

TEST_F(ExportTest, AlteredExportsAreRefused) {
  const int64_t from = 5;
  const int64_t to = 20;  // a left edge and a consistency proof, both non-empty
  const ExportHeader header = Header(from, to);
  const std::vector<StoredEvent> records = Records(from, to);
  ASSERT_TRUE(Verifies(Write(header, records)));
  std::vector<std::pair<std::string, std::string>> altered;  // (what, bytes)

  altered.emplace_back("bytes after the end", Write(header, records) + "x");
  altered.emplace_back("a second end", Write(header, records) + "end\n");
  {
    auto shifted = records;
    shifted[3].position += 1;
    altered.emplace_back("a record's position", Write(header, shifted));
  }
  {
    auto fewer = records;
    fewer.pop_back();
    altered.emplace_back("a record dropped", Write(header, fewer));
  }
  {
    auto changed = records;
    changed[7].bytes[0] ^= 1;
    altered.emplace_back("a record's event", Write(header, changed));
  }
  {
    auto swapped = records;
    std::swap(swapped[2].bytes, swapped[3].bytes);
    std::swap(swapped[2].stream, swapped[3].stream);
    std::swap(swapped[2].version, swapped[3].version);
    altered.emplace_back("two records swapped", Write(header, swapped));
  }
  {
    ExportHeader h = header;
    h.from = 6;
    auto later = records;
    later.erase(later.begin());
    altered.emplace_back("from moved on, its record dropped", Write(h, later));
  }
  {
    ExportHeader h = header;
    h.to = 19;
    auto fewer = records;
    fewer.pop_back();
    altered.emplace_back("to moved back, its record dropped", Write(h, fewer));
  }
  {
    ExportHeader h = header;
    h.tree_size = 32;
    altered.emplace_back("tree-size", Write(h, records));
  }
  {
    ExportHeader h = header;
    h.left_edge[0][0] ^= 1;
    altered.emplace_back("a left-edge hash", Write(h, records));
  }
  {
    ExportHeader h = header;
    h.left_edge.pop_back();
    altered.emplace_back("a left-edge hash dropped", Write(h, records));
  }
  {
    ExportHeader h = header;
    h.consistency_proof.back()[31] ^= 1;
    altered.emplace_back("a consistency-proof hash", Write(h, records));
  }
  {
    ExportHeader h = header;
    h.consistency_proof.pop_back();
    altered.emplace_back("a consistency-proof hash dropped", Write(h, records));
  }
  {
    // A proof where none belongs: the export then has one form only.
    ExportHeader h = Header(from, kEvents);
    h.consistency_proof = header.consistency_proof;
    altered.emplace_back("a consistency proof at to == tree-size",
                         Write(h, Records(from, kEvents)));
  }
  {
    // The same checkpoint text signed by another key of the same name.
    auto other = NoteSigner::FromSeed(log_->CheckpointVerifier().name(), std::string(32, 'k'));
    ASSERT_THAT(other, IsOk());
    auto note = OpenNote(header.checkpoint, {&log_->CheckpointVerifier(), 1});
    ASSERT_THAT(note, IsOk());
    auto resigned = other->Sign(note->text);
    ASSERT_THAT(resigned, IsOk());
    ExportHeader h = header;
    h.checkpoint = *resigned;
    altered.emplace_back("a checkpoint by another key", Write(h, records));
  }
  for (const auto& [what, bytes] : altered) {
    std::string problem;
    EXPECT_FALSE(Verifies(bytes, &problem)) << what << " was not refused";
    EXPECT_FALSE(problem.empty()) << what << ": refused without saying why";
  }
}

}  // namespace
}  // namespace casework::store

#include "store/export.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "store/base64.h"
#include "store/hasher.h"
#include "store/log_format.h"
#include "store/merkle.h"

namespace casework::store {
namespace {

absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string Concat(const std::vector<Hash>& hashes) {
  std::string out;
  for (const Hash& h : hashes) out.append(reinterpret_cast<const char*>(h.data()), h.size());
  return out;
}

std::optional<std::vector<Hash>> SplitHashes(std::string_view base64) {
  std::optional<std::string> raw = DecodeBase64(base64);
  if (!raw.has_value() || raw->size() % 32 != 0) return std::nullopt;
  std::vector<Hash> hashes(raw->size() / 32);
  for (size_t i = 0; i < hashes.size(); ++i) {
    std::copy(raw->begin() + static_cast<ptrdiff_t>(32 * i),
              raw->begin() + static_cast<ptrdiff_t>(32 * (i + 1)), hashes[i].begin());
  }
  return hashes;
}

bool ReadLine(std::istream& in, std::string* line, size_t* budget) {
  line->clear();
  for (;;) {
    const int c = in.get();
    if (c == EOF) return false;
    if (*budget == 0) return false;
    --*budget;
    if (c == '\n') return true;
    line->push_back(static_cast<char>(c));
  }
}

bool ReadExact(std::istream& in, size_t n, std::string* out) {
  out->resize(n);
  in.read(out->data(), static_cast<std::streamsize>(n));
  return static_cast<size_t>(in.gcount()) == n;
}

}  // namespace

void AppendExportHeader(std::string* out, const ExportHeader& h) {
  absl::StrAppend(out, Sv(kExportMagic), "origin: ", h.origin, "\n", "from: ", h.from, "\n",
                  "to: ", h.to, "\n", "tree-size: ", h.tree_size, "\n",
                  "verifier-key: ", h.verifier_key, "\n",
                  "left-edge: ", EncodeBase64(Concat(h.left_edge)), "\n",
                  "consistency-proof: ", EncodeBase64(Concat(h.consistency_proof)), "\n",
                  "checkpoint-length: ", h.checkpoint.size(), "\n", "\n", h.checkpoint);
}

void AppendExportRecord(std::string* out, const StoredEvent& event) {
  std::string record;
  format::AppendEventRecord(&record, event.stream, event.version, event.bytes);
  format::PutFixed64BE(out, static_cast<uint64_t>(event.position));
  format::PutFixed32BE(out, static_cast<uint32_t>(record.size()));
  out->append(record);
}

void AppendExportEnd(std::string* out) { out->append(kExportEnd); }

absl::StatusOr<ExportVerdict> VerifyExport(
    std::istream& in, const NoteVerifier& verifier,
    const std::function<std::optional<std::string>(const ExportRecord&)>& visit,
    const std::function<void(int64_t, int64_t)>& progress) {
  ExportVerdict verdict;
  ExportHeader& h = verdict.header;
  size_t budget = kExportHeaderBytesMax;
  std::string line;
  if (!ReadLine(in, &line, &budget) || absl::StrCat(line, "\n") != Sv(kExportMagic)) {
    return absl::InvalidArgumentError("not a casework export (no \"casework-export/1\" line)");
  }
  const char* keys[] = {"origin",
                        "from",
                        "to",
                        "tree-size",
                        "verifier-key",
                        "left-edge",
                        "consistency-proof",
                        "checkpoint-length"};
  std::string values[8];
  for (int i = 0; i < 8; ++i) {
    const std::string prefix = absl::StrCat(keys[i], ": ");
    if (!ReadLine(in, &line, &budget) || line.rfind(prefix, 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("export header: expected \"", keys[i], "\""));
    }
    values[i] = line.substr(prefix.size());
  }
  if (!ReadLine(in, &line, &budget) || !line.empty()) {
    return absl::InvalidArgumentError("export header: no blank line after the header");
  }
  int64_t checkpoint_length = 0;
  h.origin = values[0];
  h.verifier_key = values[4];
  auto left = SplitHashes(values[5]);
  auto proof = SplitHashes(values[6]);
  if (!absl::SimpleAtoi(values[1], &h.from) || !absl::SimpleAtoi(values[2], &h.to) ||
      !absl::SimpleAtoi(values[3], &h.tree_size) ||
      !absl::SimpleAtoi(values[7], &checkpoint_length) || h.from < 0 || h.from > h.to ||
      h.to > h.tree_size || checkpoint_length < 0 ||
      static_cast<size_t>(checkpoint_length) > kExportHeaderBytesMax || !left.has_value() ||
      !proof.has_value()) {
    return absl::InvalidArgumentError("export header: a value is malformed or out of range");
  }
  h.left_edge = std::move(*left);
  h.consistency_proof = std::move(*proof);
  if ((h.to == 0 || h.to == h.tree_size) && !h.consistency_proof.empty()) {
    // One form only: the root is compared directly there, and a proof would go unread.
    return absl::InvalidArgumentError(
        "export header: a consistency-proof where to is 0 or tree-size (none belongs there)");
  }
  if (!ReadExact(in, static_cast<size_t>(checkpoint_length), &h.checkpoint)) {
    return absl::InvalidArgumentError("export: the checkpoint is cut short");
  }
  auto fail = [&](std::optional<int64_t> position, std::string problem) {
    verdict.ok = false;
    verdict.first_bad_position = position;
    verdict.problem = std::move(problem);
    return verdict;
  };
  auto checkpoint = OpenCheckpoint(h.checkpoint, verifier, h.origin);
  if (!checkpoint.ok()) {
    return fail(std::nullopt, absl::StrCat("the checkpoint does not open with the trusted key: ",
                                           checkpoint.status().message()));
  }
  verdict.checkpoint = *checkpoint;
  if (checkpoint->size != h.tree_size) {
    return fail(std::nullopt, "the header's tree-size differs from the checkpoint's");
  }
  auto tree = merkle::CompactRange::FromNodes(h.from, h.left_edge);
  if (!tree.ok()) return fail(h.from, "the left edge does not fit `from`");

  std::string head(12, '\0');
  std::string value;
  for (int64_t expected = h.from; expected < h.to; ++expected) {
    if (!ReadExact(in, 12, &head)) return fail(expected, "the export ends before `to`");
    const int64_t position = static_cast<int64_t>(format::DecodeFixed64BE(head.data()));
    const uint32_t length = format::DecodeFixed32BE(head.data() + 8);
    if (position != expected) {
      return fail(expected,
                  absl::StrCat("record for position ", expected, " holds position ", position));
    }
    if (length > kExportRecordBytesMax || !ReadExact(in, length, &value)) {
      return fail(expected, "a record is cut short or too long");
    }
    format::EventRecord decoded;
    if (!format::DecodeEventRecord(value, &decoded)) {
      return fail(expected, "the record is not a well-formed event record");
    }
    ExportRecord record{.position = position,
                        .stream = std::string(decoded.stream),
                        .version = decoded.version,
                        .event = std::string(decoded.event),
                        .leaf_hash = rfc9162::HashLeaf(value)};
    tree->Append(record.leaf_hash);
    ++verdict.records;
    if (visit) {
      if (auto problem = visit(record)) return fail(expected, *problem);
    }
    if (progress && (verdict.records & 0xFFFF) == 0) progress(verdict.records, h.to - h.from);
  }
  if (!ReadExact(in, kExportEnd.size(), &value) || value != kExportEnd ||
      in.peek() != std::char_traits<char>::eof()) {
    return fail(h.to, "the export does not end with \"end\" right after the last record");
  }
  if (progress) progress(verdict.records, h.to - h.from);
  const Hash root = tree->Root();
  if (h.to == 0) {
    // Nothing exported: only the checkpoint was checked.
  } else if (h.to == h.tree_size) {
    if (root != checkpoint->root) {
      return fail(std::nullopt, "the root of the exported events differs from the checkpoint");
    }
  } else {
    const std::vector<std::string> nodes = merkle::ToBytes(h.consistency_proof);
    absl::Status consistent = merkle::VerifyConsistency(
        h.to, h.tree_size, nodes, rfc9162::AsBytes(root), rfc9162::AsBytes(checkpoint->root));
    if (!consistent.ok()) {
      return fail(std::nullopt,
                  absl::StrCat("the exported events are not consistent with the checkpoint: ",
                               consistent.message()));
    }
  }
  verdict.ok = true;
  return verdict;
}

}  // namespace casework::store

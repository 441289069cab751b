// The export format: a range of the log as a self-contained, verifiable file.
//
//   export      := magic header_line* "\n" checkpoint record* end
//   magic       := "casework-export/1\n"
//   header_line := key ": " value "\n", exactly these keys in this order:
//     "origin"             the checkpoint origin
//     "from"               first position (decimal)
//     "to"                 end position, exclusive (decimal)
//     "tree-size"          the size of the checkpoint (decimal, >= to)
//     "verifier-key"       the server's note verifier key, "name+hash+base64" (informative:
//                          a verifier must use a key it trusts, not this line)
//     "left-edge"          base64 of the 32-byte hashes of RangeNodes(0, from), largest
//                          first, concatenated (empty when from == 0)
//     "consistency-proof"  base64 of the RFC 9162 consistency proof from `to` to tree-size,
//                          concatenated (empty, and refused otherwise, when to == 0
//                          or to == tree-size)
//     "checkpoint-length"  the byte length of the checkpoint that follows the blank line
//   checkpoint  := the signed note (C2SP tlog-checkpoint) of tree-size
//   record      := position:uint64be length:uint32be event_record:byte[length]
//                  exactly to - from records, positions from, from + 1, ..., to - 1;
//                  event_record is the stored value (docs/storage.md): its leaf hash is
//                  SHA-256(0x00 || event_record)
//   end         := "end\n"
//
// Verification (docs/audit.md): open the checkpoint with a trusted key; start a compact
// range from left-edge at `from`; append every record's leaf hash; the root at `to` must
// equal the checkpoint's root (to == tree-size) or be proved consistent with it.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "store/checkpoint.h"
#include "store/event_log.h"

namespace casework::store {

inline constexpr std::string_view kExportMagic = "casework-export/1\n";
inline constexpr std::string_view kExportEnd = "end\n";
// Bounds a reader enforces.
inline constexpr size_t kExportHeaderBytesMax = 1u << 20;
inline constexpr size_t kExportRecordBytesMax = 2u << 20;

struct ExportHeader {
  std::string origin;
  int64_t from = 0;
  int64_t to = 0;
  int64_t tree_size = 0;
  std::string checkpoint;
  std::string verifier_key;
  std::vector<Hash> left_edge;
  std::vector<Hash> consistency_proof;
};

void AppendExportHeader(std::string* out, const ExportHeader& header);
void AppendExportRecord(std::string* out, const StoredEvent& event);
void AppendExportEnd(std::string* out);

// One record as read back.
struct ExportRecord {
  int64_t position = 0;
  std::string stream;
  int64_t version = 0;
  std::string event;  // the event bytes (casework.v1.Event)
  Hash leaf_hash{};
};

struct ExportVerdict {
  ExportHeader header;
  Checkpoint checkpoint;
  int64_t records = 0;
  bool ok = false;
  std::optional<int64_t> first_bad_position;
  std::string problem;
};

// Reads and verifies an export from `in` against `verifier` (the trusted server key).
// `visit` (optional) sees every record in order and may return a problem (checked
// signatures, for instance); `progress` (optional) is called with the records read so
// far. Errors: kInvalidArgument when the bytes are not an export (the verdict says what
// failed when they are one that does not verify).
absl::StatusOr<ExportVerdict> VerifyExport(
    std::istream& in, const NoteVerifier& verifier,
    const std::function<std::optional<std::string>(const ExportRecord&)>& visit = nullptr,
    const std::function<void(int64_t records, int64_t total)>& progress = nullptr);

}  // namespace casework::store

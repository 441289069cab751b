// The RFC 9162 Merkle tree over the log, as pure functions: which nodes a root or a
// proof is made of (without reading them), how to fold node hashes into range hashes,
// an incremental right edge for appending, and the proof verifiers.
//
// Terms. A node (level, index) is the perfect subtree of 2^level leaves
// [index * 2^level, (index + 1) * 2^level). A range [begin, end) of the tree of size n
// is one of the subtrees MTH(D[begin:end]) of RFC 9162 section 2.1.1; its hash is the
// right-to-left fold of the perfect nodes that make it up (RangeNodes). A proof is a list
// of range hashes, bottom-up, exactly as RFC 9162 sections 2.1.3.1 and 2.1.4.1 define.
// The caller reads the node hashes (from storage or by hashing leaves) and folds them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_log.h"

namespace casework::store::merkle {

struct NodeId {
  int level = 0;
  int64_t index = 0;

  int64_t begin() const { return index << level; }
  int64_t end() const { return (index + 1) << level; }
  friend bool operator==(const NodeId&, const NodeId&) = default;
};

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  friend bool operator==(const Range&, const Range&) = default;
};

// The perfect nodes that make up [begin, end), left to right (largest first when begin
// is aligned, as in every range of a proof). Empty when begin >= end.
// Precondition: 0 <= begin.
std::vector<NodeId> RangeNodes(int64_t begin, int64_t end);

// The hash of a range from the hashes of its RangeNodes, in that order:
// HashChildren(h[0], HashChildren(h[1], ... h[k-1])). Precondition: not empty.
Hash FoldRange(std::span<const Hash> node_hashes);

// The ranges whose hashes form the inclusion proof of leaf `index` in the tree of `size`
// (RFC 9162 PATH), bottom-up. kInvalidArgument unless 0 <= index < size.
absl::StatusOr<std::vector<Range>> InclusionRanges(int64_t index, int64_t size);

// The ranges whose hashes form the consistency proof from `size1` to `size2`
// (RFC 9162 PROOF / SUBPROOF). Empty when size1 == size2. kInvalidArgument unless
// 0 < size1 <= size2.
absl::StatusOr<std::vector<Range>> ConsistencyRanges(int64_t size1, int64_t size2);

// Verifiers (RFC 9162 sections 2.1.3.2 and 2.1.4.2), strict: every hash must be 32
// bytes, the proof must have exactly the right length, size1 must be positive.
// OK when the proof holds; kInvalidArgument with the reason otherwise.
absl::Status VerifyInclusion(int64_t index, int64_t size, std::string_view leaf_hash,
                             std::span<const std::string> proof, std::string_view root);
// The root an inclusion proof leads to (RFC 9162 2.1.3.2 without the final comparison),
// for checking it by other means (a consistency proof to a signed root); the same
// strictness, kInvalidArgument with the reason.
absl::StatusOr<Hash> RootFromInclusion(int64_t index, int64_t size, std::string_view leaf_hash,
                                       std::span<const std::string> proof);
absl::Status VerifyConsistency(int64_t size1, int64_t size2, std::span<const std::string> proof,
                               std::string_view root1, std::string_view root2);
std::vector<std::string> ToBytes(std::span<const Hash> hashes);

// The right edge of a growing tree: the hashes of RangeNodes(0, size). Appending a leaf
// completes zero or more perfect nodes, reported to `on_node` (level >= 1) bottom-up.
class CompactRange {
 public:
  CompactRange() = default;
  // From the hashes of RangeNodes(0, size), in that order. kInvalidArgument on a
  // count mismatch.
  static absl::StatusOr<CompactRange> FromNodes(int64_t size, std::vector<Hash> hashes);

  void Append(const Hash& leaf_hash,
              const std::function<void(const NodeId&, const Hash&)>& on_node = nullptr);
  int64_t size() const { return size_; }
  // The root of the tree of size() leaves; SHA-256("") when empty.
  Hash Root() const;
  const std::vector<Hash>& hashes() const { return hashes_; }

 private:
  int64_t size_ = 0;
  std::vector<Hash> hashes_;  // RangeNodes(0, size_), largest first
};

}  // namespace casework::store::merkle

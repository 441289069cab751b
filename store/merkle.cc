#include "store/merkle.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/hasher.h"
#include "store/internal/status_macros.h"

namespace casework::store::merkle {
namespace {

// The largest power of two strictly less than n. Precondition: n >= 2.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

Hash ToHash(std::string_view bytes) {
  Hash hash;
  STORE_CHECK(bytes.size() == hash.size());
  std::copy(bytes.begin(), bytes.end(), hash.begin());
  return hash;
}

bool SameBytes(const Hash& hash, std::string_view bytes) { return rfc9162::AsBytes(hash) == bytes; }

}  // namespace

std::vector<NodeId> RangeNodes(int64_t begin, int64_t end) {
  STORE_CHECK(begin >= 0);
  std::vector<NodeId> nodes;
  auto b = static_cast<uint64_t>(begin);
  const auto e = static_cast<uint64_t>(std::max(begin, end));
  while (b < e) {
    // The largest perfect node that starts at b and fits before e.
    int level = b == 0 ? 63 : std::countr_zero(b);
    while ((uint64_t{1} << level) > e - b) --level;
    nodes.push_back({.level = level, .index = static_cast<int64_t>(b >> level)});
    b += uint64_t{1} << level;
  }
  return nodes;
}

Hash FoldRange(std::span<const Hash> node_hashes) {
  STORE_CHECK(!node_hashes.empty());
  Hash hash = node_hashes.back();
  for (size_t i = node_hashes.size() - 1; i-- > 0;) {
    hash = rfc9162::HashChildren(node_hashes[i], hash);
  }
  return hash;
}

absl::StatusOr<std::vector<Range>> InclusionRanges(int64_t index, int64_t size) {
  if (index < 0 || index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf index ", index, " is not in a tree of size ", size));
  }
  // RFC 9162 2.1.3.1: PATH(m, D[0:n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k,
  // PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise. Collected top-down, returned bottom-up.
  std::vector<Range> ranges;
  uint64_t offset = 0;
  auto m = static_cast<uint64_t>(index);
  auto n = static_cast<uint64_t>(size);
  while (n > 1) {
    const uint64_t k = SplitPoint(n);
    if (m < k) {
      ranges.push_back({static_cast<int64_t>(offset + k), static_cast<int64_t>(offset + n)});
      n = k;
    } else {
      ranges.push_back({static_cast<int64_t>(offset), static_cast<int64_t>(offset + k)});
      offset += k;
      m -= k;
      n -= k;
    }
  }
  std::reverse(ranges.begin(), ranges.end());
  return ranges;
}

absl::StatusOr<std::vector<Range>> ConsistencyRanges(int64_t size1, int64_t size2) {
  if (size1 <= 0 || size1 > size2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no consistency proof from size ", size1, " to size ", size2, "; need 0 < size1 <= size2"));
  }
  // RFC 9162 2.1.4.1: SUBPROOF(m, D[0:n], b).
  std::vector<Range> ranges;
  uint64_t offset = 0;
  auto m = static_cast<uint64_t>(size1);
  auto n = static_cast<uint64_t>(size2);
  bool whole = true;  // b: the subtree D[0:m] is the old tree itself
  while (m != n) {
    const uint64_t k = SplitPoint(n);
    if (m <= k) {
      ranges.push_back({static_cast<int64_t>(offset + k), static_cast<int64_t>(offset + n)});
      n = k;
    } else {
      ranges.push_back({static_cast<int64_t>(offset), static_cast<int64_t>(offset + k)});
      offset += k;
      m -= k;
      n -= k;
      whole = false;
    }
  }
  if (!whole) {
    ranges.push_back({static_cast<int64_t>(offset), static_cast<int64_t>(offset + n)});
  }
  std::reverse(ranges.begin(), ranges.end());
  return ranges;
}

std::vector<std::string> ToBytes(std::span<const Hash> hashes) {
  std::vector<std::string> out;
  out.reserve(hashes.size());
  for (const Hash& hash : hashes) out.emplace_back(rfc9162::AsBytes(hash));
  return out;
}

absl::StatusOr<Hash> RootFromInclusion(int64_t index, int64_t size, std::string_view leaf_hash,
                                       std::span<const std::string> proof) {
  if (index < 0 || index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf index ", index, " is not in a tree of size ", size));
  }
  if (leaf_hash.size() != 32) return absl::InvalidArgumentError("leaf hash must be 32 bytes");
  for (const std::string& node : proof) {
    if (node.size() != 32) return absl::InvalidArgumentError("a proof node is not 32 bytes");
  }
  // RFC 9162 2.1.3.2.
  auto fn = static_cast<uint64_t>(index);
  auto sn = static_cast<uint64_t>(size - 1);
  Hash r = ToHash(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return absl::InvalidArgumentError("the inclusion proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      r = rfc9162::HashChildren(ToHash(p), r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = rfc9162::HashChildren(r, ToHash(p));
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("the inclusion proof is too short");
  return r;
}

absl::Status VerifyInclusion(int64_t index, int64_t size, std::string_view leaf_hash,
                             std::span<const std::string> proof, std::string_view root) {
  if (root.size() != 32) return absl::InvalidArgumentError("leaf hash and root must be 32 bytes");
  absl::StatusOr<Hash> computed = RootFromInclusion(index, size, leaf_hash, proof);
  if (!computed.ok()) return computed.status();
  if (!SameBytes(*computed, root)) {
    return absl::InvalidArgumentError("the inclusion proof does not lead to the root");
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(int64_t size1, int64_t size2, std::span<const std::string> proof,
                               std::string_view root1, std::string_view root2) {
  if (size1 <= 0) {
    return absl::InvalidArgumentError("a consistency proof needs size1 > 0");
  }
  if (size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrCat("size1 ", size1, " is larger than size2 ", size2));
  }
  if (size1 == size2) {
    if (!proof.empty()) {
      return absl::InvalidArgumentError("the proof between equal sizes must be empty");
    }
    if (root1 != root2) return absl::InvalidArgumentError("equal sizes with different roots");
    return absl::OkStatus();
  }
  if (proof.empty()) return absl::InvalidArgumentError("the consistency proof is empty");
  if (root1.size() != 32 || root2.size() != 32) {
    return absl::InvalidArgumentError("roots must be 32 bytes");
  }
  for (const std::string& node : proof) {
    if (node.size() != 32) return absl::InvalidArgumentError("a proof node is not 32 bytes");
  }
  // RFC 9162 2.1.4.2.
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(static_cast<uint64_t>(size1))) path.push_back(ToHash(root1));
  for (const std::string& node : proof) path.push_back(ToHash(node));
  auto fn = static_cast<uint64_t>(size1 - 1);
  auto sn = static_cast<uint64_t>(size2 - 1);
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return absl::InvalidArgumentError("the consistency proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      fr = rfc9162::HashChildren(c, fr);
      sr = rfc9162::HashChildren(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = rfc9162::HashChildren(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("the consistency proof is too short");
  if (!SameBytes(fr, root1)) {
    return absl::InvalidArgumentError("the consistency proof does not lead to root1");
  }
  if (!SameBytes(sr, root2)) {
    return absl::InvalidArgumentError("the consistency proof does not lead to root2");
  }
  return absl::OkStatus();
}

absl::StatusOr<CompactRange> CompactRange::FromNodes(int64_t size, std::vector<Hash> hashes) {
  if (size < 0 ||
      static_cast<size_t>(std::popcount(static_cast<uint64_t>(size))) != hashes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("a tree of size ", size, " has ",
                                                   std::popcount(static_cast<uint64_t>(size)),
                                                   " edge nodes, not ", hashes.size()));
  }
  CompactRange range;
  range.size_ = size;
  range.hashes_ = std::move(hashes);
  return range;
}

void CompactRange::Append(const Hash& leaf_hash,
                          const std::function<void(const NodeId&, const Hash&)>& on_node) {
  const auto new_size = static_cast<uint64_t>(size_) + 1;
  const int merges = std::countr_zero(new_size);
  Hash hash = leaf_hash;
  for (int level = 1; level <= merges; ++level) {
    STORE_CHECK(!hashes_.empty());
    hash = rfc9162::HashChildren(hashes_.back(), hash);
    hashes_.pop_back();
    if (on_node) {
      on_node({.level = level, .index = static_cast<int64_t>((new_size >> level) - 1)}, hash);
    }
  }
  hashes_.push_back(hash);
  size_ = static_cast<int64_t>(new_size);
}

Hash CompactRange::Root() const {
  if (hashes_.empty()) return rfc9162::EmptyRoot();
  return FoldRange(hashes_);
}

}  // namespace casework::store::merkle

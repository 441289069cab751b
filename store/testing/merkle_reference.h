// The slow, obvious RFC 9162 tree: the definitions of section 2.1 transcribed as
// recursion over a list of leaf hashes. The oracle for merkle.h; tests only.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "store/event_log.h"
#include "store/hasher.h"

namespace casework::store::testing {

class ReferenceTree {
 public:
  explicit ReferenceTree(std::vector<Hash> leaf_hashes) : leaves_(std::move(leaf_hashes)) {}

  // MTH(D[begin:end]).
  Hash Root(uint64_t begin, uint64_t end) const {
    const uint64_t n = end - begin;
    if (n == 0) return rfc9162::EmptyRoot();
    if (n == 1) return leaves_[begin];
    const uint64_t k = std::bit_floor(n - 1);
    return rfc9162::HashChildren(Root(begin, begin + k), Root(begin + k, end));
  }
  Hash Root(uint64_t size) const { return Root(0, size); }

  // PATH(m, D[begin:end]).
  std::vector<Hash> Path(uint64_t m, uint64_t begin, uint64_t end) const {
    const uint64_t n = end - begin;
    if (n <= 1) return {};
    const uint64_t k = std::bit_floor(n - 1);
    std::vector<Hash> path;
    if (m < k) {
      path = Path(m, begin, begin + k);
      path.push_back(Root(begin + k, end));
    } else {
      path = Path(m - k, begin + k, end);
      path.push_back(Root(begin, begin + k));
    }
    return path;
  }

  // PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true).
  std::vector<Hash> Consistency(uint64_t m, uint64_t n) const { return SubProof(m, 0, n, true); }

 private:
  std::vector<Hash> SubProof(uint64_t m, uint64_t begin, uint64_t end, bool whole) const {
    const uint64_t n = end - begin;
    if (m == n) {
      if (whole) return {};
      return {Root(begin, end)};
    }
    const uint64_t k = std::bit_floor(n - 1);
    std::vector<Hash> proof;
    if (m <= k) {
      proof = SubProof(m, begin, begin + k, whole);
      proof.push_back(Root(begin + k, end));
    } else {
      proof = SubProof(m - k, begin + k, end, false);
      proof.push_back(Root(begin, begin + k));
    }
    return proof;
  }

  std::vector<Hash> leaves_;
};

}  // namespace casework::store::testing

// Proves merkle.h against published vectors (RFC 9162 hasher values and the
// transparency-dev/merkle inclusion and consistency probes, copied into
// store/testdata/merkle with their sources) and against a slow reference tree on seeded
// random trees: every proof equals the reference, verifies, and fails when any byte flips.
#include "store/merkle.h"

#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "store/base64.h"
#include "store/hasher.h"
#include "store/testing/merkle_reference.h"
#include "store/testing/status_matchers.h"
#include "store/testing/testdata.h"

namespace casework::store::merkle {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::ReadFileOrEmpty;
using ::casework::store::testing::ReferenceTree;
using ::casework::store::testing::TestDataDir;
using json = nlohmann::json;

std::string Hex(const Hash& hash) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}
std::string Unhex(const std::string& hex) { return absl::HexStringToBytes(hex); }

json LoadJson(const std::string& relative) {
  std::string text = ReadFileOrEmpty(TestDataDir() + "/merkle/" + relative);
  EXPECT_FALSE(text.empty()) << "missing test data " << relative << " under " << TestDataDir();
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// Go's encoding/json writes []byte as padded base64 and nil slices as null.
std::string B64(const json& value) {
  if (value.is_null()) return "";
  std::optional<std::string> bytes = DecodeBase64(value.get<std::string>());
  // A value that is not canonical base64 stands for bytes no verifier can accept.
  return bytes.has_value() ? *bytes : std::string("\x01 not base64");
}

std::vector<std::string> B64List(const json& value) {
  std::vector<std::string> out;
  if (value.is_null()) return out;
  for (const json& item : value) out.push_back(B64(item));
  return out;
}

std::vector<Hash> ExampleLeafHashes() {
  json tree = LoadJson("rfc6962/example-tree.json");
  std::vector<Hash> leaves;
  for (const json& leaf : tree["leafInputsHex"]) {
    leaves.push_back(rfc9162::HashLeaf(Unhex(leaf.get<std::string>())));
  }
  return leaves;
}

std::vector<Hash> Prove(const std::vector<Range>& ranges, const ReferenceTree& tree) {
  std::vector<Hash> proof;
  for (const Range& range : ranges) {
    std::vector<Hash> nodes;
    for (const NodeId& node : RangeNodes(range.begin, range.end)) {
      nodes.push_back(
          tree.Root(static_cast<uint64_t>(node.begin()), static_cast<uint64_t>(node.end())));
    }
    proof.push_back(FoldRange(nodes));
  }
  return proof;
}

TEST(Rfc9162Hasher, PublishedValues) {
  json vectors = LoadJson("rfc6962/hasher.json");
  ASSERT_EQ(vectors["vectors"].size(), 4u);
  for (const json& v : vectors["vectors"]) {
    SCOPED_TRACE(v["desc"].get<std::string>());
    const std::string kind = v["kind"];
    Hash got;
    if (kind == "empty") {
      got = rfc9162::EmptyRoot();
    } else if (kind == "leaf") {
      got = rfc9162::HashLeaf(Unhex(v["dataHex"]));
    } else {
      got = rfc9162::HashNodeBytes(Unhex(v["leftHex"]), Unhex(v["rightHex"]));
    }
    EXPECT_EQ(Hex(got), v["wantHex"].get<std::string>());
  }
}

// Plain SHA-256 (request fingerprints): FIPS 180-2 appendix B.1 and B.2, and the empty
// string; the same digest computed on other threads at once agrees.
TEST(Sha256, PublishedValues) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256("")), Hex(rfc9162::EmptyRoot()));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&wrong] {
      for (int i = 0; i < 1000; ++i) {
        if (Hex(Sha256("abc")) !=
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Merkle, ExampleTreeNodesAndRoots) {
  json tree = LoadJson("rfc6962/example-tree.json");
  std::vector<Hash> leaves = ExampleLeafHashes();
  ASSERT_EQ(leaves.size(), 8u);
  ReferenceTree reference(leaves);
  const json& levels = tree["nodeHashesHex"];
  for (size_t level = 0; level < levels.size(); ++level) {
    for (size_t i = 0; i < levels[level].size(); ++i) {
      SCOPED_TRACE(absl::StrCat("node ", level, "/", i));
      EXPECT_EQ(Hex(reference.Root(i << level, (i + 1) << level)),
                levels[level][i].get<std::string>());
    }
  }
  CompactRange range;
  for (size_t n = 0; n <= 8; ++n) {
    SCOPED_TRACE(absl::StrCat("root of ", n));
    EXPECT_EQ(Hex(range.Root()), tree["rootHashesHex"][n].get<std::string>());
    EXPECT_EQ(Hex(reference.Root(n)), tree["rootHashesHex"][n].get<std::string>());
    if (n < 8) range.Append(leaves[n]);
  }
}

// Runs every probe file in a folder; reports each mismatch, not only the first.
void RunProbes(const std::string& folder, bool inclusion) {
  const std::filesystem::path root = TestDataDir() + "/merkle/" + folder;
  ASSERT_TRUE(std::filesystem::is_directory(root)) << root;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), inclusion ? 90u : 90u);
  int failures = 0;
  for (const auto& file : files) {
    json v = json::parse(ReadFileOrEmpty(file.string()), nullptr, false);
    ASSERT_FALSE(v.is_discarded()) << file;
    std::vector<std::string> proof = B64List(v["proof"]);
    absl::Status status =
        inclusion ? VerifyInclusion(v["leafIdx"].get<int64_t>(), v["treeSize"].get<int64_t>(),
                                    B64(v["leafHash"]), proof, B64(v["root"]))
                  : VerifyConsistency(v["size1"].get<int64_t>(), v["size2"].get<int64_t>(), proof,
                                      B64(v["root1"]), B64(v["root2"]));
    const bool want_error = v["wantErr"].get<bool>();
    if (want_error == status.ok()) {
      ++failures;
      ADD_FAILURE() << std::filesystem::relative(file, root).string() << " ("
                    << v["desc"].get<std::string>() << "): want "
                    << (want_error ? "an error" : "OK") << ", got " << status;
    }
  }
  EXPECT_EQ(failures, 0) << "of " << files.size() << " probes";
}

TEST(MerkleVectors, InclusionProbes) { RunProbes("inclusion", true); }
TEST(MerkleVectors, ConsistencyProbes) { RunProbes("consistency", false); }

// The happy paths were made from the example tree: our proofs must be the same bytes.
TEST(MerkleVectors, GeneratedProofsEqualHappyPaths) {
  ReferenceTree tree(ExampleLeafHashes());
  for (int folder = 0; folder <= 4; ++folder) {
    json inc = LoadJson(absl::StrCat("inclusion/", folder, "/happy-path.json"));
    SCOPED_TRACE(absl::StrCat("inclusion/", folder));
    auto ranges = InclusionRanges(inc["leafIdx"], inc["treeSize"]);
    ASSERT_THAT(ranges, IsOk());
    EXPECT_EQ(ToBytes(Prove(*ranges, tree)), B64List(inc["proof"]));
    json con = LoadJson(absl::StrCat("consistency/", folder, "/happy-path.json"));
    SCOPED_TRACE(absl::StrCat("consistency/", folder));
    auto cranges = ConsistencyRanges(con["size1"], con["size2"]);
    ASSERT_THAT(cranges, IsOk());
    EXPECT_EQ(ToBytes(Prove(*cranges, tree)), B64List(con["proof"]));
  }
}

TEST(Merkle, RangeNodesOfPrefixesAreTheSetBits) {
  EXPECT_THAT(RangeNodes(0, 0), ::testing::IsEmpty());
  EXPECT_THAT(RangeNodes(0, 13), ::testing::ElementsAre(NodeId{3, 0}, NodeId{2, 2}, NodeId{0, 12}));
  EXPECT_THAT(RangeNodes(8, 13), ::testing::ElementsAre(NodeId{2, 2}, NodeId{0, 12}));
  EXPECT_THAT(RangeNodes(3, 8), ::testing::ElementsAre(NodeId{0, 3}, NodeId{2, 1}));
}

TEST(Merkle, RefusesImpossibleProofs) {
  EXPECT_FALSE(InclusionRanges(0, 0).ok());
  EXPECT_FALSE(InclusionRanges(5, 5).ok());
  EXPECT_FALSE(InclusionRanges(-1, 5).ok());
  EXPECT_FALSE(ConsistencyRanges(0, 5).ok());
  EXPECT_FALSE(ConsistencyRanges(6, 5).ok());
  EXPECT_THAT(ConsistencyRanges(5, 5),
              ::casework::store::testing::IsOkAndHolds(::testing::IsEmpty()));
}

unsigned Seed() {
  const char* env = std::getenv("CW_TEST_SEED");
  unsigned seed = env != nullptr ? static_cast<unsigned>(std::strtoul(env, nullptr, 10))
                                 : std::random_device{}();
  std::printf("seed %u (replay with CW_TEST_SEED=%u)\n", seed, seed);
  return seed;
}

std::vector<Hash> RandomLeaves(std::mt19937_64& rng, size_t n) {
  std::vector<Hash> leaves;
  for (size_t i = 0; i < n; ++i) {
    leaves.push_back(rfc9162::HashLeaf(absl::StrCat("leaf ", i, " ", rng())));
  }
  return leaves;
}

// Flipping any one bit of any proof node, of the leaf or of the root must fail.
template <typename Verify>
void ExpectEveryFlipFails(std::vector<std::string> proof, std::string a, std::string b,
                          const Verify& verify) {
  for (size_t i = 0; i < proof.size(); ++i) {
    for (size_t byte = 0; byte < 32; byte += 7) {
      std::vector<std::string> bad = proof;
      bad[i][byte] = static_cast<char>(bad[i][byte] ^ (1 << (byte % 8)));
      EXPECT_FALSE(verify(bad, a, b).ok()) << "proof node " << i << " byte " << byte;
    }
  }
  for (size_t byte = 0; byte < 32; byte += 5) {
    std::string bad_a = a;
    bad_a[byte] = static_cast<char>(bad_a[byte] ^ 0x10);
    EXPECT_FALSE(verify(proof, bad_a, b).ok()) << "first hash byte " << byte;
    std::string bad_b = b;
    bad_b[byte] = static_cast<char>(bad_b[byte] ^ 0x10);
    EXPECT_FALSE(verify(proof, a, bad_b).ok()) << "second hash byte " << byte;
  }
  if (!proof.empty()) {
    std::vector<std::string> shorter(proof.begin(), proof.end() - 1);
    EXPECT_FALSE(verify(shorter, a, b).ok()) << "truncated proof";
  }
  std::vector<std::string> longer = proof;
  longer.push_back(std::string(32, 'x'));
  EXPECT_FALSE(verify(longer, a, b).ok()) << "extended proof";
}

TEST(MerkleProperty, InclusionProofsOfRandomTrees) {
  std::mt19937_64 rng(Seed());
  constexpr int kTreesMax = 40;
  for (int t = 0; t < kTreesMax; ++t) {
    const size_t size = 1 + rng() % (t < 20 ? 40 : 1100);
    std::vector<Hash> leaves = RandomLeaves(rng, size);
    ReferenceTree tree(leaves);
    const Hash root = tree.Root(size);
    CompactRange range;
    for (const Hash& leaf : leaves) range.Append(leaf);
    ASSERT_EQ(range.Root(), root) << "size " << size;
    for (int probe = 0; probe < 6; ++probe) {
      const uint64_t index = rng() % size;
      SCOPED_TRACE(absl::StrCat("leaf ", index, " of ", size));
      auto ranges = InclusionRanges(static_cast<int64_t>(index), static_cast<int64_t>(size));
      ASSERT_THAT(ranges, IsOk());
      std::vector<Hash> proof = Prove(*ranges, tree);
      ASSERT_EQ(proof, tree.Path(index, 0, size));
      auto verify = [&](const std::vector<std::string>& p, const std::string& leaf,
                        const std::string& r) {
        return VerifyInclusion(static_cast<int64_t>(index), static_cast<int64_t>(size), leaf, p, r);
      };
      std::string leaf(rfc9162::AsBytes(leaves[index]));
      std::string root_bytes(rfc9162::AsBytes(root));
      EXPECT_THAT(verify(ToBytes(proof), leaf, root_bytes), IsOk());
      ExpectEveryFlipFails(ToBytes(proof), leaf, root_bytes, verify);
      if (size > 1) {
        EXPECT_FALSE(VerifyInclusion(static_cast<int64_t>((index + 1) % size),
                                     static_cast<int64_t>(size), leaf, ToBytes(proof), root_bytes)
                         .ok());
      }
    }
  }
}

TEST(MerkleProperty, ConsistencyProofsOfRandomTrees) {
  std::mt19937_64 rng(Seed());
  constexpr int kTreesMax = 40;
  for (int t = 0; t < kTreesMax; ++t) {
    const size_t size2 = 1 + rng() % (t < 20 ? 40 : 1100);
    const size_t size1 = 1 + rng() % size2;
    SCOPED_TRACE(absl::StrCat(size1, " -> ", size2));
    ReferenceTree tree(RandomLeaves(rng, size2));
    auto ranges = ConsistencyRanges(static_cast<int64_t>(size1), static_cast<int64_t>(size2));
    ASSERT_THAT(ranges, IsOk());
    std::vector<Hash> proof = Prove(*ranges, tree);
    ASSERT_EQ(proof, tree.Consistency(size1, size2));
    auto verify = [&](const std::vector<std::string>& p, const std::string& r1,
                      const std::string& r2) {
      return VerifyConsistency(static_cast<int64_t>(size1), static_cast<int64_t>(size2), p, r1, r2);
    };
    std::string root1(rfc9162::AsBytes(tree.Root(size1)));
    std::string root2(rfc9162::AsBytes(tree.Root(size2)));
    EXPECT_THAT(verify(ToBytes(proof), root1, root2), IsOk());
    if (size1 != size2) ExpectEveryFlipFails(ToBytes(proof), root1, root2, verify);
  }
}

TEST(MerkleProperty, CompactRangeReportsEveryPerfectNode) {
  std::mt19937_64 rng(Seed());
  std::vector<Hash> leaves = RandomLeaves(rng, 300);
  ReferenceTree tree(leaves);
  CompactRange range;
  int reported = 0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    range.Append(leaves[i], [&](const NodeId& node, const Hash& hash) {
      ++reported;
      EXPECT_EQ(static_cast<size_t>(node.end()), i + 1);
      EXPECT_EQ(hash,
                tree.Root(static_cast<uint64_t>(node.begin()), static_cast<uint64_t>(node.end())));
    });
    std::vector<Hash> edge;
    for (const NodeId& node : RangeNodes(0, static_cast<int64_t>(i + 1))) {
      edge.push_back(
          tree.Root(static_cast<uint64_t>(node.begin()), static_cast<uint64_t>(node.end())));
    }
    ASSERT_EQ(range.hashes(), edge);
    auto rebuilt = CompactRange::FromNodes(static_cast<int64_t>(i + 1), edge);
    ASSERT_THAT(rebuilt, IsOk());
    EXPECT_EQ(rebuilt->Root(), tree.Root(i + 1));
  }
  EXPECT_EQ(reported, 300 - 4);  // n - popcount(n) interior nodes
}

}  // namespace
}  // namespace casework::store::merkle

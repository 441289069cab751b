// The strict Ed25519 verifier and the enrollment check against published vectors: the
// five RFC 8032 section 7.1 vectors must verify (and fail when a bit flips), and every
// ed25519-speccheck case must get exactly the decision recorded in
// tests/testdata/ed25519/README.md. Every failing vector is reported, not the first.
#include "services/shell/ed25519.h"

#include <sodium.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#ifndef CW_TESTDATA_DIR
#error "CW_TESTDATA_DIR must name tests/testdata"
#endif

namespace casework::shell {
namespace {

std::string Hex(const std::string& hex) { return absl::HexStringToBytes(hex); }

nlohmann::json ReadJson(const std::string& name) {
  std::ifstream in(std::string(CW_TESTDATA_DIR) + "/ed25519/" + name);
  EXPECT_TRUE(in.good()) << "cannot read " << name;
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

std::string FlipBit(std::string bytes, size_t bit) {
  bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
  return bytes;
}

TEST(Ed25519, Rfc8032Section71VectorsVerify) {
  const nlohmann::json vectors = ReadJson("rfc8032_7_1.json");
  ASSERT_EQ(vectors.size(), 5u);
  ASSERT_GE(sodium_init(), 0);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v["name"].get<std::string>());
    const std::string seed = Hex(v["secret_key"]);
    const std::string public_key = Hex(v["public_key"]);
    const std::string message = Hex(v["message"]);
    const std::string signature = Hex(v["signature"]);
    // The public key is the one the seed derives.
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(seed.data()));
    EXPECT_EQ(std::string(reinterpret_cast<char*>(pk), sizeof pk), public_key);
    EXPECT_EQ(CheckApproverPublicKey(public_key), PublicKeyCheck::kOk);
    EXPECT_TRUE(VerifyEd25519Strict(public_key, message, signature));
    // Any flipped bit of the signature, of the key, or of a non-empty message fails.
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message, FlipBit(signature, 0)));
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message, FlipBit(signature, 300)));
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message, FlipBit(signature, 511)));
    EXPECT_FALSE(VerifyEd25519Strict(FlipBit(public_key, 3), message, signature));
    if (!message.empty()) {
      EXPECT_FALSE(VerifyEd25519Strict(public_key, FlipBit(message, 0), signature));
    }
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message + "x", signature));
    // Wrong lengths are refused, never read past.
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message, signature.substr(0, 63)));
    EXPECT_FALSE(VerifyEd25519Strict(public_key, message, signature + '\0'));
    EXPECT_FALSE(VerifyEd25519Strict(public_key.substr(0, 31), message, signature));
  }
}

// One row per speccheck case: what libsodium's verifier says, and what the enrollment
// check says of the case's public key. tests/testdata/ed25519/README.md explains them.
struct SpeccheckRow {
  int n;
  bool verifies;
  PublicKeyCheck key;
};

constexpr SpeccheckRow kSpeccheck[] = {
    {0, false, PublicKeyCheck::kWeak},          {1, false, PublicKeyCheck::kWeak},
    {2, false, PublicKeyCheck::kWeak},          {3, false, PublicKeyCheck::kWeak},
    {4, false, PublicKeyCheck::kWeak},          {5, false, PublicKeyCheck::kWeak},
    {6, true, PublicKeyCheck::kWeak},           {7, false, PublicKeyCheck::kWeak},
    {8, false, PublicKeyCheck::kWeak},          {9, false, PublicKeyCheck::kOk},
    {10, false, PublicKeyCheck::kOk},           {11, false, PublicKeyCheck::kWeak},
    {12, false, PublicKeyCheck::kWeak},         {13, false, PublicKeyCheck::kNotCanonical},
    {14, false, PublicKeyCheck::kNotCanonical},
};

TEST(Ed25519, SpeccheckCasesGetTheRecordedDecisions) {
  const nlohmann::json cases = ReadJson("speccheck_cases.json");
  ASSERT_EQ(cases.size(), std::size(kSpeccheck));
  for (const SpeccheckRow& row : kSpeccheck) {
    SCOPED_TRACE(testing::Message() << "speccheck case " << row.n);
    const auto& c = cases[row.n];
    const std::string public_key = Hex(c["pub_key"]);
    const std::string message = Hex(c["message"]);
    const std::string signature = Hex(c["signature"]);
    EXPECT_EQ(VerifyEd25519Strict(public_key, message, signature), row.verifies);
    EXPECT_EQ(CheckApproverPublicKey(public_key), row.key);
    // What the server accepts: an enrolled key and a verifying signature. None does.
    const bool accepted = CheckApproverPublicKey(public_key) == PublicKeyCheck::kOk &&
                          VerifyEd25519Strict(public_key, message, signature);
    EXPECT_FALSE(accepted);
  }
}

struct KeyRow {
  const char* name;
  const char* hex;
  PublicKeyCheck expected;
};

// The eight points of small order (canonical encodings), their non-canonical
// encodings, a point off the curve, and wrong lengths.
constexpr KeyRow kKeys[] = {
    {"identity", "0100000000000000000000000000000000000000000000000000000000000000",
     PublicKeyCheck::kWeak},
    {"order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     PublicKeyCheck::kWeak},
    {"order 4", "0000000000000000000000000000000000000000000000000000000000000000",
     PublicKeyCheck::kWeak},
    {"order 4, negative x", "0000000000000000000000000000000000000000000000000000000000000080",
     PublicKeyCheck::kWeak},
    {"order 8 a", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
     PublicKeyCheck::kWeak},
    {"order 8 b", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
     PublicKeyCheck::kWeak},
    {"order 8 c", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
     PublicKeyCheck::kWeak},
    {"order 8 d", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
     PublicKeyCheck::kWeak},
    {"identity, negative zero", "0100000000000000000000000000000000000000000000000000000000000080",
     PublicKeyCheck::kNotCanonical},
    {"order 2, negative zero", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
     PublicKeyCheck::kNotCanonical},
    {"y = p + 1 (identity)", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     PublicKeyCheck::kNotCanonical},
    {"y = p (order 4)", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     PublicKeyCheck::kNotCanonical},
    {"y = 2^255 - 1", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     PublicKeyCheck::kNotCanonical},
    {"y = 2, off the curve", "0200000000000000000000000000000000000000000000000000000000000000",
     PublicKeyCheck::kWeak},
    {"31 bytes", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751",
     PublicKeyCheck::kWrongLength},
    {"33 bytes", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a00",
     PublicKeyCheck::kWrongLength},
    {"empty", "", PublicKeyCheck::kWrongLength},
    {"RFC 8032 TEST 1", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     PublicKeyCheck::kOk},
};

TEST(Ed25519, EnrollmentRefusesWeakAndNonCanonicalKeys) {
  for (const KeyRow& row : kKeys) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(CheckApproverPublicKey(Hex(row.hex)), row.expected);
  }
}

TEST(Ed25519, KeyIdIsPrefixAndSixteenHexDigitsOfSha256) {
  // The RFC 8032 TEST 1 public key; the expected id was derived with
  //   printf d75a...511a | xxd -r -p | sha256sum | cut -c1-16
  const std::string key = Hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  EXPECT_EQ(ApproverKeyId(key), "ed25519:21fe31dfa154a261");
}

}  // namespace
}  // namespace casework::shell

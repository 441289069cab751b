// Proves checkpoint.h against the published signed-note and checkpoint vectors (C2SP,
// golang/mod sumdb/note, transparency-dev/formats; copied into store/testdata/merkle/note
// with their sources), reporting every failing vector, and round-trips our own key,
// checkpoints and key file.
#include "store/checkpoint.h"

#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "store/base64.h"
#include "store/hasher.h"
#include "store/testing/status_matchers.h"
#include "store/testing/temp_dir.h"
#include "store/testing/testdata.h"

namespace casework::store {
namespace {

using ::casework::store::testing::IsOk;
using ::casework::store::testing::StatusIs;
using ::casework::store::testing::TempDir;
using json = nlohmann::json;

json Vectors() {
  std::string text = testing::ReadFileOrEmpty(testing::TestDataDir() + "/merkle/note/vectors.json");
  EXPECT_FALSE(text.empty());
  return json::parse(text, nullptr, false);
}

std::string NoteText(const json& v) {
  if (v.contains("noteBase64")) return DecodeBase64(v["noteBase64"].get<std::string>()).value();
  return v["note"].get<std::string>();
}

TEST(SignedNoteVectors, EveryNote) {
  json vectors = Vectors();
  ASSERT_GE(vectors["notes"].size(), 20u);
  int failures = 0;
  for (const json& v : vectors["notes"]) {
    const std::string name = v["name"];
    std::vector<std::string> problems;
    const std::string message = NoteText(v);
    std::vector<NoteVerifier> known;
    for (const json& vkey : v["vkeys"]) {
      auto verifier = NoteVerifier::FromVerifierKey(vkey.get<std::string>());
      if (!verifier.ok())
        problems.push_back(absl::StrCat("vkey refused: ", verifier.status().ToString()));
      else
        known.push_back(*verifier);
    }
    auto parsed = ParseNote(message);
    if (v.contains("parses") && parsed.ok() != v["parses"].get<bool>()) {
      problems.push_back(absl::StrCat("parses: want ", v["parses"].get<bool>(), ", got ",
                                      parsed.status().ToString()));
    }
    if (v.contains("text") && (!parsed.ok() || parsed->text != v["text"].get<std::string>())) {
      problems.push_back("parsed text differs");
    }
    if (v.contains("signatures") &&
        (!parsed.ok() || parsed->signatures.size() != v["signatures"].get<size_t>())) {
      problems.push_back("signature count differs");
    }
    std::vector<std::string> verified_by;
    auto opened = OpenNote(message, known, &verified_by);
    bool ok = opened.ok();
    if (ok && v.contains("origin")) {
      auto checkpoint = ParseCheckpoint(opened->text);
      ok = checkpoint.ok() && checkpoint->origin == v["origin"].get<std::string>();
    }
    if (ok != (v["want"].get<std::string>() == "ok")) {
      problems.push_back(absl::StrCat("verdict: want ", v["want"].get<std::string>(), ", got ",
                                      opened.status().ToString()));
    }
    if (v.contains("verifiedBy")) {
      std::vector<std::string> want = v["verifiedBy"];
      std::sort(want.begin(), want.end());
      std::sort(verified_by.begin(), verified_by.end());
      if (want != verified_by) problems.push_back("verified-by list differs");
    }
    if (v.contains("checkpoint") && parsed.ok()) {
      auto checkpoint = ParseCheckpoint(parsed->text);
      if (v["checkpoint"].is_null()) {
        if (checkpoint.ok()) problems.push_back("parsed as a checkpoint, but is none");
      } else if (!checkpoint.ok()) {
        problems.push_back(absl::StrCat("checkpoint: ", checkpoint.status().ToString()));
      } else {
        const json& want = v["checkpoint"];
        if (checkpoint->origin != want["origin"].get<std::string>() ||
            checkpoint->size != want["size"].get<int64_t>() ||
            EncodeBase64(rfc9162::AsBytes(checkpoint->root)) !=
                want["rootBase64"].get<std::string>()) {
          problems.push_back("checkpoint fields differ");
        }
      }
    }
    for (const std::string& problem : problems) {
      ADD_FAILURE() << name << ": " << problem;
    }
    if (!problems.empty()) ++failures;
  }
  EXPECT_EQ(failures, 0);
}

TEST(SignedNoteVectors, VerifierKeys) {
  json vectors = Vectors();
  ASSERT_GE(vectors["vkeys"].size(), 6u);
  for (const json& v : vectors["vkeys"]) {
    auto verifier = NoteVerifier::FromVerifierKey(v["vkey"].get<std::string>());
    EXPECT_EQ(verifier.ok(), v["valid"].get<bool>()) << v["vkey"] << ": " << verifier.status();
    if (verifier.ok()) {
      EXPECT_EQ(verifier->VerifierKey(), v["vkey"].get<std::string>());
    }
  }
}

TEST(SignedNoteVectors, SignerReproducesPublishedNote) {
  json vectors = Vectors();
  ASSERT_GE(vectors["signers"].size(), 1u);
  for (const json& v : vectors["signers"]) {
    auto signer = NoteSigner::FromSignerKey(v["skey"].get<std::string>());
    ASSERT_THAT(signer, IsOk());
    EXPECT_EQ(signer->verifier().VerifierKey(), v["vkey"].get<std::string>());
    auto note = signer->Sign(v["text"].get<std::string>());
    ASSERT_THAT(note, IsOk());
    EXPECT_EQ(*note, v["wantNote"].get<std::string>());
  }
}

TEST(Checkpoint, SignOpenRoundTripAndTamper) {
  auto signer = NoteSigner::FromSeed("casework.test/log", std::string(32, '\x07'));
  ASSERT_THAT(signer, IsOk());
  Checkpoint checkpoint{.origin = "casework.test/log", .size = 12345};
  checkpoint.root = rfc9162::HashLeaf("x");
  auto note = signer->Sign(FormatCheckpoint(checkpoint));
  ASSERT_THAT(note, IsOk());
  auto opened = OpenCheckpoint(*note, signer->verifier(), "casework.test/log");
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(*opened, checkpoint);
  EXPECT_THAT(OpenCheckpoint(*note, signer->verifier(), "other"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::string tampered = *note;
  tampered[tampered.find("12345")] = '2';
  EXPECT_THAT(OpenCheckpoint(tampered, signer->verifier(), "casework.test/log"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  auto other = NoteSigner::FromSeed("casework.test/log", std::string(32, '\x08'));
  EXPECT_THAT(OpenCheckpoint(*note, other->verifier(), "casework.test/log"),
              StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST(Checkpoint, ParseRefusesWhatTheGrammarDoesNot) {
  const std::string root = EncodeBase64(std::string(32, 'r'));
  EXPECT_THAT(ParseCheckpoint("o\n1\n" + root + "\n"), IsOk());
  EXPECT_THAT(ParseCheckpoint("o\n1\n" + root + "\next\n"), IsOk());
  EXPECT_FALSE(ParseCheckpoint("o\n01\n" + root + "\n").ok());
  EXPECT_FALSE(ParseCheckpoint("o\n-1\n" + root + "\n").ok());
  EXPECT_FALSE(ParseCheckpoint("o\n99999999999999999999\n" + root + "\n").ok());
  EXPECT_FALSE(ParseCheckpoint("\n1\n" + root + "\n").ok());
  EXPECT_FALSE(ParseCheckpoint("o\n1\n" + root).ok());
  EXPECT_FALSE(ParseCheckpoint("o\n1\n" + EncodeBase64(std::string(31, 'r')) + "\n").ok());
  EXPECT_FALSE(ParseCheckpoint("o\n1\n" + root + "\n\n").ok());
}

TEST(Base64, StrictDecoding) {
  EXPECT_EQ(DecodeBase64("YQ=="), "a");
  EXPECT_EQ(DecodeBase64(""), "");
  EXPECT_EQ(DecodeBase64("YWI="), "ab");
  EXPECT_FALSE(DecodeBase64("YR==").has_value());  // non-zero pad bits
  EXPECT_FALSE(DecodeBase64("YQ").has_value());    // no padding
  EXPECT_FALSE(DecodeBase64("Y Q==").has_value());
  EXPECT_FALSE(DecodeBase64("YQ==YQ==").has_value());
}

TEST(SigningKeyFile, CreatedPrivateAndStable) {
  TempDir dir;
  const std::string path = dir.Sub("server.key");
  auto first = LoadOrCreateSigningKey(path, "casework.test/log");
  ASSERT_THAT(first, IsOk());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  auto second = LoadOrCreateSigningKey(path, "casework.test/log");
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(first->verifier().VerifierKey(), second->verifier().VerifierKey());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_THAT(LoadOrCreateSigningKey(path, "casework.test/log"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(DurableFile, WriteThenRead) {
  TempDir dir;
  const std::string path = dir.Sub("checkpoint");
  EXPECT_THAT(ReadSmallFile(path, 100), ::casework::store::testing::IsOkAndHolds(std::nullopt));
  ASSERT_THAT(WriteFileDurably(path, "one"), IsOk());
  ASSERT_THAT(WriteFileDurably(path, "two"), IsOk());
  EXPECT_THAT(ReadSmallFile(path, 100),
              ::casework::store::testing::IsOkAndHolds(std::optional<std::string>("two")));
  EXPECT_THAT(ReadSmallFile(path, 2), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace casework::store

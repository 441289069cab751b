// Fuzz target: signed notes and checkpoints (store/checkpoint.h), as a client checks the
// server's checkpoint and as the server checks the one it kept on disk.
//
// Feeds the input to:
//   - ParseNote, then ParseCheckpoint on the text of a note that parses;
//   - OpenNote with the trusted keys of the corpus (the corpus log's key and the public
//     keys of store/testdata/merkle/note/vectors.json), and OpenCheckpoint with the
//     corpus log's key and origin and with sum.golang.org's;
//   - NoteVerifier::FromVerifierKey and NoteSigner::FromSignerKey (key lines).
// Asserts: no crash and no sanitizer report; a note that parses re-serializes to exactly
// the input (text, blank line, its signature lines as written); a checkpoint body that
// parses formats back to exactly that text; a note that opens names at least one key that
// verified, and an opened checkpoint is the body of the note; a verifier key that parses
// formats back to the input.
#include <array>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_keys.h"
#include "fuzz/fuzz_support.h"
#include "store/checkpoint.h"

namespace {

namespace store = ::casework::store;

constexpr char kSumDbOrigin[] = "go.sum database tree";

// Trusted keys: the corpus log's, then the published keys of the test vectors.
const std::vector<store::NoteVerifier>& Known() {
  static const auto* known = [] {
    auto* out = new std::vector<store::NoteVerifier>{casework::fuzz::FuzzVerifier()};
    for (const char* vkey : {
             "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
             "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
             "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
             "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
         }) {
      out->push_back(*store::NoteVerifier::FromVerifierKey(vkey));
    }
    return out;
  }();
  return *known;
}

void CheckOpened(const absl::StatusOr<store::Checkpoint>& opened, std::string_view input,
                 std::string_view origin) {
  if (!opened.ok()) return;
  FUZZ_CHECK(opened->origin == origin, "an opened checkpoint has the expected origin");
  auto note = store::ParseNote(input);
  FUZZ_CHECK(note.ok(), "an opened checkpoint parses as a note");
  auto body = store::ParseCheckpoint(note->text);
  FUZZ_CHECK(body.ok() && *body == *opened, "an opened checkpoint is the note's body");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = casework::fuzz::AsText(data, size);

  if (auto note = store::ParseNote(input); note.ok()) {
    std::string again = note->text + "\n";
    for (const store::NoteSignature& s : note->signatures) {
      absl::StrAppend(&again, "\xE2\x80\x94 ", s.name, " ", s.base64, "\n");
    }
    FUZZ_CHECK(again == input, "a parsed note re-serializes to its bytes");
    FUZZ_CHECK(!note->signatures.empty() && note->signatures.size() <= store::kNoteSignaturesMax,
               "a note has 1 to 100 signatures");
    if (auto checkpoint = store::ParseCheckpoint(note->text); checkpoint.ok()) {
      FUZZ_CHECK(store::FormatCheckpoint(*checkpoint) == note->text,
                 "a parsed checkpoint formats to its text");
      FUZZ_CHECK(checkpoint->size >= 0, "a checkpoint size is not negative");
    }
  }

  std::vector<std::string> verified_by;
  if (store::OpenNote(input, Known(), &verified_by).ok()) {
    FUZZ_CHECK(!verified_by.empty(), "an opened note names a key that verified");
  }
  CheckOpened(
      store::OpenCheckpoint(input, casework::fuzz::FuzzVerifier(), casework::fuzz::kFuzzOrigin),
      input, casework::fuzz::kFuzzOrigin);
  CheckOpened(store::OpenCheckpoint(input, Known()[1], kSumDbOrigin), input, kSumDbOrigin);

  if (auto verifier = store::NoteVerifier::FromVerifierKey(input); verifier.ok()) {
    FUZZ_CHECK(verifier->VerifierKey() == input, "a verifier key formats back to its text");
  }
  if (auto signer = store::NoteSigner::FromSignerKey(input); signer.ok()) {
    FUZZ_CHECK(signer->verifier().public_key().size() == 32, "a signer key has a public key");
  }
  return 0;
}

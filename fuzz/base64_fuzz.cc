// Fuzz target: the strict base64 decoder of the store (store/base64.h), which reads the
// roots and signatures of checkpoints, verifier keys and the hashes of export headers.
//
// Feeds: the input as base64 text, and the input as bytes to encode.
// Asserts: no crash and no sanitizer report; text that decodes is canonical, so encoding
// what it decodes to gives the text back; encoding any bytes and decoding gives them back.
#include "fuzz/fuzz_support.h"
#include "store/base64.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using casework::store::DecodeBase64;
  using casework::store::EncodeBase64;
  const std::string_view input = casework::fuzz::AsText(data, size);

  if (std::optional<std::string> decoded = DecodeBase64(input)) {
    FUZZ_CHECK(EncodeBase64(*decoded) == input, "accepted base64 is canonical");
  }
  const std::string encoded = EncodeBase64(input);
  std::optional<std::string> back = DecodeBase64(encoded);
  FUZZ_CHECK(back.has_value() && *back == input, "decode(encode(bytes)) == bytes");
  return 0;
}

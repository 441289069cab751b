// Standard base64 (RFC 4648 section 4, padded), strict: the decoder refuses anything
// that EncodeBase64 would not produce (missing padding, non-zero pad bits, whitespace).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace casework::store {

std::string EncodeBase64(std::string_view bytes);

// nullopt when `text` is not canonical padded base64.
std::optional<std::string> DecodeBase64(std::string_view text);

}  // namespace casework::store

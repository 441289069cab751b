// The page tokens of CaseService: opaque to clients, decoded from untrusted bytes.
//
//   ListCases:      web-safe base64 of AES-256-GCM(key) under a key drawn at process start,
//                   as nonce || ciphertext || tag, with the query tag as associated data
//                   (the key is the first index key of the next page, which may belong to a
//                   case the caller may not see; the query tag, ListCasesQueryTag, binds
//                   the token to the filter and order that made it). Good for the process
//                   that issued it: after a restart a listing starts over.
//   ListCaseEvents: web-safe base64 of case_id "\n" the decimal version to go on from
//                   (>= 1); good only for the case it was issued for.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace casework::shell {

// The query a ListCases token continues: filter and order_by as the request gave them.
[[nodiscard]] std::string ListCasesQueryTag(std::string_view filter, std::string_view order_by);

[[nodiscard]] std::string EncodePageToken(std::string_view key, std::string_view query_tag);
// The key, or nullopt when `token` is not one EncodePageToken made for `query_tag`.
[[nodiscard]] std::optional<std::string> DecodePageToken(std::string_view token,
                                                         std::string_view query_tag);

// ListCaseEvents: the next version of one case, bound to that case (a token is good for
// the case it was issued for only; versions are no secret to whoever may read the case).
[[nodiscard]] std::string EncodeEventsPageToken(std::string_view case_id, int64_t next_version);
// The version (>= 1), or nullopt when `token` is not an events page token of `case_id`.
[[nodiscard]] std::optional<int64_t> DecodeEventsPageToken(std::string_view token,
                                                           std::string_view case_id);

}  // namespace casework::shell

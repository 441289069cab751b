// Fuzz target: the page tokens of CaseService (services/shell/page_token.h) as ListCases
// and ListCaseEvents decode them.
//
// Feeds: the input as a casework.v1.ListCasesRequest; like ListCases, its filter
// (services/shell/list_filter.h) and order_by are checked first, then the page token is
// decoded against the query tag of that filter and order. The same page_token string also
// goes to the ListCaseEvents decoder.
// Asserts: no crash and no sanitizer report; an accepted token continues only its own
// query (the same token with any other query tag is refused) and its key re-encodes to a
// token that decodes to the same key; an accepted events token names a version >= 1 that
// re-encodes to a token naming the same version, and is refused for any other case id. (ListCases
// then refuses a key outside the index prefix of the query; that check reads no token bytes.)
#include "casework/v1/case_service.pb.h"
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "services/shell/list_filter.h"
#include "services/shell/page_token.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace shell = ::casework::shell;
  casework::v1::ListCasesRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;

  // ListCaseEvents reads the same field of its own request.
  // The case it is bound to: the filter field stands in for one.
  const std::string& case_id = req.filter();
  if (std::optional<int64_t> version = shell::DecodeEventsPageToken(req.page_token(), case_id)) {
    FUZZ_CHECK(*version >= 1, "an events token names a version >= 1");
    FUZZ_CHECK(shell::DecodeEventsPageToken(shell::EncodeEventsPageToken(case_id, *version),
                                            case_id) == version,
               "an events token round-trips");
    FUZZ_CHECK(!shell::DecodeEventsPageToken(shell::EncodeEventsPageToken(case_id, *version),
                                             case_id + "x")
                    .has_value(),
               "an events token is good for its case only");
  }

  auto filter = shell::ParseCaseFilter(req.filter());
  if (!filter.ok()) return 0;
  const std::string& order_by = req.order_by();
  if (!order_by.empty() && order_by != "case_id" && order_by != "deadline" &&
      order_by != "jurisdiction") {
    return 0;
  }
  const std::string tag = shell::ListCasesQueryTag(req.filter(), order_by);
  if (!req.page_token().empty()) {
    std::optional<std::string> key = shell::DecodePageToken(req.page_token(), tag);
    if (!key.has_value()) return 0;
    FUZZ_CHECK(
        !shell::DecodePageToken(req.page_token(), tag + "\n").has_value() &&
            (tag.empty() ||
             !shell::DecodePageToken(req.page_token(), tag.substr(0, tag.size() - 1)).has_value()),
        "a token continues only the query it was made for");
    FUZZ_CHECK(shell::DecodePageToken(shell::EncodePageToken(*key, tag), tag) == key,
               "a token's key round-trips");
  }
  return 0;
}

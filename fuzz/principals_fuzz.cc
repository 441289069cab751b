// Fuzz target: the principals file (services/shell/principals.h), read at start and on
// every SIGHUP.
//
// Feeds: the input as the JSON text of a principals file, to Principals::Parse.
// Asserts: no crash and no sanitizer report; every principal of an accepted set can be
// found by its id, with its roles and jurisdiction; the set written back as a principals
// file (from its record) parses to a set of the same version, the digest of what the log
// records.
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "nlohmann/json.hpp"
#include "services/shell/principals.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using casework::shell::Principals;
  auto set = Principals::Parse(casework::fuzz::AsText(data, size));
  if (!set.ok()) return 0;
  const casework::v1::PrincipalsRecorded& record = (*set)->record();
  FUZZ_CHECK(static_cast<size_t>(record.principals_size()) == (*set)->size(),
             "the record lists every principal once");
  FUZZ_CHECK((*set)->version().size() == 16, "the version is 8 bytes of hex");

  nlohmann::json file = {{"principals", nlohmann::json::array()}};
  for (const casework::v1::PrincipalRecord& r : record.principals()) {
    const casework::workflow::Principal* p = (*set)->Find(r.id());
    FUZZ_CHECK(p != nullptr && p->jurisdiction == r.jurisdiction() && !p->roles.empty(),
               "each recorded principal can be found");
    nlohmann::json entry = {{"id", r.id()}, {"jurisdiction", r.jurisdiction()}};
    entry["roles"] = nlohmann::json::array();
    for (const std::string& role : r.roles()) entry["roles"].push_back(role);
    if (r.approval_level() == casework::v1::APPROVAL_LEVEL_COUNTY)
      entry["approval_level"] = "county";
    if (r.approval_level() == casework::v1::APPROVAL_LEVEL_CITY) entry["approval_level"] = "city";
    file["principals"].push_back(std::move(entry));
  }
  auto again = Principals::Parse(file.dump());
  FUZZ_CHECK(again.ok() && (*again)->version() == (*set)->version(),
             "the set written back parses to the same version");
  return 0;
}

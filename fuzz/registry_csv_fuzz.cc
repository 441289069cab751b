// Fuzz target: the registry CSV import (services/oversight/registry_csv.h), the file an
// administrator uploads with OversightService.ImportRegistry.
//
// Feeds: the input as the CSV text, to ParseRegistryCsv.
// Asserts: no crash and no sanitizer report; an accepted file has at most
// kRegistryRowsMax rows with distinct ids, grades 1-4 and 0-5 stars; the rows written
// back as the canonical file (header, then RegistryCsvLine of each row) parse to the
// same rows.
#include <set>

#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "services/oversight/registry_csv.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace oversight = ::casework::oversight;
  using casework::fuzz::DeterministicBytes;
  auto rows = oversight::ParseRegistryCsv(casework::fuzz::AsText(data, size));
  if (!rows.ok()) return 0;
  FUZZ_CHECK(rows->size() <= oversight::kRegistryRowsMax, "at most kRegistryRowsMax rows");
  std::set<std::string> ids;
  std::string canonical = oversight::kRegistryCsvHeader;
  for (const oversight::RegistryRow& row : *rows) {
    FUZZ_CHECK(ids.insert(row.organisation.organisation_id()).second, "ids are distinct");
    FUZZ_CHECK(row.grade >= 1 && row.grade <= 4 && row.stars >= 0 && row.stars <= 5,
               "grade and stars in range");
    canonical += "\n" + oversight::RegistryCsvLine(row);
  }
  auto again = oversight::ParseRegistryCsv(canonical);
  FUZZ_CHECK(again.ok() && again->size() == rows->size(), "the canonical file parses");
  for (size_t i = 0; i < rows->size(); ++i) {
    const oversight::RegistryRow& a = (*rows)[i];
    const oversight::RegistryRow& b = (*again)[i];
    FUZZ_CHECK(DeterministicBytes(a.organisation) == DeterministicBytes(b.organisation) &&
                   a.grade == b.grade && a.stars == b.stars,
               "a row written with RegistryCsvLine parses back to the same row");
  }
  return 0;
}

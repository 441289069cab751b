// Fuzz target: the ListCases filter, a subset of AIP-160 (services/shell/list_filter.h).
//
// Feeds: the input as the filter text of a ListCasesRequest.
// Asserts: no crash and no sanitizer report; a filter that parses is deterministic
// (parsing it again gives the same terms) and, applied to a few cases, keeps only cases
// that satisfy each of its terms.
#include "casework/v1/case.pb.h"
#include "fuzz/fuzz_protobuf.h"
#include "fuzz/fuzz_support.h"
#include "google/protobuf/util/time_util.h"
#include "services/shell/list_filter.h"

namespace {

namespace v1 = ::casework::v1;

std::vector<v1::Case> SampleCases() {
  std::vector<v1::Case> cases(4);
  cases[1].set_state(v1::CASE_STATE_ASSISTED);
  cases[1].set_case_type(v1::CASE_TYPE_POOR);
  cases[1].add_problem_categories(v1::PROBLEM_CATEGORY_DEVELOPMENT);
  cases[1].mutable_organisation()->set_jurisdiction("city/east/hill/dongshan");
  cases[1].mutable_deadline()->set_seconds(1798761600);  // 2027-01-01
  cases[2].set_state(v1::CASE_STATE_CLOSED);
  cases[2].set_case_type(v1::CASE_TYPE_WEAK);
  cases[2].add_problem_categories(static_cast<v1::ProblemCategory>(6));
  cases[2].mutable_organisation()->set_jurisdiction("city/eastern/t/o");
  cases[2].mutable_deadline()->set_seconds(-62135596800);  // 0001-01-01, the earliest
  cases[3].set_state(v1::CASE_STATE_REOPENED);
  cases[3].mutable_organisation()->set_jurisdiction("city");
  cases[3].mutable_deadline()->set_seconds(253402300799);  // 9999-12-31T23:59:59Z
  cases[3].mutable_deadline()->set_nanos(999999999);
  return cases;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  casework::fuzz::QuietProtobufLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace shell = ::casework::shell;
  const std::string_view text = casework::fuzz::AsText(data, size);
  auto filter = shell::ParseCaseFilter(text);
  if (!filter.ok()) return 0;
  auto again = shell::ParseCaseFilter(text);
  FUZZ_CHECK(again.ok() && again->state == filter->state &&
                 again->jurisdiction == filter->jurisdiction &&
                 again->case_type == filter->case_type &&
                 again->problem_category == filter->problem_category &&
                 again->deadline_before_micros == filter->deadline_before_micros &&
                 again->deadline_after_micros == filter->deadline_after_micros,
             "parsing is deterministic");
  static const std::vector<v1::Case> cases = SampleCases();
  for (const v1::Case& c : cases) {
    if (!filter->Matches(c)) continue;
    FUZZ_CHECK(!filter->state || c.state() == *filter->state, "state term");
    FUZZ_CHECK(!filter->case_type || c.case_type() == *filter->case_type, "case_type term");
    FUZZ_CHECK(!filter->jurisdiction ||
                   shell::PathWithin(c.organisation().jurisdiction(), *filter->jurisdiction),
               "jurisdiction term");
    const int64_t deadline =
        google::protobuf::util::TimeUtil::TimestampToMicroseconds(c.deadline());
    FUZZ_CHECK(!filter->deadline_before_micros || deadline < *filter->deadline_before_micros,
               "deadline < term");
    FUZZ_CHECK(!filter->deadline_after_micros || deadline > *filter->deadline_after_micros,
               "deadline > term");
  }
  return 0;
}

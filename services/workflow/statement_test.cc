// The canonical sign-off statement, byte for byte: the bytes an approver's tool signs
// must never change, so the expected text is written out in full.
#include "services/workflow/statement.h"

#include "gtest/gtest.h"

namespace casework::workflow {
namespace {

TEST(SignOffStatement, ExactBytes) {
  EXPECT_EQ(SignOffStatement("c1", 7, "insp-1"),
            "casework/v1 closure sign-off\n"
            "case: c1\n"
            "version: 7\n"
            "decision: close\n"
            "inspection: insp-1\n");
}

TEST(SignOffStatement, FromTheRequest) {
  casework::v1::SignOffClosureRequest request;
  request.set_name("cases/org-0412-2026");
  request.set_expected_version(12);
  request.set_inspection_id("east-2026-031");
  EXPECT_EQ(SignOffStatementFor(request),
            std::optional<std::string>("casework/v1 closure sign-off\n"
                                       "case: org-0412-2026\n"
                                       "version: 12\n"
                                       "decision: close\n"
                                       "inspection: east-2026-031\n"));
  request.set_name("org-0412-2026");
  EXPECT_EQ(SignOffStatementFor(request), std::nullopt);
  request.set_name("cases/c1");
  request.set_expected_version(-1);
  EXPECT_EQ(SignOffStatementFor(request), std::nullopt);
}

TEST(SignOffStatement, StartsWithTheContext) {
  EXPECT_EQ(SignOffStatement("c", 0, "i").rfind(kSignOffStatementContext, 0), 0u);
}

}  // namespace
}  // namespace casework::workflow

// The canonical sign-off statement, byte for byte: the bytes an approver's tool signs
// must never change, so the expected text is written out in full.
#include "services/workflow/statement.h"

#include "gtest/gtest.h"
#include "services/workflow/decider.h"

namespace casework::workflow {
namespace {

// A leaf hash: 0x00, 0x01, ..., 0x1f.
std::string Leaf() {
  std::string leaf;
  for (int i = 0; i < 32; ++i) leaf.push_back(static_cast<char>(i));
  return leaf;
}

TEST(SignOffStatement, ExactBytes) {
  EXPECT_EQ(SignOffStatement("c1", 7, "insp-1", Leaf()),
            "casework/v1 closure sign-off v2\n"
            "case: c1\n"
            "version: 7\n"
            "decision: close\n"
            "inspection: insp-1\n"
            "latest: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
}

TEST(SignOffStatement, TheFirstFormExactBytes) {
  EXPECT_EQ(SignOffStatementV1("c1", 7, "insp-1"),
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
  EXPECT_EQ(SignOffStatementFor(request, Leaf()),
            std::optional<std::string>(
                "casework/v1 closure sign-off v2\n"
                "case: org-0412-2026\n"
                "version: 12\n"
                "decision: close\n"
                "inspection: east-2026-031\n"
                "latest: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"));
  EXPECT_EQ(SignOffStatementV1For(request),
            std::optional<std::string>("casework/v1 closure sign-off\n"
                                       "case: org-0412-2026\n"
                                       "version: 12\n"
                                       "decision: close\n"
                                       "inspection: east-2026-031\n"));
  request.set_name("org-0412-2026");
  EXPECT_EQ(SignOffStatementFor(request, Leaf()), std::nullopt);
  EXPECT_EQ(SignOffStatementV1For(request), std::nullopt);
  request.set_name("cases/c1");
  request.set_expected_version(-1);
  EXPECT_EQ(SignOffStatementFor(request, Leaf()), std::nullopt);
  EXPECT_EQ(SignOffStatementV1For(request), std::nullopt);
}

TEST(SignOffStatement, StartsWithItsContext) {
  EXPECT_EQ(SignOffStatement("c", 0, "i", Leaf()).rfind(kSignOffStatementContext, 0), 0u);
  EXPECT_EQ(SignOffStatementV1("c", 0, "i").rfind(kSignOffStatementContextV1, 0), 0u);
  // Neither context line is a prefix of the other's statement.
  EXPECT_NE(SignOffStatement("c", 0, "i", Leaf()).rfind(kSignOffStatementContextV1, 0), 0u);
  EXPECT_NE(SignOffStatementV1("c", 0, "i").rfind(kSignOffStatementContext, 0), 0u);
}

TEST(SignOffStatement, WhichRulesNameTheLatestLeaf) {
  EXPECT_FALSE(SignOffNamesLatestLeaf(kRulesVersion2026_1));
  EXPECT_FALSE(SignOffNamesLatestLeaf(kRulesVersion2026_2));
  EXPECT_TRUE(SignOffNamesLatestLeaf(kRulesVersion));
  EXPECT_TRUE(SignOffNamesLatestLeaf("rules/2026.3"));
}

}  // namespace
}  // namespace casework::workflow

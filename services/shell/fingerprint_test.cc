// Request fingerprints are stored with request ids and compared on retries, also after a
// restart: the bytes they hash must stay what they are.
#include "services/shell/fingerprint.h"

#include <string>

#include "casework/v1/command.pb.h"
#include "gtest/gtest.h"
#include "store/hasher.h"

namespace casework::shell {
namespace {

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : bytes) {
    out.push_back(kDigits[ch >> 4]);
    out.push_back(kDigits[ch & 15]);
  }
  return out;
}

std::string Sha256Of(const std::string& bytes) {
  return std::string(store::rfc9162::AsBytes(store::Sha256(bytes)));
}

casework::v1::Command Create(const std::string& case_id, const std::string& findings) {
  casework::v1::Command command;
  auto* create = command.mutable_create_case();
  create->set_case_id(case_id);
  create->set_request_id("req-1");
  create->mutable_organisation()->set_jurisdiction("jiangcheng/dongshan/t01");
  create->mutable_organisation()->set_display_name("东山村党支部");
  create->set_findings(findings);
  create->mutable_deadline()->set_seconds(1'900'000'000);
  return command;
}

TEST(RequestFingerprint, HashesTheWireBytesOfTheRequest) {
  // Command{create_case{case_id: "c-1"}}: 0a 05 (field 1, 5 bytes) 0a 03 "c-1".
  casework::v1::Command command;
  command.mutable_create_case()->set_case_id("c-1");
  EXPECT_EQ(Hex(RequestFingerprint(command)),
            "0b0cc60c7d2bd7d3399587d06858b021732e3146f49c520253cda87bc32aeef2");
}

TEST(RequestFingerprint, EqualsTheHashOfTheSerializedRequestAtAnySize) {
  // Small requests go through the thread's reused buffer, large ones (a 100 KiB finding)
  // through their own; both, again and again, hash what SerializeAsString writes.
  for (const size_t findings : {size_t{10}, size_t{100} << 10, size_t{20}, size_t{70} << 10}) {
    const casework::v1::Command command = Create("c-2", std::string(findings, 'x'));
    EXPECT_EQ(RequestFingerprint(command), Sha256Of(command.SerializeAsString())) << findings;
    EXPECT_EQ(RequestFingerprint(command).size(), 32u);
  }
}

TEST(RequestFingerprint, DiffersWhenTheRequestDiffers) {
  EXPECT_NE(RequestFingerprint(Create("c-3", "no income")),
            RequestFingerprint(Create("c-3", "no incomf")));
  EXPECT_EQ(RequestFingerprint(Create("c-3", "no income")),
            RequestFingerprint(Create("c-3", "no income")));
}

}  // namespace
}  // namespace casework::shell

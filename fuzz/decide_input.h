// The input format of decide_fuzz, shared with make_corpus.cc, which writes its seeds.
//
//   input := step*
//   step  := selector:byte length:varint32 command:byte[length]   (a casework.v1.Command)
//   selector: low 4 bits pick the actor from Cast() (modulo its size); high 4 bits advance
//   the clock by that many 30-day months before the step (every step also adds an hour).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "casework/v1/command.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "services/workflow/policy.h"

namespace casework::fuzz {

// 2026-01-01T00:00:00Z.
inline constexpr int64_t kDecideStartMicros = int64_t{1767225600} * 1'000'000;
inline constexpr int64_t kHourMicros = int64_t{3600} * 1'000'000;
inline constexpr int64_t kMonthMicros = 30 * 24 * kHourMicros;
inline constexpr size_t kDecideStepsMax = 64;

// Who may act. The organisation of the corpus's cases is in city/east/hill/<org>.
inline const std::vector<workflow::Principal>& Cast() {
  using workflow::Role;
  static const auto* cast = new std::vector<workflow::Principal>{
      {.id = "li.na", .roles = {Role::kLister}, .jurisdiction = "city/east"},
      {.id = "wang.fang", .roles = {Role::kReviewer}, .jurisdiction = "city/east"},
      {.id = "zhang.wei", .roles = {Role::kAssister}, .jurisdiction = "city/east/hill/dongshan"},
      {.id = "chen.jie", .roles = {Role::kAssister}, .jurisdiction = "city/east/hill"},
      {.id = "zhao.lei", .roles = {Role::kInspector}, .jurisdiction = "city/east"},
      {.id = "sun.li",
       .roles = {Role::kApprover},
       .jurisdiction = "city/east",
       .approval_level = casework::v1::APPROVAL_LEVEL_COUNTY},
      {.id = "zhou.min",
       .roles = {Role::kApprover},
       .jurisdiction = "city",
       .approval_level = casework::v1::APPROVAL_LEVEL_CITY},
      {.id = "qian.hui", .roles = {Role::kAuditor}, .jurisdiction = "city"},
      {.id = "root", .roles = {Role::kAdmin}, .jurisdiction = "city"},
      {.id = "wu.gang",
       .roles = {Role::kLister, Role::kReviewer, Role::kAssister, Role::kInspector, Role::kApprover,
                 Role::kAuditor, Role::kAdmin},
       .jurisdiction = "city/west",
       .approval_level = casework::v1::APPROVAL_LEVEL_COUNTY},
      {.id = "ma.lin",
       .roles = {Role::kApprover},
       .jurisdiction = "city/east",
       .approval_level = casework::v1::APPROVAL_LEVEL_COUNTY},
      {.id = "chief",
       .roles = {Role::kLister, Role::kReviewer, Role::kAssister, Role::kInspector, Role::kApprover,
                 Role::kAuditor, Role::kAdmin},
       .jurisdiction = "city",
       .approval_level = casework::v1::APPROVAL_LEVEL_CITY},
      {.id = "zhang.wei.2", .roles = {Role::kAssister}, .jurisdiction = "city/east/hill"},
  };
  return *cast;
}

// The cast index of the principal with `id`, or -1.
inline int CastIndex(const std::string& id) {
  for (size_t i = 0; i < Cast().size(); ++i) {
    if (Cast()[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

inline void AppendStep(std::string* out, int actor, int months,
                       const casework::v1::Command& command) {
  out->push_back(static_cast<char>((months << 4) | actor));
  const std::string bytes = command.SerializeAsString();
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteVarint32(static_cast<uint32_t>(bytes.size()));
  coded.WriteString(bytes);
}

struct Step {
  const workflow::Principal* actor = nullptr;
  int months = 0;
  bool parsed = false;  // false: the bytes are not a Command (refused before the core)
  casework::v1::Command command;
};

// Reads one step; false at the end of the input or when it is cut short.
inline bool ReadStep(google::protobuf::io::CodedInputStream* in, Step* step) {
  uint8_t selector = 0;
  uint32_t length = 0;
  std::string bytes;
  if (!in->ReadRaw(&selector, 1) || !in->ReadVarint32(&length) ||
      !in->ReadString(&bytes, static_cast<int>(length))) {
    return false;
  }
  step->actor = &Cast()[(selector & 0x0F) % Cast().size()];
  step->months = selector >> 4;
  step->command.Clear();
  step->parsed = step->command.ParseFromString(bytes);
  return true;
}

}  // namespace casework::fuzz

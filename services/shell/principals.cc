#include "services/shell/principals.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace casework::shell {
namespace {

constexpr size_t kPrincipalsMax = 100000;

}  // namespace

absl::StatusOr<std::shared_ptr<const Principals>> Principals::Parse(std::string_view text) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("principals file is not a JSON object");
  }
  auto list = doc.find("principals");
  if (list == doc.end() || !list->is_array()) {
    return absl::InvalidArgumentError("principals file needs an array \"principals\"");
  }
  if (list->size() > kPrincipalsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("principals file lists ", list->size(), " entries; at most ", kPrincipalsMax));
  }
  auto out = std::make_shared<Principals>();
  size_t index = 0;
  for (const auto& entry : *list) {
    const std::string where = absl::StrCat("principals[", index++, "]");
    if (!entry.is_object()) return absl::InvalidArgumentError(where + " is not an object");
    workflow::Principal p;
    auto id = entry.find("id");
    if (id == entry.end() || !id->is_string() || id->get<std::string>().empty()) {
      return absl::InvalidArgumentError(where + ".id must be a non-empty string");
    }
    p.id = id->get<std::string>();
    auto jur = entry.find("jurisdiction");
    if (jur == entry.end() || !jur->is_string() || jur->get<std::string>().empty()) {
      return absl::InvalidArgumentError(where + ".jurisdiction must be a non-empty path");
    }
    p.jurisdiction = jur->get<std::string>();
    auto roles = entry.find("roles");
    if (roles == entry.end() || !roles->is_array() || roles->empty()) {
      return absl::InvalidArgumentError(where + ".roles must be a non-empty array");
    }
    for (const auto& r : *roles) {
      if (!r.is_string()) return absl::InvalidArgumentError(where + ".roles holds a non-string");
      auto role = workflow::RoleFromName(r.get<std::string>());
      if (!role) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".roles: unknown role \"", r.get<std::string>(),
                         "\"; use lister, reviewer, assister, inspector, approver, auditor "
                         "or admin"));
      }
      p.roles.push_back(*role);
    }
    if (auto level = entry.find("approval_level"); level != entry.end()) {
      const std::string v = level->is_string() ? level->get<std::string>() : "";
      if (v == "county") {
        p.approval_level = casework::v1::APPROVAL_LEVEL_COUNTY;
      } else if (v == "city") {
        p.approval_level = casework::v1::APPROVAL_LEVEL_CITY;
      } else {
        return absl::InvalidArgumentError(where + ".approval_level must be \"county\" or \"city\"");
      }
    }
    if (!out->by_id_.emplace(p.id, p).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".id \"", p.id, "\" appears twice; each identity once"));
    }
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const Principals>> Principals::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read principals file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto parsed = Parse(buffer.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

const workflow::Principal* Principals::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : &it->second;
}

}  // namespace casework::shell

// Plain-text tables for people: column widths count East Asian wide characters as two
// terminal columns, so Chinese labels line up beside English ones.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace casework::client {

// Terminal columns taken by UTF-8 text (wide CJK characters count 2).
[[nodiscard]] size_t DisplayWidth(std::string_view utf8);

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// Key-value listing of one record: "label  value" lines with aligned values.
void PrintRecord(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& rows);

}  // namespace casework::client

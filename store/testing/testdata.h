// Where the copied test vectors live: $CW_STORE_TESTDATA, else the source tree.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace casework::store::testing {

inline std::string TestDataDir() {
  const char* env = std::getenv("CW_STORE_TESTDATA");
  if (env != nullptr && *env != '\0') return env;
#ifdef CW_STORE_TESTDATA_DIR
  return CW_STORE_TESTDATA_DIR;
#else
  return "store/testdata";
#endif
}

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace casework::store::testing

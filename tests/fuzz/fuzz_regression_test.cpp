// Every input the fuzzing campaign found (fuzz/regressions/TARGET/NAME, see fuzz/README.md)
// replayed through the same target as the harness, one test per file: it must now be
// accepted or refused with mcmoe::Error, never crash, hang, report UB or throw anything else.
// Under CI's sanitizer build (MCMOE_SANITIZE) these are the same checks libFuzzer made.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "../fuzz/targets.h"

namespace {

namespace fs = std::filesystem;

struct Finding {
  std::string target;
  fs::path path;
};

std::vector<Finding> findings() {
  std::vector<Finding> out;
  const fs::path root = fs::path(MCMOE_SOURCE_DIR) / "fuzz" / "regressions";
  if (!fs::is_directory(root)) return out;
  for (const auto& dir : fs::directory_iterator(root)) {
    if (!dir.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(dir.path())) {
      if (f.is_regular_file()) out.push_back({dir.path().filename().string(), f.path()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Finding& a, const Finding& b) { return a.path < b.path; });
  return out;
}

class FuzzRegression : public testing::TestWithParam<Finding> {};

TEST_P(FuzzRegression, AcceptedOrRefusedWithError) {
  const Finding& f = GetParam();
  const auto& names = mcmoe::fuzz::target_names();
  ASSERT_NE(std::find(names.begin(), names.end(), f.target), names.end())
      << f.path << ": its folder names no fuzz target";
  std::ifstream in(f.path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  try {
    mcmoe::fuzz::run_target(f.target, bytes);
  } catch (const std::exception& e) {
    FAIL() << f.path << ": " << e.what();
  }
}

TEST(FuzzRegression, TargetsTxtListsTheTargetsTable) {
  // fuzz/targets.txt drives fuzz/CMakeLists.txt and scripts/fuzz.sh; targets.cpp dispatches.
  std::ifstream in(fs::path(MCMOE_SOURCE_DIR) / "fuzz" / "targets.txt");
  std::vector<std::string> listed;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) listed.push_back(line);
  }
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, mcmoe::fuzz::target_names());
}

TEST(FuzzRegression, EveryTargetHasItsFolderName) {
  // A reproducer saved under a misspelt folder would silently never run.
  const fs::path root = fs::path(MCMOE_SOURCE_DIR) / "fuzz" / "regressions";
  if (!fs::is_directory(root)) GTEST_SKIP() << "no fuzz/regressions";
  const auto& names = mcmoe::fuzz::target_names();
  for (const auto& dir : fs::directory_iterator(root)) {
    EXPECT_NE(std::find(names.begin(), names.end(), dir.path().filename().string()), names.end())
        << dir.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Findings, FuzzRegression, testing::ValuesIn(findings()),
                         [](const testing::TestParamInfo<Finding>& info) {
                           std::string name =
                               info.param.target + "_" + info.param.path.filename().string();
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FuzzRegression);

}  // namespace

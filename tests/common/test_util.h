#pragma once
// Helpers shared by the test files: temp directories, running the CLI, file bytes.
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace mcmoe::test {

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built mcmoe binary with the given argument string (shell-quoted by the caller),
// stdin_text on its standard input.
CliResult run_cli(const std::string& args, const std::string& stdin_text = {});
// Expects exit code 1 and one final "error: ..." line on stderr (status lines may come
// first) containing every fragment.
void expect_clean_error(const CliResult& r, const std::vector<std::string>& fragments);

// Word salad from a fixed vocabulary (deterministic), enough tokens for calibration; returns path.
std::string write_word_salad(const std::string& path, int words);

std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
std::string shared_dir();  // MCMOE_SOURCE_DIR/../shared, or "" when absent
std::string quote(const std::string& s);

// max |got - want| / max |want|: the "relative error" of the logit checks.
double relative_max_error(std::span<const float> got, std::span<const float> want);

}  // namespace mcmoe::test

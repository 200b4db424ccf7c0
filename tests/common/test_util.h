#pragma once
// Helpers shared by the test files: temp directories, running the CLI, file bytes.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace mcmoe::test {

// The message of the mcmoe::Error fn throws ("" if none).
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Whether this build runs under AddressSanitizer, whose shadow memory and quarantine make
// resident-memory and address-space limits meaningless (tests that measure them skip).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

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
// Starts the built mcmoe binary with these arguments (no shell) and returns its pid, without
// waiting: for tests that signal it or watch its files while it runs. Its stdout and stderr
// go to the given files (/dev/null by default); address_space > 0 runs it under an RLIMIT_AS
// of that many bytes, so an allocation the size of a bogus header fails instead of paging.
struct SpawnOptions {
  std::string out_path = "/dev/null", err_path = "/dev/null";
  uint64_t address_space = 0;
};
pid_t spawn_cli(const std::vector<std::string>& args, const SpawnOptions& o = {});
// Waits for a spawned process: its exit code, or 128 + the signal that ended it (as run_cli).
int wait_cli(pid_t pid);

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

// Bytes of a GGUF v3 header, little-endian as the format is.
class GgufBytes {
 public:
  template <typename T>
  GgufBytes& put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace mcmoe::test

// Requests the machine cannot meet are refused before the big allocation, with one error
// line giving the numbers: a GGUF declaring a 1 TiB tensor in a file of a few hundred bytes
// (inspect and run, under an address-space limit so an allocation of that size would fail
// loudly rather than be refused politely), an --expert-cache above the available memory (as
// bytes, and as a percentage with MCMOE_TEST_MEM_AVAILABLE, core/memory_info.h), a model
// read into memory (--no-mmap) that does not fit while mapping it still works, and sizes
// that are no byte count.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/test_util.h"
#include "offload/offload_test_util.h"

namespace mcmoe {
namespace {

using test::expect_clean_error;
using test::quote;
using test::run_cli;

// A llama GGUF whose one tensor, token_embd.weight F32 [2^18, 2^20], declares 2^40 bytes
// (1 TiB) at offset 0 of a data section holding 64.
std::string write_terabyte_tensor_gguf(const std::string& path) {
  test::GgufBytes g;
  g.put<uint32_t>(0x46554747).put<uint32_t>(3).put<uint64_t>(1).put<uint64_t>(1);
  g.str("general.architecture").put<uint32_t>(8).str("llama");  // 8: string
  g.str("token_embd.weight").put<uint32_t>(2);
  g.put<uint64_t>(uint64_t{1} << 20).put<uint64_t>(uint64_t{1} << 18);  // ne0 (row), ne1
  g.put<uint32_t>(0).put<uint64_t>(0);                                  // F32 at offset 0
  std::vector<uint8_t>& b = g.bytes();
  b.resize((b.size() + 31) / 32 * 32 + 64, 0);
  test::write_bytes(path, b);
  return path;
}

// The CLI under RLIMIT_AS of 4 GiB (not under ASan, whose shadow memory reserves terabytes of
// address space at start).
test::CliResult run_limited(const std::vector<std::string>& args, const test::TempDir& dir) {
  test::SpawnOptions o{.out_path = dir.path("stdout"),
                       .err_path = dir.path("stderr"),
                       .address_space = test::kAddressSanitizer ? 0 : uint64_t{4} << 30};
  test::CliResult r;
  r.exit_code = test::wait_cli(test::spawn_cli(args, o));
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(o.out_path);
  r.err = slurp(o.err_path);
  return r;
}

TEST(ResourceChecks, TerabyteTensorInASmallFileIsRefusedNamingFileAndTensor) {
  test::TempDir dir;
  const std::string path = write_terabyte_tensor_gguf(dir.path("huge.gguf"));
  const std::vector<std::string> want = {path, "tensor 'token_embd.weight'", "1099511627776 bytes",
                                         "exceed the file size"};
  expect_clean_error(run_limited({"inspect", path}, dir), want);
  for (const char* load : {"--mmap", "--no-mmap"}) {
    expect_clean_error(run_limited({"run", "-m", path, load, "-p", "hi", "-n", "1"}, dir), want);
  }
}

TEST(ResourceChecks, ExpertCacheAboveAvailableMemoryIsRefused) {
  const std::string run =
      "run -m " + quote(test::small_offload_model()) + " -p 'once upon' -n 2 --temp 0 --ctx 32";
  // About a pebibyte: above any machine's memory, so refused on the real readings.
  expect_clean_error(
      run_cli(run + " --expert-cache 1000000GiB"),
      {test::small_offload_model(), "the expert cache (--expert-cache) needs 1024000000.0 MiB",
       "is available: ", "give a smaller --expert-cache"});
  // A percentage becomes bytes once the experts' size is known; the check applies to those.
  ::setenv("MCMOE_TEST_MEM_AVAILABLE", "1024", 1);
  const test::CliResult pct = run_cli(run + " --expert-cache 50%");
  ::unsetenv("MCMOE_TEST_MEM_AVAILABLE");
  expect_clean_error(pct, {"--expert-cache 50% of", "but 0.0 MiB (1024 bytes) is available",
                           "MCMOE_TEST_MEM_AVAILABLE=1024 (a test override)"});
  EXPECT_EQ(run_cli(run + " --expert-cache 50%").exit_code, 0);
}

TEST(ResourceChecks, ReadingIntoMemoryIsRefusedWhereMappingWorks) {
  const std::string run =
      "run -m " + quote(test::small_offload_model()) + " -p 'once upon' -n 2 --temp 0 --ctx 32";
  ::setenv("MCMOE_TEST_MEM_AVAILABLE", "1048576", 1);
  const test::CliResult read = run_cli(run + " --no-mmap");
  const test::CliResult map = run_cli(run + " --mmap");
  ::unsetenv("MCMOE_TEST_MEM_AVAILABLE");
  expect_clean_error(read, {test::small_offload_model() + ": reading the file into memory needs",
                            "but 1.0 MiB (1048576 bytes) is available", "map it instead (--mmap)"});
  EXPECT_EQ(map.exit_code, 0) << map.err;
}

TEST(ResourceChecks, SizesBeyondAByteCountAreRefused) {
  const std::string run = "run -m " + quote(test::small_offload_model()) + " -p 'once upon' -n 2";
  for (const char* size : {"1e30GiB", "inf", "nan"}) {
    expect_clean_error(run_cli(run + " --expert-cache " + size),
                       {"--expert-cache", "not a byte count"});
  }
}

}  // namespace
}  // namespace mcmoe

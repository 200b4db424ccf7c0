// Loads that copy into memory are refused before the copy when it would not fit, with the
// numbers; maps never are. choose_load_mode on injected figures; then whole loads with the
// test override MCMOE_TEST_MEM_AVAILABLE (core/memory_info.h) set to exactly the need and one
// byte less: a GGUF read into memory (--no-mmap) and a gpt-oss checkpoint whose MXFP4 experts
// are repacked (copied) at load.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "common/test_util.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/loaders.h"
#include "model/model.h"

namespace mcmoe::model {
namespace {

namespace fs = std::filesystem;
constexpr uint64_t kMiB = uint64_t{1} << 20;

AvailableMemory mem_available(uint64_t bytes) {
  AvailableMemory m;
  m.source = AvailableMemory::Source::kMemAvailable;
  m.bytes = m.mem_available = bytes;
  return m;
}

// Sets MCMOE_TEST_MEM_AVAILABLE for one scope.
class MemoryOverride {
 public:
  explicit MemoryOverride(uint64_t bytes) {
    ::setenv("MCMOE_TEST_MEM_AVAILABLE", std::to_string(bytes).c_str(), 1);
  }
  ~MemoryOverride() { ::unsetenv("MCMOE_TEST_MEM_AVAILABLE"); }
};

// The byte count of "needs X MiB (N bytes)" in a refusal.
uint64_t needed_bytes(const std::string& message) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(message, m, std::regex(R"(needs [0-9.]+ MiB \(([0-9]+) bytes\))")))
      << message;
  return m.empty() ? 0 : std::stoull(m[1]);
}

using Memory = LoadOptions::Memory;

TEST(LoadMemory, MapIsNeverRefused) {
  EXPECT_EQ(choose_load_mode("m.gguf", 100 * kMiB, {.memory = Memory::kMap}, mem_available(1)),
            LoadMode::kMap);
}

TEST(LoadMemory, ReadIsRefusedWhenTheCopyDoesNotFit) {
  // 100 MiB is read as 50 huge pages of 2 MiB: exactly 100 MiB fits, one byte less does not.
  EXPECT_EQ(
      choose_load_mode("m.gguf", 100 * kMiB, {.memory = Memory::kRead}, mem_available(100 * kMiB)),
      LoadMode::kReadHugePages);
  try {
    choose_load_mode("m.gguf", 100 * kMiB - 5, {.memory = Memory::kRead},
                     mem_available(100 * kMiB - 1));
    FAIL() << "not refused";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("m.gguf: reading the file into memory needs 100.0 MiB (104857600 bytes)"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("MemAvailable 100.0 MiB in /proc/meminfo; map it instead (--mmap)"),
              std::string::npos)
        << msg;
  }
  // An unknown amount refuses nothing.
  EXPECT_EQ(choose_load_mode("m.gguf", 100 * kMiB, {.memory = Memory::kRead}, AvailableMemory{}),
            LoadMode::kReadHugePages);
}

TEST(LoadMemory, AutoReadsOnlyWhatTakesAtMostHalf) {
  const LoadOptions automatic{.memory = Memory::kAuto};
  EXPECT_EQ(choose_load_mode("m.gguf", 100 * kMiB, automatic, mem_available(200 * kMiB)),
            LoadMode::kReadHugePages);
  EXPECT_EQ(choose_load_mode("m.gguf", 100 * kMiB, automatic, mem_available(199 * kMiB)),
            LoadMode::kMap);
  EXPECT_EQ(choose_load_mode("m.gguf", 10 * kMiB, automatic, mem_available(1 << 30)),
            LoadMode::kMap);  // small
  EXPECT_EQ(choose_load_mode("m.gguf", 100 * kMiB, automatic, AvailableMemory{}), LoadMode::kMap);
}

TEST(LoadMemory, GgufReadIntoMemoryNeedsItsSizeInHugePages) {
  const std::string path = std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << path << " is absent";
  const uint64_t need = read_memory_bytes(fs::file_size(path));
  {
    MemoryOverride o(need - 1);
    try {
      Model::load(path, {.memory = Memory::kRead});
      FAIL() << "not refused";
    } catch (const Error& e) {
      EXPECT_EQ(needed_bytes(e.what()), need);
      EXPECT_NE(std::string(e.what()).find(path + ": reading the file into memory"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("MCMOE_TEST_MEM_AVAILABLE"), std::string::npos)
          << e.what();
    }
    EXPECT_NO_THROW(Model::load(path, {.memory = Memory::kMap}));   // a map needs no room
    EXPECT_NO_THROW(Model::load(path, {.memory = Memory::kAuto}));  // chooses the map
  }
  MemoryOverride o(need);
  EXPECT_NO_THROW(Model::load(path, {.memory = Memory::kRead}));
}

TEST(LoadMemory, CheckpointCopiesAreCountedBeforeTheyAreMade) {
  // gpt-oss in MXFP4: every expert is repacked into ggml blocks, a copy.
  const fs::path fixtures = fs::path(MCMOE_SOURCE_DIR) / "tests/data/families";
  test::TempDir dir;
  for (const char* f : {"config.json", "model.safetensors"}) {
    fs::copy_file(fixtures / "gpt_oss_mxfp4" / f, dir.dir() / f);
  }
  fs::copy_file(fixtures / "tokenizer.model", dir.dir() / "tokenizer.model");
  const std::string path = dir.dir().string();
  uint64_t need = 0;
  {
    MemoryOverride o(1);
    try {
      Model::load(path);
      FAIL() << "not refused";
    } catch (const Error& e) {
      need = needed_bytes(e.what());
      EXPECT_NE(std::string(e.what()).find(path + ": loading the checkpoint"), std::string::npos)
          << e.what();
    }
  }
  {
    MemoryOverride o(need - 1);
    EXPECT_THROW(Model::load(path), Error);
  }
  MemoryOverride o(need);
  const auto m = Model::load(path);
  // The count covers at least the repacked experts themselves.
  uint64_t experts = 0;
  for (const auto& layer : m->stored_experts()) {
    for (const auto& e : layer) experts += e.gate.nbytes + e.up.nbytes + e.down.nbytes;
  }
  EXPECT_GE(need, experts);
  EXPECT_GT(experts, 0u);
}

}  // namespace
}  // namespace mcmoe::model

// The CLI on every family through synthetic models: synth, run, inspect, tokenize, dump,
// bench (with the KV cache bytes per token it prints) and convert to llama.cpp's layout.
#include <gtest/gtest.h>

#include <regex>

#include "common/test_util.h"
#include "model/model.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

std::string synth(const test::TempDir& dir, const std::string& arch,
                  const std::string& extra = "") {
  const std::string path = dir.path(arch + ".gguf");
  const auto r = run_cli(
      "synth --arch " + arch +
      " --layers 3 --dim 128 --ff 128 --experts 8 --top-k 2 --vocab 300 --heads 4 --kv-heads 2 "
      "--shared-ff 128"
      " --dense-layers 1 --kv-lora 64 --rope-dim 32 --nope-dim 32 --v-dim 32 --type q8_0 -o " +
      quote(path) + " " + extra);
  EXPECT_EQ(r.exit_code, 0) << arch << ": " << r.err;
  return path;
}

class FamilyCli : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyCli, SynthRunInspectTokenizeDumpConvert) {
  test::TempDir dir;
  const std::string arch = GetParam();
  const std::string path = synth(dir, arch);
  auto run =
      run_cli("run -m " + quote(path) + " -p 'hello world' -n 6 --temp 0 --json --threads 2");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("\"new_ids\""), std::string::npos);
  const auto inspect = run_cli("inspect " + quote(path));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_NE(inspect.out.find("architecture: " + (arch == "mixtral" ? std::string("llama") : arch)),
            std::string::npos);
  EXPECT_NE(inspect.out.find("routed expert"), std::string::npos);
  EXPECT_EQ(run_cli("tokenize -m " + quote(path) + " -p 'hello world'").exit_code, 0);
  const auto dump =
      run_cli("dump -m " + quote(path) + " --ids 1,5,9 --name router_logits.2 --greedy 3");
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_NE(dump.out.find("\"greedy\""), std::string::npos);
  // llama.cpp's stacked layout again, same model: the greedy continuation is unchanged.
  const auto conv = run_cli("convert " + quote(path) + " -o " + quote(dir.path("export.gguf")));
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto again = run_cli("run -m " + quote(dir.path("export.gguf")) +
                       " -p 'hello world' -n 6 --temp 0 --json --threads 2");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, run.out);
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyCli,
                         ::testing::Values("mixtral", "qwen2moe", "qwen3moe", "olmoe", "deepseek2",
                                           "glm4moe", "gpt-oss", "granitemoe"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

// The check: bench prints (kv_lora_rank + qk_rope_head_dim) × layers × element size.
TEST(FamilyCli, BenchPrintsTheLatentCacheBytesPerToken) {
  test::TempDir dir;
  const std::string path = synth(dir, "deepseek2");
  const int latent = 64 + 32, layers = 3;
  for (const auto& [type, bytes] :
       std::vector<std::pair<std::string, int>>{{"f32", latent * 4 * layers},
                                                {"f16", latent * 2 * layers},
                                                {"q8_0", latent / 32 * 34 * layers}}) {
    const auto r = run_cli("bench -m " + quote(path) +
                           " --threads 2 --prompt-tokens 16 --gen-tokens 4 --reps 1 --no-bandwidth"
                           " --depth 40 --cache-type " +
                           type);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("KV cache: (\\d+) bytes per token")))
        << r.out;
    EXPECT_EQ(std::stoi(m[1]), bytes) << type;
    EXPECT_NE(r.out.find("at depth 40"), std::string::npos) << r.out;
  }
  // A GQA model of the same size keeps k and v per kv head: 2 × 2 heads × 32 values, in f16
  // (the default cache type) 2 bytes each.
  const std::string gqa = synth(dir, "qwen3moe");
  const auto r = run_cli("bench -m " + quote(gqa) +
                         " --threads 2 --prompt-tokens 8 --gen-tokens 2 --reps 1 --no-bandwidth");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("KV cache: " + std::to_string(2 * 2 * 32 * 2 * layers) + " bytes per token"),
            std::string::npos)
      << r.out;
}

TEST(FamilyCli, PresetsAndTheirErrors) {
  test::TempDir dir;
  // A released model's shapes at reduced depth and width-preserving flags.
  const auto r = run_cli(
      "synth --preset gpt-oss-20b --layers 1 --experts 4 --top-k 2 --vocab 300 --dim 256 --ff 256 "
      "--heads 8"
      " --kv-heads 2 --head-dim 32 --type q8_0 -o " +
      quote(dir.path("g.gguf")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = model::Model::load(dir.path("g.gguf"));
  EXPECT_EQ(m->config().arch, model::Arch::GptOss);
  EXPECT_EQ(m->config().n_layer, 1);
  EXPECT_TRUE(m->config().attn_sinks);
  EXPECT_EQ(m->config().sliding_window, 128);
  test::expect_clean_error(run_cli("synth --preset deepseek-v9 -o " + quote(dir.path("x.gguf"))),
                           {"--preset 'deepseek-v9'", "deepseek-v2-lite"});
  test::expect_clean_error(run_cli("synth --arch mamba -o " + quote(dir.path("x.gguf"))),
                           {"--arch 'mamba'"});
  test::expect_clean_error(
      run_cli("run -m " + quote(synth(dir, "deepseek2")) + " -p hi --cache-type q4_0"),
      {"--cache-type q4_0", "f32, f16 or q8_0"});
}

}  // namespace
}  // namespace mcmoe

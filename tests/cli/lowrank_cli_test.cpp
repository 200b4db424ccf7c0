// mcmoe lowrank end to end on a random Hugging Face fixture: full rank reproduces the
// model's logits, a real rank gives a smaller model that run / ppl / bench / inspect accept,
// convert and quantize refuse it, and bad ranks and row counts give clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "model/model.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

class LowRankCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::HfFixture f;
    f.dim = 128;  // gate/up [256, 128], down [128, 256]: rank at most 128
    f.ff = 256;
    f.experts = 4;
    f.layers = 2;
    test::write_hf_fixture(dir_->path("mixtral"), f);
    std::ofstream text(dir_->path("text.txt"));
    for (int i = 0; i < 400; ++i) text << "The " << i << "th wolf came into the forest where the old woman lived.\n";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string model() { return dir_->path("mixtral"); }
  static std::string lowrank(const std::string& flags, const std::string& out) {
    return "lowrank -m " + quote(model()) + " -f " + quote(dir_->path("text.txt")) +
           " --samples 4 --seq 64 " + flags + " -o " + quote(out);
  }
  static test::TempDir* dir_;
};
test::TempDir* LowRankCli::dir_ = nullptr;

std::vector<float> logits_of(const std::string& path, const std::string& prompt) {
  auto m = model::Model::load(path);
  std::vector<int32_t> ids{m->tokenizer().bos_id()};
  for (int32_t t : m->tokenizer().encode(prompt)) ids.push_back(t);
  model::Session s(*m, {.n_threads = 2});
  const std::span<const float> l = s.eval(ids, true);
  return {l.begin(), l.end()};
}

void expect_error(const test::CliResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("error: " + fragment), std::string::npos) << "missing '" << fragment << "' in: " << r.err;
}

TEST_F(LowRankCli, FullRankReproducesTheLogits) {
  const std::string out = dir_->path("full.gguf");
  const auto r = run_cli(lowrank("--rank 128 --sparse-rows 4 --type f32", out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("not smaller than the dense ones"), std::string::npos) << r.err;
  const std::string prompt = "the wolf came into the forest and the old woman said";
  const std::vector<float> want = logits_of(model(), prompt), got = logits_of(out, prompt);
  ASSERT_EQ(got.size(), want.size());
  // f32 factors of F16 weights: the SVD round trip is exact to float rounding (~1e-6 per
  // weight); through two layers and the head the logits stay within 1e-4 of their range.
  EXPECT_LT(test::relative_max_error(got, want), 1e-4);
}

TEST_F(LowRankCli, ReducedRankModelRunsEverywhere) {
  const std::string out = dir_->path("r32.gguf");
  const auto r = run_cli(lowrank("--rank 32 --sparse-rows 8 --type q8_0", out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("expert parameters"), std::string::npos) << r.out;
  // Experts at rank 32 of 128 plus 8 rows: 40% of the dense parameters, at 8 bits; the other
  // tensors keep their F16, so the file is well below the same model converted to F16.
  const std::string dense = dir_->path("dense.gguf");
  ASSERT_EQ(run_cli("convert " + quote(model()) + " --type f16 -o " + quote(dense)).exit_code, 0);
  EXPECT_LT(std::filesystem::file_size(out), std::filesystem::file_size(dense) * 0.7);

  const auto ins = run_cli("inspect " + quote(out));
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_NE(ins.out.find("gate rank 32 + 8 sparse rows (q8_0)"), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("blk.1.ffn_down.3.sparse_index"), std::string::npos) << ins.out;

  const auto ppl = run_cli("ppl -m " + quote(out) + " -f " + quote(dir_->path("text.txt")) +
                           " --ctx 64 --max-tokens 300 --kl-base " + quote(model()));
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  EXPECT_NE(ppl.out.find("top-1 agreement"), std::string::npos) << ppl.out;
  EXPECT_EQ(run_cli("run -m " + quote(out) + " -p " + quote("the wolf") + " -n 4 --temp 0").exit_code, 0);
  const auto b = run_cli("bench -m " + quote(out) + " --prompt-tokens 16 --gen-tokens 4 --reps 1 --no-bandwidth");
  EXPECT_EQ(b.exit_code, 0) << b.err;

  expect_error(run_cli("convert " + quote(out) + " -o " + quote(dir_->path("x.gguf"))),
               out + ": tensor 'blk.0.ffn_gate.0.lr_right': experts are stored low-rank plus sparse");
  const std::string stats = dir_->path("stats.json");
  ASSERT_EQ(run_cli("calibrate -m " + quote(out) + " -f " + quote(dir_->path("text.txt")) +
                    " --samples 4 --seq 64 -o " + quote(stats)).exit_code, 0);
  expect_error(run_cli("quantize -m " + quote(out) + " --stats " + quote(stats) + " --bits 2 --rtn -o " +
                       quote(dir_->path("q.gguf"))),
               out + ": experts are stored low-rank plus sparse");
}

TEST_F(LowRankCli, BadRanksAndRowsGiveClearErrors) {
  const std::string out = dir_->path("bad.gguf");
  expect_error(run_cli(lowrank("--rank 129", out)),
               "--rank 129: larger than the expert matrices gate/up [256, 128], down [128, 256] allow (their rank is at most 128)");
  expect_error(run_cli(lowrank("--rank -4", out)), "--rank -4: must be at least 1");
  expect_error(run_cli(lowrank("--rank 0", out)), "--rank 0: must be at least 1");
  expect_error(run_cli(lowrank("--sparse-rows 8", out)), "missing rank of the factors");
  expect_error(run_cli(lowrank("--rank 16 --sparse-rows 129", out)),
               "--sparse-rows 129: more than the 128 rows of down [128, 256]");
  expect_error(run_cli(lowrank("--rank 16 --sparse-rows -1", out)), "--sparse-rows -1: must be 0 or more");
  expect_error(run_cli(lowrank("--rank 48 --type q8_0", out)), "--rank 48: --type q8_0 stores");
  expect_error(run_cli(lowrank("--rank 16 --type q4_k", out)), "--type q4_k: expected f16, q8_0 or f32");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mcmoe

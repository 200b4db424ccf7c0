// mcmoe reduce end to end on a random Hugging Face fixture: every method writes a model that
// run/ppl/convert/calibrate/quantize take; keep=1 pruning changes nothing; a merged model
// and its llama.cpp-layout export (experts copied into every router row's slot) agree
// exactly; bad flags give clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "model/model.h"
#include "model/session.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

class ReduceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::write_hf_fixture(dir_->path("mixtral"), {.layers = 3, .dim = 128, .ff = 256, .experts = 8});
    test::write_word_salad(dir_->path("text.txt"), 3000);
    const auto r = run_cli("convert " + quote(dir_->path("mixtral")) + " --type f16 -o " + quote(f16()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string f16() { return dir_->path("f16.gguf"); }
  static std::string text() { return dir_->path("text.txt"); }
  // Runs reduce and returns stdout; fails the test on a non-zero exit.
  static std::string reduce(const std::string& model, const std::string& flags, const std::string& out) {
    const auto r = run_cli("reduce -m " + quote(model) + " -f " + quote(text()) +
                           " --samples 4 --seq 64 " + flags + " -o " + quote(out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  static std::vector<float> logits(const std::string& path) {
    auto m = model::Model::load(path);
    model::Session s(*m, {.n_ctx = 64, .n_threads = 2});
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((i * 37 + 5) % m->config().n_vocab);
    const auto out = s.eval(ids, true);
    return {out.begin(), out.end()};
  }
  static test::TempDir* dir_;
};
test::TempDir* ReduceCli::dir_ = nullptr;

void expect_error(const test::CliResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "missing '" << fragment << "' in: " << r.err;
}

TEST_F(ReduceCli, PruneKeepingEverythingIsIdentical) {
  const std::string out = dir_->path("prune-1.gguf");
  const std::string report = reduce(f16(), "--method prune --keep 1.0", out);
  EXPECT_NE(report.find("8 of 8"), std::string::npos) << report;
  EXPECT_EQ(logits(out), logits(f16()));
  // Merging with keep 1 forms singleton groups: the same experts behind an identity map.
  const std::string merged = dir_->path("merge-1.gguf");
  reduce(f16(), "--method merge --keep 1", merged);
  EXPECT_EQ(logits(merged), logits(f16()));
}

TEST_F(ReduceCli, EveryMethodWritesARunnableSmallerModel) {
  const std::pair<std::string, std::string> runs[] = {{"prune", "adaptive"}, {"prune", "uniform"}, {"frequency", "adaptive"},
                                                       {"merge", "adaptive"}, {"cluster", "adaptive"}, {"cluster", "uniform"}};
  for (const auto& [method, per_layer] : runs) {
    const std::string out = dir_->path(method + "-" + per_layer + ".gguf");
    const std::string report = reduce(f16(), "--method " + method + " --keep 0.5 --per-layer " + per_layer, out);
    EXPECT_NE(report.find("parameters"), std::string::npos) << report;
    EXPECT_LT(std::filesystem::file_size(out), std::filesystem::file_size(f16())) << method;
    const auto p = run_cli("ppl -m " + quote(out) + " -f " + quote(text()) + " --ctx 64 --max-tokens 200");
    ASSERT_EQ(p.exit_code, 0) << method << " " << per_layer << ": " << p.err;
    EXPECT_NE(p.out.find("ppl "), std::string::npos) << p.out;
  }
  // Uniform pruning keeps llama.cpp's layout: no per-layer metadata.
  const auto ins = run_cli("inspect " + quote(dir_->path("prune-uniform.gguf")));
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_EQ(ins.out.find("mcmoe.layer_expert_count"), std::string::npos) << ins.out;
}

TEST_F(ReduceCli, MergedModelEqualsItsLlamaLayoutExport) {
  const std::string merged = dir_->path("merge-0.5.gguf"), exported = dir_->path("merge-0.5-llama.gguf");
  reduce(f16(), "--method merge --keep 0.5", merged);
  const auto c = run_cli("convert " + quote(merged) + " -o " + quote(exported));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  auto m = model::Model::load(exported);
  EXPECT_EQ(m->config().n_expert, 8);
  EXPECT_TRUE(m->config().expert_map.empty());
  // Summing two gates before the expert's output and adding the output twice differ only
  // by float rounding.
  EXPECT_LT(test::relative_max_error(logits(exported), logits(merged)), 1e-5);
  // Adaptive pruning leaves layers with different counts: not expressible for llama.cpp.
  const std::string pruned = dir_->path("prune-0.4.gguf");
  reduce(f16(), "--method prune --keep 0.4", pruned);
  auto p = model::Model::load(pruned);
  ASSERT_FALSE(p->config().layer_experts.empty()) << "the fixture should give layers different counts";
  expect_error(run_cli("convert " + quote(pruned) + " -o " + quote(dir_->path("x.gguf"))), "one expert count for all layers");
}

TEST_F(ReduceCli, ReducedModelCalibratesAndQuantizes) {
  const std::string merged = dir_->path("merge-q.gguf"), stats = dir_->path("merge-stats.json"),
                    quant = dir_->path("merge-pmq.gguf");
  reduce(f16(), "--method merge --keep 0.6", merged);
  const auto cal = run_cli("calibrate -m " + quote(merged) + " -f " + quote(text()) + " --samples 4 --seq 64 -o " + quote(stats));
  ASSERT_EQ(cal.exit_code, 0) << cal.err;
  const auto q = run_cli("quantize -m " + quote(merged) + " --stats " + quote(stats) + " --bits 2.5 -o " + quote(quant));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto m = model::Model::load(quant);
  EXPECT_EQ(m->config().layer_experts, model::Model::load(merged)->config().layer_experts);
  EXPECT_FALSE(m->config().expert_map.empty());
  const auto p = run_cli("ppl -m " + quote(quant) + " -f " + quote(text()) + " --ctx 64 --max-tokens 300");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  // Statistics of the unreduced model do not fit the reduced one.
  const std::string orig_stats = dir_->path("orig-stats.json");
  ASSERT_EQ(run_cli("calibrate -m " + quote(f16()) + " -f " + quote(text()) + " --samples 4 --seq 64 -o " + quote(orig_stats)).exit_code, 0);
  expect_error(run_cli("quantize -m " + quote(merged) + " --stats " + quote(orig_stats) + " --bits 2.5 -o " + quote(quant)),
               "measured on a different model");
}

TEST_F(ReduceCli, BadFlagsGiveClearErrors) {
  const std::string out = dir_->path("bad.gguf");
  const std::string base = "reduce -m " + quote(f16()) + " -f " + quote(text()) +
                           " --samples 4 --seq 64 -o " + quote(out);
  expect_error(run_cli(base + " --method prune --keep 0"), "--keep 0: the fraction of experts to keep must be in (0, 1]");
  expect_error(run_cli(base + " --method merge --keep 1.5"), "--keep 1.5");
  expect_error(run_cli(base + " --method prune --keep -0.25"), "--keep -0.25");
  expect_error(run_cli(base + " --method squash"), "unknown method 'squash'");
  expect_error(run_cli(base + " --method prune --per-layer sometimes"), "--per-layer");
  // An already merged model is not reduced again.
  const std::string merged = dir_->path("merge-again.gguf");
  reduce(f16(), "--method merge --keep 0.5", merged);
  expect_error(run_cli("reduce -m " + quote(merged) + " -f " + quote(text()) + " --method prune --keep 0.5 -o " + quote(out)),
               "already merged");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mcmoe

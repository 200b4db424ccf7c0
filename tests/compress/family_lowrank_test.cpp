// mcmoe lowrank on every family with more than attention + routed experts
// (compress/family_models.h): at full rank the factored model reproduces the logits; only
// routed experts' matrices are factored, so dense layers, shared experts, attention and the
// experts' biases stay as they were; a real rank gives a model that runs.
#include <gtest/gtest.h>

#include "compress/dense.h"
#include "compress/family_models.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

class FamilyLowRank : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    models_ = new std::vector<test::FamilyFile>(test::write_family_models(*dir_));
    test::write_word_salad(text(), 2500);
  }
  static void TearDownTestSuite() {
    delete models_;
    delete dir_;
  }
  static std::string text() { return dir_->path("text.txt"); }
  static test::CliResult lowrank(const std::string& model, const std::string& flags,
                                 const std::string& out) {
    return run_cli("lowrank -m " + quote(model) + " -f " + quote(text()) +
                   " --samples 4 --seq 64 " + flags + " -o " + quote(out));
  }
  static test::TempDir* dir_;
  static std::vector<test::FamilyFile>* models_;
};
test::TempDir* FamilyLowRank::dir_ = nullptr;
std::vector<test::FamilyFile>* FamilyLowRank::models_ = nullptr;

TEST_F(FamilyLowRank, FullRankReproducesTheLogitsAndFactorsOnlyRoutedExperts) {
  for (const test::FamilyFile& f : *models_) {
    SCOPED_TRACE(f.family);
    // Expert matrices are [128, 128]: rank 128 is full.
    const std::string out = dir_->path(f.family + "-full.gguf");
    const auto r = lowrank(f.path, "--rank 128 --sparse-rows 4 --type f32", out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // f32 factors of F16 weights: exact to float rounding, as for Mixtral (lowrank_cli_test).
    EXPECT_LT(test::relative_max_error(test::family_logits(out), test::family_logits(f.path)),
              1e-4);

    auto src = model::Model::load(f.path), m = model::Model::load(out);
    const model::ModelConfig& c = src->config();
    const format::GgufFile source(f.path), written(out);
    int factored = 0, biases = 0;
    model::for_each_tensor(
        m->config(), m->weights(), m->stored_experts(), [&](const model::TensorSlot& s) {
          if (s.role != model::TensorRole::RoutedExpert) {  // everything else: the same bytes
            EXPECT_TRUE(test::same_tensor(written, source, s.name)) << s.name;
            return;
          }
          if (s.matrix) {
            factored += s.low_rank->valid() ? 1 : 0;
            return;
          }
          // An expert bias (gpt-oss): the values it had.
          const moe::ExpertWeights& e = src->stored_experts()[s.layer][s.expert];
          const TensorView& before = s.kind == model::TensorKind::ExpGateBias ? e.gate_b
                                     : s.kind == model::TensorKind::ExpUpBias ? e.up_b
                                                                              : e.down_b;
          EXPECT_EQ(compress::to_vector(*s.view), compress::to_vector(before)) << s.name;
          ++biases;
        });
    int routed = 0;
    for (int l = 0; l < c.n_layer; ++l) routed += 3 * c.experts(l);
    EXPECT_EQ(factored, routed);
    EXPECT_EQ(biases > 0, c.expert_bias);
  }
}

TEST_F(FamilyLowRank, ReducedRankModelsRun) {
  for (const test::FamilyFile& f : *models_) {
    SCOPED_TRACE(f.family);
    const std::string out = dir_->path(f.family + "-r32.gguf");
    const auto r = lowrank(f.path, "--rank 32 --sparse-rows 8 --type q8_0", out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("expert parameters"), std::string::npos) << r.out;
    const auto run =
        run_cli("run -m " + quote(out) + " -p " + quote("the king") + " -n 6 --temp 0");
    EXPECT_EQ(run.exit_code, 0) << run.err;
  }
}

}  // namespace
}  // namespace mcmoe

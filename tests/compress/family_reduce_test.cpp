// mcmoe reduce on every family with more than attention + routed experts
// (compress/family_models.h): pruning that keeps everything changes nothing; every method
// leaves dense layers, shared experts and attention byte for byte as they were; pruning
// takes an expert's router row together with its router bias and selection bias; group-
// limited routing refuses pruning (merging keeps the router whole and works).
#include <gtest/gtest.h>

#include <cstring>

#include "compress/dense.h"
#include "compress/family_models.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

class FamilyReduce : public ::testing::Test {
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
  static test::CliResult reduce(const std::string& model, const std::string& flags,
                                const std::string& out) {
    return run_cli("reduce -m " + quote(model) + " -f " + quote(text()) + " --samples 4 --seq 64 " +
                   flags + " -o " + quote(out));
  }
  static test::TempDir* dir_;
  static std::vector<test::FamilyFile>* models_;
};
test::TempDir* FamilyReduce::dir_ = nullptr;
std::vector<test::FamilyFile>* FamilyReduce::models_ = nullptr;

TEST_F(FamilyReduce, PruneKeepingEverythingIsIdentical) {
  for (const test::FamilyFile& f : *models_) {
    SCOPED_TRACE(f.family);
    const std::string out = dir_->path(f.family + "-keep1.gguf");
    const auto r = reduce(f.path, "--method prune --keep 1", out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(test::family_logits(out), test::family_logits(f.path));
  }
}

TEST_F(FamilyReduce, EveryMethodLeavesDenseLayersSharedExpertsAndAttentionAlone) {
  for (const test::FamilyFile& f : *models_) {
    auto source_model = model::Model::load(f.path);
    const model::ModelConfig& c = source_model->config();
    // Everything but the routed experts and the router, by the inventory.
    std::vector<std::string> untouched;
    model::for_each_tensor(
        c, source_model->weights(), source_model->stored_experts(),
        [&](const model::TensorSlot& s) {
          if (s.role != model::TensorRole::RoutedExpert && s.role != model::TensorRole::Router)
            untouched.push_back(s.name);
        });
    const std::vector<std::string> dense_shared = test::dense_and_shared_tensors(*source_model);
    EXPECT_EQ(!dense_shared.empty(), f.family != "gpt-oss");
    const format::GgufFile source(f.path);
    for (const std::string method : {"prune", "merge", "cluster"}) {
      SCOPED_TRACE(f.family + " " + method);
      const std::string out = dir_->path(f.family + "-" + method + ".gguf");
      const auto r = reduce(f.path, "--method " + method + " --keep 0.75", out);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      if (c.has_dense_layers()) {
        EXPECT_NE(r.out.find("layer  0: dense, nothing to reduce"), std::string::npos) << r.out;
      }
      const format::GgufFile written(out);
      for (const std::string& name : untouched)
        EXPECT_TRUE(test::same_tensor(written, source, name)) << name;
      auto m = model::Model::load(out);
      int before = 0, after = 0;
      for (int l = 0; l < c.n_layer; ++l) {
        EXPECT_EQ(m->config().experts(l) == 0, !c.is_moe(l)) << "layer " << l;
        before += c.experts(l);
        after += m->config().experts(l);
      }
      EXPECT_LT(after, before);
      const auto run =
          run_cli("run -m " + quote(out) + " -p " + quote("the king") + " -n 6 --temp 0");
      EXPECT_EQ(run.exit_code, 0) << run.err;
    }
  }
}

// Rows of a [rows, cols] matrix and of the per-row vectors as f32.
std::vector<std::vector<float>> rows_of(const TensorView& v) {
  const compress::DenseMatrix d = compress::to_dense(v);
  std::vector<std::vector<float>> rows;
  for (int64_t r = 0; r < d.rows; ++r)
    rows.emplace_back(d.data.begin() + r * d.cols, d.data.begin() + (r + 1) * d.cols);
  return rows;
}

TEST_F(FamilyReduce, PruningTakesTheRouterRowsBiasesWithThem) {
  for (const test::FamilyFile& f : *models_) {
    auto src = model::Model::load(f.path);
    const model::ModelConfig& c = src->config();
    if (!c.router.bias && !c.router.choice_bias)
      continue;  // gpt-oss: router bias; glm4moe: selection bias
    SCOPED_TRACE(f.family);
    const std::string out = dir_->path(f.family + "-prune-0.6.gguf");
    ASSERT_EQ(reduce(f.path, "--method prune --keep 0.6", out).exit_code, 0);
    auto m = model::Model::load(out);
    for (int l = 0; l < c.n_layer; ++l) {
      if (!c.is_moe(l)) continue;
      const model::LayerWeights &a = src->weights().layers[l], &b = m->weights().layers[l];
      const auto src_rows = rows_of(a.router), kept_rows = rows_of(b.router);
      ASSERT_LT(kept_rows.size(), src_rows.size()) << "layer " << l;
      const std::vector<float> src_bias =
          compress::to_vector(c.router.bias ? a.router_bias : a.choice_bias);
      const std::vector<float> kept_bias =
          compress::to_vector(c.router.bias ? b.router_bias : b.choice_bias);
      ASSERT_EQ(kept_bias.size(), kept_rows.size());
      // Each kept router row is one of the original rows, in order; its bias came with it.
      size_t from = 0;
      for (size_t i = 0; i < kept_rows.size(); ++i) {
        while (from < src_rows.size() && src_rows[from] != kept_rows[i]) ++from;
        ASSERT_LT(from, src_rows.size())
            << "layer " << l << " row " << i << " is no original router row";
        EXPECT_EQ(kept_bias[i], src_bias[from]) << "layer " << l << " row " << i;
        ++from;
      }
    }
  }
}

TEST_F(FamilyReduce, GroupLimitedRoutingRefusesPruningButMerges) {
  api::SynthOptions o = test::deepseek2_options();
  o.v3_routing = true;  // sigmoid scores, selection bias, 8 groups keep 4
  o.experts = 16;
  o.layers = 2;
  const std::string v3 = dir_->path("deepseek-v3.gguf"), out = dir_->path("v3-reduced.gguf");
  api::synth_model(o, v3);
  test::expect_clean_error(reduce(v3, "--method prune --keep 0.75", out),
                           {"deepseek-v3.gguf", "8 groups of 2", "use --method merge or cluster"});
  EXPECT_FALSE(std::filesystem::exists(out));
  const auto merged = reduce(v3, "--method merge --keep 0.75", out);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_EQ(
      run_cli("run -m " + quote(out) + " -p " + quote("the king") + " -n 4 --temp 0").exit_code, 0);
}

}  // namespace
}  // namespace mcmoe

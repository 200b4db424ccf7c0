// compress/dense.h computes what the engine computes, for every kind of MLP a family has:
// gpt-oss's routed experts (clamped SwiGLU, biases), DeepSeek's dense MLP and shared expert
// (SiLU-GLU, no biases); and merging experts that carry biases keeps the biases with their
// neurons.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "compress/dense.h"
#include "compress/dense_test_util.h"
#include "compress/expert_merge.h"
#include "compress/family_models.h"
#include "core/error.h"
#include "model/observer.h"

namespace mcmoe {
namespace {

using compress::DenseExpert;
using compress::DenseMatrix;

// Routed rows and outputs of every expert of one layer, and named intermediates of it.
class LayerRecorder final : public model::ForwardObserver {
 public:
  explicit LayerRecorder(int layer) : layer_(layer) {}
  struct Rows {
    std::vector<float> in, out;
  };
  std::map<int, Rows> experts;
  std::map<std::string, std::vector<float>, std::less<>> tensors;

  void on_expert(const model::ExpertEvent& e) override {
    if (e.layer != layer_) return;
    const int64_t n = static_cast<int64_t>(e.token_rows.size());
    Rows& r = experts[e.expert];
    r.in.insert(r.in.end(), e.input, e.input + n * e.n_embd);
    r.out.insert(r.out.end(), e.output, e.output + n * e.n_embd);
  }
  void on_tensor(std::string_view name, int layer, const float* data, int64_t rows,
                 int64_t cols) override {
    if (layer == layer_) tensors[std::string(name)].assign(data, data + rows * cols);
  }

 private:
  int layer_;
};

void record(model::Model& m, LayerRecorder& rec) {
  model::Session s(m, {.n_ctx = 64, .n_threads = 2});
  s.set_observer(&rec);
  std::vector<int32_t> ids;
  for (int i = 0; i < 48; ++i) ids.push_back((i * 53 + 11) % m.config().n_vocab);
  s.eval(ids, false);
  s.set_observer(nullptr);
}

std::vector<float> forward(const DenseExpert& e, const std::vector<float>& in, int64_t d,
                           ThreadPool& pool) {
  const int64_t n = static_cast<int64_t>(in.size()) / d;
  std::vector<float> out(static_cast<size_t>(n * e.down.rows)), g, u;
  compress::expert_forward(e, in.data(), n, out.data(), pool, g, u);
  return out;
}

TEST(FamilyDense, RoutedExpertsComputeWhatTheEngineComputes) {
  test::TempDir dir;
  const std::string path = dir.path("gpt-oss.gguf");
  api::synth_model(test::gpt_oss_options(), path);
  auto m = model::Model::load(path);
  const model::ModelConfig& c = m->config();
  ASSERT_EQ(c.activation, model::Activation::SwigluOai);
  ASSERT_TRUE(c.expert_bias);
  LayerRecorder rec(1);
  record(*m, rec);
  ASSERT_GE(rec.experts.size(), 4u);
  ThreadPool pool(2);
  for (const auto& [e, rows] : rec.experts) {
    const DenseExpert dense = compress::routed_expert_to_dense(c, m->stored_experts()[1][e]);
    ASSERT_EQ(dense.gate_b.size(), static_cast<size_t>(c.n_ff));
    ASSERT_EQ(dense.down_b.size(), static_cast<size_t>(c.n_embd));
    // The engine multiplies F16 weights in f32 and so does this path: float rounding only.
    EXPECT_LT(test::relative_max_error(forward(dense, rows.in, c.n_embd, pool), rows.out), 1e-5)
        << "expert " << e;
    // Without the family's activation and biases the outputs are far off: the check sees them.
    DenseExpert plain = dense;
    plain.act = {};
    plain.gate_b.clear();
    plain.up_b.clear();
    plain.down_b.clear();
    EXPECT_GT(test::relative_max_error(forward(plain, rows.in, c.n_embd, pool), rows.out), 0.05)
        << "expert " << e;
  }
}

TEST(FamilyDense, DenseAndSharedMlpsComputeWhatTheEngineComputes) {
  test::TempDir dir;
  const std::string path = dir.path("deepseek2.gguf");
  api::synth_model(test::deepseek2_options(), path);
  auto m = model::Model::load(path);
  const model::ModelConfig& c = m->config();
  ASSERT_FALSE(c.is_moe(0));
  ASSERT_TRUE(c.is_moe(1));
  ThreadPool pool(2);
  // Layer 0 is dense: its block output is the MLP of its normed input.
  LayerRecorder dense_layer(0);
  record(*m, dense_layer);
  const DenseExpert mlp = compress::mlp_to_dense(m->weights().layers[0].ffn);
  EXPECT_FALSE(mlp.has_biases());
  EXPECT_EQ(mlp.gate.rows, c.n_ff_dense);
  EXPECT_LT(
      test::relative_max_error(forward(mlp, dense_layer.tensors.at("ffn_norm"), c.n_embd, pool),
                               dense_layer.tensors.at("moe_out")),
      1e-5);
  // Layer 1's shared expert: its hidden state from the same normed input.
  LayerRecorder moe_layer(1);
  record(*m, moe_layer);
  const DenseExpert shared = compress::mlp_to_dense(m->weights().layers[1].shared);
  const std::vector<float>& x = moe_layer.tensors.at("ffn_norm");
  std::vector<float> hidden, up;
  compress::expert_hidden(shared, x.data(), static_cast<int64_t>(x.size()) / c.n_embd, pool, hidden,
                          up);
  EXPECT_LT(test::relative_max_error(hidden, moe_layer.tensors.at("shared_hidden")), 1e-5);
}

DenseExpert random_biased_expert(int64_t d, int64_t ff, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  auto values = [&](int64_t n, float scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = scale * g(rng);
    return v;
  };
  const float w = 1.f / std::sqrt(static_cast<float>(d));
  DenseExpert e;
  e.gate = {ff, d, values(ff * d, w)};
  e.up = {ff, d, values(ff * d, w)};
  e.down = {d, ff, values(d * ff, w)};
  e.gate_b = values(ff, 0.5f);
  e.up_b = values(ff, 0.5f);
  e.down_b = values(d, 0.5f);
  e.act = {.kind = model::Activation::SwigluOai, .alpha = 1.702f, .limit = 7.f};
  return e;
}

std::vector<int> shuffled(int n, uint32_t seed) {
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  return perm;
}

TEST(FamilyDense, PermutingNeuronsMovesTheirBiasesAndKeepsTheFunction) {
  ThreadPool pool(2);
  const DenseExpert a = random_biased_expert(32, 64, 4);
  const DenseExpert b = compress::permute_neurons(a, shuffled(64, 8));
  ASSERT_NE(b.gate_b, a.gate_b);
  EXPECT_EQ(b.down_b, a.down_b);  // indexed by output, not by neuron
  EXPECT_EQ(b.act.kind, a.act.kind);
  const std::vector<float> x = test::random_matrix(10, 32, 2).data;
  EXPECT_LT(test::relative_max_error(forward(b, x, 32, pool), forward(a, x, 32, pool)), 1e-5);
}

TEST(FamilyDense, MergingBiasedExpertsAlignsAndWeighsTheBiases) {
  ThreadPool pool(2);
  const DenseExpert a = random_biased_expert(32, 64, 5);
  // The same expert with its neurons shuffled merges back into it exactly, biases included.
  const DenseExpert merged =
      compress::merge_experts({a, compress::permute_neurons(a, shuffled(64, 3))}, {3, 1}, 0, pool);
  EXPECT_EQ(merged.gate.data, a.gate.data);
  EXPECT_EQ(merged.gate_b, a.gate_b);
  EXPECT_EQ(merged.up_b, a.up_b);
  EXPECT_EQ(merged.down_b, a.down_b);
  // Two different experts: every bias is frequency-weighted.
  const DenseExpert b = random_biased_expert(32, 64, 6);
  const DenseExpert avg = compress::average_experts({&a, &b}, {3, 1});
  for (size_t i = 0; i < avg.gate_b.size(); ++i)
    EXPECT_FLOAT_EQ(avg.gate_b[i], 0.75f * a.gate_b[i] + 0.25f * b.gate_b[i]);
  for (size_t i = 0; i < avg.up_b.size(); ++i)
    EXPECT_FLOAT_EQ(avg.up_b[i], 0.75f * a.up_b[i] + 0.25f * b.up_b[i]);
  for (size_t i = 0; i < avg.down_b.size(); ++i)
    EXPECT_FLOAT_EQ(avg.down_b[i], 0.75f * a.down_b[i] + 0.25f * b.down_b[i]);
  EXPECT_EQ(avg.act.kind, model::Activation::SwigluOai);
  // An expert without biases cannot be averaged with one that has them.
  DenseExpert unbiased = b;
  unbiased.gate_b.clear();
  EXPECT_THROW(compress::average_experts({&a, &unbiased}, {1, 1}), Error);
}

}  // namespace
}  // namespace mcmoe

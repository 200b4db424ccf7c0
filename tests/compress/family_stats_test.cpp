// Calibration statistics and bit allocation for models with dense layers (DeepSeek's and
// GLM's leading ones): a dense layer has empty statistics, survives the stats file, and
// takes no part in the per-layer or global allocation; the fingerprint names which layers
// are dense and covers the routing biases.
#include <gtest/gtest.h>

#include <numeric>

#include "compress/allocate.h"
#include "compress/family_models.h"
#include "compress/stats.h"
#include "core/error.h"

namespace mcmoe::compress {
namespace {

// Layer 0 dense, layers 1 and 2 with 4 experts whose errors fall with width.
CalibrationStats stats_with_a_dense_layer() {
  CalibrationStats s;
  s.model = {.arch = "deepseek2",
             .n_layer = 3,
             .n_expert = 4,
             .n_expert_used = 2,
             .n_embd = 128,
             .n_ff = 128,
             .router_hash = "0123456789abcdef",
             .layer_experts = {0, 4, 4}};
  s.text = "text.txt";
  s.samples = 4;
  s.seq = 64;
  s.candidates = {1, 2, 3};
  s.layers.resize(3);
  for (int l = 1; l < 3; ++l) {
    s.layers[l].tokens = 256;
    s.layers[l].ratio_quantiles.assign(1, std::vector<float>(101, 0.5f));
    for (int e = 0; e < 4; ++e) {
      ExpertStats x;
      x.picks = 10 + 20 * e + l;
      x.mass = 0.1 * (e + 1);
      x.in_sq = x.hidden_sq = 1;
      for (int b : {1, 2, 3}) x.eps[b] = x.hawq[b] = (e + 1.0) * l / (b * b);
      s.layers[l].experts.push_back(x);
    }
  }
  return s;
}

TEST(FamilyStats, DenseLayersSurviveTheStatsFile) {
  test::TempDir dir;
  const CalibrationStats s = stats_with_a_dense_layer();
  save_stats(s, dir.path("stats.json"));
  const CalibrationStats back = load_stats(dir.path("stats.json"));
  EXPECT_EQ(back.model, s.model);
  ASSERT_EQ(back.layers.size(), 3u);
  EXPECT_TRUE(back.layers[0].experts.empty());
  EXPECT_TRUE(back.layers[0].ratio_quantiles.empty());
  EXPECT_EQ(back.layers[2].experts.size(), 4u);
  // A file whose dense layer holds experts contradicts its own model entry.
  CalibrationStats bad = s;
  bad.layers[0].experts.resize(4);
  save_stats(bad, dir.path("bad.json"));
  EXPECT_THROW(load_stats(dir.path("bad.json")), Error);
}

TEST(FamilyStats, AllocationSkipsDenseLayers) {
  const CalibrationStats s = stats_with_a_dense_layer();
  for (const bool global : {false, true}) {
    SCOPED_TRACE(global ? "global" : "per layer");
    const BitPlan plan =
        allocate(s, {.avg_bits = 2.5, .candidates = {1, 2, 3}, .global = global},
                 {{}, std::vector<int64_t>(4, 49152), std::vector<int64_t>(4, 49152)});
    ASSERT_EQ(plan.bits.size(), 3u);
    EXPECT_TRUE(plan.bits[0].empty());
    EXPECT_EQ(std::accumulate(plan.bits[1].begin(), plan.bits[1].end(), 0) +
                  std::accumulate(plan.bits[2].begin(), plan.bits[2].end(), 0),
              20);
    EXPECT_DOUBLE_EQ(plan.average(), 2.5);
  }
}

TEST(FamilyStats, FingerprintNamesDenseLayersAndCoversRoutingBiases) {
  test::TempDir dir;
  api::SynthOptions o = test::glm4moe_options();  // layer 0 dense; a selection bias
  api::synth_model(o, dir.path("a.gguf"));
  auto m = model::Model::load(dir.path("a.gguf"));
  const ModelFingerprint f = fingerprint(*m);
  EXPECT_EQ(f.layer_experts, (std::vector<int>{0, 8, 8}));
  EXPECT_NE(describe(f).find("per layer 0,8,8"), std::string::npos) << describe(f);
  // The same model but another selection bias routes differently: another fingerprint.
  model::LayerWeights L = m->weights().layers[1];
  std::vector<float> bias(8, 0.25f);
  L.choice_bias.data = bias.data();
  m->replace_layer(1, L, m->stored_experts()[1]);
  EXPECT_NE(fingerprint(*m).router_hash, f.router_hash);
}

}  // namespace
}  // namespace mcmoe::compress

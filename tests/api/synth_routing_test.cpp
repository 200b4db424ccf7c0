// synth --routing-from (api/synth_routing.h): the feature plan for copies of traced experts
// and both layer maps, checked on the numbers; then end to end, a synthetic model built from a
// hand-made trace routes every token as the plan says it should (noise 0), with twice the
// trace's experts and more layers than it has.
#include "api/synth_routing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "offload/offload_test_util.h"
#include "offload/trace.h"

namespace mcmoe::api {
namespace {

constexpr int kVocab = 300;  // small_offload_model's vocabulary, used as --tokenizer-from

// 3 layers x 4 experts, top-2; each token id has its own routing distribution per layer, so
// the mean log-probabilities (the features) differ from id to id.
offload::RoutingTrace hand_trace(int n_tokens) {
  offload::RoutingTrace t;
  t.model = "hand";
  t.n_layer = 3;
  t.n_expert = 4;
  t.k = 2;
  t.depth = 1;
  t.m = 2;
  t.expert_bytes.assign(t.n_layer * t.n_expert, 4096);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<float> dist(static_cast<size_t>(kVocab) * t.n_layer * t.n_expert);
  for (auto& x : dist) x = std::exp(3.f * u(rng));
  for (int i = 0; i < n_tokens; ++i) {
    const int32_t v = static_cast<int32_t>(3 + rng() % (kVocab - 3));
    t.tokens.push_back(v);
    for (int l = 0; l < t.n_layer; ++l) {
      const float* p = dist.data() + (static_cast<size_t>(v) * t.n_layer + l) * t.n_expert;
      const float total = std::accumulate(p, p + t.n_expert, 0.f);
      for (int e = 0; e < t.n_expert; ++e) t.probs.push_back(p[e] / total);
      for (int j = 0; j < t.k; ++j) {
        t.picks.push_back(static_cast<int16_t>(j));
        t.weights.push_back(0.5f);
      }
      for (int j = 0; j < t.m; ++j) t.predicted.push_back(-1);
    }
  }
  return t;
}

// The experts the plan's routers pick for token v in synthetic layer l (of n), top-k, when the
// residual's feature block is the embedding's (noise 0): the argmax of router rows · features.
std::set<int> planned_topk(const SynthRouting& r, int32_t v, int l, int n, int k, int dim) {
  const float* f = r.token_features.data() + static_cast<size_t>(v) * r.n_features();
  std::vector<float> row(dim), logit(r.n_expert());
  for (int j = 0; j < r.n_expert(); ++j) {
    r.router_row(l, n, j, row.data(), dim);
    logit[j] = std::inner_product(f, f + r.n_features(), row.data(), 0.f);
  }
  std::vector<int> idx(r.n_expert());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return logit[a] > logit[b]; });
  return {idx.begin(), idx.begin() + k};
}

TEST(SynthRouting, CopiesSplitEachTracedExpertAndKeepItsTopK) {
  const offload::RoutingTrace t = hand_trace(2000);
  const SynthRouting r = plan_routing(t, kVocab, 2, RoutingLayerMap::kCycle, 0.f, 7);
  ASSERT_EQ(r.n_expert(), 8);
  ASSERT_EQ(r.n_features(), 3 * 4 * 3);
  int64_t copy0 = 0, pairs = 0, mismatches = 0;
  for (int32_t v = 0; v < kVocab; ++v) {
    const float* f = r.token_features.data() + static_cast<size_t>(v) * r.n_features();
    for (int tl = 0; tl < 3; ++tl) {
      // The traced top-2 by mean log-probability, each sent to the token's copy.
      std::vector<int> e(4);
      std::iota(e.begin(), e.end(), 0);
      std::sort(e.begin(), e.end(),
                [&](int a, int b) { return f[r.base_feature(tl, a)] > f[r.base_feature(tl, b)]; });
      std::set<int> want;
      for (int j = 0; j < 2; ++j) want.insert(r.copy_of(v, tl, e[j]) * 4 + e[j]);
      for (int x = 0; x < 4; ++x) {
        // One-hot: exactly the token's copy carries 1.
        EXPECT_EQ(f[r.copy_feature(tl, x, 0)] + f[r.copy_feature(tl, x, 1)], 1.f);
        EXPECT_EQ(f[r.copy_feature(tl, x, r.copy_of(v, tl, x))], 1.f);
        copy0 += r.copy_of(v, tl, x) == 0;
        ++pairs;
      }
      // Synthetic layers 0..5 cycle over traced layers 0, 1, 2, 0, 1, 2.
      for (int l = tl; l < 6; l += 3) mismatches += planned_topk(r, v, l, 6, 2, 64) != want;
    }
  }
  EXPECT_EQ(mismatches, 0);
  // The hash spreads tokens over both copies.
  EXPECT_NEAR(static_cast<double>(copy0) / pairs, 0.5, 0.05);
}

TEST(SynthRouting, LayerMaps) {
  const offload::RoutingTrace t = hand_trace(50);
  const SynthRouting stretch = plan_routing(t, kVocab, 1, RoutingLayerMap::kStretch, 0.3f, 1);
  const SynthRouting cycle = plan_routing(t, kVocab, 1, RoutingLayerMap::kCycle, 0.3f, 1);
  std::vector<int> s, c;
  for (int l = 0; l < 7; ++l) {
    s.push_back(stretch.traced_layer(l, 7));
    c.push_back(cycle.traced_layer(l, 7));
  }
  EXPECT_EQ(s, (std::vector<int>{0, 0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(c, (std::vector<int>{0, 1, 2, 0, 1, 2, 0}));
  // Without copies the features are the mean log-probabilities alone.
  EXPECT_EQ(stretch.n_features(), 12);
  EXPECT_EQ(stretch.n_expert(), 4);
}

// A model synthesized from hand_trace(2000) with twice its experts and `layers` layers cycling
// over its 3, traced over n random token ids; with the plan it was built from.
struct Synthesized {
  std::vector<int32_t> tokens;
  offload::RoutingTrace got;
  SynthRouting plan;
};
Synthesized synthesize_and_trace(int layers, float noise, int n_tokens, uint32_t token_seed) {
  const test::TempDir dir;
  const offload::RoutingTrace t = hand_trace(2000);
  const std::string trace = dir.path("hand.trace");
  offload::write_trace(t, trace);
  SynthOptions o = test::synth_options(layers, 128, 64, 8);
  o.type = DType::F16;
  o.tokenizer_from = test::small_offload_model();
  o.routing_from = trace;
  o.routing_noise = noise;
  o.routing_layers = "cycle";
  const std::string path = dir.path("syn.gguf");
  synth_model(o, path);
  auto m = model::Model::load(path);
  Synthesized s;
  std::mt19937 rng(token_seed);
  for (int i = 0; i < n_tokens; ++i)
    s.tokens.push_back(static_cast<int32_t>(3 + rng() % (kVocab - 3)));
  offload::TraceOptions to;
  to.ctx = 64;
  to.depth = 1;
  to.m = 2;
  s.got = offload::record_trace(*m, s.tokens, to);
  s.plan = plan_routing(t, kVocab, 2, RoutingLayerMap::kCycle, noise, o.seed);
  return s;
}

TEST(SynthRouting, ASynthesizedModelRoutesAsPlannedWithCopiesAndCycledLayers) {
  const Synthesized r = synthesize_and_trace(6, 0.f, 200, 11);
  const offload::RoutingTrace& got = r.got;
  ASSERT_EQ(got.n_expert, 8);
  int64_t same = 0, total = 0;
  std::vector<int64_t> uses(6 * 8, 0);
  for (int64_t i = 0; i < got.n_tokens(); ++i) {
    for (int l = 0; l < 6; ++l) {
      const auto p = got.pick(i, l);
      const std::set<int> picked(p.begin(), p.end());
      for (int e : picked) ++uses[l * 8 + e];
      same += picked == planned_topk(r.plan, r.tokens[i], l, 6, 2, 128);
      ++total;
    }
  }
  // F16 embeddings and the RMS norm move near-ties only.
  EXPECT_GE(static_cast<double>(same) / total, 0.97) << same << " of " << total;
  // Every copy of every expert is used somewhere.
  EXPECT_EQ(std::count(uses.begin(), uses.end(), 0), 0);
}

// With noise each token's choices blur, but no common bias may build up over depth: deep
// layers spread their picks over the experts as the plan does. (When attention's values read
// the features, attention added nearly the same vector to every token, and over many layers
// that bias sent most tokens to the same few experts.)
TEST(SynthRouting, NoiseBlursButDoesNotConcentrateDeepLayers) {
  const Synthesized r = synthesize_and_trace(24, 0.3f, 400, 12);
  // Share of a layer's picks that go to its 2 most used experts (of 8): about 0.28 planned,
  // at most 0.40 synthetic here, 0.56-0.65 with the bias.
  auto top2_share = [](const std::vector<int64_t>& uses) {
    std::vector<int64_t> u = uses;
    std::sort(u.rbegin(), u.rend());
    return static_cast<double>(u[0] + u[1]) / std::accumulate(u.begin(), u.end(), int64_t{0});
  };
  for (int l = 12; l < 24; ++l) {
    std::vector<int64_t> synthetic(8, 0), planned(8, 0);
    for (int64_t i = 0; i < r.got.n_tokens(); ++i) {
      for (int e : r.got.pick(i, l)) ++synthetic[e];
      for (int e : planned_topk(r.plan, r.tokens[i], l, 24, 2, 128)) ++planned[e];
    }
    EXPECT_LE(top2_share(synthetic), top2_share(planned) + 0.2) << "layer " << l;
  }
}

TEST(SynthRouting, BadRoutingOptionsAreRefusedWithTheExpectedAndFoundValues) {
  const test::TempDir dir;
  const std::string trace = dir.path("hand.trace");
  offload::write_trace(hand_trace(100), trace);
  SynthOptions o = test::synth_options(2, 128, 64, 6);
  o.tokenizer_from = test::small_offload_model();
  o.routing_from = trace;
  try {
    synth_model(o, dir.path("a.gguf"));
    ADD_FAILURE() << "6 experts from a 4-expert trace accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("4 experts"), std::string::npos) << msg;
    EXPECT_NE(msg.find("found 6"), std::string::npos) << msg;
  }
  o.experts = 8;
  o.routing_layers = "spiral";
  try {
    synth_model(o, dir.path("b.gguf"));
    ADD_FAILURE() << "--routing-layers spiral accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'spiral'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcmoe::api

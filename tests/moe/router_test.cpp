// Every routing rule on hand-made logits whose picks and weights are worked out here, and
// cache-aware routing (prefer_cached): a hand-worked swap, margin 0 changing nothing, and on
// random inputs every swap within the margin, to a cached expert not already picked.
#include "moe/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace mcmoe::moe {
namespace {

struct Routed {
  std::vector<int> ids;
  std::vector<float> w;
  std::vector<float> probs;
};

Routed run(const RouterRule& rule, std::vector<float> logits, int k,
           const std::vector<float>& bias = {}) {
  const int E = static_cast<int>(logits.size());
  Routed r{std::vector<int>(k), std::vector<float>(k), std::vector<float>(E)};
  route({.n_expert = E, .k = k, .rule = rule, .choice_bias = bias.empty() ? nullptr : bias.data()},
        logits.data(), 1, r.probs.data(), r.ids.data(), r.w.data());
  return r;
}

std::vector<float> softmax(const std::vector<float>& l) {
  double z = 0;
  for (float x : l) z += std::exp(x);
  std::vector<float> p;
  for (float x : l) p.push_back(static_cast<float>(std::exp(x) / z));
  return p;
}

float sigmoid(float x) {
  return 1.f / (1.f + std::exp(-x));
}

TEST(Router, SoftmaxTopKRenormalised) {  // Mixtral, Qwen3
  const std::vector<float> l{1.f, 3.f, 2.f, 0.f};
  const auto p = softmax(l);
  const Routed r = run({.norm_topk = true}, l, 2);
  EXPECT_EQ(r.ids, (std::vector<int>{1, 2}));
  EXPECT_NEAR(r.w[0], p[1] / (p[1] + p[2]), 1e-6);
  EXPECT_NEAR(r.w[1], p[2] / (p[1] + p[2]), 1e-6);
  for (int e = 0; e < 4; ++e) EXPECT_NEAR(r.probs[e], p[e], 1e-6);
}

TEST(Router, SoftmaxTopKNotRenormalised) {  // Qwen2-MoE, OLMoE, DeepSeek-V2
  const std::vector<float> l{1.f, 3.f, 2.f, 0.f};
  const auto p = softmax(l);
  const Routed r = run({.norm_topk = false, .scale = 2.f}, l, 2);
  EXPECT_EQ(r.ids, (std::vector<int>{1, 2}));
  EXPECT_NEAR(r.w[0], 2 * p[1], 1e-6);  // routed_scaling_factor applies without normalisation too
  EXPECT_NEAR(r.w[1], 2 * p[2], 1e-6);
}

TEST(Router, TopKOfLogitsThenSoftmaxOverThem) {  // gpt-oss, Granite
  const std::vector<float> l{0.5f, -1.f, 4.f, 3.f, 3.5f};
  const Routed r = run({.softmax_over_topk = true, .norm_topk = false}, l, 3);
  EXPECT_EQ(r.ids, (std::vector<int>{2, 4, 3}));
  const auto sel = softmax({4.f, 3.5f, 3.f});
  for (int j = 0; j < 3; ++j) EXPECT_NEAR(r.w[j], sel[j], 1e-6);
  const auto p = softmax(l);  // probabilities reported: the full softmax (same ratios)
  for (int e = 0; e < 5; ++e) EXPECT_NEAR(r.probs[e], p[e], 1e-6);
}

TEST(Router, SigmoidSelectionBiasChoosesWeightsStayUnbiased) {  // DeepSeek-V3 without groups
  const std::vector<float> l{2.f, 1.f, 0.f, 1.5f};
  // Expert 2 has the lowest score but a bias that lifts its choice above experts 1 and 3.
  const std::vector<float> bias{0.f, 0.f, 0.9f, 0.f};
  const Routed r =
      run({.score = ScoreFunc::Sigmoid, .norm_topk = true, .scale = 2.5f, .choice_bias = true}, l,
          2, bias);
  EXPECT_EQ(r.ids, (std::vector<int>{2, 0}));  // choices: s0 0.881, s2+0.9 = 1.4
  const float s0 = sigmoid(2.f), s2 = sigmoid(0.f);
  EXPECT_NEAR(r.w[0], 2.5f * s2 / (s0 + s2), 1e-6);
  EXPECT_NEAR(r.w[1], 2.5f * s0 / (s0 + s2), 1e-6);
  EXPECT_NEAR(r.probs[3], sigmoid(1.5f), 1e-6);
}

TEST(Router, GroupsRankedByTheirBestScore) {  // DeepSeek-V2 group_limited_greedy
  // 8 experts in 4 groups of 2; keep 2 groups by their maximum: groups 1 (e3) and 3 (e6),
  // so expert 0, third best overall, is out of reach.
  const std::vector<float> l{2.9f, -3.f, -3.f, 3.f, -3.f, -3.f, 4.f, 2.f};
  const RouterRule rule{
      .group = GroupSelect::Max, .n_group = 4, .topk_group = 2, .norm_topk = false};
  const Routed r = run(rule, l, 3);
  EXPECT_EQ(r.ids, (std::vector<int>{6, 3, 7}));
  const auto p = softmax(l);
  EXPECT_NEAR(r.w[2], p[7], 1e-6);
}

TEST(Router, GroupsRankedBySumOfTheirTwoBest) {  // DeepSeek-V3 / GLM noaux_tc
  // Group 0 = {0.9, 0.1} sums 1.0; group 1 = {0.6, 0.6} sums 1.2 → with one group kept, the
  // best single expert (0) is excluded.
  const std::vector<float> scores{0.9f, 0.1f, 0.6f, 0.6f};
  std::vector<float> l;
  for (float s : scores) l.push_back(std::log(s / (1 - s)));  // sigmoid⁻¹
  const RouterRule rule{.score = ScoreFunc::Sigmoid,
                        .group = GroupSelect::Top2Sum,
                        .n_group = 2,
                        .topk_group = 1,
                        .norm_topk = true};
  const Routed r = run(rule, l, 2);
  EXPECT_EQ(r.ids, (std::vector<int>{2, 3}));
  EXPECT_NEAR(r.w[0], 0.5f, 1e-5);
  // With the Max rule the other group wins.
  RouterRule max_rule = rule;
  max_rule.group = GroupSelect::Max;
  EXPECT_EQ(run(max_rule, l, 2).ids, (std::vector<int>{0, 1}));
}

TEST(Router, TiesGoToTheLowerExpert) {
  const Routed r = run({.norm_topk = true}, {1.f, 2.f, 2.f, 2.f}, 2);
  EXPECT_EQ(r.ids, (std::vector<int>{1, 2}));
  const Routed g =
      run({.group = GroupSelect::Max, .n_group = 2, .topk_group = 1}, {5.f, 0.f, 5.f, 1.f}, 1);
  EXPECT_EQ(g.ids, (std::vector<int>{0}));
}

TEST(Router, PreferCachedHandWorked) {
  // Scores 0.4, 0.3, 0.2, 0.1; picks 0 and 1 (weights renormalised: 4/7, 3/7); experts 2 and 3
  // cached. Margin 0.4: pick 0's floor is 0.24 (no cached expert reaches it), pick 1's is 0.18,
  // which expert 2 (0.2) reaches: it replaces 1 with weight 3/7 * 0.2/0.3 = 2/7, then both are
  // scaled back to a sum of 1: 4/6 and 2/6.
  const std::vector<float> probs = {0.4f, 0.3f, 0.2f, 0.1f};
  const std::vector<uint8_t> cached = {0, 0, 1, 1};
  std::vector<int> ids = {0, 1};
  std::vector<float> w = {4.f / 7, 3.f / 7};
  CacheAwareCounts c;
  prefer_cached(0.4f, probs.data(), 4, 1, 2, cached.data(), true, ids.data(), w.data(), c);
  EXPECT_EQ(ids, (std::vector<int>{0, 2}));
  EXPECT_NEAR(w[0], 4.f / 6, 1e-6);
  EXPECT_NEAR(w[1], 2.f / 6, 1e-6);
  EXPECT_EQ(c.picks, 2);
  EXPECT_EQ(c.uncached, 2);
  EXPECT_EQ(c.swapped, 1);
  // Without renormalisation (Qwen2-MoE) the weight is the score ratio alone.
  ids = {0, 1};
  w = {0.4f, 0.3f};
  prefer_cached(0.4f, probs.data(), 4, 1, 2, cached.data(), false, ids.data(), w.data(), c);
  EXPECT_EQ(ids, (std::vector<int>{0, 2}));
  EXPECT_NEAR(w[1], 0.2f, 1e-7);
  EXPECT_FLOAT_EQ(w[0], 0.4f);
  // Margin 0.2: floor 0.24 for pick 1, expert 2 (0.2) is outside it: nothing moves.
  ids = {0, 1};
  w = {4.f / 7, 3.f / 7};
  prefer_cached(0.2f, probs.data(), 4, 1, 2, cached.data(), true, ids.data(), w.data(), c);
  EXPECT_EQ(ids, (std::vector<int>{0, 1}));
}

TEST(Router, PreferCachedMarginZeroChangesNothingAndSwapsStayWithinTheMargin) {
  std::mt19937 rng(7);
  const int E = 16, k = 4, n = 300;
  for (float margin : {0.f, 0.1f, 0.5f, 1.f}) {
    for (bool renormalise : {false, true}) {
      std::vector<float> logits(n * E), probs(n * E), w(n * k);
      std::vector<int> ids(n * k);
      std::normal_distribution<float> z(0.f, 1.5f);
      // Some ties: scores rounded to a coarse grid.
      for (float& x : logits) x = std::round(z(rng) * 4.f) / 4.f;
      RouterRule rule;
      rule.norm_topk = renormalise;
      route({.n_expert = E, .k = k, .rule = rule}, logits.data(), n, probs.data(), ids.data(),
            w.data());
      std::vector<uint8_t> cached(E);
      for (auto& c : cached) c = rng() % 2;
      const std::vector<int> ids0 = ids;
      const std::vector<float> w0 = w;
      CacheAwareCounts c;
      prefer_cached(margin, probs.data(), E, n, k, cached.data(), renormalise, ids.data(), w.data(),
                    c);
      if (margin == 0.f) {
        EXPECT_EQ(ids, ids0);
        EXPECT_EQ(std::memcmp(w.data(), w0.data(), w.size() * sizeof(float)), 0);
        EXPECT_EQ(c.swapped, 0);
        continue;
      }
      int64_t swapped = 0;
      for (int t = 0; t < n; ++t) {
        float sum0 = 0, sum = 0;
        for (int j = 0; j < k; ++j) {
          const int before = ids0[t * k + j], after = ids[t * k + j];
          sum0 += w0[t * k + j];
          sum += w[t * k + j];
          // No expert twice.
          for (int i = 0; i < j; ++i) EXPECT_NE(ids[t * k + i], after);
          if (before == after) {
            // Kept: cached, or no cached expert outside the picks was within the margin.
            if (!cached[before]) {
              for (int e = 0; e < E; ++e) {
                const bool picked = std::find(ids.begin() + t * k, ids.begin() + (t + 1) * k, e) !=
                                    ids.begin() + (t + 1) * k;
                if (cached[e] && !picked)
                  EXPECT_LT(probs[t * E + e], (1 - margin) * probs[t * E + before]);
              }
            }
            continue;
          }
          ++swapped;
          EXPECT_FALSE(cached[before]);
          EXPECT_TRUE(cached[after]);
          EXPECT_GE(probs[t * E + after], (1 - margin) * probs[t * E + before]);
        }
        if (renormalise) EXPECT_NEAR(sum, sum0, 1e-5);
      }
      EXPECT_EQ(swapped, c.swapped);
      EXPECT_GT(c.swapped, 0) << "margin " << margin;
    }
  }
}

}  // namespace
}  // namespace mcmoe::moe

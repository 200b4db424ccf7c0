// Every routing rule on hand-made logits whose picks and weights are worked out here.
#include "moe/router.h"

#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace mcmoe::moe

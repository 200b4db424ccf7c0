// Expert reduction's building blocks: linear assignment, neuron alignment, merging, the
// merged-router fold, REAP scores and the per-layer keep rules, on handcrafted inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "compress/expert_merge.h"
#include "compress/linear_assignment.h"
#include "compress/reduce_plan.h"
#include "compress/reduce_stats.h"
#include "core/error.h"
#include "moe/router.h"

namespace mcmoe::compress {
namespace {

double assignment_cost(const std::vector<double>& cost, int n, const std::vector<int>& col) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += cost[i * n + col[i]];
  return s;
}

TEST(LinearAssignment, EqualsBruteForceOnRandomMatrices) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + trial % 7;
    std::vector<double> cost(static_cast<size_t>(n * n));
    // Integer costs make ties common, which is where a wrong solver slips.
    std::uniform_int_distribution<int> pick(trial % 2 ? -5 : -1000, trial % 2 ? 5 : 1000);
    for (double& c : cost) c = pick(rng);
    const std::vector<int> got = solve_linear_assignment(cost, n);
    std::vector<int> sorted = got;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    ASSERT_EQ(sorted, perm) << "not a permutation, n " << n;
    double best = 1e300;
    do {
      best = std::min(best, assignment_cost(cost, n, perm));
    } while (std::next_permutation(perm.begin(), perm.end()));
    EXPECT_DOUBLE_EQ(assignment_cost(cost, n, got), best) << "trial " << trial << " n " << n;
  }
}

TEST(LinearAssignment, RejectsBadInput) {
  EXPECT_THROW(solve_linear_assignment({1, 2, 3}, 2), Error);
  EXPECT_THROW(solve_linear_assignment({1, std::nan(""), 3, 4}, 2), Error);
  EXPECT_TRUE(solve_linear_assignment({}, 0).empty());
}

DenseExpert random_expert(int64_t d, int64_t ff, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  auto mat = [&](int64_t r, int64_t c) {
    DenseMatrix m{r, c, std::vector<float>(static_cast<size_t>(r * c))};
    for (float& x : m.data) x = g(rng);
    return m;
  };
  DenseExpert e;
  e.gate = mat(ff, d);
  e.up = mat(ff, d);
  e.down = mat(d, ff);
  return e;
}

void expect_same(const DenseExpert& a, const DenseExpert& b) {
  EXPECT_EQ(a.gate.data, b.gate.data);
  EXPECT_EQ(a.up.data, b.up.data);
  EXPECT_EQ(a.down.data, b.down.data);
}

TEST(ExpertMerge, AlignmentRecoversARandomPermutation) {
  ThreadPool pool(2);
  const DenseExpert a = random_expert(32, 96, 5);
  std::vector<int> perm(96);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(9));
  const DenseExpert b = permute_neurons(a, perm);
  ASSERT_NE(b.gate.data, a.gate.data);
  const std::vector<int> align = align_neurons(a, b, pool);
  // b's neuron align[i] sits where a has neuron i: the inverse of perm.
  for (int i = 0; i < 96; ++i) EXPECT_EQ(perm[align[i]], i);
  expect_same(permute_neurons(b, align), a);
}

TEST(ExpertMerge, MergingIdenticalExpertsIsExact) {
  ThreadPool pool(2);
  const DenseExpert a = random_expert(32, 64, 7);
  std::vector<int> perm(64);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  // The same function three times, one copy with its neurons shuffled.
  const std::vector<DenseExpert> members{a, permute_neurons(a, perm), a};
  expect_same(merge_experts(members, {3, 1, 2}, 0, pool), a);
  expect_same(merge_experts(members, {0, 0, 0}, 0, pool), a);  // never routed: equal weights
}

TEST(ExpertMerge, AverageIsFrequencyWeighted) {
  DenseExpert a = random_expert(4, 8, 1), b = random_expert(4, 8, 2);
  const DenseExpert m = average_experts({&a, &b}, {3, 1});
  for (size_t i = 0; i < m.gate.data.size(); ++i) EXPECT_FLOAT_EQ(m.gate.data[i], 0.75f * a.gate.data[i] + 0.25f * b.gate.data[i]);
  for (size_t i = 0; i < m.down.data.size(); ++i) EXPECT_FLOAT_EQ(m.down.data[i], 0.75f * a.down.data[i] + 0.25f * b.down.data[i]);
}

TEST(MergedRouter, DuplicatePicksAreSummedAndRunOnce) {
  // Four router rows, rows 0 and 2 merged into expert 0, row 1 → expert 1, row 3 → expert 2.
  const int map[4] = {0, 1, 0, 2};
  const float probs[3 * 4] = {0.4f, 0.1f, 0.3f, 0.2f,   // picks rows 0, 2: same expert
                              0.1f, 0.5f, 0.1f, 0.3f,   // rows 1, 3: different experts
                              0.2f, 0.1f, 0.6f, 0.1f};  // rows 2, 0: same expert, reversed
  int ids[3 * 2] = {0, 2, 1, 3, 2, 0};
  float w[3 * 2] = {0.6f, 0.4f, 0.625f, 0.375f, 0.75f, 0.25f};
  float merged[3 * 3];
  moe::fold_merged_picks(map, 4, 3, 3, 2, probs, merged, ids, w);
  EXPECT_EQ(ids[0], 0);
  EXPECT_EQ(ids[1], -1);
  EXPECT_FLOAT_EQ(w[0], 1.0f);
  EXPECT_EQ(w[1], 0.f);
  EXPECT_EQ(ids[2], 1);
  EXPECT_EQ(ids[3], 2);
  EXPECT_FLOAT_EQ(w[2], 0.625f);
  EXPECT_FLOAT_EQ(w[3], 0.375f);
  EXPECT_EQ(ids[4], 0);
  EXPECT_EQ(ids[5], -1);
  EXPECT_FLOAT_EQ(w[4], 1.0f);
  const float want[9] = {0.7f, 0.1f, 0.2f, 0.2f, 0.5f, 0.3f, 0.8f, 0.1f, 0.1f};
  for (int i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(merged[i], want[i]) << i;
}

TEST(ReduceStats, ReapScoreIsMeanGateTimesOutputNorm) {
  ReduceCollector col(3, 2, 0);
  // Expert 1 gets two rows: gates 0.5 and 1.0, outputs of norm 2 (= |(0, 2)|) and 5 (= |(3, 4)|).
  const int64_t rows[2] = {0, 3};
  const float out[4] = {0.f, 2.f, 3.f, 4.f};
  const float in[4] = {1.f, 1.f, 1.f, 1.f};
  const float gates[2] = {0.5f, 1.0f};
  col.on_expert({.layer = 0, .expert = 1, .token_rows = rows, .input = in, .output = out, .hidden = nullptr,
                 .weights = gates, .n_embd = 2, .n_ff = 4});
  // Expert 2: one row, gate 0.25, output norm 8: a larger output but a smaller gate.
  const int64_t row2[1] = {1};
  const float out2[2] = {8.f, 0.f};
  const float gate2[1] = {0.25f};
  col.on_expert({.layer = 0, .expert = 2, .token_rows = row2, .input = in, .output = out2, .hidden = nullptr,
                 .weights = gate2, .n_embd = 2, .n_ff = 4});
  const LayerReduceStats& s = col.stats();
  EXPECT_DOUBLE_EQ(s.reap(0), 0.0);  // never routed
  EXPECT_DOUBLE_EQ(s.reap(1), (0.5 * 2 + 1.0 * 5) / 2);
  EXPECT_DOUBLE_EQ(s.reap(2), 2.0);
  EXPECT_EQ(top_experts(s.reap_scores(), 1), std::vector<int>{1});
  const std::vector<double> f = s.frequencies();
  EXPECT_DOUBLE_EQ(f[1], 2.0 / 3);
  EXPECT_DOUBLE_EQ(f[2], 1.0 / 3);
}

TEST(ReducePlan, KeepOutsideZeroOneIsAnError) {
  for (double keep : {0.0, -0.5, 1.01, 2.0}) {
    try {
      check_keep(keep);
      ADD_FAILURE() << keep;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--keep"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("(0, 1]"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(check_keep(1.0));
  EXPECT_NO_THROW(check_keep(0.01));
  EXPECT_THROW(kept_counts({{1, 2}}, 0.0, 1, true), Error);
}

TEST(ReducePlan, UniformAndAdaptiveCounts) {
  // Layer 0: one dominant expert; layer 1: four equal ones.
  const std::vector<std::vector<double>> scores{{0.85, 0.05, 0.05, 0.05}, {0.25, 0.25, 0.25, 0.25}};
  EXPECT_EQ(kept_counts(scores, 0.5, 1, false), (std::vector<int>{2, 2}));
  EXPECT_EQ(kept_counts(scores, 1.0, 1, false), (std::vector<int>{4, 4}));
  // Adaptive: 4 of 8 kept; each layer keeps its best, the other two go to the layer whose
  // remaining experts hold larger shares.
  EXPECT_EQ(kept_counts(scores, 0.5, 1, true), (std::vector<int>{1, 3}));
  EXPECT_EQ(kept_counts(scores, 1.0, 1, true), (std::vector<int>{4, 4}));
  // The floor (top-k when pruning) holds even when the threshold says less.
  EXPECT_EQ(kept_counts(scores, 0.25, 2, true), (std::vector<int>{2, 2}));
  EXPECT_EQ(kept_counts(scores, 0.1, 2, false), (std::vector<int>{2, 2}));
  EXPECT_EQ(top_experts({0.1, 0.5, 0.5, 0.2}, 2), (std::vector<int>{1, 2}));
}

TEST(ReducePlan, RouterSimilarityAndGrouping) {
  // Columns of router logits over three tokens: 0 and 2 agree, 1 and 3 agree, 1 opposes 0.
  const std::vector<std::vector<double>> z{{1, -1, 1, -0.9}, {2, -2, 1.8, -2}, {0, 0, 0.1, 0.1}};
  std::vector<double> gram(16, 0.0);
  for (const auto& t : z) {
    for (int i = 0; i < 4; ++i) {
      for (int j = 0; j < 4; ++j) gram[i * 4 + j] += t[i] * t[j];
    }
  }
  const std::vector<double> sim = router_similarity(gram, 4);
  EXPECT_NEAR(sim[0 * 4 + 0], 1.0, 1e-12);
  EXPECT_NEAR(sim[0 * 4 + 1], 0.0, 1e-12);  // opposite columns
  EXPECT_GT(sim[2 * 4 + 0], sim[2 * 4 + 1]);
  // Dominant experts 1 and 2: 0 joins 2, 3 joins 1; groups numbered by smallest member.
  EXPECT_EQ(group_by_similarity({1, 2}, sim, 4), (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(group_by_similarity({0, 1, 2, 3}, sim, 4), (std::vector<int>{0, 1, 2, 3}));
}

TEST(ReducePlan, AverageLinkageClustering) {
  const std::vector<std::vector<double>> pts{{0, 0}, {10, 10}, {0.5, 0}, {10, 11}, {0, 0.7}, {30, 0}};
  EXPECT_EQ(cluster_average_linkage(pts, 3), (std::vector<int>{0, 1, 0, 1, 0, 2}));
  EXPECT_EQ(cluster_average_linkage(pts, 6), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(cluster_average_linkage(pts, 1), (std::vector<int>(6, 0)));
  EXPECT_THROW(cluster_average_linkage(pts, 0), Error);
}

}  // namespace
}  // namespace mcmoe::compress

// The trace simulator (offload/cache_sim.h) on hand-built traces: exact hit counts of each
// policy, per-layer versus global pools, prefetch accounting, and Belady as an upper bound
// on random traces.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "offload/cache_sim.h"

namespace mcmoe::offload {
namespace {

constexpr uint64_t kSize = 1000;  // every expert's bytes

// picks[t][l] = the k experts of token t at layer l; predicted[t][l][a-1] = top-m guesses
// for layer l + a made after layer l (empty: no predictions).
RoutingTrace make_trace(int n_expert, const std::vector<std::vector<std::vector<int>>>& picks,
                        const std::vector<std::vector<std::vector<std::vector<int>>>>& predicted = {}) {
  RoutingTrace t;
  t.model = "hand";
  t.n_layer = static_cast<int>(picks.at(0).size());
  t.n_expert = n_expert;
  t.k = static_cast<int>(picks[0][0].size());
  t.depth = predicted.empty() ? 0 : static_cast<int>(predicted[0][0].size());
  t.m = predicted.empty() ? 1 : static_cast<int>(predicted[0][0][0].size());
  t.expert_bytes.assign(t.n_layer * n_expert, kSize);
  const int64_t n = static_cast<int64_t>(picks.size());
  t.tokens.assign(n, 5);
  t.picks.assign(n * t.n_layer * t.k, -1);
  t.weights.assign(n * t.n_layer * t.k, 0.5f);
  t.probs.assign(n * t.n_layer * n_expert, 1.f / n_expert);
  t.predicted.assign(n * t.n_layer * t.depth * t.m, -1);
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < t.n_layer; ++l) {
      for (int j = 0; j < t.k; ++j) t.picks[(i * t.n_layer + l) * t.k + j] = static_cast<int16_t>(picks[i][l][j]);
      for (int a = 0; a < t.depth; ++a) {
        for (int j = 0; j < t.m; ++j) {
          t.predicted[((i * t.n_layer + l) * t.depth + a) * t.m + j] = static_cast<int16_t>(predicted[i][l][a][j]);
        }
      }
    }
  }
  return t;
}

// The sequence of cache_policy_test.cpp: 1 layer, 4 experts, k = 1.
RoutingTrace hand_trace(const std::vector<int>& prefix = {}) {
  std::vector<std::vector<std::vector<int>>> picks;
  for (int e : prefix) picks.push_back({{e}});
  for (int e : {0, 1, 0, 2, 0, 3, 1, 0, 2, 2, 3, 2}) picks.push_back({{e}});
  return make_trace(4, picks);
}

SimResult sim(const RoutingTrace& t, const std::string& policy, uint64_t budget, int depth = 0, bool per_layer = false,
              int64_t seed_tokens = 0) {
  SimOptions o;
  o.policy = policy;
  o.budget = budget;
  o.prefetch_depth = depth;
  o.prefetch_m = 1;
  o.per_layer = per_layer;
  o.seed_tokens = seed_tokens;
  return simulate(t, o);
}

TEST(CacheSim, HandTraceHitCountsPerPolicy) {
  const RoutingTrace t = hand_trace();
  // Worked out step by step in cache_policy_test.cpp.
  EXPECT_EQ(sim(t, "lru", 2 * kSize).hits, 4);
  EXPECT_EQ(sim(t, "lfu", 2 * kSize).hits, 4);
  EXPECT_EQ(sim(t, "belady", 2 * kSize).hits, 5);
  EXPECT_EQ(sim(t, "lfu:0.01", 2 * kSize).hits, 4);
  const SimResult r = sim(t, "lru", 2 * kSize);
  EXPECT_EQ(r.accesses, 12);
  EXPECT_EQ(r.label, "lru");
  EXPECT_DOUBLE_EQ(r.hit_rate(), 4.0 / 12);
  ASSERT_EQ(r.layer_hit_rate.size(), 1u);
  EXPECT_DOUBLE_EQ(r.layer_hit_rate[0], 4.0 / 12);
  EXPECT_DOUBLE_EQ(r.bytes_read_per_token, 8.0 * kSize / 12);
  // A budget that holds everything misses only the 4 cold reads; one below an expert holds nothing.
  EXPECT_EQ(sim(t, "lru", 4 * kSize).hits, 8);
  EXPECT_EQ(sim(t, "belady", 4 * kSize).hits, 8);
  EXPECT_EQ(sim(t, "lru", kSize - 1).hits, 0);
  // One expert: hits are the immediate repeats (t9 after t8), whatever the policy.
  for (const char* p : {"lru", "lfu", "belady"}) EXPECT_EQ(sim(t, p, kSize).hits, 1) << p;
}

TEST(CacheSim, SeededLfuLearnsFromThePrefix) {
  // Five tokens of expert 1 seed LFU's counts (1 -> 5) and are not replayed: the remaining
  // tokens give the seeded answer of cache_policy_test.cpp, 3 hits (t2, t6, t9).
  const RoutingTrace t = hand_trace({1, 1, 1, 1, 1});
  const SimResult r = sim(t, "lfu-seeded", 2 * kSize, 0, false, 5);
  EXPECT_EQ(r.accesses, 12);
  EXPECT_EQ(r.hits, 3);
  EXPECT_DOUBLE_EQ(r.bytes_read_per_token, 9.0 * kSize / 12);
}

TEST(CacheSim, PerLayerPoolsVersusGlobal) {
  // Layer 0 alternates experts 0 and 1, layer 1 always uses 0. A global pool of 3 holds all
  // three; per layer, 3 experts' bytes split 1.5 / 1.5, i.e. one expert each: layer 0 always
  // misses, layer 1 hits after its first use.
  std::vector<std::vector<std::vector<int>>> picks;
  const int n = 10;
  for (int i = 0; i < n; ++i) picks.push_back({{i % 2}, {0}});
  const RoutingTrace t = make_trace(2, picks);
  const SimResult g = sim(t, "lru", 3 * kSize);
  EXPECT_EQ(g.hits, 2 * n - 3);
  const SimResult p = sim(t, "lru", 3 * kSize, 0, true);
  EXPECT_EQ(p.hits, n - 1);
  EXPECT_EQ(p.label, "lru/per-layer");
  EXPECT_DOUBLE_EQ(p.layer_hit_rate[0], 0.0);
  EXPECT_DOUBLE_EQ(p.layer_hit_rate[1], (n - 1.0) / n);
}

TEST(CacheSim, PrefetchCountsUsefulAndWastedReads) {
  // Layer 0 always uses expert 0; layer 1 (experts 3 + e in dense ids) uses 0, 1, 0, 1.
  // After layer 0 the trace predicts layer 1's pick as 0, 1, 2 (wrong), 1. Budget: 2 experts.
  //  t0: L0 miss; prefetch L1e0 (fits). L1: hit, useful.                     hits 1
  //  t1: L0 hit; prefetch L1e1 evicts L1e0 (LRU). L1: hit, useful.           hits 3
  //  t2: L0 hit; prefetch L1e2 evicts L1e1. L1 needs e0: L1e2 is protected until its layer
  //      has run, so L0e0 goes. miss.                                        hits 4
  //  t3: L0 miss (evicts L1e2); prefetch L1e1 evicts L1e0. L1: hit, useful.  hits 5
  const std::vector<std::vector<std::vector<int>>> picks = {{{0}, {0}}, {{0}, {1}}, {{0}, {0}}, {{0}, {1}}};
  const std::vector<std::vector<std::vector<std::vector<int>>>> pred = {
      {{{0}}, {{-1}}}, {{{1}}, {{-1}}}, {{{2}}, {{-1}}}, {{{1}}, {{-1}}}};
  const RoutingTrace t = make_trace(3, picks, pred);
  const SimResult r = sim(t, "lru", 2 * kSize, 1);
  EXPECT_EQ(r.label, "lru+prefetch");
  EXPECT_EQ(r.accesses, 8);
  EXPECT_EQ(r.hits, 5);
  EXPECT_EQ(r.prefetches, 4);
  EXPECT_EQ(r.useful_prefetches, 3);
  EXPECT_DOUBLE_EQ(r.layer_hit_rate[0], 2.0 / 4);
  EXPECT_DOUBLE_EQ(r.layer_hit_rate[1], 3.0 / 4);
  // Reads: 4 prefetches + 3 demand misses.
  EXPECT_DOUBLE_EQ(r.bytes_read_per_token, 7.0 * kSize / 4);
  // Without prefetch layer 1 always misses (its expert changes every token).
  const SimResult plain = sim(t, "lru", 2 * kSize);
  EXPECT_EQ(plain.hits, 3);
  EXPECT_EQ(plain.prefetches, 0);
  // Prediction quality from the trace: 3 of 4 right, one guess each.
  const PredictionQuality q = prediction_quality(t, 1, 1);
  EXPECT_DOUBLE_EQ(q.recall, 0.75);
  EXPECT_DOUBLE_EQ(q.precision, 0.75);
  EXPECT_THROW(prediction_quality(t, 2, 1), Error);
  EXPECT_THROW(prediction_quality(t, 1, 2), Error);
  EXPECT_THROW(sim(t, "lru", 2 * kSize, 2), Error);  // the trace predicts one layer ahead only
  EXPECT_THROW(sim(t, "mru", 2 * kSize), Error);
}

// Skewed, temporally local random traces: Belady's hit count is at least that of every
// other policy for equal sizes (it is the optimum), and every hit rate lies in [0, 1].
TEST(CacheSim, BeladyBoundsEveryPolicyOnRandomTraces) {
  std::mt19937 rng(5);
  for (int round = 0; round < 60; ++round) {
    const int n_layer = 1 + static_cast<int>(rng() % 3), n_expert = 4 + static_cast<int>(rng() % 6);
    const int k = 1 + static_cast<int>(rng() % 2), n = 40 + static_cast<int>(rng() % 40);
    std::vector<std::vector<std::vector<int>>> picks(n, std::vector<std::vector<int>>(n_layer));
    std::vector<double> w(n_expert);
    for (int e = 0; e < n_expert; ++e) w[e] = 1.0 / (1 + e);  // Zipf-like popularity
    std::discrete_distribution<int> popular(w.begin(), w.end());
    for (int i = 0; i < n; ++i) {
      for (int l = 0; l < n_layer; ++l) {
        std::vector<int>& p = picks[i][l];
        while (static_cast<int>(p.size()) < k) {
          // Half the time repeat the previous token's choice (temporal locality).
          const int e = i > 0 && rng() % 2 ? picks[i - 1][l][p.size()] : (popular(rng) + l) % n_expert;
          if (std::find(p.begin(), p.end(), e) == p.end()) p.push_back(e);
          else if (p.size() + 1 == static_cast<size_t>(k) || rng() % 2) p.push_back(-1);  // a duplicate pick: none
        }
      }
    }
    const RoutingTrace t = make_trace(n_expert, picks);
    const uint64_t cap = k + rng() % (n_layer * n_expert - k + 1);
    const bool per_layer = false;
    const SimResult best = sim(t, "belady", cap * kSize, 0, per_layer);
    EXPECT_GE(best.hit_rate(), 0.0);
    EXPECT_LE(best.hit_rate(), 1.0);
    for (const char* p : {"lru", "lfu", "lfu:3", "lfu:50"}) {
      const SimResult r = sim(t, p, cap * kSize, 0, per_layer);
      EXPECT_EQ(r.accesses, best.accesses);
      EXPECT_LE(r.hits, best.hits) << p << " beats belady: round " << round << ", cap " << cap;
      EXPECT_GE(r.hit_rate(), 0.0);
      EXPECT_LE(r.hit_rate(), 1.0);
    }
  }
}

}  // namespace
}  // namespace mcmoe::offload

// The exact bit-allocation solver against brute force, and the allocate() front end's
// budget and flag handling.
#include "compress/allocate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "common/test_util.h"
#include "core/error.h"

namespace mcmoe::compress {
namespace {

// Every assignment, the cheapest that meets the constraints (or +inf).
double brute_force(const std::vector<std::vector<double>>& cost, const std::vector<int>& widths, int64_t budget,
                   bool top_two, int group) {
  const int n = static_cast<int>(cost.size()), m = static_cast<int>(widths.size());
  std::vector<int> sorted = widths;
  std::sort(sorted.rbegin(), sorted.rend());
  std::vector<int> pick(n, 0);
  double best = std::numeric_limits<double>::infinity();
  while (true) {
    int64_t bits = 0;
    double c = 0;
    for (int i = 0; i < n; ++i) {
      bits += widths[pick[i]];
      c += cost[i][pick[i]];
    }
    bool ok = bits == budget;
    for (int g0 = 0; ok && top_two && g0 < n; g0 += group) {
      bool top = false, second = false;
      for (int i = g0; i < g0 + group; ++i) {
        top |= widths[pick[i]] == sorted[0];
        second |= widths[pick[i]] == sorted[1];
      }
      ok = top && second;
    }
    if (ok) best = std::min(best, c);
    int i = 0;
    while (i < n && ++pick[i] == m) pick[i++] = 0;
    if (i == n) break;
  }
  return best;
}

TEST(Allocate, ExactSolverEqualsBruteForce) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  int checked = 0, infeasible = 0;
  for (int trial = 0; trial < 120; ++trial) {
    const int n = 4 + trial % 5;  // 4..8 items
    const std::vector<int> widths = trial % 2 ? std::vector<int>{1, 2, 3} : std::vector<int>{2, 3, 4};
    const bool top_two = trial % 3 != 0;
    const int group = (n % 2 == 0 && trial % 4 == 1) ? n / 2 : n;
    std::vector<std::vector<double>> cost(n, std::vector<double>(widths.size()));
    for (auto& row : cost) {
      // Costs fall with width, as errors do, with random slopes.
      const double scale = u(rng) * 10;
      for (size_t j = 0; j < widths.size(); ++j) row[j] = scale * std::pow(0.3 + 0.4 * u(rng), widths[j]);
    }
    const int64_t budget = n * widths.front() + static_cast<int64_t>(u(rng) * n * (widths.back() - widths.front() + 1));
    const double want = brute_force(cost, widths, budget, top_two, group);
    if (!std::isfinite(want)) {
      EXPECT_THROW(solve_allocation(cost, widths, budget, top_two, group), Error) << "trial " << trial;
      ++infeasible;
      continue;
    }
    const std::vector<int> got = solve_allocation(cost, widths, budget, top_two, group);
    double c = 0;
    int64_t bits = 0;
    for (int i = 0; i < n; ++i) {
      c += cost[i][got[i]];
      bits += widths[got[i]];
    }
    EXPECT_EQ(bits, budget) << "trial " << trial;
    EXPECT_NEAR(c, want, 1e-12 * std::max(1.0, want)) << "trial " << trial;
    ++checked;
  }
  EXPECT_GT(checked, 40);  // 55 of 120 with this seed
  EXPECT_GT(infeasible, 0);  // the generator does reach the constraint's edge
}

CalibrationStats fake_stats(int layers, int experts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.01, 1);
  CalibrationStats s;
  s.model.n_layer = layers;
  s.model.n_expert = experts;
  s.candidates = {1, 2, 3, 4};
  s.layers.resize(layers);
  for (auto& L : s.layers) {
    L.experts.resize(experts);
    for (auto& e : L.experts) {
      e.picks = static_cast<int64_t>(u(rng) * 1000);
      e.mass = u(rng) * 100;
      const double scale = u(rng);
      for (int b = 1; b <= 4; ++b) {
        e.eps[b] = scale * std::pow(0.5, b);
        e.hawq[b] = u(rng) * std::pow(0.25, b);
      }
    }
  }
  return s;
}

TEST(Allocate, PlansMeetTheBudgetExactlyForEveryMethod) {
  const CalibrationStats s = fake_stats(4, 64, 3);
  for (AllocMethod m : {AllocMethod::kPmq, AllocMethod::kHessian, AllocMethod::kFrequency, AllocMethod::kRandom}) {
    for (double bits : {1.5, 2.0, 2.5}) {
      AllocOptions o;
      o.method = m;
      o.avg_bits = bits;
      const BitPlan p = allocate(s, o, {});
      for (const auto& layer : p.bits) {
        int sum = 0, at3 = 0, at2 = 0;
        for (int b : layer) {
          sum += b;
          at3 += b == 3;
          at2 += b == 2;
        }
        EXPECT_EQ(sum, static_cast<int>(bits * 64)) << alloc_method_name(m) << " " << bits;
        EXPECT_GE(at3, 1);
        EXPECT_GE(at2, 1);
      }
    }
  }
}

TEST(Allocate, PmqGivesMoreBitsToImportantExperts) {
  CalibrationStats s = fake_stats(1, 8, 5);
  for (int e = 0; e < 8; ++e) {
    auto& x = s.layers[0].experts[e];
    x.picks = e == 0 ? 10000 : 10;  // expert 0 takes almost all traffic
    x.mass = e == 0 ? 1000 : 1;
    for (int b = 1; b <= 4; ++b) x.eps[b] = std::pow(0.5, b);
  }
  AllocOptions o;
  o.avg_bits = 2.0;
  const BitPlan p = allocate(s, o, {});
  EXPECT_EQ(p.bits[0][0], 3);
}

// --freq-floor: an expert the calibration never reached has ε = 0 at every width, so PMQ
// puts it at the bottom whatever it does elsewhere. With the floor it counts as used an even
// share, with the layer's median error per unit of share: here that beats rare experts whose
// measured error per share is a tenth of the others'.
TEST(Allocate, FreqFloorLiftsAnExpertTheCalibrationNeverReached) {
  CalibrationStats s = fake_stats(1, 8, 5);
  for (int e = 0; e < 8; ++e) {
    auto& x = s.layers[0].experts[e];
    x.picks = e < 4 ? 100 : e < 7 ? 10 : 0;  // 0..3 frequent, 4..6 rare, 7 never reached
    x.mass = static_cast<double>(x.picks);
    const double per_pick = e < 4 ? 1.0 : 0.1;
    for (int b = 1; b <= 4; ++b)
      x.eps[b] = static_cast<double>(x.picks) * per_pick * std::pow(0.5, b);
  }
  AllocOptions o;
  o.candidates = {2, 3};
  o.avg_bits = 2.625;  // five experts at 3 bits
  auto at3 = [&](const BitPlan& p) {
    std::vector<int> ids;
    for (int e = 0; e < 8; ++e) {
      if (p.bits[0][e] == 3) ids.push_back(e);
    }
    return ids;
  };
  const BitPlan plain = allocate(s, o, {});
  const std::vector<int> plain3 = at3(plain);
  ASSERT_EQ(plain3.size(), 5u);
  EXPECT_EQ(std::vector<int>(plain3.begin(), plain3.begin() + 4), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(plain.bits[0][7], 2);
  o.freq_floor = 1.0;
  EXPECT_EQ(at3(allocate(s, o, {})), (std::vector<int>{0, 1, 2, 3, 7}));
  // A small floor counts the unreached expert as barely used: the rare ones still win.
  o.freq_floor = 0.01;
  EXPECT_EQ(allocate(s, o, {}).bits[0][7], 2);
}

// --layer-bits: listed layers get their own average, the rest share what is left.
TEST(Allocate, LayerBitsWidenListedLayersWithinTheModelsBudget) {
  const CalibrationStats s = fake_stats(3, 8, 4);
  AllocOptions o;
  o.candidates = {2, 3};
  o.avg_bits = 2.5;
  o.layer_bits = {{0, 3.0}};
  const BitPlan p = allocate(s, o, {});
  EXPECT_EQ(p.bits[0], std::vector<int>(8, 3));
  for (int l : {1, 2})
    EXPECT_EQ(std::count(p.bits[l].begin(), p.bits[l].end(), 3), 2) << l;  // 2.25
  EXPECT_DOUBLE_EQ(p.average(), 2.5);
  o.layer_bits = {{0, 2.0}};
  o.avg_bits = 2.9;  // the rest would need 3.35 bits
  EXPECT_NE(test::error_of([&] { allocate(s, o, {}); }).find("layer 1 would average 3.3500 bits"),
            std::string::npos);
  o.layer_bits = {{3, 3.0}};
  EXPECT_NE(test::error_of([&] { allocate(s, o, {}); }).find("layer 3 is not a MoE layer"),
            std::string::npos);
  o.layer_bits = {{0, 3.0}};
  o.avg_bits = 2.5;
  o.global = true;
  EXPECT_NE(test::error_of([&] { allocate(s, o, {}); }).find("takes no --global"),
            std::string::npos);
}

TEST(Allocate, GlobalBudgetSpansLayers) {
  const CalibrationStats s = fake_stats(3, 8, 9);
  AllocOptions o;
  o.avg_bits = 2.5;
  o.global = true;
  const std::vector<std::vector<int64_t>> params(3, std::vector<int64_t>(8, 3 * 512 * 256));
  const BitPlan p = allocate(s, o, params);
  EXPECT_DOUBLE_EQ(p.average(), 2.5);
  for (const auto& layer : p.bits) {
    EXPECT_NE(std::find(layer.begin(), layer.end(), 3), layer.end());
    EXPECT_NE(std::find(layer.begin(), layer.end(), 2), layer.end());
  }
}

TEST(Allocate, WidestBudgetDropsTheTopTwoConstraintWithANote) {
  const CalibrationStats s = fake_stats(1, 8, 1);
  AllocOptions o;
  o.avg_bits = 3.0;
  const BitPlan p = allocate(s, o, {});
  EXPECT_EQ(p.bits[0], std::vector<int>(8, 3));
  EXPECT_FALSE(p.notes.empty());
}

// quantize's default from 2 bits up is {2,3}: at exactly 2 bits every expert gets 2, with
// the same note (also with one budget across layers).
TEST(Allocate, NarrowestBudgetDropsTheTopTwoConstraintWithANote) {
  const CalibrationStats s = fake_stats(2, 8, 1);
  AllocOptions o;
  o.avg_bits = 2.0;
  o.candidates = {2, 3};
  for (bool global : {false, true}) {
    o.global = global;
    const BitPlan p = allocate(s, o, {});
    for (const auto& layer : p.bits) EXPECT_EQ(layer, std::vector<int>(8, 2));
    ASSERT_FALSE(p.notes.empty());
    EXPECT_NE(p.notes.back().find("narrowest"), std::string::npos) << p.notes.back();
  }
  o.global = false;
  o.avg_bits = 2.25;  // just above: the constraint holds again
  const BitPlan q = allocate(s, o, {});
  for (const auto& layer : q.bits) EXPECT_EQ(std::count(layer.begin(), layer.end(), 3), 2);
}

TEST(Allocate, BadBudgetsAndMethodsFailClearly) {
  const CalibrationStats s = fake_stats(1, 8, 1);
  AllocOptions o;
  o.avg_bits = 3.5;  // above the widest candidate
  try {
    allocate(s, o, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 3]"), std::string::npos) << e.what();
  }
  o.avg_bits = 0.5;
  EXPECT_THROW(allocate(s, o, {}), Error);
  o.avg_bits = 2.5;
  o.method = AllocMethod::kUniform;
  EXPECT_THROW(allocate(s, o, {}), Error);  // uniform needs a whole width
  o.candidates = {1, 5};
  o.method = AllocMethod::kPmq;
  EXPECT_THROW(allocate(s, o, {}), Error);
  EXPECT_THROW(alloc_method_from_name("greedy"), Error);
  CalibrationStats no_eps = s;
  no_eps.layers[0].experts[0].eps.erase(1);
  o.candidates = {1, 2, 3};
  EXPECT_THROW(allocate(no_eps, o, {}), Error);
}

TEST(Allocate, ScalesTo128Experts) {
  const CalibrationStats s = fake_stats(2, 128, 11);
  AllocOptions o;
  o.avg_bits = 2.25;
  const BitPlan p = allocate(s, o, {});
  EXPECT_DOUBLE_EQ(p.average(), 2.25);
}

// A plan's summed pmq cost on a domain, spelled out (φ · w^1.5 · ε with the defaults).
double pmq_cost(const CalibrationStats& s, const std::vector<std::vector<int>>& bits) {
  double c = 0;
  for (size_t l = 0; l < bits.size(); ++l) {
    for (size_t e = 0; e < bits[l].size(); ++e) {
      const LayerStats& L = s.layers[l];
      c += L.phi(static_cast<int>(e)) * std::pow(L.w(static_cast<int>(e)), 1.5) *
           L.experts[e].eps.at(bits[l][e]);
    }
  }
  return c;
}

TEST(Allocate, WorstCaseOfOneDomainIsThatDomainsPlan) {
  const CalibrationStats s = fake_stats(3, 16, 21);
  AllocOptions o;
  o.avg_bits = 2.5;
  o.candidates = {2, 3};
  const WorstCasePlan w = allocate_worst_case({&s}, o, {});
  EXPECT_EQ(w.plan.bits, allocate(s, o, {}).bits);
  ASSERT_EQ(w.regret.size(), 1u);
  EXPECT_DOUBLE_EQ(w.regret[0], 1.0);
  EXPECT_NEAR(w.own_cost[0], pmq_cost(s, w.plan.bits), 1e-12 * w.own_cost[0]);
}

// Two domains that value different experts: the worst-case plan against every plan of one
// layer of 8 experts at {2, 3} bits averaging 2.5 (70 plans). Its regrets are the plan's
// costs over each domain's optimum, and its worst regret is never above either domain's own
// plan's and, on these 20 pairs, exactly the minimax (not guaranteed in general: the best
// response to a mix of domains need not be the minimax plan, and swaps stop at a local one).
TEST(Allocate, WorstCaseMatchesTheExactMinimaxOnSmallLayers) {
  int exact = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const CalibrationStats a = fake_stats(1, 8, 100 + seed), b = fake_stats(1, 8, 200 + seed);
    AllocOptions o;
    o.avg_bits = 2.5;
    o.candidates = {2, 3};
    const WorstCasePlan w = allocate_worst_case({&a, &b}, o, {});
    const double own_a = pmq_cost(a, allocate(a, o, {}).bits),
                 own_b = pmq_cost(b, allocate(b, o, {}).bits);
    EXPECT_NEAR(w.own_cost[0], own_a, 1e-12 * own_a);
    EXPECT_NEAR(w.own_cost[1], own_b, 1e-12 * own_b);
    EXPECT_NEAR(w.regret[0], pmq_cost(a, w.plan.bits) / own_a, 1e-9);
    EXPECT_NEAR(w.regret[1], pmq_cost(b, w.plan.bits) / own_b, 1e-9);
    const double worst = std::max(w.regret[0], w.regret[1]);
    for (const auto& own : {allocate(a, o, {}).bits, allocate(b, o, {}).bits})
      EXPECT_LE(worst, std::max(pmq_cost(a, own) / own_a, pmq_cost(b, own) / own_b) + 1e-12);
    double minimax = std::numeric_limits<double>::infinity();
    for (int mask = 0; mask < 256; ++mask) {
      if (__builtin_popcount(mask) != 4) continue;
      std::vector<std::vector<int>> bits(1, std::vector<int>(8));
      for (int e = 0; e < 8; ++e) bits[0][e] = mask >> e & 1 ? 3 : 2;
      minimax = std::min(minimax, std::max(pmq_cost(a, bits) / own_a, pmq_cost(b, bits) / own_b));
    }
    EXPECT_GE(worst, minimax - 1e-12);
    EXPECT_LE(worst, minimax * 1.02) << "seed " << seed;
    exact += worst <= minimax + 1e-12;
  }
  EXPECT_EQ(exact, 20);  // multiplicative weights alone reach 17 of 20; the swaps the rest
}

TEST(Allocate, WorstCaseRefusesMismatchedDomainsAndUnmeasuredMethods) {
  const CalibrationStats a = fake_stats(2, 8, 1), b = fake_stats(2, 16, 2), c = fake_stats(3, 8, 3);
  AllocOptions o;
  o.avg_bits = 2.5;
  EXPECT_THROW(allocate_worst_case({&a, &b}, o, {}), Error);
  EXPECT_THROW(allocate_worst_case({&a, &c}, o, {}), Error);
  EXPECT_THROW(allocate_worst_case({}, o, {}), Error);
  o.method = AllocMethod::kRandom;
  EXPECT_THROW(allocate_worst_case({&a, &a}, o, {}), Error);
}

}  // namespace
}  // namespace mcmoe::compress

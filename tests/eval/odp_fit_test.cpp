// ODP thresholds within a KL budget (eval/odp_fit.h): the knapsack against brute force, and
// the fit on a random model: the chosen thresholds' predicted KL stays within the budget,
// and a bigger budget prunes more.
#include "eval/odp_fit.h"

#include <gtest/gtest.h>

#include <random>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::eval {
namespace {

TEST(ChooseWithinBudget, MatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 200; ++trial) {
    const int layers = 1 + trial % 4, options = 1 + trial % 3;
    std::vector<std::vector<double>> cost(layers), value(layers);
    for (int l = 0; l < layers; ++l) {
      for (int o = 0; o < options; ++o) {
        // Costs on the 1/4096-of-the-budget grid the solver rounds to, so it is exact here.
        cost[l].push_back(std::round(u(rng) * 2048) / 4096);
        value[l].push_back(u(rng));
      }
    }
    const double budget = 1.0;
    const std::vector<int> got = choose_within_budget(cost, value, budget);
    double best = 0, got_value = 0, got_cost = 0;
    for (int l = 0; l < layers; ++l) {
      if (got[l] >= 0) {
        got_value += value[l][got[l]];
        got_cost += std::max(cost[l][got[l]], 1.0 / 4096);
      }
    }
    std::vector<int> pick(layers, -1);
    for (;;) {  // every assignment, odometer style
      double c = 0, v = 0;
      for (int l = 0; l < layers; ++l) {
        if (pick[l] >= 0) {
          c += std::max(cost[l][pick[l]], 1.0 / 4096);  // each option takes at least one step
          v += value[l][pick[l]];
        }
      }
      if (c <= budget + 1e-12) best = std::max(best, v);
      int l = 0;
      while (l < layers && ++pick[l] == options) pick[l++] = -1;
      if (l == layers) break;
    }
    EXPECT_LE(got_cost, budget + 1e-12) << "trial " << trial;
    EXPECT_NEAR(got_value, best, 1e-9) << "trial " << trial;
  }
  // No budget: nothing chosen, whatever the costs.
  EXPECT_EQ(choose_within_budget({{0.0, 0.1}}, {{1.0, 2.0}}, 0.0), std::vector<int>{-1});
}

TEST(FitOdp, StaysWithinTheBudgetAndPrunesMoreWithMore) {
  test::TempDir dir;
  test::HfFixture f;
  f.experts = 8;
  f.layers = 2;
  test::write_hf_fixture(dir.path("m"), f);
  auto m = model::Model::load(dir.path("m"));
  std::vector<std::vector<int32_t>> windows;
  std::mt19937 rng(3);
  for (int w = 0; w < 3; ++w) {
    std::vector<int32_t> ids{m->tokenizer().bos_id()};
    for (int i = 0; i < 47; ++i) ids.push_back(static_cast<int32_t>(3 + rng() % 200));
    windows.push_back(ids);
  }
  OdpFitOptions o;
  o.quantiles = {0.2, 0.5, 0.8};
  o.kl_budget = 1e9;  // everything affordable: the largest quantile in every layer
  const OdpFitResult all = fit_odp(*m, windows, o);
  ASSERT_EQ(all.layers.size(), 2u);
  for (const OdpFitLayer& L : all.layers) {
    EXPECT_EQ(L.chosen, 2);
    EXPECT_EQ(L.picks, 3 * 48 * 2);
    // A higher threshold drops at least as much.
    EXPECT_LE(L.pruned[0], L.pruned[1]);
    EXPECT_LE(L.pruned[1], L.pruned[2]);
    EXPECT_GT(L.pruned[2], 0.3);  // 80% of second picks, less the protected tokens: > 30% of all
    for (double kl : L.kl) EXPECT_GE(kl, 0.0);
  }
  o.kl_budget = 0.5 * all.predicted_kl;
  const OdpFitResult half = fit_odp(*m, windows, o);
  EXPECT_LE(half.predicted_kl, o.kl_budget);
  EXPECT_LT(half.predicted_pruned, all.predicted_pruned);
  o.kl_budget = 0;
  EXPECT_EQ(fit_odp(*m, windows, o).predicted_pruned, 0.0);
}

}  // namespace
}  // namespace mcmoe::eval

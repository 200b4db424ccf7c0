// quant/fit_grid.h: the Highway kernels of the block fitter return the scalar references'
// bits (errors and codes) on every instruction set this build dispatches to, for every
// writable type's grid, on random, tied, zero-scale, negative-scale and overflowing inputs.
#include "quant/fit_grid.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mcmoe {
namespace {

using quant::fit::Grid;

constexpr DType kGridTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,   DType::Q5_1,
                                DType::Q8_0, DType::Q2_K, DType::Q3_K,   DType::Q4_K,
                                DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// One trial: a group of n values with a scale, a min and per-element weights.
struct Trial {
  std::vector<float> x, w;
  float dl = 0.f, ml = 0.f;
};

// Values drawn so that t = (x + ml) / dl lands on every kind of point: anywhere, exactly on a
// code or halfway between two (ties), beyond both ends, and at zero.
Trial make_trial(const Grid& g, int n, std::mt19937& rng) {
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  std::normal_distribution<float> normal(0.f, 1.f);
  Trial t;
  const int kind = static_cast<int>(rng() % 6);
  t.dl = kind == 0 ? 0.f : (unit(rng) < 0.2f ? -1.f : 1.f) * std::exp(normal(rng) - 3.f);
  if (kind == 1) t.dl = 1e-40f;  // subnormal: t overflows to ±inf
  t.ml = unit(rng) < 0.5f ? 0.f : std::fabs(normal(rng)) * 0.1f;
  const float span = static_cast<float>(g.hi - g.lo);
  for (int e = 0; e < n; ++e) {
    float code = static_cast<float>(g.lo) + unit(rng) * span * 1.2f - 0.1f * span;
    const int pick = static_cast<int>(rng() % 4);
    if (pick == 1) code = std::round(code);
    if (pick == 2) code = std::floor(code) + 0.5f;
    const float dl = t.dl == 0.f ? 0.01f : t.dl;
    t.x.push_back(pick == 3 && e % 7 == 0 ? 0.f : code * dl - t.ml);
    t.w.push_back(unit(rng) < 0.1f ? 0.f : unit(rng) * 4.f);
  }
  return t;
}

class FitGridTargets : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(FitGridTargets, GroupErrorAndCodesEqualTheReference) {
  std::mt19937 rng(11);
  for (DType type : kGridTypes) {
    const Grid g = quant::fit::grid_of(*quant::layout_of(type));
    for (int n : {16, 32, 256, 12}) {  // 12: not whole vectors, the reference's path
      for (int trial = 0; trial < 200; ++trial) {
        const Trial t = make_trial(g, n, rng);
        std::vector<int8_t> q(n), q_ref(n);
        const double e =
            quant::fit::group_error(g, t.x.data(), t.w.data(), n, t.dl, t.ml, q.data());
        const double e_ref = quant::fit::reference::group_error(g, t.x.data(), t.w.data(), n, t.dl,
                                                                t.ml, q_ref.data());
        ASSERT_TRUE(same_bits(e, e_ref))
            << dtype_name(type) << " n " << n << " trial " << trial << ": " << e << " vs " << e_ref;
        ASSERT_EQ(q, q_ref) << dtype_name(type) << " n " << n << " trial " << trial;
        ASSERT_TRUE(
            same_bits(quant::fit::group_error(g, t.x.data(), t.w.data(), n, t.dl, t.ml), e));
      }
    }
  }
}

TEST_P(FitGridTargets, GroupsErrorEqualsTheReference) {
  std::mt19937 rng(12);
  for (DType type : kGridTypes) {
    const Grid g = quant::fit::grid_of(*quant::layout_of(type));
    for (int group : {16, 32}) {
      for (int trial = 0; trial < 100; ++trial) {
        const int groups = 256 / group;
        std::vector<float> x, w, dl, ml;
        for (int j = 0; j < groups; ++j) {
          const Trial t = make_trial(g, group, rng);
          x.insert(x.end(), t.x.begin(), t.x.end());
          w.insert(w.end(), t.w.begin(), t.w.end());
          dl.push_back(t.dl), ml.push_back(t.ml);
        }
        const double e =
            quant::fit::groups_error(g, x.data(), w.data(), group, groups, dl.data(), ml.data());
        const double e_ref = quant::fit::reference::groups_error(g, x.data(), w.data(), group,
                                                                 groups, dl.data(), ml.data());
        ASSERT_TRUE(same_bits(e, e_ref)) << dtype_name(type) << " group " << group;
      }
    }
  }
}

TEST_P(FitGridTargets, NearestCodesEqualTheReference) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (DType type : kGridTypes) {
    const Grid g = quant::fit::grid_of(*quant::layout_of(type));
    for (int n : {16, 32, 12}) {
      for (int trial = 0; trial < 200; ++trial) {
        const Trial t = make_trial(g, n, rng);
        const float s = t.dl, m = t.ml, inv = t.dl == 0.f ? 0.f : 1.f / t.dl;
        const float origin = trial % 2 ? -t.ml : 0.f;
        std::vector<int> q(n), q_ref(n);
        quant::fit::nearest_scaled(g, t.x.data(), n, inv, origin, q.data());
        quant::fit::reference::nearest_scaled(g, t.x.data(), n, inv, origin, q_ref.data());
        ASSERT_EQ(q, q_ref) << dtype_name(type) << " scaled, trial " << trial;
        quant::fit::nearest_divided(g, t.x.data(), n, m, s, q.data());  // s = 0: ±inf and NaN
        quant::fit::reference::nearest_divided(g, t.x.data(), n, m, s, q_ref.data());
        ASSERT_EQ(q, q_ref) << dtype_name(type) << " divided, trial " << trial;
      }
    }
  }
}

TEST_P(FitGridTargets, LeastSquaresCandidatesEqualTheReference) {
  std::mt19937 rng(14);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  for (DType type : kGridTypes) {
    const Grid g = quant::fit::grid_of(*quant::layout_of(type));
    for (int n : {16, 32}) {
      for (int trial = 0; trial < 100; ++trial) {
        const Trial t = make_trial(g, n, rng);
        const int mode = trial % 3;  // no min, a min kept <= 0, a free offset
        const quant::fit::LeastSquaresGroup grp{.x = t.x.data(),
                                                .w = t.w.data(),
                                                .n = n,
                                                .with_min = mode > 0,
                                                .free_offset = mode == 2};
        const int cands = 1 + static_cast<int>(rng() % 41);
        std::vector<float> inv(cands);
        const float top = static_cast<float>(g.hi) * (0.5f + unit(rng));
        for (int k = 0; k < cands; ++k) inv[k] = (top + 0.05f * (k - 20)) / (1.f + unit(rng));
        if (trial % 10 == 0) inv[0] = 0.f;  // every code 0 or the nearest 0: Σ w q² may be 0
        const float origin = mode > 0 ? -t.ml : 0.f;
        std::vector<quant::fit::LeastSquares> got(cands), want(cands);
        quant::fit::least_squares_candidates(g, grp, inv.data(), cands, origin, got.data());
        quant::fit::reference::least_squares_candidates(g, grp, inv.data(), cands, origin,
                                                        want.data());
        for (int k = 0; k < cands; ++k) {
          ASSERT_TRUE(same_bits(got[k].err, want[k].err) && same_bits(got[k].s, want[k].s) &&
                      same_bits(got[k].o, want[k].o))
              << dtype_name(type) << " n " << n << " trial " << trial << " candidate " << k
              << ": err " << got[k].err << " vs " << want[k].err;
        }
      }
    }
  }
}

// The reference itself on hand-checked points: ties to even between integers, to the upper
// value in a table; clamping at the ends.
TEST(FitGridReference, NearestAndBestCodes) {
  const Grid ints{nullptr, 0, 0, 15};
  EXPECT_EQ(quant::fit::nearest_code(ints, 2.5f), 2);
  EXPECT_EQ(quant::fit::nearest_code(ints, 3.5f), 4);
  EXPECT_EQ(quant::fit::nearest_code(ints, -3.f), 0);
  EXPECT_EQ(quant::fit::nearest_code(ints, 99.f), 15);
  EXPECT_EQ(quant::fit::nearest_code(ints, std::nanf("")), 0);
  const int8_t table[] = {-10, -2, 4, 20};
  const Grid tab{table, 4, -10, 20};
  EXPECT_EQ(quant::fit::nearest_code(tab, 1.f), 4);  // halfway between -2 and 4
  EXPECT_EQ(quant::fit::nearest_code(tab, 0.9f), -2);
  EXPECT_EQ(quant::fit::nearest_code(tab, 25.f), 20);
  const float x[] = {1.f, 0.49f};
  const float w[] = {1.f, 2.f};
  int8_t q[2];
  const double err = quant::fit::reference::group_error(ints, x, w, 2, 0.5f, 0.f, q);
  EXPECT_EQ(q[0], 2);
  EXPECT_EQ(q[1], 1);
  EXPECT_NEAR(err, 2.0 * 0.01 * 0.01, 1e-9);
}

std::vector<int64_t> dispatched_targets() {
  return hwy::SupportedAndGeneratedTargets();
}

INSTANTIATE_TEST_SUITE_P(Targets, FitGridTargets, testing::ValuesIn(dispatched_targets()),
                         [](const testing::TestParamInfo<int64_t>& info) {
                           return std::string(hwy::TargetName(info.param));
                         });

}  // namespace
}  // namespace mcmoe

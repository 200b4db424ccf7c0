// HessianAccumulator against a naive double loop; GPTQ's inverse-Hessian factor against its
// definition UᵀU = (H_p + λI)⁻¹.
#include "compress/hessian.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "quant_test_util.h"

namespace mcmoe::compress {
namespace {

TEST(HessianAccumulator, MatchesNaiveDoubleLoop) {
  const int64_t cols = 37;
  // 300 rows (more than one internal chunk of 256) then 5 more in a second call.
  const std::vector<float> x = test::normal_matrix(305, cols, 11);
  HessianAccumulator acc(cols);
  acc.add(x.data(), 300);
  acc.add(x.data() + 300 * cols, 5);
  acc.add(x.data(), 0);  // no rows: no change
  std::vector<double> want(cols * cols, 0.0);
  for (int64_t r = 0; r < 305; ++r) {
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < cols; ++j)
        want[i * cols + j] += double{x[r * cols + i]} * x[r * cols + j];
    }
  }
  const std::vector<double>& h = acc.h();
  double trace = 0;
  for (int64_t i = 0; i < cols; ++i) {
    trace += want[i * cols + i];
    for (int64_t j = 0; j < cols; ++j) {
      // Both sum exact double products; only the summation order differs.
      EXPECT_NEAR(h[i * cols + j], want[i * cols + j], 1e-9 * 305) << i << "," << j;
      EXPECT_EQ(h[i * cols + j], h[j * cols + i]) << "symmetric " << i << "," << j;
    }
  }
  EXPECT_EQ(acc.count(), 305);
  EXPECT_NEAR(acc.trace(), trace, 1e-9 * trace);
}

// Affinity weighting (issue 16): all gates 1 is the unweighted Hessian, bit for bit, and a
// weight w adds w · xᵀx.
TEST(HessianAccumulator, RowWeights) {
  const int64_t cols = 19;
  const std::vector<float> x = test::normal_matrix(300, cols, 5);
  HessianAccumulator plain(cols), ones(cols), weighted(cols);
  plain.add(x.data(), 300);
  const std::vector<float> one(300, 1.f);
  ones.add(x.data(), 300, one);
  EXPECT_EQ(ones.h(), plain.h());
  EXPECT_EQ(ones.count(), 300);
  std::vector<float> w(300);
  for (int r = 0; r < 300; ++r) w[r] = static_cast<float>(r % 7) / 6.f;  // zeros included
  weighted.add(x.data(), 300, w);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0;
      for (int64_t r = 0; r < 300; ++r) want += double{w[r]} * x[r * cols + i] * x[r * cols + j];
      EXPECT_NEAR(weighted.h()[i * cols + j], want, 1e-6 * (1 + std::fabs(want))) << i << "," << j;
    }
  }
  const std::vector<float> short_w(10, 1.f);
  EXPECT_NE(test::error_of([&] {
              weighted.add(x.data(), 300, short_w);
            }).find("10 row weights for 300 rows"),
            std::string::npos);
  std::vector<float> bad = one;
  bad[42] = -0.5f;
  EXPECT_NE(
      test::error_of([&] { weighted.add(x.data(), 300, bad); }).find("row 42 has weight -0.5"),
      std::string::npos);
  bad[42] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(test::error_of([&] { weighted.add(x.data(), 300, bad); }).find("row 42 has weight nan"),
            std::string::npos);
}

TEST(HessianAccumulator, RejectsBadArguments) {
  EXPECT_NE(test::error_of([] { HessianAccumulator a(0); }).find("cols must be positive"),
            std::string::npos);
  HessianAccumulator acc(4);
  EXPECT_NE(test::error_of([&] { acc.add(nullptr, -1); }).find("negative row count"),
            std::string::npos);
}

// ‖UᵀU (H_p + λI) − I‖ for the factor of h, H_p being h permuted by f.perm with dead
// diagonals set to 1.
double inverse_residual(const GptqFactor& f, const std::vector<double>& h) {
  const int64_t n = f.cols;
  double mean_diag = 0;
  for (int64_t j = 0; j < n; ++j) mean_diag += f.dead[j] ? 1.0 : h[j * n + j];
  const double lambda = f.damp * mean_diag / n;
  std::vector<double> hp(n * n);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t a = f.perm[i], b = f.perm[j];
      hp[i * n + j] = a == b ? (f.dead[a] ? 1.0 : h[a * n + a]) + lambda : h[a * n + b];
    }
  }
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double v = 0;  // (UᵀU Hp)_ij = Σ_k Σ_m U_ki U_km Hp_mj
      for (int64_t k = 0; k < n; ++k) {
        double um = 0;
        for (int64_t m = k; m < n; ++m) um += double{f.u[k * n + m]} * hp[m * n + j];
        v += double{f.u[k * n + i]} * um;
      }
      worst = std::max(worst, std::fabs(v - (i == j ? 1.0 : 0.0)));
    }
  }
  return worst;
}

TEST(GptqFactor, InvertsTheDampedHessian) {
  const int64_t cols = 24;
  for (bool act_order : {false, true}) {
    const std::vector<float> x = test::correlated_inputs(200, cols, 5, 1.f, {3, 17});
    const std::vector<double> h = test::hessian_of(x, cols);
    const GptqFactor f = gptq_factor(h, cols, 0.01, act_order);
    EXPECT_EQ(f.dead[3], 1);
    EXPECT_EQ(f.dead[17], 1);
    EXPECT_EQ(f.dead[4], 0);
    for (int64_t i = 0; i < cols; ++i) {
      for (int64_t j = 0; j < i; ++j) EXPECT_EQ(f.u[i * cols + j], 0.f) << "lower triangle";
      EXPECT_GT(f.u[i * cols + i], 0.f);
    }
    if (act_order) {
      for (int64_t i = 1; i < cols; ++i) {
        const auto diag = [&](int64_t c) { return f.dead[c] ? 1.0 : h[c * cols + c]; };
        EXPECT_GE(diag(f.perm[i - 1]), diag(f.perm[i])) << i;
      }
    }
    // U is stored in float: relative 1e-7 per entry, amplified by cond(H) ~ 1e2 here.
    EXPECT_LT(inverse_residual(f, h), 1e-4) << "act_order " << act_order;
  }
}

TEST(GptqFactor, RejectsBadHessians) {
  const int64_t cols = 8;
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0;
  EXPECT_EQ(test::error_of([&] { gptq_factor(h, cols, 0.01, false); }), "");
  const std::vector<double> small(cols * cols - 1, 1.0);
  EXPECT_NE(test::error_of([&] {
              gptq_factor(small, cols, 0.01, false);
            }).find("expected cols² = 8² = 64"),
            std::string::npos);
  std::vector<double> bad = h;
  bad[2 * cols + 2] = -1.0;
  EXPECT_NE(
      test::error_of([&] { gptq_factor(bad, cols, 0.01, false); }).find("diagonal [2] is negative"),
      std::string::npos);
  bad = h;
  bad[5] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(test::error_of([&] { gptq_factor(bad, cols, 0.01, false); }).find("entry [0, 5]"),
            std::string::npos);
  // Rank one (all columns equal) and no damping: not positive definite.
  std::vector<double> ones(cols * cols, 1.0);
  EXPECT_NE(
      test::error_of([&] { gptq_factor(ones, cols, 0.0, false); }).find("not positive definite"),
      std::string::npos);
  EXPECT_EQ(test::error_of([&] { gptq_factor(ones, cols, 0.01, false); }), "");  // damping fixes it
  EXPECT_NE(test::error_of([&] { gptq_factor(h, cols, -1.0, false); }).find("damp"),
            std::string::npos);
}

}  // namespace
}  // namespace mcmoe::compress

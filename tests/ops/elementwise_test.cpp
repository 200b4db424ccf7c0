#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/elementwise.h"
#include "ops/rope.h"

namespace mcmoe::ops {
namespace {

TEST(Ops, DotAndAxpyMatchReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 7, 16, 31, 128, 1000, 4099}) {
    std::vector<float> a(n), b(n), y(n), y_ref(n);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = nd(rng);
      b[i] = nd(rng);
      y[i] = y_ref[i] = nd(rng);
    }
    // f32 accumulation of n products of unit normals: error ~ sqrt(n) * eps * |terms|.
    double abs_sum = 0;
    for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(a[i] * b[i]);
    EXPECT_NEAR(dot(a.data(), b.data(), n), dot_reference(a.data(), b.data(), n), 1e-6 * abs_sum + 1e-7) << n;
    axpy(0.5f, a.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      y_ref[i] += 0.5f * a[i];
      EXPECT_NEAR(y[i], y_ref[i], 1e-6f * (1 + std::fabs(y_ref[i])));
    }
  }
}

TEST(Ops, SoftmaxAndRmsNorm) {
  std::vector<float> x{1, 2, 3, 4};
  softmax(x.data(), 4);
  EXPECT_NEAR(x[0] + x[1] + x[2] + x[3], 1.f, 1e-6);
  EXPECT_NEAR(x[3] / x[2], std::exp(1.f), 1e-5);
  std::vector<float> v{3, 4}, w{1, 2}, out(2);
  rms_norm(v.data(), w.data(), out.data(), 2, 0.f);
  const float r = std::sqrt(12.5f);
  EXPECT_NEAR(out[0], 3 / r, 1e-6);
  EXPECT_NEAR(out[1], 8 / r, 1e-6);
}

TEST(Ops, RopeStylesAgreeUnderPermutation) {
  // Interleaved RoPE on permuted rows equals NeoX RoPE on the original rows, permuted:
  // the identity the converter relies on.
  const int hd = 8, half = hd / 2;
  std::vector<float> x{0.3f, -1.f, 2.f, 0.5f, 1.5f, -0.25f, 0.75f, -2.f};
  std::vector<float> perm(hd);
  for (int i = 0; i < half; ++i) {
    perm[2 * i] = x[i];
    perm[2 * i + 1] = x[i + half];
  }
  rope(x.data(), 1, hd, 37, 10000.f, model::RopeStyle::Neox);
  rope(perm.data(), 1, hd, 37, 10000.f, model::RopeStyle::Interleaved);
  for (int i = 0; i < half; ++i) {
    EXPECT_NEAR(perm[2 * i], x[i], 1e-6);
    EXPECT_NEAR(perm[2 * i + 1], x[i + half], 1e-6);
  }
}

}  // namespace
}  // namespace mcmoe::ops

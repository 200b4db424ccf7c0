#pragma once
// Random layers and calibration inputs for the quantizer and Hessian tests.
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/test_util.h"  // error_of
#include "compress/hessian.h"
#include "core/error.h"

namespace mcmoe::test {

inline std::vector<float> normal_matrix(int64_t rows, int64_t cols, uint32_t seed,
                                        float sigma = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> m(static_cast<size_t>(rows * cols));
  for (float& v : m) v = nd(rng);
  return m;
}

// X = Z · A [n, cols] with Z, A unit normal, so inputs are correlated (H = AᵀZᵀZA is far from
// diagonal), then column c scaled by exp(N(0, spread)) so diag(H) varies and act-order has
// something to sort. Columns listed in `dead` are 0 on every row.
inline std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint32_t seed,
                                            float spread = 0.f,
                                            const std::vector<int64_t>& dead = {}) {
  const std::vector<float> z = normal_matrix(n, cols, seed);
  const std::vector<float> a = normal_matrix(cols, cols, seed + 1, 1.f / std::sqrt(float(cols)));
  std::mt19937 rng(seed + 2);
  std::normal_distribution<float> nd(0.f, spread);
  std::vector<float> scale(static_cast<size_t>(cols));
  for (float& s : scale) s = std::exp(nd(rng));
  for (int64_t c : dead) scale[c] = 0.f;
  std::vector<float> x(static_cast<size_t>(n * cols), 0.f);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t k = 0; k < cols; ++k) {
      const float zk = z[r * cols + k];
      for (int64_t c = 0; c < cols; ++c) x[r * cols + c] += zk * a[k * cols + c];
    }
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] *= scale[c];
  }
  return x;
}

inline std::vector<double> hessian_of(const std::vector<float>& x, int64_t cols) {
  compress::HessianAccumulator acc(cols);
  acc.add(x.data(), static_cast<int64_t>(x.size()) / cols);
  return acc.h();
}

}  // namespace mcmoe::test

#include "ops/elementwise.h"

#include <algorithm>
#include <cmath>

namespace mcmoe::ops {

void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  // Sum of squares in double: rows are short (<= 16k) and this matches the reference's f32
  // mean to well below the 1e-3 logit tolerance either way; double removes order effects.
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

void silu_mul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
}

void swiglu_oai(float* g, const float* u, int64_t n, float alpha, float limit) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = std::min(g[i], limit);
    const float y = std::clamp(u[i], -limit, limit);
    g[i] = x / (1.f + std::exp(-alpha * x)) * (y + 1.f);
  }
}

void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// dot and axpy: ops/vec_highway.cpp (SIMD with runtime dispatch).

}  // namespace mcmoe::ops

#include "ops/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace mcmoe::ops {

RopeTable RopeTable::make(const model::RopeConfig& c) {
  RopeTable t;
  t.n_rot = c.n_rot;
  t.style = c.style;
  const int dim = c.n_rot, half = dim / 2;
  t.inv_freq.resize(half);
  // Frequencies in double, rounded once: the reference computes them in f32, ~1 ulp apart.
  for (int i = 0; i < half; ++i) t.inv_freq[i] = static_cast<float>(1.0 / std::pow(static_cast<double>(c.theta), 2.0 * i / dim));
  if (!c.yarn) return t;
  // YaRN: dimensions rotating fewer than beta_slow times over the original context are
  // interpolated (frequency ÷ factor), those rotating more than beta_fast times keep their
  // frequency, with a linear ramp between.
  const double theta = c.theta, orig = c.orig_ctx;
  auto correction_dim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * std::numbers::pi)) / (2 * std::log(theta));
  };
  double low = correction_dim(c.beta_fast), high = correction_dim(c.beta_slow);
  if (c.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;
  for (int i = 0; i < half; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);  // 1: interpolate
    const double base = 1.0 / std::pow(theta, 2.0 * i / dim);
    t.inv_freq[i] = static_cast<float>(base / c.factor * ramp + base * (1.0 - ramp));
  }
  t.mscale = c.attn_factor;
  return t;
}

void rope(float* x, int n_heads, int64_t head_stride, int64_t pos, const RopeTable& t) {
  const int half = t.n_rot / 2;
  // cos/sin once per position; heads share them. f32 angle as the reference computes it
  // (an f32 outer product of positions and inverse frequencies).
  constexpr int kStack = 256;
  float cs_stack[kStack], sn_stack[kStack];
  std::vector<float> cs_heap, sn_heap;
  float* c = cs_stack;
  float* s = sn_stack;
  if (half > kStack) {
    cs_heap.resize(half);
    sn_heap.resize(half);
    c = cs_heap.data();
    s = sn_heap.data();
  }
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * t.inv_freq[i];
    c[i] = std::cos(angle) * t.mscale;
    s[i] = std::sin(angle) * t.mscale;
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + h * head_stride;
    if (t.style == model::RopeStyle::Neox) {
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c[i] - b * s[i];
        v[2 * i + 1] = b * c[i] + a * s[i];
      }
    }
  }
}

void rope(float* x, int n_heads, int head_dim, int64_t pos, float theta, model::RopeStyle style) {
  model::RopeConfig c;
  c.theta = theta;
  c.n_rot = head_dim;
  c.style = style;
  rope(x, n_heads, head_dim, pos, RopeTable::make(c));
}

}  // namespace mcmoe::ops

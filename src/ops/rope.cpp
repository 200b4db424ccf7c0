#include "ops/rope.h"

#include <cmath>
#include <vector>

namespace mcmoe::ops {

void rope(float* x, int n_heads, int head_dim, int64_t pos, float theta, model::RopeStyle style) {
  const int half = head_dim / 2;
  // Angles in double then rounded once: at positions in the thousands an f32 product
  // pos * freq loses digits that the reference (f32 outer product) also loses, but the
  // difference stays ~1e-6 relative, far inside the logit tolerance.
  float cs[512], sn[512];
  std::vector<float> big_cs, big_sn;
  float* c = cs;
  float* s = sn;
  if (half > 512) {
    big_cs.resize(half);
    big_sn.resize(half);
    c = big_cs.data();
    s = big_sn.data();
  }
  for (int i = 0; i < half; ++i) {
    const float inv_freq = static_cast<float>(1.0 / std::pow(static_cast<double>(theta), 2.0 * i / head_dim));
    const float angle = static_cast<float>(pos) * inv_freq;
    c[i] = std::cos(angle);
    s[i] = std::sin(angle);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (style == model::RopeStyle::Neox) {
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

}  // namespace mcmoe::ops

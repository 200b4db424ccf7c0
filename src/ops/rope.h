#pragma once
// Rotary position embedding over the first n_rot dimensions of each head (the rest pass
// unchanged: partial rotary), in NeoX (halves) or interleaved (adjacent pairs) layout, with
// optional YaRN frequencies and magnitude (model::RopeConfig).
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace mcmoe::ops {

// Per-model constants of RoPE, computed once: inverse frequencies (YaRN-blended when on)
// and the factor cos and sin are multiplied by.
struct RopeTable {
  int n_rot = 0;
  model::RopeStyle style = model::RopeStyle::Neox;
  float mscale = 1.f;
  std::vector<float> inv_freq;  // [n_rot / 2]
  // As transformers' default and _compute_yarn_parameters (YaRN) compute them.
  static RopeTable make(const model::RopeConfig& c);
};

// Rotates, in place, the first t.n_rot values of each of n_heads vectors that start
// head_stride values apart, for position pos.
void rope(float* x, int n_heads, int64_t head_stride, int64_t pos, const RopeTable& t);

// Plain RoPE over whole heads of head_dim values (tests and tools).
void rope(float* x, int n_heads, int head_dim, int64_t pos, float theta, model::RopeStyle style);

}  // namespace mcmoe::ops

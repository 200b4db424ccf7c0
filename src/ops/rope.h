#pragma once
#include <cstdint>

#include "model/config.h"

namespace mcmoe::ops {

// Rotates each of n_heads heads of size head_dim in x (laid out [n_heads, head_dim]) for
// position pos. Neox pairs (i, i + d/2); Interleaved pairs (2i, 2i + 1); both use the
// frequency theta^(-2i/d) for pair i.
void rope(float* x, int n_heads, int head_dim, int64_t pos, float theta, model::RopeStyle style);

}  // namespace mcmoe::ops

// Activation quantization: the row layout and the reference quantizer every SIMD version
// must reproduce bit for bit (tests/kernels/ compare them with memcmp).
#include <cmath>
#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/kernels.h"

namespace mcmoe::kernels {

ActRowLayout act_row_layout(int64_t cols) {
  ActRowLayout l;
  l.nb = cols / 32;
  l.nbp = (l.nb + kActChunk - 1) / kActChunk * kActChunk;
  const size_t nbp = static_cast<size_t>(l.nbp);
  l.d_off = nbp * 32;
  l.sd_off = l.d_off + nbp * 4;
  l.dx4_off = l.sd_off + nbp * 4;
  l.nq4_off = l.dx4_off + nbp * 16;
  l.bytes = l.nq4_off + nbp * 16;  // 72 * nbp, a multiple of 64 since nbp % 16 == 0
  return l;
}

void quantize_acts_ref(const float* x, int64_t cols, void* dst, ActLayout layout) {
  const ActRowLayout l = act_row_layout(cols);
  auto* base = static_cast<uint8_t*>(dst);
  std::memset(base, 0, l.bytes);  // padding blocks are all zero (see kernels.h)
  auto* codes = reinterpret_cast<int8_t*>(base);
  auto* d_out = reinterpret_cast<float*>(base + l.d_off);
  auto* sd_out = reinterpret_cast<float*>(base + l.sd_off);
  auto* dx4_out = reinterpret_cast<float*>(base + l.dx4_off);
  auto* nq4_out = reinterpret_cast<int32_t*>(base + l.nq4_off);
  for (int64_t b = 0; b < l.nb; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    // Same arithmetic as quant/quantize.cpp's Q8_0 (d = amax / 127, codes = lround(x / d)
    // computed as x * (1 / d)), so an activation row quantizes like a Q8_0 weight row.
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    int8_t q[32];
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      q[j] = static_cast<int8_t>(std::lround(xb[j] * id));
      sum += q[j];
    }
    int8_t* lo;  // destination of elements 0..15 and 16..31
    int8_t* hi;
    if (layout == ActLayout::kNatural) {
      lo = codes + b * 32;
      hi = lo + 16;
    } else {
      lo = codes + (b / 4) * 128 + (b % 4) * 16;
      hi = lo + 64;
    }
    std::memcpy(lo, q, 16);
    std::memcpy(hi, q + 16, 16);
    d_out[b] = d;
    sd_out[b] = d * static_cast<float>(sum);
    for (int k = 0; k < 4; ++k) {
      dx4_out[b * 4 + k] = d;
      nq4_out[b * 4 + k] = -sum;
    }
  }
}

namespace scalar {
void quantize_acts(const float* x, int64_t cols, void* dst) {
  quantize_acts_ref(x, cols, dst, ActLayout::kNatural);
}
}  // namespace scalar

}  // namespace mcmoe::kernels

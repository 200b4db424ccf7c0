// Portable kernels: the fallback on CPUs without AVX2 and the readable statement of what the
// SIMD files compute. Activations for Q8_0 / Q4_0 are in the natural layout (kernels.h).
#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_sets.h"

namespace mcmoe::kernels::scalar {

namespace {

constexpr int64_t kChunk = 256;  // elements widened to f32 at a time (stack buffer)
constexpr int64_t kTokens = 8;   // tokens sharing one widened chunk

template <WFormat F>
void widen(const uint8_t* src, float* dst, int64_t n) {
  if constexpr (F == WFormat::kF32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = F == WFormat::kF16 ? mcmoe::fp16_to_f32(h) : mcmoe::bf16_to_f32(h);
    }
  }
}

template <WFormat F>
void gemm_float(const GemmArgs& a) {
  constexpr size_t kElemBytes = F == WFormat::kF32 ? 4 : 2;
  float wbuf[kChunk];
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokens) {
      const int64_t nt = std::min(kTokens, a.n_tokens - t0);
      float acc[kTokens] = {};
      for (int64_t c0 = 0; c0 < a.cols; c0 += kChunk) {
        const int64_t nc = std::min(kChunk, a.cols - c0);
        widen<F>(wrow + c0 * kElemBytes, wbuf, nc);
        for (int64_t t = 0; t < nt; ++t) {
          const auto* x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(a.x) +
                                                         (t0 + t) * a.x_stride) +
                          c0;
          float s = 0.f;
          for (int64_t c = 0; c < nc; ++c) s += wbuf[c] * x[c];
          acc[t] += s;
        }
      }
      for (int64_t t = 0; t < nt; ++t) a.y[(t0 + t) * a.ldy + r] = acc[t];
    }
  }
}

// Integer dot of one weight block with one activation block, codes as stored (Q4_0's minus
// its offset 8), times the two scales.
template <WFormat F>
float block_dot(const uint8_t* wb, const int8_t* xq, float dx) {
  uint16_t dh;
  std::memcpy(&dh, wb, 2);
  int32_t isum = 0;
  if constexpr (F == WFormat::kQ8_0) {
    const auto* q = reinterpret_cast<const int8_t*>(wb + 2);
    for (int j = 0; j < 32; ++j) isum += q[j] * xq[j];
  } else {
    const uint8_t* q = wb + 2;
    for (int j = 0; j < 16; ++j) {
      isum += ((q[j] & 0x0f) - 8) * xq[j] + ((q[j] >> 4) - 8) * xq[j + 16];
    }
  }
  return static_cast<float>(isum) * (mcmoe::fp16_to_f32(dh) * dx);
}

template <WFormat F>
void gemm_quant(const GemmArgs& a) {
  constexpr size_t kBlockBytes = F == WFormat::kQ8_0 ? 34 : 18;
  const ActRowLayout l = act_row_layout(a.cols);
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const auto* xrow = static_cast<const uint8_t*>(a.x) + t * a.x_stride;
      const auto* xq = reinterpret_cast<const int8_t*>(xrow);
      const auto* dx = reinterpret_cast<const float*>(xrow + l.d_off);
      float acc = 0.f;
      for (int64_t b = 0; b < l.nb; ++b) {
        acc += block_dot<F>(wrow + b * kBlockBytes, xq + b * 32, dx[b]);
      }
      a.y[t * a.ldy + r] = acc;
    }
  }
}

}  // namespace

void gemm_f32(const GemmArgs& a) {
  gemm_float<WFormat::kF32>(a);
}
void gemm_f16(const GemmArgs& a) {
  gemm_float<WFormat::kF16>(a);
}
void gemm_bf16(const GemmArgs& a) {
  gemm_float<WFormat::kBF16>(a);
}
void gemm_q8_0(const GemmArgs& a) {
  gemm_quant<WFormat::kQ8_0>(a);
}
void gemm_q4_0(const GemmArgs& a) {
  gemm_quant<WFormat::kQ4_0>(a);
}

void f32_to_f32(const void* src, float* dst, int64_t n) {
  widen<WFormat::kF32>(static_cast<const uint8_t*>(src), dst, n);
}
void f16_to_f32(const void* src, float* dst, int64_t n) {
  widen<WFormat::kF16>(static_cast<const uint8_t*>(src), dst, n);
}
void bf16_to_f32(const void* src, float* dst, int64_t n) {
  widen<WFormat::kBF16>(static_cast<const uint8_t*>(src), dst, n);
}

}  // namespace mcmoe::kernels::scalar

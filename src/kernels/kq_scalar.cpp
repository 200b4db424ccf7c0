// Portable kernels for ggml's Q4_1 / Q5_0 / Q5_1 and K-quant weights (quant/kquants.h) and
// its i-quant, ternary and MXFP4 weights (quant/iquants.h, the same integer form)
// against int8 activation blocks in the natural layout: the fallback on CPUs without AVX2 and
// the readable statement of what kq_avx2.cpp and kq_avx512.cpp compute.
//
// Each weight block is unpacked once per row and token chunk into its integer form
// value = d · scale · q − dmin · min (per 16 weights), so one activation block of 32 (codes qx,
// scale dx) contributes, per 16-weight section,
//   dx · (d · scale · Σ q·qx − dmin · min · Σ qx)
// with both sums exact in integers.
#include <algorithm>

#include "kernels/kernel_sets.h"
#include "quant/iquants.h"
#include "quant/kquants.h"

namespace mcmoe::kernels::scalar {

namespace {

constexpr int64_t kTokens = 8;  // tokens sharing one unpacked block

template <DType T>
void gemm_typed(const GemmArgs& a) {
  const DTypeTraits& tr = dtype_traits(T);
  const int64_t n_blocks = a.cols / tr.block_size;
  const int64_t act_per_block = tr.block_size / 32;
  const ActRowLayout l = act_row_layout(a.cols);
  quant::IntBlock wb;
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokens) {
      const int64_t nt = std::min(kTokens, a.n_tokens - t0);
      float acc[kTokens] = {};
      for (int64_t k = 0; k < n_blocks; ++k) {
        quant::decode_block(T, wrow + k * tr.block_bytes, &wb);
        float dl[16], ml[16];
        for (int s = 0; s < wb.n / 16; ++s) {
          dl[s] = wb.d * static_cast<float>(wb.scale[s]);
          ml[s] = wb.dmin * static_cast<float>(wb.min[s]);
        }
        for (int64_t t = 0; t < nt; ++t) {
          const auto* xrow = static_cast<const uint8_t*>(a.x) + (t0 + t) * a.x_stride;
          const auto* dx = reinterpret_cast<const float*>(xrow + l.d_off);
          for (int64_t j = 0; j < act_per_block; ++j) {
            const int64_t b = k * act_per_block + j;
            const auto* xq = reinterpret_cast<const int8_t*>(xrow) + b * 32;
            float part = 0.f;
            for (int h = 0; h < 2; ++h) {
              const int s = static_cast<int>(2 * j + h);
              int32_t dot = 0, xsum = 0;
              for (int e = 0; e < 16; ++e) {
                dot += wb.q[16 * s + e] * xq[16 * h + e];
                xsum += xq[16 * h + e];
              }
              part += dl[s] * static_cast<float>(dot) - ml[s] * static_cast<float>(xsum);
            }
            acc[t] += dx[b] * part;
          }
        }
      }
      for (int64_t t = 0; t < nt; ++t) a.y[(t0 + t) * a.ldy + r] = acc[t];
    }
  }
}

}  // namespace

// One entry for the family; ops/ validated the type (wformat_of maps exactly these to kKQ).
void gemm_kq(const GemmArgs& a) {
  quant::with_kquant_type(a.type, [&]<DType T>() { gemm_typed<T>(a); });
}

void gemm_iq(const GemmArgs& a) {
  quant::with_iquant_type(a.type, [&]<DType T>() { gemm_typed<T>(a); });
}

}  // namespace mcmoe::kernels::scalar

// Portable kernel for mcmoe's grouped low-bit weights (quant/lowbit.h) against int8
// activation blocks in the natural layout: the fallback without AVX2, and the plain
// statement of what mq_avx2.cpp / mq_avx512.cpp compute. Per 32-weight sub-block s with
// activation codes a, scale dx and sd = dx · Σa (kernels.h), and its group's (scale, min):
//   Σ w·x  ≈  dx · Σ (scale · q + min) · a  =  scale · dx · Σ q·a  +  min · sd.
#include <algorithm>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_sets.h"
#include "quant/lowbit.h"

namespace mcmoe::kernels::scalar {

namespace {
constexpr int64_t kTokens = 8;  // tokens sharing one unpacked block
}  // namespace

void gemm_mq(const GemmArgs& a) {
  int bits = 0;
  int64_t group = 0;
  mq_params(a.type, &bits, &group);  // ops/ only sends MQ types here
  const size_t block_bytes = dtype_traits(a.type).block_bytes;
  const size_t header = quant::mq_header_bytes(group);
  const ActRowLayout l = act_row_layout(a.cols);
  const int64_t nblk = a.cols / quant::kMqBlock;
  uint8_t q[quant::kMqBlock];
  for (int64_t r = a.row_begin; r < a.row_end; ++r) {
    const uint8_t* wrow = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokens) {
      const int64_t nt = std::min(kTokens, a.n_tokens - t0);
      float acc[kTokens] = {};
      for (int64_t b = 0; b < nblk; ++b) {
        const uint8_t* blk = wrow + static_cast<size_t>(b) * block_bytes;
        quant::mq_unpack_codes(bits, blk + header, q);
        for (int64_t t = 0; t < nt; ++t) {
          const auto* xrow = static_cast<const uint8_t*>(a.x) + (t0 + t) * a.x_stride;
          const auto* xq = reinterpret_cast<const int8_t*>(xrow);
          const auto* dx = reinterpret_cast<const float*>(xrow + l.d_off);
          const auto* sd = reinterpret_cast<const float*>(xrow + l.sd_off);
          for (int64_t s = 0; s < 4; ++s) {
            const int64_t ab = 4 * b + s;  // activation block
            int32_t isum = 0;
            for (int j = 0; j < 32; ++j) isum += q[32 * s + j] * xq[ab * 32 + j];
            uint16_t pair[2];
            std::memcpy(pair, blk + 4 * (32 * s / group), 4);
            acc[t] += fp16_to_f32(pair[0]) * dx[ab] * static_cast<float>(isum) +
                      fp16_to_f32(pair[1]) * sd[ab];
          }
        }
      }
      for (int64_t t = 0; t < nt; ++t) a.y[(t0 + t) * a.ldy + r] = acc[t];
    }
  }
}

}  // namespace mcmoe::kernels::scalar

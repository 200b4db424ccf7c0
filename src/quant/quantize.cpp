#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/ggml_encode.h"
#include "quant/iq_grids.h"
#include "quant/iquants.h"
#include "quant/kquants.h"
#include "quant/lowbit.h"

namespace mcmoe::quant {

namespace {

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    out[b].d = f32_to_fp16(d);
    for (int j = 0; j < 32; ++j) out[b].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    // The signed value of largest magnitude maps to code 0 (-8), so the scale uses the full
    // range on the side that needs it; the other side reaches at most +7.
    float amax = 0.f, vmax = 0.f;
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        vmax = x[j];
      }
    }
    const float d = vmax / -8.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    out[b].d = f32_to_fp16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
      out[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// MXFP4 by the OCP Microscaling rule (OCP MX Formats v1.0, §6.3): the block's shared exponent is
// floor(log2(max |x|)) - 2 (E2M1's largest exponent), so the largest magnitude lands in [4, 8)
// and saturates at 6; each value rounds to the nearest E2M1 magnitude, ties to the even code.
// Stored as ggml's MXFP4 block (quant/iquants.h): the E8M0 byte, then weight j in the low
// nibble of byte j and j + 16 in the high one. E8M0 is kept in [0, 254]: 255 is NaN. The same
// bytes as ggml's quantize_row_mxfp4_ref (checked on 4,096 random blocks) but for exact ties,
// which ggml gives to the smaller code.
void quantize_mxfp4(const float* x, uint8_t* out, int64_t n) {
  // E2M1's magnitudes, codes 0..7: ggml's doubled value table, halved.
  const auto magnitude = [](int c) { return 0.5 * iq_grids::kMXFP4Values[c]; };
  for (int64_t b = 0; b < n / 32; ++b, x += 32, out += 17) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const int e = amax > 0.f ? std::clamp(std::ilogb(amax) - 2 + 127, 0, 254) : 0;
    const double inv_scale = std::ldexp(1.0, 127 - e);
    uint8_t code[32];
    for (int j = 0; j < 32; ++j) {
      const double v = std::fabs(x[j] * inv_scale);
      int best = 0;
      for (int c = 1; c < 8; ++c) {
        const double d = std::fabs(v - magnitude(c)), d_best = std::fabs(v - magnitude(best));
        if (d < d_best || (d == d_best && c % 2 == 0)) best = c;
      }
      code[j] = static_cast<uint8_t>(best | (x[j] < 0.f && best != 0 ? 8 : 0));
    }
    out[0] = static_cast<uint8_t>(e);
    for (int j = 0; j < 16; ++j) out[1 + j] = static_cast<uint8_t>(code[j] | code[j + 16] << 4);
  }
}

}  // namespace

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  const DTypeTraits& tr = dtype_traits(type);
  if (n % tr.block_size != 0) fail("quantize_row: {} elements not a multiple of {}", n, tr.block_size);
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      auto* o = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_fp16(src[i]);
      return;
    }
    case DType::BF16: {
      auto* o = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::Q8_0: quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n); return;
    case DType::Q4_0: quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n); return;
    case DType::MXFP4:
      quantize_mxfp4(src, static_cast<uint8_t*>(dst), n);
      return;
    MCMOE_CASE_MQ_TYPES:
      quantize_row_mq(type, src, dst, n);
      return;
    default: break;
  }
  // The other ggml types mcmoe writes (quant/ggml_encode.h: legacy, K-quants, iq2_xxs, iq3_xxs, iq4).
  if (can_encode(type)) return quantize_row_ggml(type, src, dst, n);
  fail("quantize_row: unsupported type {}", dtype_name(type));
}

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = fp16_to_f32(b[k].d);
        for (int j = 0; j < 32; ++j) dst[k * 32 + j] = d * b[k].qs[j];
      }
      return;
    }
    case DType::Q4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = fp16_to_f32(b[k].d);
        for (int j = 0; j < 16; ++j) {
          dst[k * 32 + j] = d * ((b[k].qs[j] & 0x0f) - 8);
          dst[k * 32 + j + 16] = d * ((b[k].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    MCMOE_CASE_MQ_TYPES:
      dequantize_row_mq(type, src, dst, n);
      return;
    MCMOE_CASE_KQ_TYPES:
    MCMOE_CASE_IQ_TYPES:
      dequantize_kquant_row(type, src, dst, n);
      return;
    default: break;
  }
  fail("dequantize_row: unsupported type {}", dtype_name(type));
}

std::vector<float> dequantize_rows(DType type, const uint8_t* src, int64_t rows, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  const size_t rb = row_bytes(type, cols);
  for (int64_t r = 0; r < rows; ++r)
    dequantize_row(type, src + r * rb, out.data() + r * cols, cols);
  return out;
}

}  // namespace mcmoe::quant

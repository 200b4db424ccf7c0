#include "quant/kquants.h"

#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/iquants.h"
#include "quant/quantize.h"

namespace mcmoe::quant {

namespace {

float load_fp16(const uint16_t& h) {
  return fp16_to_f32(h);
}

// The two 4-bit halves of 16 bytes: element j = low nibble of qs[j], element j + 16 = high.
void unpack_nibbles16(const uint8_t* qs, int8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<int8_t>(qs[j] & 0x0f);
    q[j + 16] = static_cast<int8_t>(qs[j] >> 4);
  }
}

// Fifth bit of element j is bit j of a little-endian u32.
void add_high_bits32(const uint8_t* qh_bytes, int8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(q[j] | (((qh >> j) & 1) << 4));
}

void set_legacy(IntBlock* o, float d, float dmin, int min) {
  o->n = 32;
  o->d = d;
  o->dmin = dmin;
  o->scale[0] = o->scale[1] = 1;
  o->min[0] = o->min[1] = static_cast<int16_t>(min);
}

// Q4_K / Q5_K: 8 six-bit scales and mins in 12 bytes. Sub-blocks 0..3 keep theirs in the low
// 6 bits of bytes 0..3 (scale) and 4..7 (min); sub-blocks 4..7 take 4 low bits from a nibble
// of bytes 8..11 and their top 2 bits from the spare top bits of bytes 0..7.
void scale_min_k4(const uint8_t* s, int k, int* scale, int* min) {
  if (k < 4) {
    *scale = s[k] & 63;
    *min = s[k + 4] & 63;
  } else {
    *scale = (s[k + 4] & 0x0f) | ((s[k - 4] >> 6) << 4);
    *min = (s[k + 4] >> 4) | ((s[k] >> 6) << 4);
  }
}

void decode_q4_k_like(const uint8_t* scales, const uint8_t* qs, const uint8_t* qh,
                      IntBlock* o) {
  for (int k = 0; k < 8; ++k) {
    int sc, m;
    scale_min_k4(scales, k, &sc, &m);
    o->scale[2 * k] = o->scale[2 * k + 1] = static_cast<int16_t>(sc);
    o->min[2 * k] = o->min[2 * k + 1] = static_cast<int16_t>(m);
  }
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      int lo = qs[32 * c + l] & 0x0f, hi = qs[32 * c + l] >> 4;
      if (qh) {
        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      o->q[64 * c + l] = static_cast<int8_t>(lo);
      o->q[64 * c + 32 + l] = static_cast<int8_t>(hi);
    }
  }
}

}  // namespace

bool is_kquant_family(DType type) {
  switch (type) {
    MCMOE_CASE_KQ_TYPES:
      return true;
    default:
      return false;
  }
}

void decode_block(DType type, const uint8_t* block, IntBlock* o) {
  switch (type) {
    // Q4_0 and Q8_0 (quant/quantize.h) decode here too, so that quant/ggml_encode.h can write
    // every ggml type through one IntBlock form; they stay out of MCMOE_CASE_KQ_TYPES (the
    // kernels have their own paths for them).
    case DType::Q4_0: {
      BlockQ4_0 b;
      std::memcpy(&b, block, sizeof(b));
      set_legacy(o, load_fp16(b.d), 0.f, 0);
      unpack_nibbles16(b.qs, o->q);
      for (int j = 0; j < 32; ++j) o->q[j] = static_cast<int8_t>(o->q[j] - 8);
      return;
    }
    case DType::Q8_0: {
      BlockQ8_0 b;
      std::memcpy(&b, block, sizeof(b));
      set_legacy(o, load_fp16(b.d), 0.f, 0);
      std::memcpy(o->q, b.qs, 32);
      return;
    }
    case DType::Q4_1: {
      BlockQ4_1 b;
      std::memcpy(&b, block, sizeof(b));
      // value = d q + m = d q - (-m) · 1, exactly (negation and a product by 1 are exact).
      set_legacy(o, load_fp16(b.d), -load_fp16(b.m), 1);
      unpack_nibbles16(b.qs, o->q);
      return;
    }
    case DType::Q5_0: {
      BlockQ5_0 b;
      std::memcpy(&b, block, sizeof(b));
      set_legacy(o, load_fp16(b.d), 0.f, 0);
      unpack_nibbles16(b.qs, o->q);
      add_high_bits32(b.qh, o->q);
      for (int j = 0; j < 32; ++j) o->q[j] = static_cast<int8_t>(o->q[j] - 16);
      return;
    }
    case DType::Q5_1: {
      BlockQ5_1 b;
      std::memcpy(&b, block, sizeof(b));
      set_legacy(o, load_fp16(b.d), -load_fp16(b.m), 1);
      unpack_nibbles16(b.qs, o->q);
      add_high_bits32(b.qh, o->q);
      return;
    }
    case DType::Q2_K: {
      BlockQ2_K b;
      std::memcpy(&b, block, sizeof(b));
      o->n = 256;
      o->d = load_fp16(b.d);
      o->dmin = load_fp16(b.dmin);
      for (int s = 0; s < 16; ++s) {
        o->scale[s] = static_cast<int16_t>(b.scales[s] & 0x0f);
        o->min[s] = static_cast<int16_t>(b.scales[s] >> 4);
      }
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 32; ++l)
            o->q[128 * h + 32 * j + l] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * j)) & 3);
      return;
    }
    case DType::Q3_K: {
      BlockQ3_K b;
      std::memcpy(&b, block, sizeof(b));
      o->n = 256;
      o->d = load_fp16(b.d);
      o->dmin = 0.f;
      for (int s = 0; s < 16; ++s) {
        const int low = s < 8 ? b.scales[s] & 0x0f : b.scales[s - 8] >> 4;
        const int high = (b.scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        o->scale[s] = static_cast<int16_t>((low | (high << 4)) - 32);
        o->min[s] = 0;
      }
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 32; ++l) {
            const int low = (b.qs[32 * h + l] >> (2 * j)) & 3;
            const int high = (b.hmask[l] >> (4 * h + j)) & 1;
            o->q[128 * h + 32 * j + l] = static_cast<int8_t>(low + 4 * high - 4);
          }
      return;
    }
    case DType::Q4_K: {
      BlockQ4_K b;
      std::memcpy(&b, block, sizeof(b));
      o->n = 256;
      o->d = load_fp16(b.d);
      o->dmin = load_fp16(b.dmin);
      decode_q4_k_like(b.scales, b.qs, nullptr, o);
      return;
    }
    case DType::Q5_K: {
      BlockQ5_K b;
      std::memcpy(&b, block, sizeof(b));
      o->n = 256;
      o->d = load_fp16(b.d);
      o->dmin = load_fp16(b.dmin);
      decode_q4_k_like(b.scales, b.qs, b.qh, o);
      return;
    }
    case DType::Q6_K: {
      BlockQ6_K b;
      std::memcpy(&b, block, sizeof(b));
      o->n = 256;
      o->d = load_fp16(b.d);
      o->dmin = 0.f;
      for (int s = 0; s < 16; ++s) {
        o->scale[s] = b.scales[s];
        o->min[s] = 0;
      }
      for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 32; ++l) {
            const uint8_t ql = b.ql[64 * h + 32 * (j % 2) + l];
            const int low = j < 2 ? ql & 0x0f : ql >> 4;
            const int high = (b.qh[32 * h + l] >> (2 * j)) & 3;
            o->q[128 * h + 32 * j + l] = static_cast<int8_t>((low | (high << 4)) - 32);
          }
      return;
    }
    default:
      break;
  }
  if (is_iquant_family(type)) return decode_iquant_block(type, block, o);
  fail("internal: decode_block: {} is not a ggml K-quant or i-quant family type", dtype_name(type));
}

void dequantize_kquant_row(DType type, const void* src, float* dst, int64_t n) {
  const DTypeTraits& tr = dtype_traits(type);
  if (n % tr.block_size != 0) {
    fail("dequantize_row: {} elements not a multiple of the {} block size {}", n, tr.name,
         tr.block_size);
  }
  const auto* p = static_cast<const uint8_t*>(src);
  IntBlock b;
  for (int64_t k = 0; k < n / tr.block_size; ++k, p += tr.block_bytes) {
    decode_block(type, p, &b);
    // ggml's order: the sub-block scale d * scale (and dmin * min) first, then the code. For
    // types without a min the subtracted term is +0, which leaves every value (-0 included)
    // unchanged.
    for (int e = 0; e < b.n; ++e) {
      const float dl = b.d * static_cast<float>(b.scale[e / 16]);
      const float ml = b.dmin * static_cast<float>(b.min[e / 16]);
      dst[k * b.n + e] = dl * static_cast<float>(b.q[e]) - ml;
    }
  }
}

}  // namespace mcmoe::quant

#include "quant/ggml_encode.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/ggml_encode_iq.h"
#include "quant/ggml_layout.h"
#include "quant/iq_grids.h"
#include "quant/quantize.h"

// Packing: the layout table, encode_block's range checks, the bit layouts. Fitting is
// ggml_fit.cpp.
namespace mcmoe::quant {

const Layout* layout_of(DType type) {
  static const CodeSet kIQ4{-127, 113, iq_grids::kIQ4NLValues.data(), 16};
  // Q8_0 decodes -128, but ggml's own quantizer never writes it and its AVX2 dot products take
  // |q| with a sign instruction that overflows on -128, so the fit stays in [-127, 127].
  static const Layout kQ4_0{32, 32, {-8, 7}, -8};
  static const Layout kQ4_1{32, 32, {0, 15}, 0, 1, 1, 1, 1};
  static const Layout kQ5_0{32, 32, {-16, 15}, -16};
  static const Layout kQ5_1{32, 32, {0, 31}, 0, 1, 1, 1, 1};
  static const Layout kQ8_0{32, 32, {-128, 127}, -127};
  static const Layout kQ2_K{256, 16, {0, 3}, 0, 0, 15, 15};
  static const Layout kQ3_K{256, 16, {-4, 3}, -4, -32, 31, 0};
  static const Layout kQ4_K{256, 32, {0, 15}, 0, 0, 63, 63};
  static const Layout kQ5_K{256, 32, {0, 31}, 0, 0, 63, 63};
  static const Layout kQ6_K{256, 16, {-32, 31}, -32, -128, 127, 0};
  static const Layout kIQ4_NL{32, 32, kIQ4, -127};
  static const Layout kIQ4_XS{256, 32, kIQ4, -127, -32, 31, 0};
  switch (type) {
    case DType::Q4_0:
      return &kQ4_0;
    case DType::Q4_1:
      return &kQ4_1;
    case DType::Q5_0:
      return &kQ5_0;
    case DType::Q5_1:
      return &kQ5_1;
    case DType::Q8_0:
      return &kQ8_0;
    case DType::Q2_K:
      return &kQ2_K;
    case DType::Q3_K:
      return &kQ3_K;
    case DType::Q4_K:
      return &kQ4_K;
    case DType::Q5_K:
      return &kQ5_K;
    case DType::Q6_K:
      return &kQ6_K;
    case DType::IQ4_NL:
      return &kIQ4_NL;
    case DType::IQ4_XS:
      return &kIQ4_XS;
    default:
      return nullptr;
  }
}

const Layout& layout_or_fail(DType type, const char* what) {
  const Layout* l = layout_of(type);
  if (!l)
    fail(
        "{}: cannot write {} (ggml_encode writes Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K, "
        "IQ4_NL, IQ4_XS, IQ2_XXS, IQ3_XXS)",
        what, dtype_name(type));
  return *l;
}

namespace {

// ---- encode_block: checks, then the bit layouts of kquants.h / quantize.h / iquants.h ----

void check_range(DType type, const char* field, int index, int value, int lo, int hi) {
  if (value < lo || value > hi) {
    fail("encode_block: {} {}[{}] = {} outside [{}, {}]", dtype_name(type), field, index, value, lo,
         hi);
  }
}

void check_f16(DType type, const char* field, float v) {
  const float back = fp16_to_f32(f32_to_fp16(v));
  if (!std::isfinite(v) || std::memcmp(&back, &v, 4) != 0) {
    fail("encode_block: {} {} = {} is not a finite f16 value", dtype_name(type), field, v);
  }
}

// Index of q in the code table (IQ4_NL / IQ4_XS), or fails.
int table_index(DType type, const CodeSet& c, int e, int q) {
  for (int i = 0; i < c.count; ++i) {
    if (c.values[i] == q) return i;
  }
  fail("encode_block: {} q[{}] = {} is not one of the type's {} code values [{} .. {}]",
       dtype_name(type), e, q, c.count, c.lo, c.hi);
}

void check_block(DType type, const Layout& l, const IntBlock& b) {
  if (b.n != l.n) fail("encode_block: {} n = {}, expected {}", dtype_name(type), b.n, l.n);
  check_f16(type, "d", b.d);
  if (l.min_hi > 0) {
    check_f16(type, "dmin", b.dmin);
  } else if (b.dmin != 0.f) {
    fail("encode_block: {} dmin = {}, expected 0 (the type has no min)", dtype_name(type), b.dmin);
  }
  for (int s = 0; s < l.n / 16; ++s) {
    check_range(type, "scale", s, b.scale[s], l.scale_lo, l.scale_hi);
    check_range(type, "min", s, b.min[s], l.min_lo, l.min_hi);
    if (l.group == 32 && s % 2 == 1 && (b.scale[s] != b.scale[s - 1] || b.min[s] != b.min[s - 1])) {
      fail("encode_block: {} scale/min[{}] = {}/{} differ from [{}] = {}/{} (one per 32 elements)",
           dtype_name(type), s, b.scale[s], b.min[s], s - 1, b.scale[s - 1], b.min[s - 1]);
    }
  }
  for (int e = 0; e < l.n; ++e) {
    if (l.codes.values) {
      table_index(type, l.codes, e, b.q[e]);
    } else {
      check_range(type, "q", e, b.q[e], l.codes.lo, l.codes.hi);
    }
  }
}

void put_fp16(uint8_t* p, float v) {
  const uint16_t h = f32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Codes offset to unsigned: u[e] = q[e] - lo.
void unsigned_codes(const IntBlock& b, int lo, uint8_t* u) {
  for (int e = 0; e < b.n; ++e) u[e] = static_cast<uint8_t>(b.q[e] - lo);
}

// Elements j and j + 16 of 32 in the low and high nibbles of 16 bytes.
void pack_nibbles16(const uint8_t* u, uint8_t* qs) {
  for (int j = 0; j < 16; ++j)
    qs[j] = static_cast<uint8_t>((u[j] & 0x0f) | (u[j + 16] & 0x0f) << 4);
}

// Q4_K / Q5_K: the inverse of scale_min_k4 (kquants.cpp): 8 six-bit scales and mins.
void pack_scale_min_k4(const IntBlock& b, uint8_t* s) {
  for (int k = 0; k < 4; ++k) {
    const int sc_lo = b.scale[2 * k], m_lo = b.min[2 * k];
    const int sc_hi = b.scale[2 * k + 8], m_hi = b.min[2 * k + 8];
    s[k] = static_cast<uint8_t>(sc_lo | (sc_hi >> 4) << 6);
    s[k + 4] = static_cast<uint8_t>(m_lo | (m_hi >> 4) << 6);
    s[k + 8] = static_cast<uint8_t>((sc_hi & 0x0f) | (m_hi & 0x0f) << 4);
  }
}

void pack_q4_k_like(const IntBlock& b, uint8_t* scales, uint8_t* qs, uint8_t* qh) {
  pack_scale_min_k4(b, scales);
  if (qh) std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = b.q[64 * c + l], hi = b.q[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0f) | (hi & 0x0f) << 4);
      if (qh) qh[l] = static_cast<uint8_t>(qh[l] | (lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
    }
  }
}

void pack(DType type, const Layout& l, const IntBlock& b, uint8_t* p) {
  uint8_t u[256];
  unsigned_codes(b, l.codes.lo, u);
  switch (type) {
    case DType::Q4_0:
      put_fp16(p, b.d);
      pack_nibbles16(u, p + 2);
      return;
    case DType::Q4_1:  // m = -dmin (exact)
      put_fp16(p, b.d);
      put_fp16(p + 2, -b.dmin);
      pack_nibbles16(u, p + 4);
      return;
    case DType::Q5_0:
    case DType::Q5_1: {
      const int at = type == DType::Q5_1 ? 4 : 2;
      put_fp16(p, b.d);
      if (type == DType::Q5_1) put_fp16(p + 2, -b.dmin);
      uint32_t qh = 0;
      for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>(u[j] >> 4) << j;
      std::memcpy(p + at, &qh, 4);
      pack_nibbles16(u, p + at + 4);
      return;
    }
    case DType::Q8_0:
      put_fp16(p, b.d);
      std::memcpy(p + 2, b.q, 32);
      return;
    case DType::Q2_K: {
      BlockQ2_K o{};
      for (int s = 0; s < 16; ++s) o.scales[s] = static_cast<uint8_t>(b.scale[s] | b.min[s] << 4);
      for (int e = 0; e < 256; ++e)
        o.qs[32 * (e / 128) + e % 32] |= static_cast<uint8_t>(u[e] << (2 * ((e / 32) % 4)));
      o.d = f32_to_fp16(b.d);
      o.dmin = f32_to_fp16(b.dmin);
      std::memcpy(p, &o, sizeof(o));
      return;
    }
    case DType::Q3_K: {
      BlockQ3_K o{};
      for (int s = 0; s < 16; ++s) {
        const int v = b.scale[s] + 32;
        o.scales[s % 8] |= static_cast<uint8_t>((v & 0x0f) << (4 * (s / 8)));
        o.scales[8 + s % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (s / 4)));
      }
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, j = (e / 32) % 4, l32 = e % 32;
        o.qs[32 * h + l32] |= static_cast<uint8_t>((u[e] & 3) << (2 * j));
        o.hmask[l32] |= static_cast<uint8_t>((u[e] >> 2) << (4 * h + j));
      }
      o.d = f32_to_fp16(b.d);
      std::memcpy(p, &o, sizeof(o));
      return;
    }
    case DType::Q4_K: {
      BlockQ4_K o{};
      o.d = f32_to_fp16(b.d);
      o.dmin = f32_to_fp16(b.dmin);
      pack_q4_k_like(b, o.scales, o.qs, nullptr);
      std::memcpy(p, &o, sizeof(o));
      return;
    }
    case DType::Q5_K: {
      BlockQ5_K o{};
      o.d = f32_to_fp16(b.d);
      o.dmin = f32_to_fp16(b.dmin);
      pack_q4_k_like(b, o.scales, o.qs, o.qh);
      std::memcpy(p, &o, sizeof(o));
      return;
    }
    case DType::Q6_K: {
      BlockQ6_K o{};
      for (int s = 0; s < 16; ++s) o.scales[s] = static_cast<int8_t>(b.scale[s]);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, j = (e / 32) % 4, l32 = e % 32;
        o.ql[64 * h + 32 * (j % 2) + l32] |= static_cast<uint8_t>((u[e] & 0x0f) << (4 * (j / 2)));
        o.qh[32 * h + l32] |= static_cast<uint8_t>((u[e] >> 4) << (2 * j));
      }
      o.d = f32_to_fp16(b.d);
      std::memcpy(p, &o, sizeof(o));
      return;
    }
    case DType::IQ4_NL:
    case DType::IQ4_XS: {
      for (int e = 0; e < b.n; ++e)
        u[e] = static_cast<uint8_t>(table_index(type, l.codes, e, b.q[e]));
      put_fp16(p, b.d);
      if (type == DType::IQ4_NL) return pack_nibbles16(u, p + 2);
      uint16_t high = 0;
      std::memset(p + 4, 0, 4);
      for (int ib = 0; ib < 8; ++ib) {
        const int v = b.scale[2 * ib] + 32;
        high = static_cast<uint16_t>(high | (v >> 4) << (2 * ib));
        p[4 + ib / 2] = static_cast<uint8_t>(p[4 + ib / 2] | (v & 0x0f) << (4 * (ib % 2)));
        pack_nibbles16(u + 32 * ib, p + 8 + 16 * ib);
      }
      std::memcpy(p + 2, &high, 2);
      return;
    }
    default:
      fail("internal: encode_block: no layout for {}", dtype_name(type));
  }
}

}  // namespace

bool can_encode(DType type) {
  return layout_of(type) != nullptr || ggml_iq::handles(type);
}

bool is_vector_codebook(DType type) {
  return ggml_iq::handles(type);
}

void round_codebook_group(DType type, const float* x, const float* w, IntBlock* b, int e0) {
  if (!is_vector_codebook(type))
    fail("round_codebook_group: {} is not a vector codebook", dtype_name(type));
  ggml_iq::round_group8(type, x, w, b, e0);
}

CodeSet code_set(DType type) {
  if (is_vector_codebook(type)) {
    fail(
        "code_set: {} is a vector codebook (4 or 8 weights share one grid entry), with no "
        "per-element codes: round its blocks with fit_block (is_vector_codebook)",
        dtype_name(type));
  }
  return layout_or_fail(type, "code_set").codes;
}

void encode_block(DType type, const IntBlock& b, uint8_t* block) {
  if (ggml_iq::handles(type)) return ggml_iq::encode(type, b, block);
  const Layout& l = layout_or_fail(type, "encode_block");
  check_block(type, l, b);
  pack(type, l, b, block);
}

}  // namespace mcmoe::quant

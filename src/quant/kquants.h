#pragma once
// ggml's legacy blocks with a min or a fifth bit (Q4_1, Q5_0, Q5_1) and its K-quant
// super-blocks (Q2_K .. Q6_K), bit-compatible with llama.cpp's files. Only reading is
// supported: llama-quantize makes these files, mcmoe runs them.
//
// Every one of these formats is, once its bit fields are unpacked, the same thing:
//   value[e] = d * scale[e / 16] * q[e] - dmin * min[e / 16]
// with small integers q, scale, min and two fp16 super-scales d, dmin. decode_block() unpacks
// one block into that form; dequantize (quantize.cpp) and the scalar kernels are written on
// it, so the bit layouts below are stated once.
#include <cstdint>

#include "core/dtype.h"

// The case labels of every type defined here, for a switch over DType:
//   MCMOE_CASE_KQ_TYPES: ...
#define MCMOE_CASE_KQ_TYPES \
  case DType::Q4_1:         \
  case DType::Q5_0:         \
  case DType::Q5_1:         \
  case DType::Q2_K:         \
  case DType::Q3_K:         \
  case DType::Q4_K:         \
  case DType::Q5_K:         \
  case DType::Q6_K

namespace mcmoe::quant {

// Q4_1: value = d * q + m, q = 4-bit code (element j in byte j's low nibble, j + 16 in its
// high nibble, as Q4_0).
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: value = d * (q - 16); q's low 4 bits as Q4_0, bit 4 of element j is bit j of qh
// (little-endian u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: value = d * q + m, q as Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Super-blocks of 256 are two halves of 128; element e = 128 h + 32 j + l (j < 4, l < 32).

// Q2_K: q = (qs[32 h + l] >> 2 j) & 3; per 16 elements s = scales[e / 16], scale = s & 15,
// min = s >> 4; value = d * scale * q - dmin * min.
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: q = ((qs[32 h + l] >> 2 j) & 3) + 4 * (bit 4 h + j of hmask[l]) - 4 (so -4..3);
// 16 six-bit scales packed in 12 bytes (low nibbles in bytes 0..7, top two bits in 8..11),
// scale = s - 32; value = d * scale * q.
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32 with 6-bit scale and min packed in 12 bytes; q = 4-bit code,
// element 64 c + l in qs[32 c + l]'s low nibble, 64 c + 32 + l in its high nibble;
// value = d * scale * q - dmin * min.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit: bit (e / 32) of qh[e % 32].
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 6-bit codes minus 32: low 4 bits from ql[64 h + 32 (j % 2) + l] (low nibble for
// j < 2, high nibble for j >= 2), top 2 bits (qh[32 h + l] >> 2 j) & 3; signed 8-bit scale
// per 16 elements; value = d * scale * q.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// True for the types this file defines.
bool is_kquant_family(DType type);

// Calls f.template operator()<T>() with T = type, a compile-time DType, for the kernels'
// per-format templates: with_kquant_type(t, [&]<DType T>() { gemm<T>(args); }).
// `type` must be one of MCMOE_CASE_KQ_TYPES (nothing is called otherwise).
template <typename F>
void with_kquant_type(DType type, F&& f) {
  switch (type) {
    case DType::Q4_1: return f.template operator()<DType::Q4_1>();
    case DType::Q5_0: return f.template operator()<DType::Q5_0>();
    case DType::Q5_1: return f.template operator()<DType::Q5_1>();
    case DType::Q2_K: return f.template operator()<DType::Q2_K>();
    case DType::Q3_K: return f.template operator()<DType::Q3_K>();
    case DType::Q4_K: return f.template operator()<DType::Q4_K>();
    case DType::Q5_K: return f.template operator()<DType::Q5_K>();
    case DType::Q6_K: return f.template operator()<DType::Q6_K>();
    default: return;
  }
}

// One block unpacked to integers: value[e] = d * scale[e / 16] * q[e] - dmin * min[e / 16],
// computed in f32 in exactly that order (d * scale first), which is how ggml dequantizes.
// Legacy blocks fill n = 32 elements (scale 1; Q4_1 / Q5_1: dmin = -m and min 1).
struct IntBlock {
  int n = 0;  // 32 or 256
  float d = 0.f, dmin = 0.f;
  int8_t q[256];
  int16_t scale[16];
  int16_t min[16];
};
// `block` points at one block of `type`: is_kquant_family(type) or, through
// decode_iquant_block, is_iquant_family(type) (quant/iquants.h).
void decode_block(DType type, const uint8_t* block, IntBlock* out);

// Reference dequantization of n elements (a multiple of the block size) of either family,
// bit-identical to ggml's dequantize_row_* (tests/quant/ check it on blocks made by ggml).
void dequantize_kquant_row(DType type, const void* src, float* dst, int64_t n);

}  // namespace mcmoe::quant

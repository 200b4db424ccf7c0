#pragma once
// mcmoe's grouped low-bit weight formats (DType::MQ{1,2,3,4}_G{32,64,128}) and the
// format-neutral result of a quantizer (GroupedQuant), which compress/ produces (round-to-
// nearest, GPTQ) and this file packs into blocks.
//
// Definition: a row of `cols` weights is split into groups of g consecutive weights; weight c
// of the row decodes to  w = scale[c / g] * q[c] + min[c / g]  with an unsigned b-bit code q
// in [0, 2^b). scale and min are stored as IEEE f16. 1-bit follows MC-MoE's sign quantizer:
// q = (w >= 0), scale = 2 s, min = -s with s = mean |w| of the group, so w = ±s.
// Blocks hold 128 weights: (128 / g) pairs (f16 scale, f16 min), then 16 * b bytes of codes
// in the order documented in lowbit.cpp (chosen for the AVX-512 VNNI kernel).
#include <cstdint>
#include <vector>

#include "core/dtype.h"

// The case labels of every MQ type, for a switch over DType:  MCMOE_CASE_MQ_TYPES: ...
#define MCMOE_CASE_MQ_TYPES \
  case DType::MQ1_G32:      \
  case DType::MQ1_G64:      \
  case DType::MQ1_G128:     \
  case DType::MQ2_G32:      \
  case DType::MQ2_G64:      \
  case DType::MQ2_G128:     \
  case DType::MQ3_G32:      \
  case DType::MQ3_G64:      \
  case DType::MQ3_G128:     \
  case DType::MQ4_G32:      \
  case DType::MQ4_G64:      \
  case DType::MQ4_G128

namespace mcmoe::quant {

// A [rows, cols] matrix quantized in groups along each row (see the definition above).
struct GroupedQuant {
  int bits = 0;       // 1, 2, 3, 4 (MQ formats) or 8 (packs only as Q8_0, symmetric)
  int64_t group = 0;  // 32, 64 or 128; cols % group == 0
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> q;    // [rows, cols] codes, 0 <= q < 2^bits
  std::vector<float> scale;  // [rows, cols / group], each exactly representable in f16
  std::vector<float> min;    // [rows, cols / group], each exactly representable in f16

  int64_t groups_per_row() const { return cols / group; }
  float value(int64_t r, int64_t c) const {
    const int64_t gi = r * groups_per_row() + c / group;
    return scale[gi] * static_cast<float>(q[r * cols + c]) + min[gi];
  }
};

// The DType a GroupedQuant packs into: mq{bits}_g{group}; bits 8 → Q8_0 (requires group 32
// and min == -128 * scale); bits 4 with min == -8 * scale and group 32 may also pack as Q4_0
// (pass that type explicitly to pack_grouped).
DType grouped_dtype(const GroupedQuant& gq);

// Packs all rows into `type` blocks (row-major, row_bytes(type, cols) per row); fails with
// a message when the GroupedQuant does not fit the type (bits, group, symmetric min).
std::vector<uint8_t> pack_grouped(const GroupedQuant& gq, DType type);
// Inverse of pack_grouped for an MQ type.
GroupedQuant unpack_mq(DType type, const uint8_t* data, int64_t rows, int64_t cols);

// Reference row conversions for MQ types (used by quant::quantize_row / dequantize_row).
// Quantization is plain round-to-nearest with the group's min/max (asymmetric); 1-bit as
// described above.
void quantize_row_mq(DType type, const float* src, void* dst, int64_t n);
void dequantize_row_mq(DType type, const void* src, float* dst, int64_t n);

// ---- Block internals, shared with the kernels ---------------------------------------------
inline constexpr int64_t kMqBlock = 128;  // weights per block
// Bytes of a block's (scale, min) pairs, which come before its codes.
inline constexpr size_t mq_header_bytes(int64_t group) {
  return static_cast<size_t>(4 * (kMqBlock / group));
}
// The 16 * bits code bytes of one block <-> its 128 codes in element order (lowbit.cpp
// documents the order). The scalar kernels and the reference dequantizer use these.
void mq_pack_codes(int bits, const uint8_t* q, uint8_t* codes);
void mq_unpack_codes(int bits, const uint8_t* codes, uint8_t* q);

}  // namespace mcmoe::quant

#pragma once
// Reference (scalar) conversion of rows between f32 and every storage type. These define
// the formats: Q8_0 and Q4_0 are bit-compatible with ggml's blocks of the same name.
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace mcmoe::quant {

// Q8_0 block: fp16 scale d, then 32 int8 codes; value = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0 block: fp16 scale d, then 16 bytes; byte j holds element j in its low nibble and
// element j + 16 in its high nibble; value = d * (q - 8).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18);

// n must be a multiple of the type's block size.
void quantize_row(DType type, const float* src, void* dst, int64_t n);
void dequantize_row(DType type, const void* src, float* dst, int64_t n);
// `rows` rows of `cols` values, row_bytes(type, cols) each, dequantized into [rows, cols].
std::vector<float> dequantize_rows(DType type, const uint8_t* src, int64_t rows, int64_t cols);

}  // namespace mcmoe::quant

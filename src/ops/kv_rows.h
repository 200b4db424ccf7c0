#pragma once
// KV cache element types: f32, f16 and ggml's q8_0 (blocks of 32 int8 codes with one f16
// scale). Attention widens blocks of cached rows to f32 just before its matrix products, so
// a narrower cache costs a cheap SIMD conversion per key block instead of precision in the
// products themselves.
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace mcmoe::ops {

// F32, F16 and Q8_0.
bool kv_type_supported(DType type);

// n_rows rows of `width` values in `type`, src_row_bytes apart (a row may be part of a wider
// cache row, starting on a block boundary), into f32 rows `out_stride` floats apart.
void kv_rows_to_f32(DType type, const void* rows, size_t src_row_bytes, int64_t n_rows,
                    int64_t width, float* out, int64_t out_stride);

// One f32 row of `width` values into a cache row of `type`.
void kv_row_from_f32(DType type, const float* row, int64_t width, void* dst);

}  // namespace mcmoe::ops

#pragma once
// Writing ggml's block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K, IQ4_NL, IQ4_XS, and
// the vector codebooks IQ2_XXS, IQ3_XXS), so that `mcmoe quantize --format gguf` makes files
// llama.cpp runs unchanged. Q4_1 / Q5_1 (value = d q + m, q unsigned) are IntBlocks with scale
// 1, min 1 and dmin = -m (of either sign), as decode_block makes them. Reading them is
// quant/kquants.h and quant/iquants.h; every type here is written through the same unpacked
// form they decode to (IntBlock: value[e] = (d · scale[e / 16]) · q[e] − dmin · min[e / 16]),
// so a block is fitted once as integers and packed once, and encode_block is the exact
// inverse of decode_block.
//
// Fitting follows what llama.cpp's quantizers optimise (a weighted squared error per block,
// scales searched around the min/max fit and refitted by least squares, sub-block scales then
// quantized to the super-block's integer scale grid) and is checked against ggml's own output
// on the same input (tests/quant/ggml_encode_test.cpp, fixtures from ggml).
#include <cstdint>

#include "core/dtype.h"
#include "quant/kquants.h"

namespace mcmoe::quant {

// True for the types this file writes.
bool can_encode(DType type);

// True for IQ2_XXS and IQ3_XXS: vector codebooks, whose codes are chosen 8 (IQ2_XXS) or 4
// (IQ3_XXS) at a time from a grid of 256 entries, with 7 stored signs per 8 weights (the
// eighth makes the count of negatives even), a scale 2 l + 1 (l < 16) per 32 weights and
// d = f16 / 8 (IQ2_XXS) or f16 / 4 (IQ3_XXS) in IntBlock form. They have no per-element code
// set: code_set fails for them; a caller that rounds in order (GPTQ's column sweep) fits the
// block's scales with fit_block and then chooses each 8 weights' codes together with
// round_codebook_group. encode_block, fit_block and quantize_row_ggml take them as any other
// type (ggml_encode_iq.cpp).
bool is_vector_codebook(DType type);

// Vector codebooks only: the codes of b.q[e0 .. e0 + 8) (e0 a multiple of 8) for the values
// x[0 .. 8) at the scale b gives them, exactly minimising Σ w (x − value)² over the grid with
// the sign parity kept. b's d and scales stay as they are.
void round_codebook_group(DType type, const float* x, const float* w, IntBlock* b, int e0);

// The codes q one element of `type` may take: a contiguous range [lo, hi], or (IQ4_NL,
// IQ4_XS) the `count` ascending values of `values` (then lo and hi are the first and last).
// Fails for the types this file cannot write and for vector codebooks (is_vector_codebook).
struct CodeSet {
  int lo = 0, hi = 0;
  const int8_t* values = nullptr;
  int count = 0;
};
CodeSet code_set(DType type);

// Packs `b` into one block of `type` (dtype_traits(type).block_bytes at `block`): the inverse
// of decode_block, bit for bit (d and dmin are stored as f16 and must be exactly
// representable). Fails naming the field when a code, scale or min is outside the type's
// range or b.n is not the type's block size; for a vector codebook also when a group's codes
// are not ± a grid entry or 8 weights have an odd count of negative codes.
void encode_block(DType type, const IntBlock& b, uint8_t* block);

// Fits one block of `type` to the dtype_traits(type).block_size values x: d, dmin, the
// sub-block scales and mins, and the codes, minimising Σ weight_e · (x_e − value_e)². The
// per-element weights are ggml's for the type: from `importance` (per element, an importance
// matrix's mean squared activation, as llama.cpp's quant_weights) when given, else ggml's
// default for the type (plus the block's mean square where ggml weights by x² or |x| alone:
// ggml_encode.cpp says why). The legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with importance
// weight by the block's mean square here, the row's in quantize_row_ggml (as ggml). The result
// satisfies encode_block's ranges; Q8_0's codes stay in [-127, 127], as ggml's. IQ2_XXS / IQ3_XXS:
// ggml requires an importance matrix for these; without one the weights are ggml's with a uniform
// importance.
void fit_block(DType type, const float* x, const float* importance, IntBlock* out);

// Quantizes n values (a multiple of the block size) into n / block_size blocks of `type`:
// fit_block then encode_block per block. importance: per element of the row, or null.
void quantize_row_ggml(DType type, const float* src, void* dst, int64_t n,
                       const float* importance = nullptr);

}  // namespace mcmoe::quant

#pragma once
// Internal to quant/ggml_encode.cpp: writing ggml's vector-codebook i-quants, IQ2_XXS and
// IQ3_XXS. In IntBlock form (as decode_iquant_block fills it) a block is d = f16 · unit (1/8
// for IQ2_XXS, 1/4 for IQ3_XXS), per 32 weights an odd scale 2 l + 1 (l in 0..15) and codes
// q = ± a grid entry's magnitudes: one entry of iq_grids::kIQ2XXS per 8 weights, or of
// kIQ3XXS per 4; per 8 weights the count of negative codes is even (7 sign bits are stored,
// kSigns7 implies the eighth).
#include <cstdint>

#include "core/dtype.h"
#include "quant/kquants.h"

namespace mcmoe::quant::ggml_iq {

// IQ2_XXS or IQ3_XXS.
bool handles(DType type);

// The exact inverse of decode_block; fails naming the field (and, for codes, the 8 weights)
// when a block is not one the format can hold.
void encode(DType type, const IntBlock& b, uint8_t* block);

// Fits one block of 256 finite values: minimises Σ w (x − value)², with w ggml's weights for
// the type (importance · sqrt(σ² + x²), σ² a multiple of the block's mean square), without
// importance the same with importance 1.
void fit(DType type, const float* x, const float* importance, IntBlock* out);

// Re-chooses the codes of the 8 weights at b.q[e0 .. e0 + 8) (e0 a multiple of 8, one sign-
// parity group) for the values x[0 .. 8), at the scale b already gives them (d · scale[e0 /
// 16]): exactly the grid entries (and sign flip, if the parity needs one) minimising
// Σ w (x − value)². GPTQ's error feedback calls it as its sweep reaches each 8 weights.
void round_group8(DType type, const float* x, const float* w, IntBlock* b, int e0);

}  // namespace mcmoe::quant::ggml_iq

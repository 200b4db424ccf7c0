#pragma once
// Inside quant/: the block layouts of the ggml types ggml_encode.cpp packs and ggml_fit.cpp
// fits (the vector codebooks IQ2_XXS / IQ3_XXS have their own, ggml_encode_iq.h).
#include "core/dtype.h"
#include "quant/ggml_encode.h"

namespace mcmoe::quant {

// What one type's IntBlock holds: value = (d · scale[g]) · q − dmin · min[g] per group g of
// `group` elements. Types with a single scale (Q4_0, Q5_0, Q8_0, IQ4_NL) are one group whose
// scale is fixed at 1, so d is the scale; types without a min have min_hi = 0 (dmin = 0).
// Q4_1 / Q5_1 (value = d q + m) are one group with scale and min fixed at 1 (min_lo = min_hi =
// 1) and dmin = -m, of either sign: their offset is free, not a subtracted min >= 0.
struct Layout {
  int n = 0;       // elements per block
  int group = 0;   // elements per sub-block scale (and min)
  CodeSet codes;   // what encode_block accepts
  int fit_lo = 0;  // the lowest code fit_block uses (Q8_0: -127, see layout_of)
  int scale_lo = 1, scale_hi = 1;
  int min_hi = 0;
  int min_lo = 0;
  int groups() const { return n / group; }
  bool single_scale() const { return scale_lo == 1 && scale_hi == 1; }
  bool free_offset() const { return min_lo == 1 && min_hi == 1; }
};

// The layout of `type`, or null for a type without one (vector codebooks, unwritable types).
const Layout* layout_of(DType type);
// The same, failing with a message naming `what` and the writable types.
const Layout& layout_or_fail(DType type, const char* what);

}  // namespace mcmoe::quant

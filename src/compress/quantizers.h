#pragma once
// Weight quantizers: round-to-nearest and GPTQ (ALGORITHMS.md §1, §5). Both produce a
// quant::GroupedQuant (codes + per-group scale/min, see quant/lowbit.h), which quant/ packs
// into the MQ, Q4_0 or Q8_0 block formats.
//
// Group grids, per row and group of `group` consecutive weights (value = scale · q + min):
//   asymmetric b bits   min = the group's min rounded down to f16, scale = (max − min) /
//                       (2^b − 1) rounded up to f16, so the grid always covers the group
//   symmetric 8 bits    ggml's Q8_0: scale = f16(max|w| / 127), min = −128 · scale
//   symmetric b ≤ 4     ggml's Q4_0: scale = f16(v / −2^(b−1)) with v the signed value of
//                       largest magnitude (so v gets code 0 and scale may be negative),
//                       min = −2^(b−1) · scale
//   1 bit               MC-MoE's sign quantizer: s = f16(mean |w|), q = (w >= 0),
//                       scale = 2s, min = −s, so w → ±s (`symmetric` makes no difference)
// scale and min are rounded to f16 before any code is chosen: they are stored as f16, and
// GPTQ's error feedback must see the values the model will actually compute with.
#include <cstdint>
#include <span>
#include <vector>

#include "compress/hessian.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/lowbit.h"

namespace mcmoe::compress {

using quant::GroupedQuant;

struct QuantSpec {
  int bits = 0;         // 1, 2, 3, 4 or 8
  int64_t group = 128;  // must divide cols
  bool symmetric = false;
  // Asymmetric 2-4 bits: instead of the plain min/max grid, try clipping ranges shrunk
  // toward the group's centre (factors 1.0 down to 0.5), refit scale and min by least
  // squares to the codes each range gives, and keep the grid with the smallest squared
  // error (llama.cpp's K-quants and GPTQ's mse mode search the same way). Clipped weights
  // may then err by more than scale / 2.
  bool search = false;
};

GroupedQuant quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec);

struct GptqOptions {
  QuantSpec spec;
  double damp = 0.01;   // λ = damp · mean diag(H)
  int64_t block = 128;  // columns per lazy batch update; a speed knob, not a change of result
  // Columns in order of descending H_jj. Groups stay natural-order column ranges; their
  // grids then come from the original W ("static groups"), as a group's columns are no
  // longer quantized together.
  bool act_order = false;
  ThreadPool* pool = nullptr;  // rows are split across it (they are independent); null: caller
};

// w: [rows, cols] row-major, the layer's weights (rows = outputs). hessian: [cols, cols]
// H = XᵀX of the layer's inputs, summed or averaged (the scale does not matter).
GroupedQuant quantize_gptq(const float* w, int64_t rows, int64_t cols,
                           std::span<const double> hessian, const GptqOptions& o);
// The same with a precomputed factor (hessian.h), shared by matrices that read one input;
// its damp and act_order must equal o's.
GroupedQuant quantize_gptq(const float* w, int64_t rows, int64_t cols, const GptqFactor& factor,
                           const GptqOptions& o);

// GPTQ onto one of ggml's block formats (quant/ggml_encode.h, quant::can_encode(type)): the
// grid of each block (d, sub-block scales and mins) is fitted by quant::fit_block when the
// block's first column comes up, from the weights as the error feedback has left them and
// weighted by `importance` (per column, e.g. diag(H); empty: ggml's default weights); each
// weight then takes the nearest code the type allows on that grid. Returns the packed rows,
// row_bytes(type, cols) each. o.spec is not used; o.act_order must be false (a block's grid
// needs its columns in order); cols must be a multiple of the type's block size. Vector
// codebooks (quant::is_vector_codebook: IQ2_XXS, IQ3_XXS) fit each block's scales the same
// way and then choose each 8 weights' codes together when the sweep reaches them, weighted
// by 1 / U_ii² (GPTVQ's scheme on ggml's grid).
std::vector<uint8_t> quantize_gptq_ggml(const float* w, int64_t rows, int64_t cols,
                                        const GptqFactor& factor, DType type,
                                        std::span<const float> importance, const GptqOptions& o);

// out: [rows, cols], the values GroupedQuant::value gives.
void dequantize(const GroupedQuant& q, float* out);

// trace((W − Q) H (W − Q)ᵀ): the squared error of the layer's outputs over the calibration
// rows H was built from, for H = XᵀX. hessian: [cols, cols]. With a pool, chunks of rows run
// on its threads; the result is the same bits either way.
double output_error(const float* w, const GroupedQuant& q, std::span<const double> hessian,
                    ThreadPool* pool = nullptr);
// The same for a dequantized matrix q [rows, cols].
double output_error(const float* w, const float* q, int64_t rows, int64_t cols,
                    std::span<const double> hessian, ThreadPool* pool = nullptr);

}  // namespace mcmoe::compress

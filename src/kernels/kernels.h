#pragma once
// The contract between ops/matmul.cpp and the per-ISA kernel files: argument structs, the
// layout of quantized activations, and the table of function pointers one ISA provides.
// Nothing here checks its inputs: ops/ validates once per call (DESIGN.md, error policy).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"

namespace mcmoe::kernels {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
inline constexpr int kNumIsas = 3;
const char* isa_name(Isa isa);
// The path isa_name calls `name` (scalar, avx2, avx512); nullopt for any other name.
std::optional<Isa> isa_from_name(std::string_view name);

// Weight formats the kernels know, as a dense index into KernelSet::gemm.
// kMQ: all of mcmoe's grouped low-bit types (quant/lowbit.h); the kernel reads bits and group
// from GemmArgs::type.
// kKQ: ggml's Q4_1, Q5_0, Q5_1 and K-quants Q2_K..Q6_K (quant/kquants.h); the kernel reads
// the type from GemmArgs::type.
// kIQ: ggml's i-quants, TQ1_0 / TQ2_0 and MXFP4 (quant/iquants.h); likewise.
enum class WFormat : int {
  kF32 = 0,
  kF16 = 1,
  kBF16 = 2,
  kQ8_0 = 3,
  kQ4_0 = 4,
  kMQ = 5,
  kKQ = 6,
  kIQ = 7
};
inline constexpr int kNumWFormats = 8;
// False for a DType no kernel handles (ops/ reports it as an error).
bool wformat_of(DType type, WFormat* out);
// Q8_0 and Q4_0 multiply int8 activation blocks; the float formats read f32 activations.
inline bool uses_quantized_acts(WFormat f) {
  return f == WFormat::kQ8_0 || f == WFormat::kQ4_0 || f == WFormat::kMQ || f == WFormat::kKQ ||
         f == WFormat::kIQ;
}

// ---- Quantized activations --------------------------------------------------------------
// One token row of `cols` floats becomes nb = cols / 32 blocks, each with int8 codes q and an
// f32 scale d such that x ≈ d * q (d = max|x| / 127, q = round-half-away(x / d), as ggml's
// Q8_0 but with the scale kept in f32: it costs nothing and removes one rounding).
// The row is stored structure-of-arrays so that SIMD code loads several blocks' scales at
// once; nbp is nb rounded up to kActChunk and the padding blocks are all zero (every part),
// so kernels may load whole vectors past nb without reading garbage:
//   codes [nbp * 32] int8   block b's 32 codes, ordered per ActLayout (below)
//   d     [nbp] f32         scale of block b
//   sd    [nbp] f32         d * Σq over the block: weight codes stored with an offset K
//                           (Q4_0: q + 8) contribute K * dw * sd too much, which the AVX2
//                           kernel subtracts once per block instead of once per product
//   dx4   [nbp * 4] f32     d of block b repeated 4 times, and
//   nq4   [nbp * 4] int32   -Σq of block b repeated 4 times: the AVX-512 kernel keeps 4 int32
//                           lanes per block, scales them by dx4 without a permute, and starts
//                           them from nq4 * K / 4 to cancel its offset K in integer arithmetic
// Every part is 64-byte aligned when the row is (nbp is a multiple of 16).
inline constexpr int64_t kActChunk = 16;

enum class ActLayout : int {
  // codes of block b at [32 b, 32 b + 32) in element order.
  kNatural = 0,
  // Blocks in groups of 4 (A, B, C, D), 128 bytes per group:
  //   A[0..15] B[0..15] C[0..15] D[0..15] | A[16..31] B[16..31] C[16..31] D[16..31]
  // This is the order Q4_0's nibbles unpack into (low nibbles = elements 0..15), so a
  // 512-bit register holds 4 blocks and one permute-free vpdpbusd covers 64 products.
  kInterleave4 = 1,
};

struct ActRowLayout {
  int64_t nb = 0;    // real blocks
  int64_t nbp = 0;   // padded to kActChunk
  size_t d_off = 0;  // byte offsets of the parts from the row start
  size_t sd_off = 0;
  size_t dx4_off = 0;
  size_t nq4_off = 0;
  size_t bytes = 0;  // a multiple of 64
};
ActRowLayout act_row_layout(int64_t cols);

// Reference quantizer for one row (the definition the SIMD quantizers must match bit for
// bit). dst must hold act_row_layout(cols).bytes; cols a multiple of 32.
void quantize_acts_ref(const float* x, int64_t cols, void* dst, ActLayout layout);

// ---- GEMM over a range of weight rows -------------------------------------------------
// y[t * ldy + r] = Σ_c W[r, c] · X[t, c] for r in [row_begin, row_end), t in [0, n_tokens).
struct GemmArgs {
  const uint8_t* w = nullptr;  // row 0 of W [rows, cols]
  size_t w_stride = 0;         // bytes per weight row
  int64_t cols = 0;
  // Float formats: f32 rows of X. Quantized formats: act rows as described above, in the
  // layout of the kernel set that produced them.
  const void* x = nullptr;
  size_t x_stride = 0;  // bytes between token rows of x
  int64_t n_tokens = 0;
  float* y = nullptr;
  int64_t ldy = 0;  // elements between token rows of y
  int64_t row_begin = 0;
  int64_t row_end = 0;
  DType type = DType::F32;  // the weight's type (format families such as kMQ need it)
};
using GemmFn = void (*)(const GemmArgs& args);

// What one ISA provides. Pointers are never null.
struct KernelSet {
  Isa isa = Isa::kScalar;
  ActLayout act_layout = ActLayout::kNatural;
  // One token row f32 → act row (layout above); must equal quantize_acts_ref bit for bit.
  void (*quantize_acts)(const float* x, int64_t cols, void* dst) = nullptr;
  // Widen n elements of an F16 / BF16 / F32 row to f32 (used to feed BLAS for prefill).
  void (*row_to_f32[3])(const void* src, float* dst, int64_t n) = {};
  GemmFn gemm[kNumWFormats] = {};
  // Float formats (F32, F16, BF16): from this many tokens ops/ runs the product through
  // OpenBLAS (kernels/gemm_blas.h) instead of gemm[]; kNoBlas: never. Measured per ISA.
  int64_t blas_min_tokens[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
};
inline constexpr int64_t kNoBlas = INT64_MAX;

}  // namespace mcmoe::kernels

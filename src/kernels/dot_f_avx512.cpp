// AVX-512 kernels for float weights (F32, F16, BF16) against f32 activations. Weights are
// widened to f32 in registers (F16 with vcvtph2ps, BF16 by a 16-bit shift, which is exact)
// and activations stay f32, so the only rounding is the f32 accumulation. (vdpbf16ps would
// round the activations to bf16 as well: a visible accuracy loss for no gain in a
// memory-bound matvec.) Hand intrinsics rather than Highway for the same reason as the
// quantized files: one code base per ISA for the whole kernel set.
// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of unmasked
// intrinsics (_mm512_cvtph_ps, _mm512_reduce_add_ps), which -Wuninitialized reports once
// inlined (GCC bug 105593, fixed in GCC 13). The values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx512 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 4;
// Prefill blocking: the weight rows of a tile are reused by the kTokBlock tokens of a block
// while they are in L1/L2, and the block's activations (32 tokens × kColChunk f32 = 512 KB)
// stay in L2. Rows wider than kColChunk are summed over chunks in y. (Chunks small enough for
// L1, 256 to 1024 columns, measured slower: each chunk adds a horizontal sum per
// accumulator.)
constexpr int64_t kTokBlock = 32;
constexpr int64_t kColChunk = 4096;

// 16 weights starting at element c, widened to f32; `m` masks a partial tail.
template <WFormat F>
inline __m512 load_w16(const uint8_t* row, int64_t c, __mmask16 m) {
  if constexpr (F == WFormat::kF32) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + c);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + c);
    if constexpr (F == WFormat::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

template <WFormat F>
inline __m512 load_w16(const uint8_t* row, int64_t c) {
  if constexpr (F == WFormat::kF32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * c));
    if constexpr (F == WFormat::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

struct TileArgs {
  const uint8_t* w;  // first row of the tile, at the chunk's first column
  size_t w_stride;
  int64_t cols;    // columns in the chunk
  const float* x;  // first token of the tile, at the chunk's first column
  int64_t ldx;     // floats
  float* y;
  int64_t ldy;
  size_t prefetch;  // bytes to the same column of the next tile's rows, 0 = none (see
                    // dot_q_avx512.cpp: short row streams need software prefetch)
  bool accumulate;  // add to y (a later column chunk) instead of storing
};
using TileFn = void (*)(const TileArgs&);

// R rows × T tokens; the T activation vectors of a column step are loaded once into
// registers and each weight vector is used T times.
template <WFormat F, int R, int T>
void tile(const TileArgs& a) {
  constexpr int64_t kElemBytes = F == WFormat::kF32 ? 4 : 2;
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= a.cols; c += 16) {
    __m512 xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(a.x + t * a.ldx + c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      // One prefetch per 64-byte line (every step for F32, every other one for F16/BF16).
      if (a.prefetch != 0 && (c * kElemBytes) % 64 == 0) {
        _mm_prefetch(
            reinterpret_cast<const char*>(a.w + r * a.w_stride + a.prefetch + c * kElemBytes),
            _MM_HINT_T0);
      }
      const __m512 wv = load_w16<F>(a.w + r * a.w_stride, c);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  if (c < a.cols) {
    const __mmask16 m = static_cast<__mmask16>((1u << (a.cols - c)) - 1);
    __m512 xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, a.x + t * a.ldx + c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 wv = load_w16<F>(a.w + r * a.w_stride, c, m);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate, [&](int r, int t) { return _mm512_reduce_add_ps(acc[r][t]); });
}

template <WFormat F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <WFormat F>
void gemm(const GemmArgs& g) {
  static constexpr auto kTiles = make_tile_table<Tiles<F>, TileArgs, kRowTile, kTokTile>();
  constexpr int64_t kElemBytes = F == WFormat::kF32 ? 4 : 2;
  const int64_t ldx = static_cast<int64_t>(g.x_stride / sizeof(float));
  TileArgs a{.w = nullptr,
             .w_stride = g.w_stride,
             .cols = 0,
             .x = nullptr,
             .ldx = ldx,
             .y = nullptr,
             .ldy = g.ldy,
             .prefetch = 0,
             .accumulate = false};
  const auto* x = static_cast<const float*>(g.x);
  // Decode reads each row start to end in one pass; prefill walks column chunks (in
  // elements: the walk's "blocks" are single columns here).
  walk_tiles(
      g,
      TileWalk{.blocks = g.cols, .chunk_blocks = kColChunk, .row_tile = kRowTile, .tok_tile = kTokTile, .tok_block = kTokBlock},
      [](int64_t, int64_t) {},
      [&](const Tile& tl) {
        a.cols = tl.b_end - tl.b_begin;
        a.accumulate = tl.accumulate;
        a.w = g.w + tl.r * g.w_stride + tl.b_begin * kElemBytes;
        a.x = x + tl.t * ldx + tl.b_begin;
        a.y = g.y + tl.t * g.ldy + tl.r;
        // The first token tile of a block brings the next rows in; later ones hit cache.
        a.prefetch = tl.prefetch ? kRowTile * g.w_stride : 0;
        kTiles[tl.rows - 1][tl.tokens - 1](a);
      });
}

template <WFormat F>
void widen_row(const void* src, float* dst, int64_t n) {
  const auto* row = static_cast<const uint8_t*>(src);
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) _mm512_storeu_ps(dst + c, load_w16<F>(row, c));
  if (c < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - c)) - 1);
    _mm512_mask_storeu_ps(dst + c, m, load_w16<F>(row, c, m));
  }
}

}  // namespace

void gemm_f32(const GemmArgs& a) {
  gemm<WFormat::kF32>(a);
}
void gemm_f16(const GemmArgs& a) {
  gemm<WFormat::kF16>(a);
}
void gemm_bf16(const GemmArgs& a) {
  gemm<WFormat::kBF16>(a);
}
void f32_to_f32(const void* src, float* dst, int64_t n) {
  widen_row<WFormat::kF32>(src, dst, n);
}
void f16_to_f32(const void* src, float* dst, int64_t n) {
  widen_row<WFormat::kF16>(src, dst, n);
}
void bf16_to_f32(const void* src, float* dst, int64_t n) {
  widen_row<WFormat::kBF16>(src, dst, n);
}

}  // namespace mcmoe::kernels::avx512

// AVX2 + FMA + F16C kernels for float weights (F32, F16, BF16) against f32 activations;
// same numerics as dot_f_avx512.cpp (weights widened exactly, f32 accumulation). Tiles of
// up to 4 rows × 2 tokens: 8 accumulators + 2 activation vectors + 1 weight vector fit the
// 16 ymm registers. Hand intrinsics rather than Highway: Highway 1.0.3 lacks the int8 dot
// products the quantized kernels need, so the whole kernel set is written per ISA alike.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx2 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 2;
constexpr int64_t kTokBlock = 32;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <WFormat F>
inline __m256 load_w8(const uint8_t* row, int64_t c) {
  if constexpr (F == WFormat::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + c);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * c));
    if constexpr (F == WFormat::kF16) {
      return _mm256_cvtph_ps(h);
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

template <WFormat F>
inline float load_w1(const uint8_t* row, int64_t c) {
  if constexpr (F == WFormat::kF32) {
    float f;
    std::memcpy(&f, row + 4 * c, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, row + 2 * c, 2);
    if constexpr (F == WFormat::kF16) {
      return _cvtsh_ss(h);
    } else {
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
  }
}

struct TileArgs {
  const uint8_t* w;
  size_t w_stride;
  int64_t cols;
  const float* x;
  int64_t ldx;
  float* y;
  int64_t ldy;
  size_t prefetch;  // bytes to the next tile's rows, 0 = none (see dot_q_avx512.cpp)
  bool accumulate;  // add to y (a later column chunk; never here: rows are read in one pass)
};
using TileFn = void (*)(const TileArgs&);

template <WFormat F, int R, int T>
void tile(const TileArgs& a) {
  constexpr int64_t kElemBytes = F == WFormat::kF32 ? 4 : 2;
  __m256 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= a.cols; c += 8) {
    __m256 xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(a.x + t * a.ldx + c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      if (a.prefetch != 0 && (c * kElemBytes) % 64 == 0) {
        _mm_prefetch(
            reinterpret_cast<const char*>(a.w + r * a.w_stride + a.prefetch + c * kElemBytes),
            _MM_HINT_T0);
      }
      const __m256 wv = load_w8<F>(a.w + r * a.w_stride, c);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  // The columns past the last full vector, one at a time.
  store_tile<R, T>(a.y, a.ldy, a.accumulate, [&](int r, int t) {
    float s = hsum(acc[r][t]);
    for (int64_t k = c; k < a.cols; ++k) s += load_w1<F>(a.w + r * a.w_stride, k) * a.x[t * a.ldx + k];
    return s;
  });
}

template <WFormat F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <WFormat F>
void gemm(const GemmArgs& g) {
  static constexpr auto kTiles = make_tile_table<Tiles<F>, TileArgs, kRowTile, kTokTile>();
  const int64_t ldx = static_cast<int64_t>(g.x_stride / sizeof(float));
  TileArgs a{.w = nullptr,
             .w_stride = g.w_stride,
             .cols = g.cols,
             .x = nullptr,
             .ldx = ldx,
             .y = nullptr,
             .ldy = g.ldy,
             .prefetch = 0,
             .accumulate = false};
  const auto* x = static_cast<const float*>(g.x);
  walk_tiles(
      g, TileWalk{.blocks = g.cols, .chunk_blocks = 0, .row_tile = kRowTile, .tok_tile = kTokTile, .tok_block = kTokBlock},
      [](int64_t, int64_t) {},
      [&](const Tile& tl) {
        a.w = g.w + tl.r * g.w_stride;
        a.x = x + tl.t * ldx;
        a.y = g.y + tl.t * g.ldy + tl.r;
        a.prefetch = tl.prefetch ? kRowTile * g.w_stride : 0;
        kTiles[tl.rows - 1][tl.tokens - 1](a);
      });
}

template <WFormat F>
void widen_row(const void* src, float* dst, int64_t n) {
  const auto* row = static_cast<const uint8_t*>(src);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) _mm256_storeu_ps(dst + c, load_w8<F>(row, c));
  for (; c < n; ++c) dst[c] = load_w1<F>(row, c);
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

}  // namespace mcmoe::kernels::avx2

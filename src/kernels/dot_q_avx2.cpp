// AVX2 kernels for Q8_0 and Q4_0 weights against int8 activation blocks (natural layout,
// act_avx2.cpp). Hand intrinsics: Highway 1.0.3 has no int8 dot product.
//
// One 256-bit register holds one block. Without VNNI the int8 product is vpmaddubsw
// (unsigned × signed bytes → saturating int16 pairs) then vpmaddwd against ones (→ int32):
//  - Q8_0: |qw| as the unsigned operand and qx with qw's sign applied (vpsignb) as the
//    signed one; each pair sum is at most 2 · 128 · 127 < 32767, so nothing saturates.
//  - Q4_0: the stored nibble qw + 8 (0..15) is already unsigned; pair sums stay below
//    2 · 15 · 127. The offset is removed per block as 8 · dw · sd (sd = dx · Σqx), added for
//    8 blocks at once.
// Tiles of up to 4 rows × 2 tokens (16 ymm registers bound the tile).
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx2 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 2;
constexpr int64_t kTokBlock = 64;  // see dot_q_avx512.cpp

inline int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

inline float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <WFormat F>
struct QFormat;

template <>
struct QFormat<WFormat::kQ8_0> {
  static constexpr size_t kBlockBytes = 34;
  static constexpr bool kHasOffset = false;
  // The weight codes and their absolute values.
  struct W {
    __m256i q, abs;
  };
  static W load(const uint8_t* p) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    return {q, _mm256_sign_epi8(q, q)};
  }
  static __m256i dot(const W& w, __m256i x) {
    const __m256i p16 = _mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(x, w.q));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  }
};

template <>
struct QFormat<WFormat::kQ4_0> {
  static constexpr size_t kBlockBytes = 18;
  static constexpr bool kHasOffset = true;
  struct W {
    __m256i u;  // nibbles as unsigned bytes, elements 0..31 in order
  };
  static W load(const uint8_t* p) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i nib = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(b, nib);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
    return {_mm256_set_m128i(hi, lo)};
  }
  static __m256i dot(const W& w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.u, x), _mm256_set1_epi16(1));
  }
};

using TileArgs = QTileArgs;  // nb in blocks of 32; one column chunk
using TileFn = QTileFn;

template <WFormat F, int R, int T>
void tile(const TileArgs& a) {
  using Q = QFormat<F>;
  constexpr size_t kBB = Q::kBlockBytes;
  __m256 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  alignas(32) float dws[R][8];
  const float* dx[T];
  const float* sd[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    dx[t] = reinterpret_cast<const float*>(a.x + t * a.x_stride + a.d_off);
    sd[t] = reinterpret_cast<const float*>(a.x + t * a.x_stride + a.sd_off);
  }
  // Chunks of 8 blocks; the act row is zero-padded to 16 blocks, so the vector loads of
  // dx / sd may cover blocks past nb (their contributions are zero).
  for (int64_t c = 0; c < a.nb; c += 8) {
    const int64_t n_valid = min64(8, a.nb - c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      for (int64_t k = 0; k < 8; ++k) {
        dws[r][k] = k < n_valid ? load_fp16(a.w + r * a.w_stride + (c + k) * kBB) : 0.f;
      }
    }
    if constexpr (Q::kHasOffset) {
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const __m256 nsd = _mm256_mul_ps(_mm256_loadu_ps(sd[t] + c), _mm256_set1_ps(-8.f));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
          acc[r][t] = _mm256_fmadd_ps(_mm256_load_ps(dws[r]), nsd, acc[r][t]);
      }
    }
    for (int64_t k = 0; k < n_valid; ++k) {
      const int64_t b = c + k;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        if (a.prefetch != 0) {
          _mm_prefetch(reinterpret_cast<const char*>(a.w + r * a.w_stride + b * kBB + a.prefetch),
                       _MM_HINT_T0);
        }
        const typename Q::W w = Q::load(a.w + r * a.w_stride + b * kBB);
        const __m256 dw = _mm256_set1_ps(dws[r][k]);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          const __m256i xq =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(a.x + t * a.x_stride + b * 32));
          const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(Q::dot(w, xq)), dw);
          acc[r][t] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(dx[t] + b), acc[r][t]);
        }
      }
    }
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate, [&](int r, int t) { return hsum(acc[r][t]); });
}

template <WFormat F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <WFormat F>
void gemm(const GemmArgs& g) {
  static constexpr auto kTiles = make_tile_table<Tiles<F>, TileArgs, kRowTile, kTokTile>();
  run_qtiles(g,
             TileWalk{.blocks = g.cols / 32,
                      .chunk_blocks = 0,
                      .row_tile = kRowTile,
                      .tok_tile = kTokTile,
                      .tok_block = kTokBlock},
             kTiles);
}

}  // namespace

void gemm_q8_0(const GemmArgs& a) {
  gemm<WFormat::kQ8_0>(a);
}
void gemm_q4_0(const GemmArgs& a) {
  gemm<WFormat::kQ4_0>(a);
}

}  // namespace mcmoe::kernels::avx2

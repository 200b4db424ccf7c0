// AVX-512 VNNI kernels for mcmoe's grouped low-bit weights (MQ{1,2,3,4}_G{32,64,128},
// quant/lowbit.h) against int8 activation blocks in the kInterleave4 layout (act_avx512.cpp).
// Hand intrinsics: Highway 1.0.3 has no int8 dot product.
//
// One weight block (128 weights) is exactly one group of 4 activation blocks, two 64-byte
// vectors X0 / X1 (kernels.h); lowbit.cpp stores the codes so that they unpack into the two
// matching vectors W0 / W1 of unsigned codes (see there for each bit width), and vpdpbusd
// multiplies them by the signed activations with no offset, leaving 4 int32 lanes per
// 32-weight sub-block k (lanes 4k..4k+3). With activation scale dx, activation code sum Σa
// and its group's (scale, min), sub-block k contributes
//   scale · dx · Σ q·a   +   min · dx · Σa.
// The first term costs, per block and (row, token), a conversion, a multiply by dx (dx4,
// four-fold in the act row) and an FMA with the block's scales. The second needs no codes:
// the headers of 16 groups are copied aside with plain moves as the blocks pass, and once per
// 16 groups one FMA adds their mins times the act row's sd (= dx · Σa per 32-block, summed
// over a group). That keeps the vector work per block to unpack, 2 vpdpbusd and 3 float
// operations, which decides decode speed at 2-3 bits (bench/RESULTS_matmul.md).
// 2-bit codes are not shifted down to bits 0..1: sub-blocks 2 and 3 keep theirs at bits 2..3
// (value 4q), which saves a shift per block; their dx lanes carry the 1/4.
// Tiles of up to 4 rows × 4 tokens keep 16 accumulators in registers (as dot_q_avx512.cpp).
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/mq_common.h"
#include "kernels/tile_walk.h"
#include "quant/lowbit.h"

// GCC 12 bug 105593: false -Wuninitialized from its AVX-512 headers (see dot_q_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace mcmoe::kernels::avx512 {

namespace {

// Tiles and prefill blocking as in dot_q_avx512.cpp: a token block's activations for one
// column chunk (32 weight blocks = 128 activation blocks) stay in L2 while rows stream past.
constexpr int kRowTile = 4, kTokTile = 4;
constexpr int64_t kTokBlock = 64, kColChunk = 32;

inline __mmask64 load_mask(const uint8_t* p) {
  uint64_t m;
  std::memcpy(&m, p, 8);
  return _cvtu64_mask64(m);
}

// W0 / W1 from a block's code bytes (layouts in lowbit.cpp). For B = 2 and 3, lanes 32..63
// (sub-blocks 2 and 3) hold 4 times their code (dx_lane_scale undoes it).
template <int B>
[[gnu::always_inline]] inline void load_codes(const uint8_t* p, __m512i& w0, __m512i& w1) {
  if constexpr (B == 4) {
    __m512i v = _mm512_loadu_si512(p);
    // One load: GCC would otherwise fold it into both users, and the 64 bytes usually span
    // two cache lines (68-byte blocks), so each copy costs two load slots.
    asm("" : "+v"(v));
    const __m512i nib = _mm512_set1_epi8(0x0f);
    w0 = _mm512_and_si512(v, nib);
    w1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
  } else if constexpr (B == 1) {
    const __m512i one = _mm512_set1_epi8(1);
    w0 = _mm512_maskz_mov_epi8(load_mask(p), one);
    w1 = _mm512_maskz_mov_epi8(load_mask(p + 8), one);
  } else {  // 2, or the 2-bit plane of 3 followed by the 1-bit plane of the high bits
    // The 32 bytes in both halves; half 0 at bits 0..1 (lanes 0..31) and 2..3 (lanes
    // 32..63), half 1 four bits higher.
    const __m512i z =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    const __m512i mask = _mm512_inserti64x4(_mm512_set1_epi8(0x03), _mm256_set1_epi8(0x0c), 1);
    w0 = _mm512_and_si512(z, mask);
    w1 = _mm512_and_si512(_mm512_srli_epi16(z, 4), mask);
    if constexpr (B == 3) {  // + 4 (lanes 32..63: + 16) where the high bit is set
      const __m512i high = _mm512_inserti64x4(_mm512_set1_epi8(4), _mm256_set1_epi8(16), 1);
      w0 = _mm512_mask_add_epi8(w0, load_mask(p + 32), w0, high);
      w1 = _mm512_mask_add_epi8(w1, load_mask(p + 40), w1, high);
    }
  }
}

// What dx is multiplied by per lane: 1/4 for sub-blocks 2 and 3 of B = 2 and 3 (load_codes).
template <int B>
inline __m512 dx_lane_scale() {
  if constexpr (B == 2 || B == 3) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(1.f)),
                                               _mm256_castps_pd(_mm256_set1_ps(0.25f)), 1));
  } else {
    return _mm512_set1_ps(1.f);
  }
}

// Lane l's scale: that of sub-block l / 4's group, f16 pair g at header bytes 4g..4g+3. One
// pair per block (G = 128) is one broadcast load; otherwise a permute of 16 header bytes (the
// whole header for G = 32, header and codes for G = 64; blocks have at least 20 bytes).
template <int G>
[[gnu::always_inline]] inline __m512 load_scales(const uint8_t* p) {
  if constexpr (G == 128) {
    return _mm512_cvtph_ps(_mm256_broadcastw_epi16(_mm_loadu_si16(p)));
  } else {
    constexpr short k1 = 2 * (32 / G), k2 = 2 * (64 / G), k3 = 2 * (96 / G);
    const __m256i idx =
        _mm256_setr_epi16(0, 0, 0, 0, k1, k1, k1, k1, k2, k2, k2, k2, k3, k3, k3, k3);
    return _mm512_cvtph_ps(_mm256_permutexvar_epi16(
        idx, _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))));
  }
}

// dx · Σa of the groups of blocks [b0, b1) of one act row (at most 16 groups; 0 past b1):
// the act row's sd per 32-block, summed over the G / 32 of a group.
template <int G>
[[gnu::always_inline]] inline __m512 group_sd(const float* sd, int64_t b0, int64_t b1) {
  constexpr int kSub = G / 32;                    // act blocks per group
  const int n = static_cast<int>(4 * (b1 - b0));  // act blocks, at most 16 * kSub
  __m512 v[kSub];
#pragma GCC unroll 4
  for (int i = 0; i < kSub; ++i) {
    const int valid = n - 16 * i < 0 ? 0 : n - 16 * i > 16 ? 16 : n - 16 * i;
    v[i] = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << valid) - 1), sd + 4 * b0 + 16 * i);
  }
  if constexpr (kSub == 1) {
    return v[0];
  } else {
    // Sums of neighbouring pairs across two vectors, once (G = 64) or twice (G = 128).
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    auto pairs = [&](__m512 x, __m512 y) {
      return _mm512_add_ps(_mm512_permutex2var_ps(x, even, y), _mm512_permutex2var_ps(x, odd, y));
    };
    if constexpr (kSub == 2) {
      return pairs(v[0], v[1]);
    } else {
      return pairs(pairs(v[0], v[1]), pairs(v[2], v[3]));
    }
  }
}

using TileArgs = QTileArgs;  // nb, b_begin / b_end in weight blocks (128 weights)
using TileFn = QTileFn;

template <int B, int G, int R, int T>
void tile(const TileArgs& a) {
  constexpr size_t kHeader = quant::mq_header_bytes(G);
  constexpr size_t kBlockBytes = kHeader + 16 * B;
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  constexpr int kGroups = 128 / G;           // per block
  constexpr int64_t kWindow = 16 / kGroups;  // blocks whose mins fill one 16-lane vector
  const __m512 lane_scale = dx_lane_scale<B>();
  // Word 2j + 1 of 16 (scale, min) pairs is pair j's min.
  const __m512i min_idx =
      _mm512_setr_epi32(0x00030001, 0x00070005, 0x000b0009, 0x000f000d, 0x00130011, 0x00170015,
                        0x001b0019, 0x001f001d, 0, 0, 0, 0, 0, 0, 0, 0);
  // Pointers advance one block a step; rows are fixed offsets from them (few registers).
  const size_t stride = a.w_stride;
  const uint8_t* wp = a.w + a.b_begin * kBlockBytes;
  const uint8_t* xp = a.x + a.b_begin * 128;
  const auto* dxp = reinterpret_cast<const float*>(a.x + a.dx4_off) + a.b_begin * 16;
  for (int64_t w0 = a.b_begin; w0 < a.b_end; w0 += kWindow) {
    const int64_t w1 = w0 + kWindow < a.b_end ? w0 + kWindow : a.b_end;
    // The window's (scale, min) pairs, copied header by header with plain moves (no vector
    // work per block); pair j of the window is group j. Zero where there is no group.
    alignas(64) uint8_t pairs[R][64];
    if (w1 - w0 < kWindow) std::memset(pairs, 0, sizeof(pairs));
    uint8_t* pp = &pairs[0][0];
    const uint8_t* pfp = wp + a.prefetch;
    for (int64_t blk = w0; blk < w1;
         ++blk, wp += kBlockBytes, pfp += kBlockBytes, xp += 128, dxp += 16, pp += kHeader) {
      __m512 dx[T];
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        dx[t] = _mm512_mul_ps(_mm512_load_ps(reinterpret_cast<const float*>(
                                  reinterpret_cast<const uint8_t*>(dxp) + t * a.x_stride)),
                              lane_scale);
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const uint8_t* wb = wp + r * stride;
        // Every line holding a block start, and (blocks over 64 bytes) the one after it.
        // Without a prefetch (prefetch = 0) this touches the block itself: cheaper than a
        // branch.
        const char* pf = reinterpret_cast<const char*>(pfp + r * stride);
        _mm_prefetch(pf, _MM_HINT_T0);
        if constexpr (kBlockBytes > 64) _mm_prefetch(pf + 64, _MM_HINT_T0);
        __m512i c0, c1;
        load_codes<B>(wb + kHeader, c0, c1);
        std::memcpy(pp + 64 * r, wb, kHeader);
        const __m512 sc = load_scales<G>(wb);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          const auto* xq = reinterpret_cast<const __m512i*>(xp + t * a.x_stride);
          __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c0, _mm512_load_si512(xq));
          s = _mm512_dpbusd_epi32(s, c1, _mm512_load_si512(xq + 1));
          acc[r][t] = _mm512_fmadd_ps(sc, _mm512_mul_ps(_mm512_cvtepi32_ps(s), dx[t]), acc[r][t]);
        }
      }
    }
    // The window's min terms: min · dx · Σa per group.
    __m512 gsd[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      gsd[t] = group_sd<G>(reinterpret_cast<const float*>(a.x + t * a.x_stride + a.sd_off), w0, w1);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 mins = _mm512_cvtph_ps(
          _mm512_castsi512_si256(_mm512_permutexvar_epi16(min_idx, _mm512_load_si512(pairs[r]))));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(mins, gsd[t], acc[r][t]);
    }
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate, [&](int r, int t) { return _mm512_reduce_add_ps(acc[r][t]); });
}

template <int B, int G>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<B, G, R, T>;
};

struct Gemm {
  template <int B, int G>
  static void run(const GemmArgs& g) {
    static constexpr auto kTiles = make_tile_table<Tiles<B, G>, TileArgs, kRowTile, kTokTile>();
    run_qtiles(g,
               TileWalk{.blocks = g.cols / quant::kMqBlock,
                        .chunk_blocks = kColChunk,
                        .row_tile = kRowTile,
                        .tok_tile = kTokTile,
                        .tok_block = kTokBlock},
               kTiles);
  }
};

}  // namespace

void gemm_mq(const GemmArgs& a) {
  run_mq<Gemm>(a);
}

}  // namespace mcmoe::kernels::avx512

#pragma once
// The AVX2 kernel skeleton for every weight format that unpacks to small integers: ggml's
// legacy and K-quant blocks (kq_avx2.cpp), its i-quant, ternary and MXFP4 blocks
// (iq_avx2.cpp). A format is one traits struct (listed at the end of this comment); the tile
// loop here is written once for all of them. The weights run against
// int8 activation blocks in the natural layout (one 32-code block per 256-bit register).
//
// Without VNNI the int8 product is vpmaddubsw (unsigned × signed bytes → int16 pairs), and
// the following vpmaddwd multiplies those pairs by the 16-weight sub-block scales as int16,
// so one instruction both widens to int32 and applies the scale (lanes 0..3: weights 0..15,
// lanes 4..7: 16..31):
//  - formats with a min (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) keep their unsigned codes (≤ 31) and
//    add the min term separately: Σ min · Σqx from the activation row's sd = dx · Σqx per
//    block (Q4_1 / Q5_1 per block, Q4_K / Q5_K for a super-block's 8 blocks in one FMA), or
//    for Q2_K's 16-weight mins from pair sums of qx (vpmaddubsw against ones);
//  - offset formats (Q5_0, Q3_K, Q6_K) subtract the offset in bytes (|q| ≤ 32) and use
//    |q| × (qx with q's sign), as dot_q_avx2.cpp does for Q8_0.
//  - signed formats (the i-quants, whose values are grid points or table entries, |q| ≤ 127)
//    use the same sign trick on their values directly.
// Pair sums stay below 2 · 127 · 127 and products with the scales below 2^22: no saturation.
// The int32 lanes are converted to f32 and scaled by d · dx, one FMA per block and token.
// Tiles of up to 4 rows × 2 tokens; each row's block is unpacked once per tile.
//
// A format's traits struct F provides:
//   kUnitBytes, kUnitBlocks  bytes and act blocks of one unit (a block of 32 or a super-block)
//   kOffset      code offset subtracted in bytes (0: none)
//   kSigned      (optional, default false) codes are signed values: sign trick without offset
//   kScales      16: a scale per 16 weights, 8: per 32, 0: none (d only)
//   kMin         how the min enters (MinKind)
//   prepare(p, Unit&) and codes(p, j) -> the 32 codes of act block j
//
// Included only by *_avx2.cpp files (each compiled with AVX2 flags); everything here is in an
// anonymous namespace, so each includer gets its own copy.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx2 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 2;
constexpr int64_t kTokBlock = 64;  // see dot_q_avx512.cpp

inline float fp16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __m256i load32(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// (v >> n) & mask per byte (16-bit shifts; the mask drops the neighbour byte's bits).
inline __m256i shift_mask(__m256i v, int n, char mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(n)), _mm256_set1_epi8(mask));
}

// Blocks of 32 in 16 bytes (legacy, IQ4_NL, MXFP4): element j in byte j's low nibble, j + 16 in its high nibble.
inline __m256i nibbles16(const uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i nib = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), nib), _mm_and_si128(b, nib));
}

// 0xff in byte e where bit e of `bits` is set, else 0 (Q5_0 / Q5_1 fifth bits, i-quant signs).
inline __m256i bit_bytes(uint32_t bits) {
  // Byte e reads byte e / 8 of the word (within each 128-bit lane: bytes 0, 1 and 2, 3).
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
}

// How a format's min enters: none, one f32 per 32-weight block (Q4_1 / Q5_1), one per block
// for a super-block's 8 blocks at once (Q4_K / Q5_K), or per 16 weights (Q2_K).
enum class MinKind { kNone, kPerBlock, kVec8, kPer16 };

// A unit is what a row steps over: one block (legacy) or one super-block of 8 act blocks.
// prepare() reads its scales once per row (in registers: scalar stores read back as vectors
// would stall store forwarding); codes(j) unpacks act block j's 32 codes.
struct Unit {
  float d = 0.f, m = 0.f;  // m: legacy min, or -dmin (Q2_K)
  // Sub-block scales as int16 pairs (for vpmaddwd), one per int32 lane: 16-weight sub-blocks
  // 0..7 in sc[0] and 8..15 in sc[1]; Q4_K / Q5_K: the 8 sub-blocks of 32 in sc[0].
  __m256i sc[2];
  __m256i mn[2];  // Q2_K: the 16 mins, likewise
  __m256 mvec;    // Q4_K / Q5_K: -dmin · min of the 8 sub-blocks
};

// int32 lanes (small signed values) → the same value in both int16 halves.
inline __m256i pairs16(__m256i v) {
  return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xffff)), _mm256_slli_epi32(v, 16));
}
// 16 scale bytes → Unit::sc layout (signed or unsigned bytes).
template <bool kSigned>
inline void scales16(__m128i bytes, __m256i (&out)[2]) {
  const __m128i high = _mm_srli_si128(bytes, 8);
  out[0] = pairs16(kSigned ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes));
  out[1] = pairs16(kSigned ? _mm256_cvtepi8_epi32(high) : _mm256_cvtepu8_epi32(high));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The int16 scales of act block j: weights 0..15 take sub-block 2 j, 16..31 sub-block 2 j + 1
// (16-weight sub-blocks), or both sub-block j (Q4_K / Q5_K); legacy blocks: 1.
template <int kScales>
inline __m256i block_scales(const __m256i (&v)[2], int j) {
  if constexpr (kScales == 16) {
    const int i = 2 * (j % 4);
    return _mm256_permutevar8x32_epi32(v[j / 4],
                                       _mm256_setr_epi32(i, i, i, i, i + 1, i + 1, i + 1, i + 1));
  } else if constexpr (kScales == 8) {
    return _mm256_permutevar8x32_epi32(v[0], _mm256_set1_epi32(j));
  } else {
    return _mm256_set1_epi16(1);
  }
}

using TileArgs = QTileArgs;
using TileFn = QTileFn;

// Whether F's codes go through the sign trick (offset or signed values).
template <typename F>
constexpr bool sign_trick() {
  if constexpr (requires { F::kSigned; }) {
    if (F::kSigned) return true;
  }
  return F::kOffset != 0;
}

template <typename F, int R, int T>
void tile(const TileArgs& a) {
  constexpr int kUB = F::kUnitBlocks;
  __m256 acc[R][T];
  float macc[R][T] = {};  // per-block min terms (Q4_1 / Q5_1)
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const float* dx[T];
  const float* sd[T];
  const uint8_t* xq[T];
  for (int t = 0; t < T; ++t) {
    xq[t] = a.x + t * a.x_stride;
    dx[t] = reinterpret_cast<const float*>(xq[t] + a.d_off);
    sd[t] = reinterpret_cast<const float*>(xq[t] + a.sd_off);
  }
  for (int64_t blk0 = a.b_begin; blk0 < a.b_end; blk0 += kUB) {
    Unit u[R];
    const uint8_t* wp[R];
    for (int r = 0; r < R; ++r) {
      wp[r] = a.w + r * a.w_stride + blk0 / kUB * F::kUnitBytes;
      if (a.prefetch != 0) {
        const char* next = reinterpret_cast<const char*>(wp[r]) + a.prefetch;
        for (size_t off = 0; off < F::kUnitBytes + 63; off += 64)
          _mm_prefetch(next + off, _MM_HINT_T0);
      }
      F::prepare(wp[r], u[r]);
    }
#pragma GCC unroll 8
    for (int j = 0; j < kUB; ++j) {
      const int64_t b = blk0 + j;
      __m256i xv[T], xs16[T];
      for (int t = 0; t < T; ++t) {
        xv[t] = load32(xq[t] + b * 32);
        if constexpr (F::kMin == MinKind::kPer16) {
          xs16[t] = _mm256_maddubs_epi16(_mm256_set1_epi8(1), xv[t]);
        }
      }
      for (int r = 0; r < R; ++r) {
        __m256i q = F::codes(wp[r], j);
        __m256i aq = q;
        if constexpr (sign_trick<F>()) {
          if constexpr (F::kOffset != 0) q = _mm256_sub_epi8(q, _mm256_set1_epi8(F::kOffset));
          aq = _mm256_sign_epi8(q, q);
        }
        const __m256i sc = block_scales<F::kScales>(u[r].sc, j);
        for (int t = 0; t < T; ++t) {
          const __m256i xs = sign_trick<F>() ? _mm256_sign_epi8(xv[t], q) : xv[t];
          const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, xs), sc);
          const float ddx = u[r].d * dx[t][b];
          acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_set1_ps(ddx), acc[r][t]);
          if constexpr (F::kMin == MinKind::kPer16) {
            const __m256i m32 = _mm256_madd_epi16(xs16[t], block_scales<16>(u[r].mn, j));
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m32), _mm256_set1_ps(u[r].m * dx[t][b]),
                                        acc[r][t]);
          } else if constexpr (F::kMin == MinKind::kPerBlock) {
            macc[r][t] += u[r].m * sd[t][b];
          }
        }
      }
    }
    if constexpr (F::kMin == MinKind::kVec8) {
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t)
          acc[r][t] = _mm256_fmadd_ps(u[r].mvec, _mm256_loadu_ps(sd[t] + blk0), acc[r][t]);
    }
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate,
                   [&](int r, int t) { return hsum(acc[r][t]) + macc[r][t]; });
}

template <typename F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <typename F>
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

}  // namespace mcmoe::kernels::avx2

#pragma once
// The AVX-512 VNNI kernel skeleton for every weight format that unpacks to small integers:
// ggml's legacy and K-quant blocks (kq_avx512.cpp), its i-quant, ternary and MXFP4 blocks
// (iq_avx512.cpp). A format is one traits struct (listed at the end of this comment); the
// unit and tile loops here are written once for all of them. The weights run
// against int8 activation blocks in the kInterleave4 layout (kernels.h), built like
// dot_q_avx512.cpp's Q4_0 kernel: a 512-bit register holds 16 codes of each of 4 activation
// blocks (elements 0..15 in the "lo" register, 16..31 in "hi"), vpdpbusd leaves 4 int32
// lanes per 16 elements, and those lanes are scaled in f32.
//
// Every format is unpacked, per group of 4 activation blocks (128 weights) of a row, into
//   lo, hi     unsigned codes u = q + K (K: the format's offset, 0 when it has a min; 128
//              for the signed values of the i-quants)
//   slo, shi   per int32 lane, the f32 scale d · scale of the lane's 16 weights (equal for
//              lo and hi unless the format has 16-weight sub-blocks: Q2_K, Q3_K, Q6_K)
//   mlo, mhi   per lane, the f32 weight of the lane's activation sum: -dmin · min (K-quants),
//              +m (Q4_1 / Q5_1)
// and the group's contribution to y, for an activation block of scale dx, is
//   Σ_lanes dx · (s · (Σ u·qx − K · Σ qx) + m · Σ qx).
// Σ qx per lane (xs) comes from one vpdpbusd against ones, computed once per token and group
// and shared by the tile's rows; with it the offset is removed in integers (the lane
// accumulator starts at −K · xs) and the min term is one FMA.
// Sub-block scales are unpacked once per super-block into one vector (lane k = d · scale_k)
// and routed to the lanes of each group with one permute.
//
// A format's traits struct F provides:
//   kUnitBytes     bytes of one unit, what a row steps over: a super-block of 256 (kGroups
//                  = 2) or 4 blocks of 32 (kGroups = 1)
//   kGroups        groups of 4 activation blocks per unit
//   kOffsetShift   log2 of the code offset K (-1: no offset, the format has a min instead)
//   kSplit         16-weight sub-block scales (slo != shi)
//   kMin           the format has a min term (mlo / mhi)
//   Unit           what prepare() reads once per unit (scales), then group(p, unit, h, g)
//                  unpacks group h
//
// Included only by *_avx512.cpp files (each compiled with AVX-512 flags); everything here is
// in an anonymous namespace, so each includer gets its own copy.
#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_sets.h"
#include "kernels/tile_walk.h"

namespace mcmoe::kernels::avx512 {

namespace {

constexpr int kRowTile = 4;
constexpr int kTokTile = 4;
constexpr int64_t kTokBlock = 64;         // see dot_q_avx512.cpp
constexpr int64_t kColChunkBlocks = 128;  // a multiple of 8 (whole super-blocks)

inline float fp16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16-bit shift counts per 128-bit lane j: a[j] (for vpsrlvw).
inline __m512i lane_counts(int a0, int a1, int a2, int a3) {
  auto rep = [](int c) {
    return static_cast<long long>(0x0001000100010001ull * static_cast<unsigned>(c));
  };
  return _mm512_setr_epi64(rep(a0), rep(a0), rep(a1), rep(a1), rep(a2), rep(a2), rep(a3), rep(a3));
}

// Byte masks per 128-bit lane j: bit (4 h + j), for vptestmb on a broadcast bit plane.
inline __m512i lane_bits(int h) {
  auto rep = [](int bit) { return static_cast<long long>(0x0101010101010101ull << bit); };
  const int b = 4 * h;
  return _mm512_setr_epi64(rep(b), rep(b), rep(b + 1), rep(b + 1), rep(b + 2), rep(b + 2),
                           rep(b + 3), rep(b + 3));
}

// int32 lane indices for routing sub-block scale k to the 4 lanes of 128-bit lane j.
inline __m512i lane_index(int k0, int k1, int k2, int k3) {
  return _mm512_setr_epi32(k0, k0, k0, k0, k1, k1, k1, k1, k2, k2, k2, k2, k3, k3, k3, k3);
}

inline __m512i bcast16(const uint8_t* p) {
  return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Two bits per weight at shift 2 j in lane j (Q2_K, Q3_K's low bits, Q6_K's high bits).
inline __m512i crumbs(const uint8_t* p16) {
  return _mm512_and_si512(_mm512_srlv_epi16(bcast16(p16), lane_counts(0, 2, 4, 6)),
                          _mm512_set1_epi8(3));
}

// Four 32-bit words, word i one bit per weight of act block i (bit e: weight e), → the masks
// of lo (bits 0..15 of word i in lane i) and hi (bits 16..31): Q5_0 / Q5_1 fifth bits,
// i-quant signs.
inline void word_masks(const uint32_t (&w)[4], __mmask64& lo, __mmask64& hi) {
  uint64_t l = 0, h = 0;
  for (int i = 0; i < 4; ++i) {
    l |= static_cast<uint64_t>(w[i] & 0xffff) << (16 * i);
    h |= static_cast<uint64_t>(w[i] >> 16) << (16 * i);
  }
  lo = _cvtu64_mask64(l);
  hi = _cvtu64_mask64(h);
}

// The fp16 scales of 4 blocks of kBB bytes (at byte offsets off + i · kBB), each repeated over
// the 4 lanes of its block, as f32 (Q4_1 / Q5_0 / Q5_1 d and m, IQ4_NL d). The two 64-byte
// loads stay inside the group's 4 · kBB >= 64 bytes.
template <size_t kBB>
inline __m512 block_fp16_scales(const uint8_t* p, size_t off) {
  static_assert(4 * kBB >= 64);
  constexpr size_t kSecond = 4 * kBB - 64;  // start of the second load
  int w[4];
  for (int i = 0; i < 4; ++i) {
    const size_t byte = off + i * kBB;
    w[i] =
        byte + 2 <= 64 ? static_cast<int>(byte / 2) : static_cast<int>(32 + (byte - kSecond) / 2);
  }
  const __m512i idx = _mm512_setr_epi32(w[0] * 0x10001, w[0] * 0x10001, w[1] * 0x10001,
                                        w[1] * 0x10001, w[2] * 0x10001, w[2] * 0x10001,
                                        w[3] * 0x10001, w[3] * 0x10001, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i a = _mm512_loadu_si512(p);
  const __m512i b = _mm512_loadu_si512(p + kSecond);
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(a, idx, b)));
}

// Adds `add` to the bytes of lane j whose bit (4 h + j) is set in the 16 bytes at p.
inline __m512i add_bit_plane(__m512i v, const uint8_t* p16, int h, char add) {
  const __mmask64 m = _mm512_test_epi8_mask(bcast16(p16), lane_bits(h));
  return _mm512_mask_add_epi8(v, m, v, _mm512_set1_epi8(add));
}

// 16 sub-block scales (lane k = scale of weights 16 k .. 16 k + 15) routed to group h: lo lane
// j holds sub-block 8 h + 2 j, hi lane j sub-block 8 h + 2 j + 1.
inline void route16(__m512 v, int h, __m512& lo, __m512& hi) {
  const int b = 8 * h;
  lo = _mm512_permutexvar_ps(lane_index(b, b + 2, b + 4, b + 6), v);
  hi = _mm512_permutexvar_ps(lane_index(b + 1, b + 3, b + 5, b + 7), v);
}

// One group of 4 activation blocks, unpacked (see the file comment).
struct GroupW {
  __m512i lo, hi;
  __m512 slo, shi, mlo, mhi;
};

using TileArgs = QTileArgs;
using TileFn = QTileFn;

// One unit of R rows (wp[r] points at it) against T tokens; `blk` is its first act block.
template <typename F, int R, int T>
[[gnu::always_inline]] inline void unit_step(const uint8_t* const (&wp)[R], const TileArgs& a,
                                             int64_t blk, __m512 (&acc)[R][T]) {
  constexpr bool kNeedSums = F::kMin || F::kOffsetShift >= 0;
  typename F::Unit u[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    if (a.prefetch != 0) {
      const char* next = reinterpret_cast<const char*>(wp[r]) + a.prefetch;
#pragma GCC unroll 4
      for (size_t off = 0; off < F::kUnitBytes + 63; off += 64)
        _mm_prefetch(next + off, _MM_HINT_T0);
    }
    F::prepare(wp[r], u[r]);
  }
#pragma GCC unroll 2
  for (int h = 0; h < F::kGroups; ++h) {
    const int64_t gb = blk + 4 * h;
    // Per token: the lane sums' uses (offset bias, min weights) and the block scales.
    __m512i bias_lo[T], bias_hi[T];
    __m512 xm_lo[T], xm_hi[T], dx4[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const uint8_t* xrow = a.x + t * a.x_stride;
      const auto* xq = reinterpret_cast<const __m512i*>(xrow + gb * 32);
      dx4[t] = _mm512_load_ps(reinterpret_cast<const float*>(xrow + a.dx4_off) + gb * 4);
      bias_lo[t] = bias_hi[t] = _mm512_setzero_si512();
      if constexpr (kNeedSums) {
        const __m512i ones = _mm512_set1_epi8(1);
        __m512i xs_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_load_si512(xq));
        __m512i xs_hi =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, _mm512_load_si512(xq + 1));
        if constexpr (!F::kSplit) {
          xs_lo = _mm512_add_epi32(xs_lo, xs_hi);  // one scale per act block: sum both halves
        }
        if constexpr (F::kOffsetShift >= 0) {
          constexpr int s = F::kOffsetShift >= 0 ? F::kOffsetShift : 0;
          bias_lo[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(xs_lo, s));
          bias_hi[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(xs_hi, s));
        }
        if constexpr (F::kMin) {
          xm_lo[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(xs_lo), dx4[t]);
          xm_hi[t] = _mm512_mul_ps(_mm512_cvtepi32_ps(xs_hi), dx4[t]);
        }
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      GroupW g;
      F::group(wp[r], u[r], h, g);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const auto* xq = reinterpret_cast<const __m512i*>(a.x + t * a.x_stride + gb * 32);
        __m512 f;
        if constexpr (F::kSplit) {
          const __m512i s_lo = _mm512_dpbusd_epi32(bias_lo[t], g.lo, _mm512_load_si512(xq));
          const __m512i s_hi = _mm512_dpbusd_epi32(bias_hi[t], g.hi, _mm512_load_si512(xq + 1));
          f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_hi), g.shi,
                              _mm512_mul_ps(_mm512_cvtepi32_ps(s_lo), g.slo));
        } else {
          __m512i s = _mm512_dpbusd_epi32(bias_lo[t], g.lo, _mm512_load_si512(xq));
          s = _mm512_dpbusd_epi32(s, g.hi, _mm512_load_si512(xq + 1));
          f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), g.slo);
        }
        acc[r][t] = _mm512_fmadd_ps(f, dx4[t], acc[r][t]);
        if constexpr (F::kMin) {
          acc[r][t] = _mm512_fmadd_ps(g.mlo, xm_lo[t], acc[r][t]);
          if constexpr (F::kSplit) acc[r][t] = _mm512_fmadd_ps(g.mhi, xm_hi[t], acc[r][t]);
        }
      }
    }
  }
}

template <typename F, int R, int T>
void tile(const TileArgs& a) {
  constexpr int64_t kUnitBlocks = 4 * F::kGroups;
  constexpr size_t kUB = F::kUnitBytes;
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // K-quant rows are whole super-blocks; legacy rows may end in a partial group of 4.
  const int64_t full_end = a.b_end == a.nb ? a.nb / kUnitBlocks * kUnitBlocks : a.b_end;
  for (int64_t blk = a.b_begin; blk < full_end; blk += kUnitBlocks) {
    const uint8_t* wp[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) wp[r] = a.w + r * a.w_stride + blk / kUnitBlocks * kUB;
    unit_step<F, R, T>(wp, a, blk, acc);
  }
  if (full_end < a.b_end) {
    // Zero-padded copies (zero scales: the padding adds nothing; the act row is zero there).
    const int64_t blk = full_end;
    const size_t have = static_cast<size_t>(a.nb - blk) * (kUB / kUnitBlocks);
    alignas(64) uint8_t pad[R][kUB];
    const uint8_t* wp[R];
    for (int r = 0; r < R; ++r) {
      std::memset(pad[r], 0, kUB);
      std::memcpy(pad[r], a.w + r * a.w_stride + blk / kUnitBlocks * kUB, have);
      wp[r] = pad[r];
    }
    unit_step<F, R, T>(wp, a, blk, acc);
  }
  store_tile<R, T>(a.y, a.ldy, a.accumulate,
                   [&](int r, int t) { return _mm512_reduce_add_ps(acc[r][t]); });
}

template <typename F>
struct Tiles {
  template <int R, int T>
  static constexpr TileFn fn = tile<F, R, T>;
};

template <typename F>
void gemm(const GemmArgs& g) {
  static constexpr auto kTiles = make_tile_table<Tiles<F>, TileArgs, kRowTile, kTokTile>();
  // As dot_q_avx512.cpp: decode reads each row in one pass; prefill splits wide rows into
  // column chunks (whole super-blocks) so a token block's activations stay in L2.
  run_qtiles(g,
             TileWalk{.blocks = g.cols / 32,
                      .chunk_blocks = kColChunkBlocks,
                      .row_tile = kRowTile,
                      .tok_tile = kTokTile,
                      .tok_block = kTokBlock},
             kTiles);
}

}  // namespace

}  // namespace mcmoe::kernels::avx512

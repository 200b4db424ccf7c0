// AVX-512 VNNI kernels for llama.cpp's i-quants, ternary types and MXFP4 (quant/iquants.h): the
// formats' traits for the skeleton of kq_tile_avx512.h.
//
// Every format yields signed values q (|q| <= 127), stored for vpdpbusd as u = q + 128 with
// K = 128 removed in integers by the skeleton (ternary codes keep their own offset, K = 1):
//  - IQ4_NL / IQ4_XS / MXFP4: nibbles through a 16-entry table (vpshufb), which can hold
//    q + 128 directly;
//  - grid types (IQ2_*, IQ3_*, IQ1_*): grid entries gathered per 8 or 4 weights, their signs
//    applied with one masked subtract from a 64-bit mask assembled from the sign bytes;
//    IQ1's values g ± 1/8 as 8 g ± 1 (quant/iquants.h);
//  - TQ2_0's 2-bit codes as Q2_K's; TQ1_0's base-3 digits by multiplying bytes by 3^n mod 256
//    and reading the top trit as (x · 3) >> 8 = (x >= 86) + (x >= 171).
// Group h of a super-block holds act blocks 4 h + i in 128-bit lane i: its weights 0..15 in
// "lo", 16..31 in "hi".
//
// GCC 12 false -Wuninitialized positives from _mm512_undefined_*(): see dot_q_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/iq_bits.h"
#include "kernels/kq_tile_avx512.h"
#include "quant/iq_grids.h"
#include "quant/iquants.h"

namespace mcmoe::kernels::avx512 {

namespace {

using namespace iq_bits;
using namespace quant::iq_grids;

// ---- Shared pieces ------------------------------------------------------------------------

// Lane k of the result = byte k of `bytes` (k < 16) · d, as f32.
inline __m512 scaled_bytes(__m128i bytes, float d) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)), _mm512_set1_ps(d));
}

// N scale bytes f(0..N-1) in a vector register (iq_bits::scale_words).
template <int N, typename F>
inline __m128i scale_bytes(F&& f) {
  uint64_t lo, hi;
  scale_words<N>(f, lo, hi);
  return _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
}

// Per-32-weight scales (lane k = act block k of the super-block) routed to group h.
inline __m512 route8(__m512 v, int h) {
  const int b = 4 * h;
  return _mm512_permutexvar_ps(lane_index(b, b + 1, b + 2, b + 3), v);
}

// A 16-entry value table in every 128-bit lane, as u = value + 128.
inline __m512i value_table(const std::array<int8_t, 16>& values) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(values.data()));
  return _mm512_broadcast_i32x4(_mm_xor_si128(v, _mm_set1_epi8(static_cast<char>(0x80))));
}

// Magnitudes (all > 0) with the sign mask applied, as u = ±m + 128.
inline __m512i signed_u(__m512i mag, __mmask64 negative) {
  const __m512i base = _mm512_set1_epi8(static_cast<char>(0x80));
  return _mm512_mask_sub_epi8(_mm512_add_epi8(base, mag), negative, base, mag);
}

// Nibble formats with 4 blocks of 32 per unit (IQ4_NL, MXFP4): lane i = block i.
template <size_t kBB, size_t kQs>
inline void table_nibbles(const uint8_t* p, __m512i table, __m512i& lo, __m512i& hi) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kQs)));
  for (int i = 1; i < 4; ++i) {
    const auto* q = reinterpret_cast<const __m128i*>(p + i * kBB + kQs);
    v = _mm512_mask_broadcast_i32x4(v, static_cast<__mmask16>(0xf << (4 * i)), _mm_loadu_si128(q));
  }
  const __m512i nib = _mm512_set1_epi8(0x0f);
  lo = _mm512_shuffle_epi8(table, _mm512_and_si512(v, nib));
  hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
}

struct DOnly {
  __m512 d;  // per lane
};

// ---- Non-linear 4-bit and MXFP4 --------------------------------------------------------------

template <DType T>
struct IQuantFormat;

template <>
struct IQuantFormat<DType::IQ4_NL> {
  static constexpr size_t kUnitBytes = 72;
  static constexpr int kGroups = 1, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = DOnly;
  static void prepare(const uint8_t* p, Unit& u) { u.d = block_fp16_scales<18>(p, 0); }
  static void group(const uint8_t* p, const Unit& u, int, GroupW& g) {
    table_nibbles<18, 2>(p, value_table(kIQ4NLValues), g.lo, g.hi);
    g.slo = g.shi = u.d;
  }
};

template <>
struct IQuantFormat<DType::MXFP4> {
  static constexpr size_t kUnitBytes = 68;
  static constexpr int kGroups = 1, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = DOnly;
  static void prepare(const uint8_t* p, Unit& u) {
    // Block i's E8M0 byte is byte 17 i of the unit: byte i of 128-bit lane i, so one in-lane
    // shuffle puts it in the low byte of each of the lane's int32s (the rest zeroed).
    const __m512i idx =
        _mm512_setr_epi32(0xffffff00, 0xffffff00, 0xffffff00, 0xffffff00, 0xffffff01, 0xffffff01,
                          0xffffff01, 0xffffff01, 0xffffff02, 0xffffff02, 0xffffff02, 0xffffff02,
                          0xffffff03, 0xffffff03, 0xffffff03, 0xffffff03);
    const __m512i e = _mm512_shuffle_epi8(_mm512_loadu_si512(p), idx);
    // ggml's 2^(e - 128) (quant::e8m0_half): (e - 1) << 23, subnormal for e < 2.
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __mmask16 tiny = _mm512_cmplt_epi32_mask(e, _mm512_set1_epi32(2));
    u.d =
        _mm512_castsi512_ps(_mm512_mask_sllv_epi32(normal, tiny, _mm512_set1_epi32(0x00200000), e));
  }
  static void group(const uint8_t* p, const Unit& u, int, GroupW& g) {
    table_nibbles<17, 1>(p, value_table(kMXFP4Values), g.lo, g.hi);
    g.slo = g.shi = u.d;
  }
};

template <>
struct IQuantFormat<DType::IQ4_XS> {
  static constexpr size_t kUnitBytes = 136;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  struct Unit {
    __m512 s;  // lane k: d · scale of act block k
  };
  static void prepare(const uint8_t* p, Unit& u) {
    const uint16_t high = u16_at(p + 2);
    const __m128i sc = scale_bytes<8>([&](int k) {
      const int low = (p[4 + k / 2] >> (4 * (k % 2))) & 0x0f;
      return (low | (((high >> (2 * k)) & 3) << 4)) - 32;
    });
    u.s = scaled_bytes(sc, fp16_at(p));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    // Act block 4 h + i: 16 bytes at 8 + 16 (4 h + i), low nibbles weights 0..15.
    const __m512i v = _mm512_loadu_si512(p + 8 + 64 * h);
    const __m512i table = value_table(kIQ4NLValues), nib = _mm512_set1_epi8(0x0f);
    g.lo = _mm512_shuffle_epi8(table, _mm512_and_si512(v, nib));
    g.hi = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
    g.slo = g.shi = route8(u.s, h);
  }
};

// ---- Ternary ------------------------------------------------------------------------------

struct DBroadcast {
  __m512 d;
};

template <>
struct IQuantFormat<DType::TQ2_0> {
  static constexpr size_t kUnitBytes = 66;
  static constexpr int kGroups = 2, kOffsetShift = 0;  // codes 0..2 = q + 1
  static constexpr bool kSplit = false, kMin = false;
  using Unit = DBroadcast;
  static void prepare(const uint8_t* p, Unit& u) { u.d = _mm512_set1_ps(fp16_at(p + 64)); }
  // Weight 128 h + 32 l + m: (qs[32 h + m] >> 2 l) & 3, Q2_K's arrangement.
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    g.lo = crumbs(p + 32 * h);
    g.hi = crumbs(p + 32 * h + 16);
    g.slo = g.shi = u.d;
  }
};

// Base-3 digit of every byte: byte b of `v` times multiplier byte b of `mult` (mod 256), then
// the top trit (x · 3) >> 8.
inline __m512i trits(__m512i v, __m512i mult) {
  const __m512i lo_byte = _mm512_set1_epi16(0x00ff);
  const __m512i even = _mm512_mullo_epi16(v, _mm512_and_si512(mult, lo_byte));
  const __m512i odd =
      _mm512_mullo_epi16(_mm512_andnot_si512(lo_byte, v), _mm512_srli_epi16(mult, 8));
  const __m512i x = _mm512_mask_blend_epi8(0xaaaaaaaaaaaaaaaaull, even, odd);
  const __m512i one = _mm512_set1_epi8(1);
  __m512i t = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(x, _mm512_set1_epi8(86)), one);
  return _mm512_mask_add_epi8(
      t, _mm512_cmpge_epu8_mask(x, _mm512_set1_epi8(static_cast<char>(171))), t, one);
}

// Per-lane byte multipliers 3^n.
inline __m512i pow3_lanes(int n0, int n1, int n2, int n3) {
  constexpr int kPow3[5] = {1, 3, 9, 27, 81};
  return _mm512_setr_epi64(0x0101010101010101ll * kPow3[n0], 0x0101010101010101ll * kPow3[n0],
                           0x0101010101010101ll * kPow3[n1], 0x0101010101010101ll * kPow3[n1],
                           0x0101010101010101ll * kPow3[n2], 0x0101010101010101ll * kPow3[n2],
                           0x0101010101010101ll * kPow3[n3], 0x0101010101010101ll * kPow3[n3]);
}

inline __m512i lanes4(const uint8_t* a, const uint8_t* b, const uint8_t* c, __m128i d) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(c)), 2);
  return _mm512_inserti32x4(v, d, 3);
}

template <>
struct IQuantFormat<DType::TQ1_0> {
  static constexpr size_t kUnitBytes = 54;
  static constexpr int kGroups = 2, kOffsetShift = 0;  // digits 0..2 = q + 1
  static constexpr bool kSplit = false, kMin = false;
  using Unit = DBroadcast;
  static void prepare(const uint8_t* p, Unit& u) { u.d = _mm512_set1_ps(fp16_at(p + 52)); }
  // Act block n < 5: digit n of qs[0..31]; 5: digits 0, 1 of qs[32..47]; 6: digits 2, 3; 7:
  // digit 4, then weights 240 + 4 n + j = digit n of qh[j].
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    if (h == 0) {
      g.lo = trits(bcast16(p), pow3_lanes(0, 1, 2, 3));
      g.hi = trits(bcast16(p + 16), pow3_lanes(0, 1, 2, 3));
    } else {
      // qh lane: byte 4 n + j = qh[j], multiplier 3^n.
      const __m128i qh =
          _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(u32_at(p + 48))),
                           _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3));
      const __m512i lo_src =
          lanes4(p, p + 32, p + 32, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
      const __m512i hi_src = lanes4(p + 16, p + 32, p + 32, qh);
      g.lo = trits(lo_src, pow3_lanes(4, 0, 2, 4));
      __m512i hm = pow3_lanes(4, 1, 3, 0);
      hm = _mm512_inserti32x4(hm, _mm_setr_epi8(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27),
                              3);
      g.hi = trits(hi_src, hm);
    }
    g.slo = g.shi = u.d;
  }
};

// ---- Grid types ---------------------------------------------------------------------------

// 8-weight grid entries e[i][l] (act block i of the group, entry l = weights 8 l .. 8 l + 7):
// lo holds entries 0, 1 of each block, hi entries 2, 3.
inline void grid8_lohi(const uint64_t (&e)[4][4], __m512i& lo, __m512i& hi) {
  lo = _mm512_setr_epi64(static_cast<long long>(e[0][0]), static_cast<long long>(e[0][1]),
                         static_cast<long long>(e[1][0]), static_cast<long long>(e[1][1]),
                         static_cast<long long>(e[2][0]), static_cast<long long>(e[2][1]),
                         static_cast<long long>(e[3][0]), static_cast<long long>(e[3][1]));
  hi = _mm512_setr_epi64(static_cast<long long>(e[0][2]), static_cast<long long>(e[0][3]),
                         static_cast<long long>(e[1][2]), static_cast<long long>(e[1][3]),
                         static_cast<long long>(e[2][2]), static_cast<long long>(e[2][3]),
                         static_cast<long long>(e[3][2]), static_cast<long long>(e[3][3]));
}

// Grid entries and sign words (as word_masks) → g.lo, g.hi as u = ±magnitude + 128.
inline void signed_grid8(const uint64_t (&e)[4][4], const uint32_t (&s)[4], GroupW& g) {
  __m512i lo, hi;
  __mmask64 mlo, mhi;
  grid8_lohi(e, lo, hi);
  word_masks(s, mlo, mhi);
  g.lo = signed_u(lo, mlo);
  g.hi = signed_u(hi, mhi);
}

// 4-weight grid entries (IQ3) by index: idx_lo / idx_hi hold 16 indices each, in weight order
// of lo / hi.
inline __m512i gather4(const uint32_t* grid, __m512i idx) {
  return _mm512_i32gather_epi32(idx, grid, 4);
}

template <int kScaleBits>
struct ScaleVec {
  __m512 s;  // lane k: d · scale of sub-block k (of 32 weights, or of 16 with kSplit)
};

template <>
struct IQuantFormat<DType::IQ2_XXS> {
  static constexpr size_t kUnitBytes = 66;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = ScaleVec<8>;
  static void prepare(const uint8_t* p, Unit& u) {
    // Block k's 4-bit scale s is the top nibble of its 8 bytes (p + 2 + 8 k): one 64-bit shift
    // per block in a register, (2 s + 1) · d / 8 in lanes 0..7 (no round trip through memory).
    const __m512i q = _mm512_srli_epi64(_mm512_loadu_si512(p + 2), 60);
    const __m512i odd = _mm512_add_epi64(_mm512_slli_epi64(q, 1), _mm512_set1_epi64(1));
    u.s = _mm512_castps256_ps512(
        _mm256_mul_ps(_mm512_cvtepi64_ps(odd), _mm256_set1_ps(fp16_at(p) * 0.125f)));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    uint64_t e[4][4];
    uint32_t s[4];
    for (int i = 0; i < 4; ++i) {
      const uint8_t* b = p + 2 + 8 * (4 * h + i);
      for (int l = 0; l < 4; ++l) e[i][l] = kIQ2XXS[b[l]];
      s[i] = signs4(u32_at(b + 4));
    }
    signed_grid8(e, s, g);
    g.slo = g.shi = route8(u.s, h);
  }
};

// IQ2_XS / IQ2_S scales: a nibble per 16 weights, (2 s + 1) · d / 8.
inline __m512 nibble_scales16(const uint8_t* sc8, float d) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc8));
  const __m128i nib = _mm_set1_epi8(0x0f);
  const __m128i v =
      _mm_unpacklo_epi8(_mm_and_si128(b, nib), _mm_and_si128(_mm_srli_epi16(b, 4), nib));
  return scaled_bytes(_mm_add_epi8(_mm_add_epi8(v, v), _mm_set1_epi8(1)), d);
}

template <>
struct IQuantFormat<DType::IQ2_XS> {
  static constexpr size_t kUnitBytes = 74;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = true, kMin = false;
  using Unit = ScaleVec<16>;
  static void prepare(const uint8_t* p, Unit& u) {
    u.s = nibble_scales16(p + 66, fp16_at(p) * 0.125f);
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    uint64_t e[4][4];
    uint32_t s[4];
    for (int i = 0; i < 4; ++i) {
      const uint8_t* b = p + 2 + 8 * (4 * h + i);
      s[i] = 0;
      for (int l = 0; l < 4; ++l) {
        const uint16_t v = u16_at(b + 2 * l);
        e[i][l] = kIQ2XS[v & 511];
        s[i] |= static_cast<uint32_t>(kSigns7[v >> 9]) << (8 * l);
      }
    }
    signed_grid8(e, s, g);
    route16(u.s, h, g.slo, g.shi);
  }
};

template <>
struct IQuantFormat<DType::IQ2_S> {
  static constexpr size_t kUnitBytes = 82;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = true, kMin = false;
  using Unit = ScaleVec<16>;
  static void prepare(const uint8_t* p, Unit& u) {
    u.s = nibble_scales16(p + 74, fp16_at(p) * 0.125f);
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    uint64_t e[4][4];
    uint32_t s[4];
    for (int i = 0; i < 4; ++i) {
      const int ib = 4 * h + i, qh = p[66 + ib];
      for (int l = 0; l < 4; ++l)
        e[i][l] = kIQ2S[p[2 + 4 * ib + l] | ((qh << (8 - 2 * l)) & 0x300)];
      s[i] = u32_at(p + 34 + 4 * ib);
    }
    signed_grid8(e, s, g);
    route16(u.s, h, g.slo, g.shi);
  }
};

// IQ3 grid indices of group h: act block i's 8 indices (4 weights each) → indices 0..3 for
// lo lane i, 4..7 for hi lane i.
inline void iq3_indices(__m256i idx8x4, __m512i& lo, __m512i& hi) {
  // Bytes of block i at 8 i .. 8 i + 7 (i < 2 in the low 128 bits, 2, 3 in the high).
  const __m256i split = _mm256_shuffle_epi8(
      idx8x4, _mm256_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15, 0, 1, 2, 3, 8,
                               9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15));
  // Now per 128 bits: [block a 0..3][block b 0..3][block a 4..7][block b 4..7].
  const __m256i lo8 = _mm256_permute4x64_epi64(split, 0x88);  // a0-3 b0-3 c0-3 d0-3 | (dup)
  const __m256i hi8 = _mm256_permute4x64_epi64(split, 0xdd);
  lo = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(lo8));
  hi = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(hi8));
}

template <>
struct IQuantFormat<DType::IQ3_XXS> {
  static constexpr size_t kUnitBytes = 98;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = ScaleVec<8>;
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc = scale_bytes<8>([&](int k) { return 2 * (p[66 + 4 * k + 3] >> 4) + 1; });
    u.s = scaled_bytes(sc, fp16_at(p) * 0.25f);
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    __m512i ilo, ihi;
    iq3_indices(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 + 32 * h)), ilo, ihi);
    uint32_t s[4];
    for (int i = 0; i < 4; ++i) s[i] = signs4(u32_at(p + 66 + 4 * (4 * h + i)));
    __mmask64 mlo, mhi;
    word_masks(s, mlo, mhi);
    g.lo = signed_u(gather4(kIQ3XXS.data(), ilo), mlo);
    g.hi = signed_u(gather4(kIQ3XXS.data(), ihi), mhi);
    g.slo = g.shi = route8(u.s, h);
  }
};

template <>
struct IQuantFormat<DType::IQ3_S> {
  static constexpr size_t kUnitBytes = 110;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = ScaleVec<8>;
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc =
        scale_bytes<8>([&](int k) { return 2 * ((p[106 + k / 2] >> (4 * (k % 2))) & 0x0f) + 1; });
    u.s = scaled_bytes(sc, fp16_at(p));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    __m512i ilo, ihi;
    iq3_indices(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 + 32 * h)), ilo, ihi);
    // Ninth index bit of index m of a block: bit m of its qh byte. Lane k of ilo / ihi reads
    // block k / 4's byte, index m = k % 4 (lo) or k % 4 + 4 (hi).
    const __m128i qh4 =
        _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(u32_at(p + 66 + 4 * h))),
                         _mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    const __m512i qh = _mm512_cvtepu8_epi32(qh4);
    const __m512i m = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
    const __m512i b256 = _mm512_set1_epi32(256);
    ilo = _mm512_or_si512(
        ilo,
        _mm512_and_si512(_mm512_sllv_epi32(qh, _mm512_sub_epi32(_mm512_set1_epi32(8), m)), b256));
    ihi = _mm512_or_si512(
        ihi,
        _mm512_and_si512(_mm512_sllv_epi32(qh, _mm512_sub_epi32(_mm512_set1_epi32(4), m)), b256));
    // Sign bytes: 4 per block at 74 + 4 block; lo takes bytes 0, 1, hi 2, 3.
    uint32_t s[4];
    for (int i = 0; i < 4; ++i) s[i] = u32_at(p + 74 + 4 * (4 * h + i));
    __mmask64 mlo, mhi;
    word_masks(s, mlo, mhi);
    g.lo = signed_u(gather4(kIQ3S.data(), ilo), mlo);
    g.hi = signed_u(gather4(kIQ3S.data(), ihi), mhi);
    g.slo = g.shi = route8(u.s, h);
  }
};

// IQ1 grid values g in {-1, 0, 1} → u = 8 g + 128 + delta, delta = -1 where `negative`, else +1.
inline __m512i iq1_u(__m512i grid, __mmask64 negative) {
  const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(
      121, static_cast<char>(129), static_cast<char>(137), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  const __m512i u = _mm512_shuffle_epi8(table, _mm512_add_epi8(grid, _mm512_set1_epi8(1)));
  return _mm512_mask_sub_epi8(u, negative, u, _mm512_set1_epi8(2));
}

template <>
struct IQuantFormat<DType::IQ1_S> {
  static constexpr size_t kUnitBytes = 50;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = false, kMin = false;
  using Unit = ScaleVec<8>;
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc =
        scale_bytes<8>([&](int k) { return 2 * ((u16_at(p + 34 + 2 * k) >> 12) & 7) + 1; });
    u.s = scaled_bytes(sc, fp16_at(p) * 0.125f);
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    uint64_t e[4][4];
    uint64_t neg = 0;
    for (int i = 0; i < 4; ++i) {
      const int ib = 4 * h + i;
      const uint16_t qh = u16_at(p + 34 + 2 * ib);
      for (int l = 0; l < 4; ++l) e[i][l] = kIQ1S[iq1s_index(p + 2 + 4 * ib, qh, l)];
      if (qh & 0x8000) neg |= 0xffffull << (16 * i);
    }
    __m512i lo, hi;
    grid8_lohi(e, lo, hi);
    g.lo = iq1_u(lo, _cvtu64_mask64(neg));
    g.hi = iq1_u(hi, _cvtu64_mask64(neg));
    g.slo = g.shi = route8(u.s, h);
  }
};

template <>
struct IQuantFormat<DType::IQ1_M> {
  static constexpr size_t kUnitBytes = 56;
  static constexpr int kGroups = 2, kOffsetShift = 7;
  static constexpr bool kSplit = true, kMin = false;
  using Unit = ScaleVec<16>;
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc = scale_bytes<16>([&](int k) { return 2 * iq1m_scale(p + 48, k) + 1; });
    const float d = _cvtsh_ss(quant::iq1m_d_bits(p)) * 0.125f;
    u.s = scaled_bytes(sc, d);
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    uint64_t e[4][4];
    uint64_t nlo = 0, nhi = 0;
    for (int i = 0; i < 4; ++i) {
      const int ib = 4 * h + i;
      const uint8_t* qh = p + 32 + 2 * ib;
      for (int l = 0; l < 4; ++l) {
        e[i][l] = kIQ1S[iq1m_index(p + 4 * ib, qh, l)];
        if (iq1m_negative(qh, l)) (l < 2 ? nlo : nhi) |= 0xffull << (16 * i + 8 * (l % 2));
      }
    }
    __m512i lo, hi;
    grid8_lohi(e, lo, hi);
    g.lo = iq1_u(lo, _cvtu64_mask64(nlo));
    g.hi = iq1_u(hi, _cvtu64_mask64(nhi));
    route16(u.s, h, g.slo, g.shi);
  }
};

}  // namespace

// One entry for the family; ops/ validated the type (wformat_of maps exactly these to kIQ).
void gemm_iq(const GemmArgs& a) {
  quant::with_iquant_type(a.type, [&]<DType T>() { gemm<IQuantFormat<T>>(a); });
}

}  // namespace mcmoe::kernels::avx512

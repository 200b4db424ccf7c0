// AVX2 kernels for llama.cpp's i-quants, ternary types and MXFP4 (quant/iquants.h): the formats'
// traits for the skeleton of kq_tile_avx2.h. Each act block's 32 weights come out as signed
// values q (|q| <= 127; kSigned), which the skeleton multiplies with the sign trick:
//  - IQ4_NL / IQ4_XS / MXFP4: nibbles through a 16-entry table (vpshufb);
//  - grid types: four 8-weight grid entries (IQ2_*, IQ1_*) or eight 4-weight ones (IQ3_*,
//    gathered), signed by a byte mask spread from the block's 32 sign bits; IQ1's values
//    g ± 1/8 as 8 g ± 1 (quant/iquants.h);
//  - ternary: TQ2_0's 2-bit codes as Q2_K's, TQ1_0's base-3 digits by multiplying bytes by
//    3^n mod 256 and reading the top trit as (x · 3) >> 8 = (x >= 86) + (x >= 171); both keep
//    their codes q + 1 (kOffset = 1).
#include <immintrin.h>

#include "kernels/iq_bits.h"
#include "kernels/kq_tile_avx2.h"
#include "quant/iq_grids.h"
#include "quant/iquants.h"

namespace mcmoe::kernels::avx2 {

namespace {

using namespace iq_bits;
using namespace quant::iq_grids;

// ---- Shared pieces ------------------------------------------------------------------------

inline __m256i value_table(const std::array<int8_t, 16>& values) {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(values.data()));
  return _mm256_set_m128i(t, t);
}

// 8 signed scale bytes f(k) (sub-blocks of 32) → Unit::sc[0] (int16 pairs, one per int32
// lane), assembled in registers (iq_bits::scale_words).
template <typename F>
inline void scales8(F&& f, Unit& u) {
  uint64_t lo, hi;
  scale_words<8>(f, lo, hi);
  u.sc[0] = pairs16(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(static_cast<long long>(lo))));
}

// 16 scale bytes f(k) (sub-blocks of 16) → Unit::sc[0..1].
template <typename F>
inline void scales16_from(F&& f, Unit& u) {
  uint64_t lo, hi;
  scale_words<16>(f, lo, hi);
  scales16<true>(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)), u.sc);
}

// Magnitudes with 32 sign bits applied (bit e set: weight e negative).
inline __m256i apply_signs(__m256i mag, uint32_t signs) {
  return _mm256_sign_epi8(mag, _mm256_or_si256(bit_bytes(signs), _mm256_set1_epi8(1)));
}

inline __m256i grid8x4(uint64_t e0, uint64_t e1, uint64_t e2, uint64_t e3) {
  return _mm256_setr_epi64x(static_cast<long long>(e0), static_cast<long long>(e1),
                            static_cast<long long>(e2), static_cast<long long>(e3));
}

// ---- Non-linear 4-bit and MXFP4 --------------------------------------------------------------

template <DType T>
struct IQuantFormat;

template <>
struct IQuantFormat<DType::IQ4_NL> {
  static constexpr size_t kUnitBytes = 18;
  static constexpr int kUnitBlocks = 1, kOffset = 0, kScales = 0;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) { u.d = fp16_at(p); }
  static __m256i codes(const uint8_t* p, int) {
    return _mm256_shuffle_epi8(value_table(kIQ4NLValues), nibbles16(p + 2));
  }
};

template <>
struct IQuantFormat<DType::MXFP4> {
  static constexpr size_t kUnitBytes = 17;
  static constexpr int kUnitBlocks = 1, kOffset = 0, kScales = 0;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) { u.d = quant::e8m0_half(p[0]); }
  static __m256i codes(const uint8_t* p, int) {
    return _mm256_shuffle_epi8(value_table(kMXFP4Values), nibbles16(p + 1));
  }
};

template <>
struct IQuantFormat<DType::IQ4_XS> {
  static constexpr size_t kUnitBytes = 136;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    const uint16_t high = u16_at(p + 2);
    const auto sc = [&](int k) {
      const int low = (p[4 + k / 2] >> (4 * (k % 2))) & 0x0f;
      return (low | (((high >> (2 * k)) & 3) << 4)) - 32;
    };
    scales8(sc, u);
    u.d = fp16_at(p);
  }
  static __m256i codes(const uint8_t* p, int j) {
    return _mm256_shuffle_epi8(value_table(kIQ4NLValues), nibbles16(p + 8 + 16 * j));
  }
};

// ---- Ternary ------------------------------------------------------------------------------

template <>
struct IQuantFormat<DType::TQ2_0> {
  static constexpr size_t kUnitBytes = 66;
  static constexpr int kUnitBlocks = 8, kOffset = 1, kScales = 0;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) { u.d = fp16_at(p + 64); }
  // Act block j = 4 h + l: (qs[32 h + m] >> 2 l) & 3.
  static __m256i codes(const uint8_t* p, int j) {
    return shift_mask(load32(p + 32 * (j / 4)), 2 * (j % 4), 3);
  }
};

// Base-3 digit of every byte: byte b of `v` times multiplier byte b of `mult` (mod 256), then
// the top trit (x · 3) >> 8.
inline __m256i trits(__m256i v, __m256i mult) {
  const __m256i lo_byte = _mm256_set1_epi16(0x00ff);
  const __m256i even = _mm256_mullo_epi16(v, _mm256_and_si256(mult, lo_byte));
  const __m256i odd =
      _mm256_mullo_epi16(_mm256_andnot_si256(lo_byte, v), _mm256_srli_epi16(mult, 8));
  const __m256i x = _mm256_blendv_epi8(even, odd, _mm256_set1_epi16(static_cast<short>(0xff00)));
  const auto at_least = [&](int c) {
    const __m256i cv = _mm256_set1_epi8(static_cast<char>(c));
    return _mm256_cmpeq_epi8(_mm256_max_epu8(x, cv), x);  // 0xff where x >= c
  };
  return _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), at_least(86)), at_least(171));
}

inline __m256i halves(__m128i a, __m128i b) {
  return _mm256_set_m128i(b, a);
}
inline __m128i load16(const uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

template <>
struct IQuantFormat<DType::TQ1_0> {
  static constexpr size_t kUnitBytes = 54;
  static constexpr int kUnitBlocks = 8, kOffset = 1, kScales = 0;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) { u.d = fp16_at(p + 52); }
  // Act block n < 5: digit n of qs[0..31]; 5: digits 0, 1 of qs[32..47]; 6: digits 2, 3; 7:
  // digit 4, then weights 240 + 4 n + j = digit n of qh[j].
  static __m256i codes(const uint8_t* p, int j) {
    constexpr char kPow3[5] = {1, 3, 9, 27, 81};
    if (j < 5) return trits(load32(p), _mm256_set1_epi8(kPow3[j]));
    const __m128i tail = load16(p + 32);
    if (j < 7) {
      return trits(halves(tail, tail),
                   halves(_mm_set1_epi8(kPow3[2 * j - 10]), _mm_set1_epi8(kPow3[2 * j - 9])));
    }
    const __m128i qh =
        _mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(u32_at(p + 48))),
                         _mm_setr_epi8(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3));
    return trits(halves(tail, qh),
                 halves(_mm_set1_epi8(81),
                        _mm_setr_epi8(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27)));
  }
};

// ---- Grid types ---------------------------------------------------------------------------

template <>
struct IQuantFormat<DType::IQ2_XXS> {
  static constexpr size_t kUnitBytes = 66;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    const auto sc = [&](int k) { return 2 * (p[2 + 8 * k + 7] >> 4) + 1; };
    scales8(sc, u);
    u.d = fp16_at(p) * 0.125f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    const uint8_t* b = p + 2 + 8 * j;
    const __m256i mag = grid8x4(kIQ2XXS[b[0]], kIQ2XXS[b[1]], kIQ2XXS[b[2]], kIQ2XXS[b[3]]);
    return apply_signs(mag, signs4(u32_at(b + 4)));
  }
};

// IQ2_XS / IQ2_S: a nibble scale per 16 weights, 2 s + 1.
inline void nibble_scales16(const uint8_t* sc8, Unit& u) {
  scales16_from([&](int k) { return 2 * ((sc8[k / 2] >> (4 * (k % 2))) & 0x0f) + 1; }, u);
}

template <>
struct IQuantFormat<DType::IQ2_XS> {
  static constexpr size_t kUnitBytes = 74;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 16;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    nibble_scales16(p + 66, u);
    u.d = fp16_at(p) * 0.125f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    uint16_t v[4];
    std::memcpy(v, p + 2 + 8 * j, 8);
    const __m256i mag =
        grid8x4(kIQ2XS[v[0] & 511], kIQ2XS[v[1] & 511], kIQ2XS[v[2] & 511], kIQ2XS[v[3] & 511]);
    const uint32_t s = static_cast<uint32_t>(kSigns7[v[0] >> 9]) |
                       static_cast<uint32_t>(kSigns7[v[1] >> 9]) << 8 |
                       static_cast<uint32_t>(kSigns7[v[2] >> 9]) << 16 |
                       static_cast<uint32_t>(kSigns7[v[3] >> 9]) << 24;
    return apply_signs(mag, s);
  }
};

template <>
struct IQuantFormat<DType::IQ2_S> {
  static constexpr size_t kUnitBytes = 82;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 16;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    nibble_scales16(p + 74, u);
    u.d = fp16_at(p) * 0.125f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    const uint8_t* qs = p + 2 + 4 * j;
    const int qh = p[66 + j];
    const __m256i mag =
        grid8x4(kIQ2S[qs[0] | ((qh << 8) & 0x300)], kIQ2S[qs[1] | ((qh << 6) & 0x300)],
                kIQ2S[qs[2] | ((qh << 4) & 0x300)], kIQ2S[qs[3] | ((qh << 2) & 0x300)]);
    return apply_signs(mag, u32_at(p + 34 + 4 * j));
  }
};

template <>
struct IQuantFormat<DType::IQ3_XXS> {
  static constexpr size_t kUnitBytes = 98;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    const auto sc = [&](int k) { return 2 * (p[66 + 4 * k + 3] >> 4) + 1; };
    scales8(sc, u);
    u.d = fp16_at(p) * 0.25f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    const __m256i idx =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 2 + 8 * j)));
    const __m256i mag =
        _mm256_i32gather_epi32(reinterpret_cast<const int*>(kIQ3XXS.data()), idx, 4);
    return apply_signs(mag, signs4(u32_at(p + 66 + 4 * j)));
  }
};

template <>
struct IQuantFormat<DType::IQ3_S> {
  static constexpr size_t kUnitBytes = 110;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    const auto sc = [&](int k) { return 2 * ((p[106 + k / 2] >> (4 * (k % 2))) & 0x0f) + 1; };
    scales8(sc, u);
    u.d = fp16_at(p);
  }
  // Index k of block j: qs[8 j + k] | bit k of qh[j] << 8.
  static __m256i codes(const uint8_t* p, int j) {
    const __m256i low =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 2 + 8 * j)));
    const __m256i ninth = _mm256_and_si256(
        _mm256_sllv_epi32(_mm256_set1_epi32(p[66 + j]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
        _mm256_set1_epi32(256));
    const __m256i mag = _mm256_i32gather_epi32(reinterpret_cast<const int*>(kIQ3S.data()),
                                               _mm256_or_si256(low, ninth), 4);
    return apply_signs(mag, u32_at(p + 74 + 4 * j));
  }
};

// IQ1 grid values g in {-1, 0, 1} → 8 g + delta, delta bytes ±1.
inline __m256i iq1_values(__m256i grid, __m256i delta) {
  const __m256i g2 = _mm256_add_epi8(grid, grid);
  const __m256i g4 = _mm256_add_epi8(g2, g2);
  return _mm256_add_epi8(_mm256_add_epi8(g4, g4), delta);
}

template <>
struct IQuantFormat<DType::IQ1_S> {
  static constexpr size_t kUnitBytes = 50;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    const auto sc = [&](int k) { return 2 * ((u16_at(p + 34 + 2 * k) >> 12) & 7) + 1; };
    scales8(sc, u);
    u.d = fp16_at(p) * 0.125f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    const uint8_t* qs = p + 2 + 4 * j;
    const uint16_t qh = u16_at(p + 34 + 2 * j);
    const __m256i grid = grid8x4(kIQ1S[iq1s_index(qs, qh, 0)], kIQ1S[iq1s_index(qs, qh, 1)],
                                 kIQ1S[iq1s_index(qs, qh, 2)], kIQ1S[iq1s_index(qs, qh, 3)]);
    return iq1_values(grid, _mm256_set1_epi8(qh & 0x8000 ? -1 : 1));
  }
};

template <>
struct IQuantFormat<DType::IQ1_M> {
  static constexpr size_t kUnitBytes = 56;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 16;
  static constexpr bool kSigned = true;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    scales16_from([&](int k) { return 2 * iq1m_scale(p + 48, k) + 1; }, u);
    u.d = _cvtsh_ss(quant::iq1m_d_bits(p)) * 0.125f;
  }
  static __m256i codes(const uint8_t* p, int j) {
    const uint8_t* qs = p + 4 * j;
    const uint8_t* qh = p + 32 + 2 * j;
    const __m256i grid = grid8x4(kIQ1S[iq1m_index(qs, qh, 0)], kIQ1S[iq1m_index(qs, qh, 1)],
                                 kIQ1S[iq1m_index(qs, qh, 2)], kIQ1S[iq1m_index(qs, qh, 3)]);
    const auto delta = [&](int l) {
      return static_cast<long long>(iq1m_negative(qh, l) ? 0xffffffffffffffffull
                                                         : 0x0101010101010101ull);
    };
    return iq1_values(grid, _mm256_setr_epi64x(delta(0), delta(1), delta(2), delta(3)));
  }
};

}  // namespace

// One entry for the family; ops/ validated the type (wformat_of maps exactly these to kIQ).
void gemm_iq(const GemmArgs& a) {
  quant::with_iquant_type(a.type, [&]<DType T>() { gemm<IQuantFormat<T>>(a); });
}

}  // namespace mcmoe::kernels::avx2

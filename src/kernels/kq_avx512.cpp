// AVX-512 VNNI kernels for ggml's Q4_1 / Q5_0 / Q5_1 and K-quant weights (quant/kquants.h):
// the formats' traits; the tile loops they plug into, and how the lanes are scaled, are in
// kq_tile_avx512.h.
//
// GCC 12 false -Wuninitialized positives from _mm512_undefined_*(): see dot_q_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/kq_bits.h"
#include "kernels/kq_tile_avx512.h"
#include "quant/kquants.h"

namespace mcmoe::kernels::avx512 {

namespace {

template <size_t kBB, size_t kQs>
inline void legacy_nibbles(const uint8_t* p, __m512i& lo, __m512i& hi) {
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kQs)));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kBB + kQs)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * kBB + kQs)), 2);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 3 * kBB + kQs)), 3);
  const __m512i nib = _mm512_set1_epi8(0x0f);
  lo = _mm512_and_si512(v, nib);
  hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
}

// Q5_0 / Q5_1 fifth bits: bit e of block i's u32 goes to element e, i.e. byte e of lane i
// (lo for e < 16, hi for e >= 16).
template <size_t kBB, size_t kQh>
inline void legacy_high_bits(const uint8_t* p, __m512i& lo, __m512i& hi) {
  uint32_t qh[4];
  for (int i = 0; i < 4; ++i) qh[i] = kq_bits::u32_at(p + i * kBB + kQh);
  __mmask64 mlo, mhi;
  word_masks(qh, mlo, mhi);
  const __m512i sixteen = _mm512_set1_epi8(16);
  lo = _mm512_mask_add_epi8(lo, mlo, lo, sixteen);
  hi = _mm512_mask_add_epi8(hi, mhi, hi, sixteen);
}

// Per-format unpacking. A unit is what a row steps over: one super-block (2 groups) for
// K-quants, 4 blocks (1 group) for the legacy formats. prepare() reads a unit's scales once,
// group() the codes of group h.
template <DType T>
struct KQuantFormat;

template <>
struct KQuantFormat<DType::Q4_1> {
  static constexpr size_t kUnitBytes = 80;
  static constexpr int kGroups = 1, kOffsetShift = -1;
  static constexpr bool kSplit = false, kMin = true;
  struct Unit {
    __m512 d, m;
  };
  static void prepare(const uint8_t* p, Unit& u) {
    u.d = block_fp16_scales<20>(p, 0);
    u.m = block_fp16_scales<20>(p, 2);
  }
  static void group(const uint8_t* p, const Unit& u, int, GroupW& g) {
    legacy_nibbles<20, 4>(p, g.lo, g.hi);
    g.slo = g.shi = u.d;
    g.mlo = g.mhi = u.m;
  }
};

template <>
struct KQuantFormat<DType::Q5_0> {
  static constexpr size_t kUnitBytes = 88;
  static constexpr int kGroups = 1, kOffsetShift = 4;  // K = 16
  static constexpr bool kSplit = false, kMin = false;
  struct Unit {
    __m512 d;
  };
  static void prepare(const uint8_t* p, Unit& u) { u.d = block_fp16_scales<22>(p, 0); }
  static void group(const uint8_t* p, const Unit& u, int, GroupW& g) {
    legacy_nibbles<22, 6>(p, g.lo, g.hi);
    legacy_high_bits<22, 2>(p, g.lo, g.hi);
    g.slo = g.shi = u.d;
  }
};

template <>
struct KQuantFormat<DType::Q5_1> {
  static constexpr size_t kUnitBytes = 96;
  static constexpr int kGroups = 1, kOffsetShift = -1;
  static constexpr bool kSplit = false, kMin = true;
  struct Unit {
    __m512 d, m;
  };
  static void prepare(const uint8_t* p, Unit& u) {
    u.d = block_fp16_scales<24>(p, 0);
    u.m = block_fp16_scales<24>(p, 2);
  }
  static void group(const uint8_t* p, const Unit& u, int, GroupW& g) {
    legacy_nibbles<24, 8>(p, g.lo, g.hi);
    legacy_high_bits<24, 4>(p, g.lo, g.hi);
    g.slo = g.shi = u.d;
    g.mlo = g.mhi = u.m;
  }
};


template <>
struct KQuantFormat<DType::Q2_K> {
  static constexpr size_t kUnitBytes = 84;
  static constexpr int kGroups = 2, kOffsetShift = -1;
  static constexpr bool kSplit = true, kMin = true;
  struct Unit {
    __m512 s, m;  // lane k: d · scale_k, -dmin · min_k
  };
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i nib = _mm_set1_epi8(0x0f);
    u.s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(sc, nib))),
                        _mm512_set1_ps(fp16_at(p + 80)));
    u.m = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(sc, 4), nib))),
        _mm512_set1_ps(-fp16_at(p + 82)));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    g.lo = crumbs(p + 16 + 32 * h);
    g.hi = crumbs(p + 32 + 32 * h);
    route16(u.s, h, g.slo, g.shi);
    route16(u.m, h, g.mlo, g.mhi);
  }
};

template <>
struct KQuantFormat<DType::Q3_K> {
  static constexpr size_t kUnitBytes = 110;
  static constexpr int kGroups = 2, kOffsetShift = 2;  // K = 4
  static constexpr bool kSplit = true, kMin = false;
  struct Unit {
    __m512 s;
  };
  static void prepare(const uint8_t* p, Unit& u) {
    uint32_t w[4];
    kq_bits::q3k_scales(p + 96, w);
    // From registers: a 16-byte load of the four 4-byte stores would stall store forwarding.
    const __m128i v = _mm_sub_epi8(_mm_setr_epi32(static_cast<int>(w[0]), static_cast<int>(w[1]),
                                                  static_cast<int>(w[2]), static_cast<int>(w[3])),
                                   _mm_set1_epi8(32));
    u.s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)),
                        _mm512_set1_ps(fp16_at(p + 108)));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    g.lo = add_bit_plane(crumbs(p + 32 + 32 * h), p, h, 4);
    g.hi = add_bit_plane(crumbs(p + 48 + 32 * h), p + 16, h, 4);
    route16(u.s, h, g.slo, g.shi);
  }
};

// Q4_K / Q5_K: 8 six-bit scales and mins as lanes 0..7, times d and -dmin; group h uses
// sub-blocks 4 h + j in lane j, for lo and hi alike.
struct Scales8 {
  __m512 s, m;
};
inline void prepare_k4(const uint8_t* p, Scales8& u) {
  uint64_t sc, mn;
  kq_bits::k4_scales(p + 4, &sc, &mn);
  const auto widen = [](uint64_t v) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(v))));
  };
  u.s = _mm512_mul_ps(widen(sc), _mm512_set1_ps(fp16_at(p)));
  u.m = _mm512_mul_ps(widen(mn), _mm512_set1_ps(-fp16_at(p + 2)));
}
inline void k4_group(const uint8_t* qs, const Scales8& u, int h, GroupW& g) {
  // Act block j of half h: j = 0, 1: low / high nibbles of qs[64 h .. 64 h + 31]; j = 2, 3:
  // of qs[64 h + 32 .. 64 h + 63]. lo takes the first 16 bytes of each, hi the last 16.
  const __m512i q = _mm512_loadu_si512(qs + 64 * h);
  const __m512i counts = lane_counts(0, 4, 0, 4);
  const __m512i nib = _mm512_set1_epi8(0x0f);
  g.lo = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(q, q, 0xa0), counts), nib);
  g.hi = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(q, q, 0xf5), counts), nib);
  const int b = 4 * h;
  const __m512i idx = lane_index(b, b + 1, b + 2, b + 3);
  g.slo = g.shi = _mm512_permutexvar_ps(idx, u.s);
  g.mlo = g.mhi = _mm512_permutexvar_ps(idx, u.m);
}

template <>
struct KQuantFormat<DType::Q4_K> {
  static constexpr size_t kUnitBytes = 144;
  static constexpr int kGroups = 2, kOffsetShift = -1;
  static constexpr bool kSplit = false, kMin = true;
  using Unit = Scales8;
  static void prepare(const uint8_t* p, Unit& u) { prepare_k4(p, u); }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) { k4_group(p + 16, u, h, g); }
};

template <>
struct KQuantFormat<DType::Q5_K> {
  static constexpr size_t kUnitBytes = 176;
  static constexpr int kGroups = 2, kOffsetShift = -1;
  static constexpr bool kSplit = false, kMin = true;
  using Unit = Scales8;
  static void prepare(const uint8_t* p, Unit& u) { prepare_k4(p, u); }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    k4_group(p + 48, u, h, g);
    // Fifth bit of sub-block 4 h + j, weight l: bit 4 h + j of qh[l] (qh at byte 16).
    g.lo = add_bit_plane(g.lo, p + 16, h, 16);
    g.hi = add_bit_plane(g.hi, p + 32, h, 16);
  }
};

template <>
struct KQuantFormat<DType::Q6_K> {
  static constexpr size_t kUnitBytes = 210;
  static constexpr int kGroups = 2, kOffsetShift = 5;  // K = 32
  static constexpr bool kSplit = true, kMin = false;
  struct Unit {
    __m512 s;
  };
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192));
    u.s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)),
                        _mm512_set1_ps(fp16_at(p + 208)));
  }
  static void group(const uint8_t* p, const Unit& u, int h, GroupW& g) {
    // Low 4 bits of act block j: ql[64 h + 32 (j % 2) + l], low nibble for j < 2, high for
    // j >= 2; lo takes l < 16, hi l >= 16. Top 2 bits: (qh[32 h + l] >> 2 j) & 3.
    const __m512i q = _mm512_loadu_si512(p + 64 * h);
    const __m512i counts = lane_counts(0, 0, 4, 4);
    const __m512i nib = _mm512_set1_epi8(0x0f);
    const __m512i lo4 = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(q, q, 0x88), counts), nib);
    const __m512i hi4 = _mm512_and_si512(_mm512_srlv_epi16(_mm512_shuffle_i64x2(q, q, 0xdd), counts), nib);
    const uint8_t* qh = p + 128 + 32 * h;
    g.lo = _mm512_or_si512(lo4, _mm512_slli_epi16(crumbs(qh), 4));
    g.hi = _mm512_or_si512(hi4, _mm512_slli_epi16(crumbs(qh + 16), 4));
    route16(u.s, h, g.slo, g.shi);
  }
};

}  // namespace


// One entry for the family; ops/ validated the type (wformat_of maps exactly these to kKQ).
void gemm_kq(const GemmArgs& a) {
  quant::with_kquant_type(a.type, [&]<DType T>() { gemm<KQuantFormat<T>>(a); });
}

}  // namespace mcmoe::kernels::avx512

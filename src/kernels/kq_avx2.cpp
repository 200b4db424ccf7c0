// AVX2 kernels for ggml's Q4_1 / Q5_0 / Q5_1 and K-quant weights (quant/kquants.h): the
// formats' traits; the tile loop they plug into, and how codes meet activations without
// VNNI, are in kq_tile_avx2.h.
#include <immintrin.h>

#include <cstring>

#include "kernels/kq_bits.h"
#include "kernels/kq_tile_avx2.h"
#include "quant/kquants.h"

namespace mcmoe::kernels::avx2 {

namespace {

// Q5_0 / Q5_1: byte e gets 16 where bit e of the u32 at p is set.
inline __m256i high_bits32(const uint8_t* p) {
  return _mm256_and_si256(bit_bytes(kq_bits::u32_at(p)), _mm256_set1_epi8(16));
}
template <DType T>
struct KQuantFormat;

template <>
struct KQuantFormat<DType::Q4_1> {
  static constexpr size_t kUnitBytes = 20;
  static constexpr int kUnitBlocks = 1, kOffset = 0, kScales = 0;
  static constexpr MinKind kMin = MinKind::kPerBlock;
  static void prepare(const uint8_t* p, Unit& u) {
    u.d = fp16_at(p);
    u.m = fp16_at(p + 2);
  }
  static __m256i codes(const uint8_t* p, int) { return nibbles16(p + 4); }
};

template <>
struct KQuantFormat<DType::Q5_0> {
  static constexpr size_t kUnitBytes = 22;
  static constexpr int kUnitBlocks = 1, kOffset = 16, kScales = 0;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) { u.d = fp16_at(p); }
  static __m256i codes(const uint8_t* p, int) {
    return _mm256_or_si256(nibbles16(p + 6), high_bits32(p + 2));
  }
};

template <>
struct KQuantFormat<DType::Q5_1> {
  static constexpr size_t kUnitBytes = 24;
  static constexpr int kUnitBlocks = 1, kOffset = 0, kScales = 0;
  static constexpr MinKind kMin = MinKind::kPerBlock;
  static void prepare(const uint8_t* p, Unit& u) { KQuantFormat<DType::Q4_1>::prepare(p, u); }  // d, m
  static __m256i codes(const uint8_t* p, int) {
    return _mm256_or_si256(nibbles16(p + 8), high_bits32(p + 4));
  }
};

template <>
struct KQuantFormat<DType::Q2_K> {
  static constexpr size_t kUnitBytes = 84;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 16;
  static constexpr MinKind kMin = MinKind::kPer16;
  static void prepare(const uint8_t* p, Unit& u) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i nib = _mm_set1_epi8(0x0f);
    scales16<false>(_mm_and_si128(b, nib), u.sc);
    scales16<false>(_mm_and_si128(_mm_srli_epi16(b, 4), nib), u.mn);
    u.d = fp16_at(p + 80);
    u.m = -fp16_at(p + 82);
  }
  // Act block j = 4 h + i: (qs[32 h + l] >> 2 i) & 3.
  static __m256i codes(const uint8_t* p, int j) {
    return shift_mask(load32(p + 16 + 32 * (j / 4)), 2 * (j % 4), 3);
  }
};

template <>
struct KQuantFormat<DType::Q3_K> {
  static constexpr size_t kUnitBytes = 110;
  static constexpr int kUnitBlocks = 8, kOffset = 4, kScales = 16;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    uint32_t w[4];
    kq_bits::q3k_scales(p + 96, w);
    const __m128i s = _mm_setr_epi32(static_cast<int>(w[0]), static_cast<int>(w[1]),
                                     static_cast<int>(w[2]), static_cast<int>(w[3]));
    scales16<true>(_mm_sub_epi8(s, _mm_set1_epi8(32)), u.sc);
    u.d = fp16_at(p + 108);
  }
  // Low bits as Q2_K; bit j of hmask[l] adds 4.
  static __m256i codes(const uint8_t* p, int j) {
    const __m256i low = shift_mask(load32(p + 32 + 32 * (j / 4)), 2 * (j % 4), 3);
    const __m256i high = shift_mask(load32(p), j, 1);
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
  }
};

// Q4_K / Q5_K scales: sub-block k = act block k.
inline void prepare_k4(const uint8_t* p, Unit& u) {
  uint64_t sc, mn;
  kq_bits::k4_scales(p + 4, &sc, &mn);
  u.sc[0] = pairs16(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(sc))));
  u.d = fp16_at(p);
  u.mvec = _mm256_mul_ps(
      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(mn)))),
      _mm256_set1_ps(-fp16_at(p + 2)));
}

template <>
struct KQuantFormat<DType::Q4_K> {
  static constexpr size_t kUnitBytes = 144;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr MinKind kMin = MinKind::kVec8;
  static void prepare(const uint8_t* p, Unit& u) { prepare_k4(p, u); }
  // Act block j: low (j even) or high (j odd) nibbles of qs[32 (j / 2) ..].
  static __m256i codes(const uint8_t* p, int j) {
    return shift_mask(load32(p + 16 + 32 * (j / 2)), 4 * (j % 2), 0x0f);
  }
};

template <>
struct KQuantFormat<DType::Q5_K> {
  static constexpr size_t kUnitBytes = 176;
  static constexpr int kUnitBlocks = 8, kOffset = 0, kScales = 8;
  static constexpr MinKind kMin = MinKind::kVec8;
  static void prepare(const uint8_t* p, Unit& u) { prepare_k4(p, u); }
  // As Q4_K (qs at 48), plus bit j of qh[l] (qh at 16) as 16.
  static __m256i codes(const uint8_t* p, int j) {
    const __m256i low = shift_mask(load32(p + 48 + 32 * (j / 2)), 4 * (j % 2), 0x0f);
    return _mm256_or_si256(low, _mm256_slli_epi16(shift_mask(load32(p + 16), j, 1), 4));
  }
};

template <>
struct KQuantFormat<DType::Q6_K> {
  static constexpr size_t kUnitBytes = 210;
  static constexpr int kUnitBlocks = 8, kOffset = 32, kScales = 16;
  static constexpr MinKind kMin = MinKind::kNone;
  static void prepare(const uint8_t* p, Unit& u) {
    scales16<true>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192)), u.sc);
    u.d = fp16_at(p + 208);
  }
  // Act block j = 4 h + i: low 4 bits from ql[64 h + 32 (i % 2) + l] (low nibble for i < 2),
  // high 2 bits (qh[32 h + l] >> 2 i) & 3.
  static __m256i codes(const uint8_t* p, int j) {
    const int h = j / 4, i = j % 4;
    const __m256i low = shift_mask(load32(p + 64 * h + 32 * (i % 2)), 4 * (i / 2), 0x0f);
    const __m256i high = shift_mask(load32(p + 128 + 32 * h), 2 * i, 3);
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
};

}  // namespace

// One entry for the family; ops/ validated the type (wformat_of maps exactly these to kKQ).
void gemm_kq(const GemmArgs& a) {
  quant::with_kquant_type(a.type, [&]<DType T>() { gemm<KQuantFormat<T>>(a); });
}

}  // namespace mcmoe::kernels::avx2

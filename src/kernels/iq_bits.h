#pragma once
// Scalar unpacking shared by iq_avx2.cpp and iq_avx512.cpp (quant/iquants.h states the block
// layouts). `static`: each file is compiled with its own ISA flags, and a shared inline
// definition could be merged across them by the linker.
#include <cstdint>
#include <cstring>

#include "kernels/kq_bits.h"
#include "quant/iq_grids.h"

namespace mcmoe::kernels::iq_bits {

static inline uint16_t u16_at(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

using kq_bits::u32_at;

// IQ2_XXS / IQ3_XXS: four 7-bit sign fields (bits 0..27) → four sign bytes, byte l for weights
// 8 l .. 8 l + 7 of the 32 (bit j set: weight 8 l + j negative).
static inline uint32_t signs4(uint32_t bits) {
  const auto& s = quant::iq_grids::kSigns7;
  return static_cast<uint32_t>(s[bits & 127]) | static_cast<uint32_t>(s[(bits >> 7) & 127]) << 8 |
         static_cast<uint32_t>(s[(bits >> 14) & 127]) << 16 |
         static_cast<uint32_t>(s[(bits >> 21) & 127]) << 24;
}

// N <= 16 scale bytes f(0..N-1) packed into two words in general registers. Kernels move the
// words to a vector register in one step: a byte array on the stack read back as a vector
// stalls on store forwarding once per unit and row (measured: IQ2_XXS decode 26 -> 33 tok/s
// on AVX-512 when that went).
template <int N, typename F>
static inline void scale_words(F&& f, uint64_t& lo, uint64_t& hi) {
  lo = hi = 0;
#pragma GCC unroll 16
  for (int k = 0; k < N; ++k) {
    const uint64_t b = static_cast<uint8_t>(f(k));
    if (k < 8) {
      lo |= b << (8 * k);
    } else {
      hi |= b << (8 * (k - 8));
    }
  }
}

// IQ3_S: grid index k (0..7) of a 32-weight block: 8 low bits from qs[k], ninth from bit k of qh.
static inline int iq3s_index(const uint8_t* qs, int qh, int k) {
  return qs[k] | (((qh >> k) & 1) << 8);
}

// IQ1_S: grid index l (0..3) of a 32-weight block: 8 low bits, 3 high bits from the u16 qh.
static inline int iq1s_index(const uint8_t* qs, uint16_t qh, int l) {
  return qs[l] | (((qh >> (3 * l)) & 7) << 8);
}

// IQ1_M: grid indices and delta signs of a 32-weight block (qh: its 2 bytes); negative delta
// for group l when bit 3 + 4 (l % 2) of qh[l / 2] is set.
static inline int iq1m_index(const uint8_t* qs, const uint8_t* qh, int l) {
  return qs[l] | ((qh[l / 2] << (l % 2 ? 4 : 8)) & 0x700);
}
static inline bool iq1m_negative(const uint8_t* qh, int l) {
  return (qh[l / 2] >> (l % 2 ? 7 : 3)) & 1;
}

// IQ1_M: the 16 three-bit scales (sub-block k of 16 weights) and d's fp16 bits.
static inline int iq1m_scale(const uint8_t* sc, int k) {
  return (u16_at(sc + 2 * (k / 4)) >> (3 * (k % 4))) & 7;
}

}  // namespace mcmoe::kernels::iq_bits

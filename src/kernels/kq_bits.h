#pragma once
// Scalar unpacking of the K-quants' packed 6-bit scales, shared by kq_avx2.cpp and
// kq_avx512.cpp (quant/kquants.cpp states the layouts). `static`: each file is compiled with
// its own ISA flags, and a shared inline definition could be merged across them by the linker.
#include <cstdint>
#include <cstring>

namespace mcmoe::kernels::kq_bits {

static inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Q4_K / Q5_K: the 12 scale bytes → 8 scales and 8 mins, one byte each (sub-block k in byte
// k). Sub-blocks 0..3 keep both in the low 6 bits of bytes 0..3 / 4..7; sub-blocks 4..7 take
// 4 low bits from the nibbles of bytes 8..11 and 2 high bits from the top of bytes 0..7.
static inline void k4_scales(const uint8_t* s, uint64_t* scales, uint64_t* mins) {
  const uint32_t a = u32_at(s), b = u32_at(s + 4), c = u32_at(s + 8);
  const uint32_t six = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, top = 0x30303030;
  *scales = (a & six) | static_cast<uint64_t>((c & lo4) | ((a >> 2) & top)) << 32;
  *mins = (b & six) | static_cast<uint64_t>(((c >> 4) & lo4) | ((b >> 2) & top)) << 32;
}

// Q3_K: the 12 scale bytes → 16 six-bit scales (still offset by 32), byte k of w = scale k.
// Low nibbles: bytes 0..7 (scales 0..7 low, 8..15 high nibble); top 2 bits of scale 4 i + k:
// bits 2 i of byte 8 + k.
static inline void q3k_scales(const uint8_t* s, uint32_t w[4]) {
  const uint32_t a = u32_at(s), b = u32_at(s + 4), c = u32_at(s + 8);
  const uint32_t lo4 = 0x0f0f0f0f, hi2 = 0x03030303;
  w[0] = (a & lo4) | ((c & hi2) << 4);
  w[1] = (b & lo4) | (((c >> 2) & hi2) << 4);
  w[2] = ((a >> 4) & lo4) | (((c >> 4) & hi2) << 4);
  w[3] = ((b >> 4) & lo4) | (((c >> 6) & hi2) << 4);
}

}  // namespace mcmoe::kernels::kq_bits

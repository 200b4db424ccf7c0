#pragma once
// Random blocks of ggml's Q4_1 / Q5_0 / Q5_1, K-quant, i-quant, ternary and MXFP4 types for
// tests: every code, sub-block scale and min byte is random (so each bit field takes all its
// values), the super-scales are random finite values of either sign with magnitudes in
// [scale / 4, scale] (MXFP4: the power of two nearest to such a value, positive).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"

namespace mcmoe::test {

// Byte offsets of the fp16 super-scales (d, and dmin or m) inside one block.
inline std::vector<size_t> kq_scale_offsets(DType t) {
  switch (t) {
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q5_0: return {0};
    case DType::Q2_K: return {80, 82};
    case DType::Q3_K: return {108};
    case DType::Q6_K: return {208};
    case DType::IQ2_XXS: case DType::IQ2_XS: case DType::IQ2_S: case DType::IQ3_XXS:
    case DType::IQ3_S: case DType::IQ1_S: case DType::IQ4_NL: case DType::IQ4_XS: return {0};
    case DType::TQ1_0: return {52};
    case DType::TQ2_0: return {64};
    default: return {};  // IQ1_M and MXFP4: see random_kq_blocks
  }
}

// rows × cols weights of `type` (cols a multiple of its block size), plus `extra` bytes.
inline std::vector<uint8_t> random_kq_blocks(DType type, int64_t rows, int64_t cols,
                                             uint32_t seed, float scale, size_t extra = 0) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(0.25f, 1.f);
  const DTypeTraits& tr = dtype_traits(type);
  std::vector<uint8_t> bytes(row_bytes(type, cols) * static_cast<size_t>(rows) + extra);
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  const int64_t nblocks = rows * (cols / tr.block_size);
  for (int64_t k = 0; k < nblocks; ++k) {
    uint8_t* block = bytes.data() + k * tr.block_bytes;
    const float v = (byte(rng) & 1 ? 1.f : -1.f) * mag(rng) * scale;
    for (size_t off : kq_scale_offsets(type)) {
      const float vk = off == kq_scale_offsets(type)[0] ? v : (byte(rng) & 1 ? 1.f : -1.f) * mag(rng) * scale;
      const uint16_t h = f32_to_fp16(vk);
      std::memcpy(block + off, &h, 2);
    }
    if (type == DType::IQ1_M) {  // d's 16 bits in the top nibbles of the four u16 scale words
      const uint16_t h = f32_to_fp16(v);
      for (int i = 0; i < 4; ++i) {
        uint16_t w;
        std::memcpy(&w, block + 48 + 2 * i, 2);
        w = static_cast<uint16_t>((w & 0x0fff) | (((h >> (4 * i)) & 0xf) << 12));
        std::memcpy(block + 48 + 2 * i, &w, 2);
      }
    } else if (type == DType::MXFP4) {  // E8M0: 2^(e - 127), kept finite (e < 255)
      block[0] = static_cast<uint8_t>(127 + static_cast<int>(std::lround(std::log2(std::fabs(v)))));
    }
  }
  return bytes;
}

}  // namespace mcmoe::test

#pragma once
// Random blocks of ggml's Q4_1 / Q5_0 / Q5_1 and K-quant types for tests: every code, sub-block
// scale and min byte is random (so each bit field takes all its values), the fp16 super-scales
// are random finite values of either sign with magnitudes in [scale / 4, scale].
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
    default: return {};
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
    for (size_t off : kq_scale_offsets(type)) {
      const float v = (byte(rng) & 1 ? 1.f : -1.f) * mag(rng) * scale;
      const uint16_t h = f32_to_fp16(v);
      std::memcpy(bytes.data() + k * tr.block_bytes + off, &h, 2);
    }
  }
  return bytes;
}

}  // namespace mcmoe::test

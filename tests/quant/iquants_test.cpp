// llama.cpp's i-quants, ternary types and MXFP4: mcmoe's dequantization must reproduce ggml's
// bit for bit, on blocks ggml's quantizer made and on random blocks that reach every grid
// entry, sign pattern and scale code (tests/data/iquants/, made by ggml itself).
#include "quant/iquants.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "quant/iq_grids.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

constexpr DType kTypes[] = {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS,
                            DType::IQ3_S,   DType::IQ1_S,  DType::IQ1_M, DType::IQ4_NL,
                            DType::IQ4_XS,  DType::TQ1_0,  DType::TQ2_0, DType::MXFP4};

// tests/data/iquants/gen_fixture.c states the layout.
struct Fixture {
  int64_t rows = 0, row_len = 0, cov_blocks = 0;
  std::vector<uint8_t> blocks;  // rows × row_bytes
  std::vector<float> want;      // rows × row_len
  std::vector<uint8_t> cov;     // cov_blocks × block_bytes
  std::vector<uint32_t> cov_hash;
};

Fixture load_fixture(DType type) {
  const std::string path = std::string(MCMOE_SOURCE_DIR) + "/tests/data/iquants/" +
                           std::string(dtype_name(type)) + ".bin";
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  Fixture f;
  uint32_t header[4];
  EXPECT_GE(bytes.size(), sizeof(header)) << path;
  std::memcpy(header, bytes.data(), sizeof(header));
  EXPECT_EQ(header[0], 0x5149434du) << path;
  f.rows = header[1];
  f.row_len = header[2];
  f.cov_blocks = header[3];
  const size_t rb = row_bytes(type, f.row_len), bb = dtype_traits(type).block_bytes;
  const size_t n_floats = static_cast<size_t>(f.rows * f.row_len);
  const size_t want_size = sizeof(header) + f.rows * rb + 4 * n_floats + f.cov_blocks * (bb + 4);
  EXPECT_EQ(bytes.size(), want_size) << path;
  if (bytes.size() != want_size) return Fixture{};
  const uint8_t* p = bytes.data() + sizeof(header);
  f.blocks.assign(p, p + f.rows * rb);
  p += f.rows * rb;
  f.want.resize(n_floats);
  std::memcpy(f.want.data(), p, 4 * n_floats);
  p += 4 * n_floats;
  f.cov.assign(p, p + f.cov_blocks * bb);
  p += f.cov_blocks * bb;
  f.cov_hash.resize(static_cast<size_t>(f.cov_blocks));
  std::memcpy(f.cov_hash.data(), p, 4 * f.cov_hash.size());
  return f;
}

uint32_t fnv1a(const float* v, int64_t n) {
  uint32_t h = 2166136261u;
  const auto* b = reinterpret_cast<const uint8_t*>(v);
  for (int64_t i = 0; i < 4 * n; ++i) h = (h ^ b[i]) * 16777619u;
  return h;
}

class IQuantFixture : public testing::TestWithParam<DType> {};

TEST_P(IQuantFixture, QuantizedRowsDequantizeBitForBitAsGgml) {
  const DType type = GetParam();
  const Fixture f = load_fixture(type);
  ASSERT_EQ(f.rows, 2);
  const size_t rb = row_bytes(type, f.row_len);
  std::vector<float> got(f.want.size());
  for (int64_t r = 0; r < f.rows; ++r) {
    quant::dequantize_row(type, f.blocks.data() + r * rb, got.data() + r * f.row_len, f.row_len);
  }
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t g, w;  // bit patterns: -0 and 0 must not pass as equal
    std::memcpy(&g, &got[i], 4);
    std::memcpy(&w, &f.want[i], 4);
    ASSERT_EQ(g, w) << dtype_name(type) << " element " << i << ": got " << got[i] << ", ggml "
                    << f.want[i];
  }
  std::vector<float> sorted = f.want;
  std::sort(sorted.begin(), sorted.end());
  const auto distinct = std::unique(sorted.begin(), sorted.end()) - sorted.begin();
  // Ternary rows have 3 values per block scale; the others many.
  EXPECT_GT(distinct, type == DType::TQ1_0 || type == DType::TQ2_0 ? 8 : 24) << dtype_name(type);
  EXPECT_LT(sorted.front(), 0.f);
  EXPECT_GT(sorted.back(), 0.f);
}

TEST_P(IQuantFixture, RandomBlocksDequantizeBitForBitAsGgml) {
  const DType type = GetParam();
  const Fixture f = load_fixture(type);
  const DTypeTraits& tr = dtype_traits(type);
  ASSERT_GT(f.cov_blocks, 0);
  std::vector<float> got(static_cast<size_t>(tr.block_size));
  for (int64_t i = 0; i < f.cov_blocks; ++i) {
    quant::dequantize_row(type, f.cov.data() + i * tr.block_bytes, got.data(), tr.block_size);
    ASSERT_EQ(fnv1a(got.data(), tr.block_size), f.cov_hash[static_cast<size_t>(i)])
        << dtype_name(type) << " random block " << i;
  }
}

// decode_block's integer form is what the scalar kernels multiply with; evaluated in double it
// must agree with the f32 dequantization to f32 rounding, and stay within int8 (|q| <= 127).
TEST_P(IQuantFixture, IntegerDecodeAgreesWithDequantization) {
  const DType type = GetParam();
  const Fixture f = load_fixture(type);
  const DTypeTraits& tr = dtype_traits(type);
  const int64_t n_blocks = f.cov_blocks;
  std::vector<float> deq(static_cast<size_t>(tr.block_size));
  quant::IntBlock b;
  for (int64_t k = 0; k < n_blocks; ++k) {
    const uint8_t* blk = f.cov.data() + k * tr.block_bytes;
    quant::dequantize_row(type, blk, deq.data(), tr.block_size);
    quant::decode_block(type, blk, &b);
    ASSERT_EQ(b.n, tr.block_size);
    for (int e = 0; e < b.n; ++e) {
      ASSERT_GE(b.q[e], -127);
      const double v = static_cast<double>(b.d) * b.scale[e / 16] * b.q[e];
      ASSERT_NEAR(deq[e], v, std::fabs(v) * 0x1p-22) << "block " << k << " element " << e;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, IQuantFixture, testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// The random fixture blocks reach every codebook entry: a table typo anywhere would show.
TEST(IQuantGrids, FixtureBlocksReachEveryGridEntry) {
  struct Case {
    DType type;
    size_t entries;
  };
  for (const Case c : {Case{DType::IQ2_XXS, 256}, Case{DType::IQ2_XS, 512},
                       Case{DType::IQ2_S, 1024}, Case{DType::IQ3_XXS, 256}, Case{DType::IQ3_S, 512},
                       Case{DType::IQ1_S, 2048}, Case{DType::IQ1_M, 2048}}) {
    const Fixture f = load_fixture(c.type);
    const size_t bb = dtype_traits(c.type).block_bytes;
    std::vector<bool> seen(c.entries);
    for (int64_t k = 0; k < f.cov_blocks; ++k) {
      const uint8_t* p = f.cov.data() + k * bb;
      auto u16 = [&](size_t off) { return static_cast<int>(p[off] | p[off + 1] << 8); };
      for (int ib = 0; ib < 8; ++ib) {
        for (int l = 0; l < 4; ++l) {
          switch (c.type) {
            case DType::IQ2_XXS:
              seen[p[2 + 8 * ib + l]] = true;
              break;
            case DType::IQ2_XS:
              seen[u16(2 + 2 * (4 * ib + l)) & 511] = true;
              break;
            case DType::IQ2_S:
              seen[p[2 + 4 * ib + l] | ((p[66 + ib] << (8 - 2 * l)) & 0x300)] = true;
              break;
            case DType::IQ3_XXS:
              seen[p[2 + 8 * ib + 2 * l]] = seen[p[3 + 8 * ib + 2 * l]] = true;
              break;
            case DType::IQ3_S:
              seen[p[2 + 8 * ib + 2 * l] | ((p[66 + ib] << (8 - 2 * l)) & 256)] = true;
              seen[p[3 + 8 * ib + 2 * l] | ((p[66 + ib] << (7 - 2 * l)) & 256)] = true;
              break;
            case DType::IQ1_S:
              seen[p[2 + 4 * ib + l] | (((u16(34 + 2 * ib) >> (3 * l)) & 7) << 8)] = true;
              break;
            default:  // IQ1_M
              seen[p[4 * ib + l] | ((p[32 + 2 * ib + l / 2] << (l % 2 ? 4 : 8)) & 0x700)] = true;
              break;
          }
        }
      }
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(c.entries))
        << dtype_name(c.type);
  }
}

TEST(IQuantGrids, SignTableHasEvenParity) {
  for (int i = 0; i < 128; ++i) {
    EXPECT_EQ(quant::iq_grids::kSigns7[i] & 127, i);
    EXPECT_EQ(__builtin_popcount(quant::iq_grids::kSigns7[i]) % 2, 0) << i;
  }
}

TEST(IQuantScales, E8M0HalfIsAPowerOfTwo) {
  EXPECT_EQ(quant::e8m0_half(128), 1.0f);
  EXPECT_EQ(quant::e8m0_half(127), 0.5f);
  EXPECT_EQ(quant::e8m0_half(1), std::ldexp(1.0f, -127));
  EXPECT_EQ(quant::e8m0_half(0), std::ldexp(1.0f, -128));
  EXPECT_EQ(quant::e8m0_half(254), std::ldexp(1.0f, 126));
}

}  // namespace
}  // namespace mcmoe

// Q8_0 / Q4_0 block round trips with known values: the weight formats the kernels decode,
// checked byte for byte against ggml's definition (quant/quantize.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

TEST(KernelQuantBlocks, Q8_0ExactIntegersRoundTrip) {
  // max |x| = 127 makes d = 1 (exact in fp16), so integer inputs come back unchanged.
  std::vector<float> x(64);
  for (int j = 0; j < 64; ++j) x[j] = static_cast<float>((j * 37) % 255 - 127);
  x[5] = 127.f;
  x[40] = -127.f;
  quant::BlockQ8_0 b[2];
  quant::quantize_row(DType::Q8_0, x.data(), b, 64);
  EXPECT_EQ(fp16_to_f32(b[0].d), 1.f);
  EXPECT_EQ(b[0].qs[5], 127);
  EXPECT_EQ(b[1].qs[40 - 32], -127);
  std::vector<float> back(64);
  quant::dequantize_row(DType::Q8_0, b, back.data(), 64);
  for (int j = 0; j < 64; ++j) EXPECT_EQ(back[j], x[j]) << j;
}

TEST(KernelQuantBlocks, Q8_0ErrorWithinHalfStep) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = std::sin(0.7f * j) * 3.f;
  quant::BlockQ8_0 b;
  quant::quantize_row(DType::Q8_0, x.data(), &b, 32);
  std::vector<float> back(32);
  quant::dequantize_row(DType::Q8_0, &b, back.data(), 32);
  const float d = fp16_to_f32(b.d);
  // d is rounded to fp16 (relative 2^-11), so codes near 127 may be off by that much more.
  for (int j = 0; j < 32; ++j)
    EXPECT_LE(std::fabs(back[j] - x[j]), 0.5f * d + 127 * d * 0x1p-11f) << j;
}

TEST(KernelQuantBlocks, Q4_0NibbleLayoutAndValues) {
  // The largest-magnitude value -8 gives d = 1; integers in [-8, 7] survive exactly.
  // Element j (< 16) is byte j's low nibble, element j + 16 its high nibble, code = q + 8.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>((j % 16) - 8);
  x[16] = 7.f;
  quant::BlockQ4_0 b;
  quant::quantize_row(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(fp16_to_f32(b.d), 1.f);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(b.qs[j] & 0x0f, static_cast<int>(x[j]) + 8) << j;
    EXPECT_EQ(b.qs[j] >> 4, static_cast<int>(x[j + 16]) + 8) << j;
  }
  std::vector<float> back(32);
  quant::dequantize_row(DType::Q4_0, &b, back.data(), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(back[j], x[j]) << j;
}

TEST(KernelQuantBlocks, Q4_0PositiveMaxUsesNegativeScale) {
  // max |x| is positive here: d = -max / 8 < 0 and the maximum maps to code 0 (-8 · d).
  std::vector<float> x(32, 0.f);
  x[3] = 16.f;
  x[20] = -14.f;
  quant::BlockQ4_0 b;
  quant::quantize_row(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(fp16_to_f32(b.d), -2.f);
  std::vector<float> back(32);
  quant::dequantize_row(DType::Q4_0, &b, back.data(), 32);
  EXPECT_EQ(back[3], 16.f);
  EXPECT_EQ(back[20], -14.f);
  EXPECT_EQ(back[0], 0.f);
}

}  // namespace
}  // namespace mcmoe

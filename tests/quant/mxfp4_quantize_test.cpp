// quantize_row for MXFP4 (the OCP Microscaling rule, quant/quantize.cpp): exact values come
// back exactly, every value goes to the nearest representable one at the block's scale, the
// scale is 2^(floor(log2 max|x|) - 2), ties go to the even code, and a zero block is zeros.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

constexpr float kE2M1[8] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f};

std::vector<float> round_trip(const std::vector<float>& x, std::vector<uint8_t>* bytes = nullptr) {
  std::vector<uint8_t> q(row_bytes(DType::MXFP4, static_cast<int64_t>(x.size())));
  quant::quantize_row(DType::MXFP4, x.data(), q.data(), static_cast<int64_t>(x.size()));
  std::vector<float> y(x.size());
  quant::dequantize_row(DType::MXFP4, q.data(), y.data(), static_cast<int64_t>(x.size()));
  if (bytes) *bytes = q;
  return y;
}

TEST(Mxfp4Quantize, RepresentableValuesComeBackExactly) {
  std::mt19937 rng(5);
  for (int k : {-20, -3, 0, 7, 40}) {
    std::vector<float> x(64);
    for (size_t i = 0; i < x.size(); ++i) {
      const float m = kE2M1[rng() % 8] * (rng() % 2 ? -1.f : 1.f);
      x[i] = std::ldexp(m, k);
    }
    x[5] = std::ldexp(6.f, k);    // the largest magnitude of block 0 in [4, 8): scale 2^k
    x[40] = std::ldexp(-4.f, k);  // and of block 1
    const auto y = round_trip(x);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << "2^" << k << ", element " << i;
  }
}

TEST(Mxfp4Quantize, NearestValueAtTheBlocksScale) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 0.03f);
  std::vector<float> x(32 * 64);
  for (float& v : x) v = normal(rng);
  std::vector<uint8_t> q;
  const auto y = round_trip(x, &q);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const int k = std::ilogb(amax) - 2;
    EXPECT_EQ(q[b * 17], k + 127) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const float v = x[b * 32 + j], got = y[b * 32 + j];
      for (float m : kE2M1) {
        for (float s : {-1.f, 1.f}) {
          EXPECT_LE(std::fabs(v - got), std::fabs(v - s * std::ldexp(m, k)) * (1 + 1e-6f))
              << "block " << b << " element " << j;
        }
      }
    }
  }
}

TEST(Mxfp4Quantize, TiesGoToTheEvenCodeAndZerosStayZero) {
  std::vector<float> x(32, 0.f);
  x[0] = 4.f;  // scale 1
  x[1] = 0.75f, x[2] = 1.25f, x[3] = 1.75f, x[4] = 2.5f, x[5] = -3.5f, x[6] = 5.f, x[7] = 0.25f,
  x[8] = 7.9f;
  const auto y = round_trip(x);
  const float want[9] = {4.f, 1.f, 1.f, 2.f, 2.f, -4.f, 4.f, 0.f, 6.f};
  for (int i = 0; i < 9; ++i) EXPECT_EQ(y[i], want[i]) << "element " << i << " = " << x[i];

  std::vector<uint8_t> q;
  const auto z = round_trip(std::vector<float>(32, 0.f), &q);
  EXPECT_EQ(q[0], 0);
  for (float v : z) EXPECT_EQ(v, 0.f);
}

}  // namespace
}  // namespace mcmoe

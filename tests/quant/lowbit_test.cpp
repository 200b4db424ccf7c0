// mcmoe's grouped low-bit formats (quant/lowbit.h): pack / unpack round trips for every MQ
// type, the code order pinned with known positions, the reference quantizer's error bounds,
// the symmetric Q8_0 / Q4_0 packings, and clear errors for what does not fit.
#include "quant/lowbit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

using quant::GroupedQuant;

constexpr DType kMqTypes[] = {DType::MQ1_G32,  DType::MQ1_G64,  DType::MQ1_G128, DType::MQ2_G32,
                              DType::MQ2_G64,  DType::MQ2_G128, DType::MQ3_G32,  DType::MQ3_G64,
                              DType::MQ3_G128, DType::MQ4_G32,  DType::MQ4_G64,  DType::MQ4_G128};

using test::error_of;

GroupedQuant shape_only(int bits, int64_t group) {
  GroupedQuant gq;
  gq.bits = bits;
  gq.group = group;
  return gq;
}

// Random codes and f16-exact scales / mins (either sign, including f16 subnormals' range).
GroupedQuant random_gq(int bits, int64_t group, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  GroupedQuant gq = shape_only(bits, group);
  gq.rows = rows;
  gq.cols = cols;
  gq.q.resize(static_cast<size_t>(rows * cols));
  for (uint8_t& q : gq.q) q = static_cast<uint8_t>(rng() % (1u << bits));
  gq.scale.resize(static_cast<size_t>(rows * gq.groups_per_row()));
  gq.min.resize(gq.scale.size());
  for (size_t i = 0; i < gq.scale.size(); ++i) {
    gq.scale[i] = fp16_to_f32(f32_to_fp16(0.05f * nd(rng)));
    gq.min[i] = fp16_to_f32(f32_to_fp16(0.5f * nd(rng)));
  }
  return gq;
}

TEST(LowBit, TypesAndTraits) {
  for (DType t : kMqTypes) {
    int bits = 0;
    int64_t group = 0;
    ASSERT_TRUE(mq_params(t, &bits, &group));
    const GroupedQuant gq = shape_only(bits, group);
    EXPECT_EQ(quant::grouped_dtype(gq), t);
    EXPECT_EQ(dtype_traits(t).block_size, 128);
    EXPECT_EQ(dtype_traits(t).block_bytes, quant::mq_header_bytes(group) + 16 * bits);
  }
  EXPECT_EQ(quant::grouped_dtype(shape_only(8, 32)), DType::Q8_0);
  EXPECT_NE(error_of([] { quant::grouped_dtype(shape_only(8, 64)); }).find("group 32"),
            std::string::npos);
  EXPECT_NE(error_of([] { quant::grouped_dtype(shape_only(5, 32)); }).find("5 bits"),
            std::string::npos);
}

TEST(LowBit, PackUnpackRoundTripEveryType) {
  uint32_t seed = 1;
  for (DType t : kMqTypes) {
    SCOPED_TRACE(dtype_name(t));
    int bits = 0;
    int64_t group = 0;
    mq_params(t, &bits, &group);
    const int64_t rows = 3, cols = 384;
    const GroupedQuant gq = random_gq(bits, group, rows, cols, ++seed);
    const std::vector<uint8_t> packed = quant::pack_grouped(gq, t);
    ASSERT_EQ(packed.size(), static_cast<size_t>(rows) * row_bytes(t, cols));
    const GroupedQuant back = quant::unpack_mq(t, packed.data(), rows, cols);
    EXPECT_EQ(back.bits, bits);
    EXPECT_EQ(back.group, group);
    EXPECT_EQ(back.q, gq.q);
    EXPECT_EQ(back.scale, gq.scale);
    EXPECT_EQ(back.min, gq.min);
    // The reference dequantizer decodes to GroupedQuant::value exactly.
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
      quant::dequantize_row(t, packed.data() + r * row_bytes(t, cols), row.data(), cols);
      for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(row[c], gq.value(r, c)) << r << "," << c;
    }
  }
}

// The order of codes inside a block (lowbit.cpp), pinned by single set codes: element e is
// lane 16 · (e / 32) + e % 16 of half (e / 16) % 2.
TEST(LowBit, CodeOrderKnownPositions) {
  struct Pos {
    int bits, element, code, byte;
    uint8_t value;
  };
  const Pos cases[] = {
      {4, 0, 5, 0, 0x05},   {4, 16, 5, 0, 0x50},   {4, 32, 7, 16, 0x07}, {4, 127, 15, 63, 0xf0},
      {2, 0, 3, 0, 0x03},   {2, 16, 1, 0, 0x10},   {2, 64, 2, 0, 0x08},  {2, 80, 3, 0, 0xc0},
      {2, 32, 1, 16, 0x01}, {2, 127, 3, 31, 0xc0}, {1, 0, 1, 0, 0x01},   {1, 16, 1, 8, 0x01},
      {1, 32, 1, 2, 0x01},  {1, 127, 1, 15, 0x80}, {3, 80, 7, 0, 0xc0},  {3, 80, 4, 44, 0x01},
  };
  for (const Pos& p : cases) {
    SCOPED_TRACE(testing::Message() << "bits " << p.bits << " element " << p.element);
    uint8_t q[128] = {};
    q[p.element] = static_cast<uint8_t>(p.code);
    uint8_t codes[64];
    quant::mq_pack_codes(p.bits, q, codes);
    for (int i = 0; i < 16 * p.bits; ++i) {
      if (i == p.byte) {
        EXPECT_EQ(codes[i] & p.value, p.value) << "byte " << i;
      } else if (!(p.bits == 3 && p.code == 7 && i == 44)) {  // 7 also sets the high-bit plane
        EXPECT_EQ(codes[i], 0) << "byte " << i;
      }
    }
    uint8_t back[128];
    quant::mq_unpack_codes(p.bits, codes, back);
    EXPECT_EQ(0, std::memcmp(q, back, 128));
  }
}

std::vector<float> test_row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = nd(rng);
  x[5] = 0.3f;                                         // an outlier
  for (int64_t i = 256; i < 384; ++i) x[i] = 0.0123f;  // a constant block (every group size)
  return x;
}

TEST(LowBit, QuantizeRowErrorWithinHalfStep) {
  const int64_t n = 1024;
  const std::vector<float> x = test_row(n, 7);
  for (DType t : kMqTypes) {
    int bits = 0;
    int64_t group = 0;
    mq_params(t, &bits, &group);
    if (bits == 1) continue;
    SCOPED_TRACE(dtype_name(t));
    std::vector<uint8_t> packed(row_bytes(t, n));
    quant::quantize_row(t, x.data(), packed.data(), n);
    const GroupedQuant gq = quant::unpack_mq(t, packed.data(), 1, n);
    std::vector<float> back(static_cast<size_t>(n));
    quant::dequantize_row(t, packed.data(), back.data(), n);
    for (int64_t c = 0; c < n; ++c) {
      const float scale = gq.scale[c / group];
      // Round-to-nearest on a grid that covers the group: half a step, plus a few f32
      // roundings of (x - min) / scale and scale · q + min.
      EXPECT_LE(std::fabs(back[c] - x[c]), 0.5f * scale * (1 + 1e-5f) + 1e-7f) << c;
    }
    // The constant group comes back within one f16 ulp of its value.
    EXPECT_NEAR(back[260], 0.0123f, 0.0123f * 0x1p-10f);
  }
}

TEST(LowBit, OneBitIsSignTimesMeanAbs) {
  const int64_t n = 512;
  const std::vector<float> x = test_row(n, 9);
  for (DType t : {DType::MQ1_G32, DType::MQ1_G64, DType::MQ1_G128}) {
    SCOPED_TRACE(dtype_name(t));
    int64_t group = 0;
    mq_params(t, nullptr, &group);
    std::vector<uint8_t> packed(row_bytes(t, n));
    quant::quantize_row(t, x.data(), packed.data(), n);
    std::vector<float> back(static_cast<size_t>(n));
    quant::dequantize_row(t, packed.data(), back.data(), n);
    for (int64_t g = 0; g < n / group; ++g) {
      double mean_abs = 0;
      for (int64_t i = 0; i < group; ++i) mean_abs += std::fabs(x[g * group + i]);
      const float s = fp16_to_f32(f32_to_fp16(static_cast<float>(mean_abs / group)));
      for (int64_t i = 0; i < group; ++i) {
        const int64_t c = g * group + i;
        ASSERT_EQ(back[c], x[c] >= 0.f ? s : -s) << c;
      }
    }
  }
}

TEST(LowBit, SymmetricPackingsAsQ8_0AndQ4_0) {
  for (int bits : {8, 4}) {
    const DType t = bits == 8 ? DType::Q8_0 : DType::Q4_0;
    SCOPED_TRACE(dtype_name(t));
    GroupedQuant gq = random_gq(bits, 32, 2, 96, 31);
    for (size_t i = 0; i < gq.scale.size(); ++i)
      gq.min[i] = (bits == 8 ? -128.f : -8.f) * gq.scale[i];
    const std::vector<uint8_t> packed = quant::pack_grouped(gq, t);
    std::vector<float> row(96);
    for (int64_t r = 0; r < 2; ++r) {
      quant::dequantize_row(t, packed.data() + r * row_bytes(t, 96), row.data(), 96);
      for (int64_t c = 0; c < 96; ++c) ASSERT_EQ(row[c], gq.value(r, c)) << r << "," << c;
    }
    // An asymmetric min does not fit the symmetric format.
    gq.min[2] += gq.scale[2] != 0.f ? gq.scale[2] : 1.f;
    const std::string msg = error_of([&] { quant::pack_grouped(gq, t); });
    EXPECT_NE(msg.find("symmetric"), std::string::npos) << msg;
    EXPECT_NE(msg.find("row 0 group 2"), std::string::npos) << msg;
  }
}

TEST(LowBit, PackRejectsWhatDoesNotFit) {
  const GroupedQuant good = random_gq(2, 64, 2, 256, 5);
  EXPECT_EQ(error_of([&] { quant::pack_grouped(good, DType::MQ2_G64); }), "");

  std::string msg = error_of([&] { quant::pack_grouped(good, DType::MQ3_G64); });
  EXPECT_NE(msg.find("2-bit codes in groups of 64 cannot be stored as mq3_g64"), std::string::npos)
      << msg;
  msg = error_of([&] { quant::pack_grouped(good, DType::Q4_0); });
  EXPECT_NE(msg.find("q4_0"), std::string::npos) << msg;

  GroupedQuant bad = good;
  bad.q[17] = 4;
  msg = error_of([&] { quant::pack_grouped(bad, DType::MQ2_G64); });
  EXPECT_NE(msg.find("code 4 at index 17"), std::string::npos) << msg;

  bad = good;
  bad.scale[1] = 0.1f;  // not an f16 value
  msg = error_of([&] { quant::pack_grouped(bad, DType::MQ2_G64); });
  EXPECT_NE(msg.find("row 0 group 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f16"), std::string::npos) << msg;

  bad = good;
  bad.min.pop_back();
  msg = error_of([&] { quant::pack_grouped(bad, DType::MQ2_G64); });
  EXPECT_NE(msg.find("needs 512 codes and 8 scales / mins"), std::string::npos) << msg;

  // 192 columns split into groups of 64 but not into blocks of 128.
  const GroupedQuant ragged = random_gq(2, 64, 1, 192, 6);
  msg = error_of([&] { quant::pack_grouped(ragged, DType::MQ2_G64); });
  EXPECT_NE(msg.find("192"), std::string::npos) << msg;
  EXPECT_NE(msg.find("128"), std::string::npos) << msg;

  std::vector<float> row(192, 0.f), out(192);
  msg = error_of([&] { quant::quantize_row(DType::MQ2_G64, row.data(), out.data(), 192); });
  EXPECT_NE(msg.find("192"), std::string::npos) << msg;
}

}  // namespace
}  // namespace mcmoe

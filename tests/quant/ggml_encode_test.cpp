// quant/ggml_encode.h: encode_block is the exact inverse of decode_block for every legal field
// value and refuses the rest naming the field; fit_block's error is no worse than ggml's own
// quantizers on the same input; and ggml's dequantizer reads the blocks mcmoe writes as mcmoe
// does, bit for bit (fixtures made by ggml itself: tests/data/ggml_encode/README.md).
#include "quant/ggml_encode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "core/fp16.h"
#include "quant/iq_grids.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

constexpr DType kTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0,   DType::Q5_1,
                            DType::Q8_0, DType::Q2_K, DType::Q3_K,   DType::Q4_K,
                            DType::Q5_K, DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};
constexpr int64_t kRowLen = 512, kRows = 4;  // tests/data/ggml_encode/README.md
// The round-trip fixture: mcmoe's fit of row 1's last 256 values (with importance), then
// kRandomValues values of blocks encoded from random IntBlocks.
constexpr int64_t kFitValues = 256, kRandomValues = 768;

std::string data_path(const std::string& name) {
  return std::string(MCMOE_SOURCE_DIR) + "/tests/data/ggml_encode/" + name;
}
std::string data_path(DType type, const char* ext) {
  return data_path(std::string(dtype_name(type)) + ext);
}

// The fields' ranges as the layouts in kquants.h / quantize.h / iquants.h state them.
// Q4_1 / Q5_1 (value = d q + m) decode to scale 1, min 1 and dmin = -m (either sign).
struct Fields {
  int scale_lo, scale_hi, min_hi, group, min_lo = 0;
};
Fields fields_of(DType t) {
  switch (t) {
    case DType::Q2_K:
      return {0, 15, 15, 16};
    case DType::Q3_K:
      return {-32, 31, 0, 16};
    case DType::Q4_K:
    case DType::Q5_K:
      return {0, 63, 63, 32};
    case DType::Q6_K:
      return {-128, 127, 0, 16};
    case DType::IQ4_XS:
      return {-32, 31, 0, 32};
    case DType::Q4_1:
    case DType::Q5_1:
      return {1, 1, 1, 32, 1};
    default:
      return {1, 1, 0, 32};  // one scale: d
  }
}

std::vector<int> codes_of(DType t) {
  const quant::CodeSet c = quant::code_set(t);
  std::vector<int> v;
  if (c.values) {
    v.assign(c.values, c.values + c.count);
  } else {
    for (int q = c.lo; q <= c.hi; ++q) v.push_back(q);
  }
  return v;
}

float random_f16(std::mt19937& rng) {
  auto h = static_cast<uint16_t>(rng());
  if ((h & 0x7c00) == 0x7c00) h &= 0xfbff;  // finite
  return fp16_to_f32(h);
}

// A vector codebook's block (IQ2_XXS, IQ3_XXS) from random bytes: every byte pattern with a
// finite d is legal (grid indices, 7 stored signs whose parity implies the eighth, 4-bit
// scales), decoded by decode_block (checked against ggml in iquants_test). kind 0: all bytes 0
// but d the smallest subnormal; kind 1: all bytes 0xff but d = -65504.
quant::IntBlock random_vector_block(DType t, std::mt19937& rng, int kind) {
  std::vector<uint8_t> bytes(dtype_traits(t).block_bytes);
  for (uint8_t& v : bytes) v = kind == 0 ? 0 : kind == 1 ? 0xff : static_cast<uint8_t>(rng());
  const uint16_t d = kind == 0 ? 1 : kind == 1 ? 0xfbff : f32_to_fp16(random_f16(rng));
  std::memcpy(bytes.data(), &d, 2);
  quant::IntBlock b;
  quant::decode_block(t, bytes.data(), &b);
  return b;
}

// kind 0: every field at its low end (d the smallest subnormal, dmin -0); kind 1: at its high
// end (d = -65504, dmin = 65504); otherwise every field random over its legal values.
quant::IntBlock random_int_block(DType t, std::mt19937& rng, int kind) {
  if (quant::is_vector_codebook(t)) return random_vector_block(t, rng, kind);
  const Fields f = fields_of(t);
  const std::vector<int> codes = codes_of(t);
  quant::IntBlock b{};
  b.n = static_cast<int>(dtype_traits(t).block_size);
  const auto pick = [&](int lo, int hi) {
    return kind == 0 ? lo : kind == 1 ? hi : std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  b.d = kind == 0 ? fp16_to_f32(1) : kind == 1 ? -65504.f : random_f16(rng);
  b.dmin = f.min_hi == 0 ? 0.f : kind == 0 ? -0.f : kind == 1 ? 65504.f : random_f16(rng);
  for (int s = 0; s < b.n / 16; s += f.group / 16) {
    const int sc = pick(f.scale_lo, f.scale_hi), m = pick(f.min_lo, f.min_hi);
    for (int k = s; k < s + f.group / 16; ++k)
      b.scale[k] = static_cast<int16_t>(sc), b.min[k] = static_cast<int16_t>(m);
  }
  for (int e = 0; e < b.n; ++e)
    b.q[e] = static_cast<int8_t>(codes[pick(0, static_cast<int>(codes.size()) - 1)]);
  return b;
}

bool same_bits(float a, float b) {
  return std::memcmp(&a, &b, 4) == 0;
}

class GgmlEncodeTypes : public testing::TestWithParam<DType> {};

TEST_P(GgmlEncodeTypes, EveryLegalFieldValueRoundTrips) {
  const DType t = GetParam();
  const Fields f = fields_of(t);
  std::mt19937 rng(7 + static_cast<int>(t));
  std::vector<uint8_t> bytes(dtype_traits(t).block_bytes), again(bytes.size());
  std::set<int> q_seen, scale_seen, min_seen;
  for (int k = 0; k < 3000; ++k) {
    const quant::IntBlock b = random_int_block(t, rng, k % 50);
    quant::encode_block(t, b, bytes.data());
    quant::IntBlock o;
    quant::decode_block(t, bytes.data(), &o);
    ASSERT_EQ(o.n, b.n);
    ASSERT_TRUE(same_bits(o.d, b.d)) << o.d << " vs " << b.d;
    ASSERT_TRUE(same_bits(o.dmin, b.dmin)) << o.dmin << " vs " << b.dmin;
    for (int s = 0; s < b.n / 16; ++s) {
      ASSERT_EQ(o.scale[s], b.scale[s]) << "block " << k << " scale " << s;
      ASSERT_EQ(o.min[s], b.min[s]) << "block " << k << " min " << s;
      scale_seen.insert(b.scale[s]), min_seen.insert(b.min[s]);
    }
    for (int e = 0; e < b.n; ++e) {
      ASSERT_EQ(o.q[e], b.q[e]) << "block " << k << " element " << e;
      q_seen.insert(b.q[e]);
    }
    quant::encode_block(t, o, again.data());  // and back to the same bytes
    ASSERT_EQ(again, bytes) << "block " << k;
  }
  EXPECT_EQ(q_seen.size(), codes_of(t).size());
  EXPECT_EQ(static_cast<int>(scale_seen.size()), f.scale_hi - f.scale_lo + 1);
  EXPECT_EQ(static_cast<int>(min_seen.size()), f.min_hi - f.min_lo + 1);
}

// f throws an Error whose message holds every fragment.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << fragments[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& s : fragments) EXPECT_NE(msg.find(s), std::string::npos) << msg;
  }
}

void expect_refused(DType t, const quant::IntBlock& b, const std::string& fragment) {
  std::vector<uint8_t> bytes(dtype_traits(t).block_bytes);
  expect_error([&] { quant::encode_block(t, b, bytes.data()); },
               {fragment, std::string(dtype_name(t))});
}

// n, d and dmin out of range (every type).
void expect_scalars_refused(DType t, const quant::IntBlock& good) {
  quant::IntBlock b = good;
  b.n = b.n == 32 ? 256 : 32;
  expect_refused(t, b, "n = ");
  b = good;
  b.d = 0.1f;  // not an f16 value
  expect_refused(t, b, "d = 0.1");
  b = good;
  b.d = INFINITY;
  expect_refused(t, b, "d = inf");
  b = good;
  b.dmin = 0.1f;
  expect_refused(t, b, "dmin = 0.1");
}

TEST_P(GgmlEncodeTypes, OutOfRangeFieldsAreRefusedNamingTheField) {
  const DType t = GetParam();
  const Fields f = fields_of(t);
  const quant::CodeSet c = quant::code_set(t);
  std::mt19937 rng(99);
  const quant::IntBlock good = random_int_block(t, rng, 2);
  quant::IntBlock b = good;
  b.q[5] = static_cast<int8_t>(c.values ? c.values[0] + 1 : c.hi < 127 ? c.hi + 1 : c.lo);
  if (c.values || c.hi < 127) expect_refused(t, b, "q[5] = ");
  b = good;
  expect_scalars_refused(t, good);
  b.scale[2 % (b.n / 16)] = static_cast<int16_t>(f.scale_hi + 1);
  expect_refused(t, b, "scale[");
  b = good;
  b.scale[0] = static_cast<int16_t>(f.scale_lo - 1);
  expect_refused(t, b, "scale[0] = " + std::to_string(f.scale_lo - 1));
  b = good;
  b.min[1] = static_cast<int16_t>(f.min_hi + 1);
  expect_refused(t, b, "min[1] = " + std::to_string(f.min_hi + 1));
  if (f.min_lo > 0) {
    b = good;
    b.min[0] = static_cast<int16_t>(f.min_lo - 1);
    expect_refused(t, b, "min[0] = " + std::to_string(f.min_lo - 1));
  }
  if (f.group == 32 && b.n == 256) {  // one scale per 32: the two halves must agree
    b = good;
    b.scale[3] = static_cast<int16_t>(b.scale[2] == f.scale_lo ? f.scale_lo + 1 : f.scale_lo);
    expect_refused(t, b, "scale/min[3]");
  }
}

double squared_error(const float* x, const float* y, const float* w, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += (w ? w[i] : 1.0) * (double{x[i]} - y[i]) * (double{x[i]} - y[i]);
  return s;
}

// mcmoe's fit against ggml_quantize_chunk's blocks on the fixture's rows, both dequantized by
// mcmoe (which matches ggml bit for bit: kquants_test, iquants_test); the squared error is
// weighted by the importance for the importance rows. Two summaries must each be at most 1.01:
// the ratio of the errors summed over the rows (which the ~1e3 half of row 3 dominates) and the
// mean over the 8 half rows of their ratios (where the ~1e-6 half, on which ggml's f16 scales
// underflow, counts only as one of 8); no half row may be worse than ggml's by more than 5%.
void expect_error_vs_ggml(DType t, double max_ratio, double max_half_ratio) {
  const std::vector<uint8_t> in = test::read_bytes(data_path("inputs.bin"));
  const std::vector<uint8_t> ggml = test::read_bytes(data_path(t, ".ggml.bin"));
  const size_t rb = row_bytes(t, kRowLen);
  ASSERT_EQ(in.size(), (kRows + 1) * kRowLen * 4);
  ASSERT_EQ(ggml.size(), 2 * kRows * rb);
  std::vector<float> x(kRows * kRowLen), imp(kRowLen), y(kRowLen), y_ggml(kRowLen);
  std::memcpy(x.data(), in.data(), x.size() * 4);
  std::memcpy(imp.data(), in.data() + x.size() * 4, imp.size() * 4);
  std::vector<uint8_t> mine(rb);
  for (int with_imp = 0; with_imp < 2; ++with_imp) {
    const float* w = with_imp ? imp.data() : nullptr;
    double err_mine = 0, err_ggml = 0, ratio_sum = 0;
    std::string per_row;
    for (int64_t r = 0; r < kRows; ++r) {
      const float* xr = x.data() + r * kRowLen;
      quant::quantize_row_ggml(t, xr, mine.data(), kRowLen, w);
      quant::dequantize_row(t, mine.data(), y.data(), kRowLen);
      quant::dequantize_row(t, ggml.data() + (with_imp * kRows + r) * rb, y_ggml.data(), kRowLen);
      for (int64_t h = 0; h < kRowLen; h += kRowLen / 2) {
        const float* wh = w ? w + h : nullptr;
        const double em = squared_error(xr + h, y.data() + h, wh, kRowLen / 2);
        const double eg = squared_error(xr + h, y_ggml.data() + h, wh, kRowLen / 2);
        err_mine += em, err_ggml += eg;
        const double half_ratio = eg > 0 ? em / eg : em == 0 ? 1.0 : INFINITY;
        ratio_sum += half_ratio;
        EXPECT_LE(half_ratio, max_half_ratio) << dtype_name(t) << " row " << r << " from " << h;
        char buf[32];
        std::snprintf(buf, sizeof(buf), " %.3f", half_ratio);
        per_row += buf;
      }
    }
    const double ratio = err_mine / err_ggml, mean_ratio = ratio_sum / (2 * kRows);
    const std::string key = std::string(dtype_name(t)) + (with_imp ? "_importance" : "_plain");
    testing::Test::RecordProperty(key + "_summed_ratio", std::to_string(ratio));
    testing::Test::RecordProperty(key + "_mean_half_row_ratio", std::to_string(mean_ratio));
    std::printf(
        "[ ratio    ] %-17s mcmoe/ggml squared error: summed %.4f, mean of half rows %.4f"
        " (%s)\n",
        key.c_str(), ratio, mean_ratio, per_row.c_str());
    EXPECT_LE(ratio, max_ratio) << key;
    EXPECT_LE(mean_ratio, max_ratio) << key;
  }
}

TEST_P(GgmlEncodeTypes, ErrorIsNoWorseThanGgml) {
  expect_error_vs_ggml(GetParam(), 1.01, 1.05);
}

// ggml's to_float of the blocks mcmoe wrote (the fit and random-field blocks) equals mcmoe's
// dequantization bit for bit.
void expect_ggml_dequantizes_as_mcmoe(DType t) {
  const std::vector<uint8_t> bytes = test::read_bytes(data_path(t, ".mcmoe.bin"));
  const std::vector<uint8_t> floats = test::read_bytes(data_path(t, ".mcmoe.f32"));
  const int64_t n = kFitValues + kRandomValues;
  ASSERT_EQ(bytes.size(), row_bytes(t, n));
  ASSERT_EQ(floats.size(), static_cast<size_t>(n) * 4);
  std::vector<float> got(n), want(n);
  std::memcpy(want.data(), floats.data(), floats.size());
  quant::dequantize_row(t, bytes.data(), got.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(same_bits(got[i], want[i]))
        << dtype_name(t) << " element " << i << ": mcmoe " << got[i] << ", ggml " << want[i];
  }
}

TEST_P(GgmlEncodeTypes, GgmlDequantizesMcmoeBlocksAsMcmoeDoes) {
  expect_ggml_dequantizes_as_mcmoe(GetParam());
}

// Not a check: with MCMOE_GGML_ENCODE_WRITE=DIR, writes <type>.mcmoe.bin for gen_fixture.c's
// `dequantize` step (tests/data/ggml_encode/README.md).
void write_round_trip_fixture(DType t, const char* dir) {
  const std::vector<uint8_t> in = test::read_bytes(data_path("inputs.bin"));
  std::vector<float> x(kRows * kRowLen + kRowLen);
  std::memcpy(x.data(), in.data(), x.size() * 4);
  const float* row1_tail = x.data() + kRowLen + (kRowLen - kFitValues);
  const float* imp_tail = x.data() + kRows * kRowLen + (kRowLen - kFitValues);
  std::vector<uint8_t> out(row_bytes(t, kFitValues + kRandomValues));
  quant::quantize_row_ggml(t, row1_tail, out.data(), kFitValues, imp_tail);
  std::mt19937 rng(1234 + static_cast<int>(t));
  const DTypeTraits& tr = dtype_traits(t);
  uint8_t* p = out.data() + row_bytes(t, kFitValues);
  for (int64_t k = 0; k < kRandomValues / tr.block_size; ++k, p += tr.block_bytes) {
    quant::encode_block(t, random_int_block(t, rng, static_cast<int>(k)), p);
  }
  test::write_bytes(std::string(dir) + "/" + std::string(dtype_name(t)) + ".mcmoe.bin", out);
}

TEST_P(GgmlEncodeTypes, WriteRoundTripFixture) {
  const char* dir = std::getenv("MCMOE_GGML_ENCODE_WRITE");
  if (!dir) GTEST_SKIP() << "set MCMOE_GGML_ENCODE_WRITE=DIR to write the round-trip fixture";
  write_round_trip_fixture(GetParam(), dir);
}

INSTANTIATE_TEST_SUITE_P(GgmlEncode, GgmlEncodeTypes, testing::ValuesIn(kTypes),
                         [](const testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

// ---- the vector codebooks IQ2_XXS and IQ3_XXS ----

constexpr DType kVectorTypes[] = {DType::IQ2_XXS, DType::IQ3_XXS};

// A block built from the format's definition, not through decode_block: per 8 (IQ2_XXS) or 4
// (IQ3_XXS) weights a random grid entry's magnitudes, per 8 weights random signs with an even
// count of negatives, a random odd scale 2 l + 1 per 32, d a random f16 times 1/8 or 1/4.
quant::IntBlock constructed_block(DType t, std::mt19937& rng) {
  const bool iq2 = t == DType::IQ2_XXS;
  const int dim = iq2 ? 8 : 4;
  quant::IntBlock b{};
  b.n = 256;
  b.d = random_f16(rng) * (iq2 ? 0.125f : 0.25f);
  for (int g = 0; g < 256; g += dim) {
    const int idx = static_cast<int>(rng() % 256);
    const uint64_t e = iq2 ? quant::iq_grids::kIQ2XXS[idx] : quant::iq_grids::kIQ3XXS[idx];
    for (int j = 0; j < dim; ++j) b.q[g + j] = static_cast<int8_t>((e >> (8 * j)) & 0xff);
  }
  for (int k = 0; k < 256; k += 8) {
    int signs = static_cast<int>(rng() % 256);
    if (__builtin_popcount(signs) % 2) signs ^= 1 << (rng() % 8);
    for (int j = 0; j < 8; ++j)
      if (signs >> j & 1) b.q[k + j] = static_cast<int8_t>(-b.q[k + j]);
  }
  for (int s = 0; s < 16; s += 2)
    b.scale[s] = b.scale[s + 1] = static_cast<int16_t>(2 * (rng() % 16) + 1);
  return b;
}

class GgmlEncodeVector : public testing::TestWithParam<DType> {};

// decode_block(encode_block(b)) == b, and the bytes back, over blocks built from the format's
// definition and over random byte patterns (every one legal but for d's NaN/inf): together
// they reach every grid entry, sign pattern and scale.
TEST_P(GgmlEncodeVector, RandomLegalBlocksRoundTrip) {
  const DType t = GetParam();
  std::mt19937 rng(17 + static_cast<int>(t));
  std::vector<uint8_t> bytes(dtype_traits(t).block_bytes), again(bytes.size());
  std::set<int> scales, magnitudes;
  for (int k = 0; k < 2000; ++k) {
    const quant::IntBlock b =
        k % 2 ? constructed_block(t, rng) : random_vector_block(t, rng, (k / 2) % 50);
    quant::encode_block(t, b, bytes.data());
    quant::IntBlock o;
    quant::decode_block(t, bytes.data(), &o);
    ASSERT_EQ(o.n, 256);
    ASSERT_TRUE(same_bits(o.d, b.d)) << o.d << " vs " << b.d;
    ASSERT_TRUE(same_bits(o.dmin, 0.f));
    for (int s = 0; s < 16; ++s) {
      ASSERT_EQ(o.scale[s], b.scale[s]) << "block " << k << " scale " << s;
      ASSERT_EQ(o.min[s], 0);
      scales.insert(b.scale[s]);
    }
    for (int e = 0; e < 256; ++e) {
      ASSERT_EQ(o.q[e], b.q[e]) << "block " << k << " element " << e;
      magnitudes.insert(std::abs(b.q[e]));
    }
    quant::encode_block(t, o, again.data());
    ASSERT_EQ(again, bytes) << "block " << k;
  }
  EXPECT_EQ(scales.size(), 16u);
  EXPECT_EQ(magnitudes.size(), t == DType::IQ2_XXS ? 3u : 8u);
}

TEST_P(GgmlEncodeVector, IllegalBlocksAreRefusedNamingTheField) {
  const DType t = GetParam();
  const std::string group = t == DType::IQ2_XXS ? "q[0..7] = (" : "q[0..3] = (";
  std::mt19937 rng(3);
  const quant::IntBlock good = constructed_block(t, rng);
  quant::IntBlock b = good;
  b.q[3] = static_cast<int8_t>(-b.q[3]);  // odd count of negatives
  expect_refused(t, b, "q[0..7] = (");
  expect_refused(t, b, "negative values");
  b = good;
  b.q[1] = static_cast<int8_t>(b.q[1] < 0 ? -7 : 7);  // 7 is no grid magnitude
  expect_refused(t, b, group);
  expect_refused(t, b, "is not ± an entry of the type's grid");
  b = good;
  b.q[0] = b.q[1] = b.q[2] = b.q[3] = b.q[4] = b.q[5] = b.q[6] = b.q[7] = 0;
  expect_refused(t, b, group);
  b = good;
  b.scale[4] = b.scale[5] = 2;
  expect_refused(t, b, "scale[4] = 2 is not an odd value in [1, 31]");
  b = good;
  b.scale[6] = b.scale[7] = 33;
  expect_refused(t, b, "scale[6] = 33");
  b = good;
  b.scale[3] = static_cast<int16_t>(b.scale[2] == 1 ? 3 : 1);
  expect_refused(t, b, "scale[3] = ");
  b = good;
  b.min[1] = 1;
  expect_refused(t, b, "min[1] = 1");
  expect_scalars_refused(t, good);
}

// As the other types' bounds. IQ2_XXS's rows "without importance" are ggml's with a uniform
// importance (ggml requires one), against mcmoe's default weights.
TEST_P(GgmlEncodeVector, ErrorIsNoWorseThanGgml) {
  expect_error_vs_ggml(GetParam(), 1.01, 1.05);
}

TEST_P(GgmlEncodeVector, GgmlDequantizesMcmoeBlocksAsMcmoeDoes) {
  expect_ggml_dequantizes_as_mcmoe(GetParam());
}

TEST_P(GgmlEncodeVector, WriteRoundTripFixture) {
  const char* dir = std::getenv("MCMOE_GGML_ENCODE_WRITE");
  if (!dir) GTEST_SKIP() << "set MCMOE_GGML_ENCODE_WRITE=DIR to write the round-trip fixture";
  write_round_trip_fixture(GetParam(), dir);
}

// Zeros fit exactly (d = 0); a fitted block's values follow x's signs and size.
TEST_P(GgmlEncodeVector, FitsZerosAndFollowsTheInput) {
  const DType t = GetParam();
  std::vector<float> x(256, 0.f), y(256);
  std::vector<uint8_t> bytes(dtype_traits(t).block_bytes);
  quant::quantize_row_ggml(t, x.data(), bytes.data(), 256);
  quant::dequantize_row(t, bytes.data(), y.data(), 256);
  for (float v : y) ASSERT_EQ(v, 0.f);
  std::mt19937 rng(8);
  std::normal_distribution<float> g;
  for (float& v : x) v = g(rng);
  quant::quantize_row_ggml(t, x.data(), bytes.data(), 256);
  quant::dequantize_row(t, bytes.data(), y.data(), 256);
  const double rel = squared_error(x.data(), y.data(), nullptr, 256) /
                     squared_error(x.data(), std::vector<float>(256).data(), nullptr, 256);
  EXPECT_LT(rel, t == DType::IQ2_XXS ? 0.25 : 0.08) << dtype_name(t);
}

INSTANTIATE_TEST_SUITE_P(GgmlEncode, GgmlEncodeVector, testing::ValuesIn(kVectorTypes),
                         [](const testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

TEST(GgmlEncode, VectorCodebooksHaveNoCodeSet) {
  for (DType t : kVectorTypes) {
    EXPECT_TRUE(quant::can_encode(t)) << dtype_name(t);
    EXPECT_TRUE(quant::is_vector_codebook(t)) << dtype_name(t);
    expect_error([&] { quant::code_set(t); },
                 {std::string(dtype_name(t)) + " is a vector codebook", "fit_block"});
  }
  for (DType t : kTypes) EXPECT_FALSE(quant::is_vector_codebook(t)) << dtype_name(t);
}

// round_codebook_group against exhaustive search: every entry (IQ3_XXS: every pair of
// entries) and every sign pattern with an even count of negatives, at the block's fixed
// scale; the function's weighted error must equal the least one.
TEST(GgmlEncode, CodebookGroupRoundingIsTheExactNearest) {
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> uw(0.1f, 3.f);
  for (DType t : kVectorTypes) {
    const bool iq2 = t == DType::IQ2_XXS;
    const int dim = iq2 ? 8 : 4;
    auto mag = [&](int idx, int j) {
      const uint64_t e = iq2 ? quant::iq_grids::kIQ2XXS[idx] : quant::iq_grids::kIQ3XXS[idx];
      return static_cast<int>((e >> (8 * j)) & 0xff);
    };
    for (int trial = 0; trial < (iq2 ? 12 : 2); ++trial) {
      SCOPED_TRACE(std::string(dtype_name(t)) + " trial " + std::to_string(trial));
      quant::IntBlock b = constructed_block(t, rng);
      b.d = (iq2 ? 0.125f : 0.25f) * fp16_to_f32(f32_to_fp16(0.05f));  // an f16 times the unit
      const int e0 = 8 * static_cast<int>(rng() % 32);
      const double scale = static_cast<double>(b.d) * b.scale[e0 / 16];
      float x[8], w[8];
      for (int i = 0; i < 8; ++i) x[i] = nd(rng) * static_cast<float>(scale) * 20.f, w[i] = uw(rng);
      auto err_of = [&](const int8_t* q) {
        double e = 0;
        for (int i = 0; i < 8; ++i) {
          const double d = x[i] - scale * q[i];
          e += w[i] * d * d;
        }
        return e;
      };
      double best = std::numeric_limits<double>::infinity();
      int8_t q[8];
      const int entries2 = iq2 ? 1 : 256;
      for (int g0 = 0; g0 < 256; ++g0) {
        for (int g1 = 0; g1 < entries2; ++g1) {
          for (int signs = 0; signs < 256; ++signs) {
            if (__builtin_popcount(signs) % 2) continue;
            for (int i = 0; i < 8; ++i) {
              const int m = mag(i < dim ? g0 : g1, i % dim);
              q[i] = static_cast<int8_t>(signs >> i & 1 ? -m : m);
            }
            best = std::min(best, err_of(q));
          }
        }
      }
      quant::round_codebook_group(t, x, w, &b, e0);
      EXPECT_NEAR(err_of(b.q + e0), best, 1e-9 * (1 + best));
      // The block still encodes: the codes are grid entries with the sign parity kept.
      std::vector<uint8_t> bytes(dtype_traits(t).block_bytes);
      quant::encode_block(t, b, bytes.data());
    }
  }
  quant::IntBlock b{};
  float x[8] = {}, w[8] = {};
  expect_error([&] { quant::round_codebook_group(DType::Q4_K, x, w, &b, 0); },
               {"q4_k is not a vector codebook"});
  expect_error([&] { quant::round_codebook_group(DType::IQ2_XXS, x, w, &b, 4); },
               {"not one parity group"});
}

TEST(GgmlEncode, RowsThatAreNotWholeBlocksFail) {
  std::vector<float> x(512, 1.f);
  std::vector<uint8_t> out(1024);
  expect_error([&] { quant::quantize_row_ggml(DType::Q4_K, x.data(), out.data(), 128); },
               {"128 elements not a multiple of the q4_k block size 256"});
  expect_error([&] { quant::quantize_row_ggml(DType::Q8_0, x.data(), out.data(), 48); },
               {"48 elements not a multiple of the q8_0 block size 32"});
  expect_error([&] { quant::quantize_row_ggml(DType::IQ2_XS, x.data(), out.data(), 256); },
               {"cannot write iq2_xs"});
  EXPECT_FALSE(quant::can_encode(DType::IQ2_XS));
  EXPECT_TRUE(quant::can_encode(DType::Q4_1));
  EXPECT_TRUE(quant::can_encode(DType::Q5_1));
  EXPECT_TRUE(quant::can_encode(DType::IQ4_XS));
  x[3] = NAN;
  expect_error([&] { quant::quantize_row_ggml(DType::Q6_K, x.data(), out.data(), 256); },
               {"value 3 of a block is nan"});
}

// quantize_row writes the K-quants and IQ4 types through quantize_row_ggml.
TEST(GgmlEncode, QuantizeRowWritesTheKQuants) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<float> x(256), y(256);
  for (float& v : x) v = g(rng);
  std::vector<uint8_t> a(row_bytes(DType::Q4_K, 256)), b(a.size());
  quant::quantize_row(DType::Q4_K, x.data(), a.data(), 256);
  quant::quantize_row_ggml(DType::Q4_K, x.data(), b.data(), 256);
  EXPECT_EQ(a, b);
  quant::dequantize_row(DType::Q4_K, a.data(), y.data(), 256);
  EXPECT_LT(squared_error(x.data(), y.data(), nullptr, 256) / 256, 0.01);
}

}  // namespace
}  // namespace mcmoe

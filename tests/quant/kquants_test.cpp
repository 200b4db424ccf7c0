// ggml's Q4_1 / Q5_0 / Q5_1 and K-quant blocks: mcmoe's dequantization must reproduce
// llama.cpp's bit for bit (blocks and floats made by ggml itself, tests/data/kquants/), and a
// GGUF whose rows do not fit the block size is rejected with a message naming the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "format/gguf.h"
#include "quant/kquants.h"
#include "quant/quantize.h"

namespace mcmoe {
namespace {

constexpr DType kTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K,
                            DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
constexpr int64_t kRowLen = 512;  // tests/data/kquants/README.md
constexpr int64_t kRows = 2;

std::string fixture_path(DType type) {
  return std::string(MCMOE_SOURCE_DIR) + "/tests/data/kquants/" + std::string(dtype_name(type)) +
         ".bin";
}

class KQuantFixture : public testing::TestWithParam<DType> {};

TEST_P(KQuantFixture, DequantizationMatchesGgmlBitForBit) {
  const DType type = GetParam();
  const std::vector<uint8_t> bytes = test::read_bytes(fixture_path(type));
  const size_t rb = row_bytes(type, kRowLen);
  const size_t floats = static_cast<size_t>(kRows * kRowLen);
  ASSERT_EQ(bytes.size(), kRows * rb + floats * 4) << fixture_path(type);
  std::vector<float> want(floats), got(floats);
  std::memcpy(want.data(), bytes.data() + kRows * rb, floats * 4);
  for (int64_t r = 0; r < kRows; ++r) {
    quant::dequantize_row(type, bytes.data() + r * rb, got.data() + r * kRowLen, kRowLen);
  }
  // Compare the bit patterns: equal floats of different sign (-0 and 0) would pass ==.
  for (size_t i = 0; i < floats; ++i) {
    uint32_t g, w;
    std::memcpy(&g, &got[i], 4);
    std::memcpy(&w, &want[i], 4);
    ASSERT_EQ(g, w) << dtype_name(type) << " element " << i << ": got " << got[i] << ", ggml "
                    << want[i];
  }
  // The fixture exercises the format: many distinct values, both signs.
  std::vector<float> sorted = want;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_GT(std::unique(sorted.begin(), sorted.end()) - sorted.begin(), 64);
  EXPECT_LT(sorted.front(), 0.f);
  EXPECT_GT(sorted.back(), 0.f);
}

// decode_block is what the scalar kernels multiply with: its integer form, evaluated in
// double, must agree with the f32 dequantization to f32 rounding.
TEST_P(KQuantFixture, IntegerDecodeAgreesWithDequantization) {
  const DType type = GetParam();
  const std::vector<uint8_t> bytes = test::read_bytes(fixture_path(type));
  const DTypeTraits& tr = dtype_traits(type);
  std::vector<float> deq(static_cast<size_t>(kRowLen));
  quant::dequantize_row(type, bytes.data(), deq.data(), kRowLen);
  quant::IntBlock b;
  for (int64_t k = 0; k < kRowLen / tr.block_size; ++k) {
    quant::decode_block(type, bytes.data() + k * tr.block_bytes, &b);
    ASSERT_EQ(b.n, tr.block_size);
    for (int e = 0; e < b.n; ++e) {
      const double v = static_cast<double>(b.d) * b.scale[e / 16] * b.q[e] -
                       static_cast<double>(b.dmin) * b.min[e / 16];
      const double mag = std::fabs(static_cast<double>(b.d) * b.scale[e / 16] * b.q[e]) +
                         std::fabs(static_cast<double>(b.dmin) * b.min[e / 16]);
      EXPECT_NEAR(deq[k * b.n + e], v, mag * 0x1p-22) << "block " << k << " element " << e;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KQuants, KQuantFixture, testing::ValuesIn(kTypes),
                         [](const testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

TEST(KQuants, RowsThatAreNotWholeBlocksFail) {
  std::vector<uint8_t> src(1024, 0);
  std::vector<float> dst(512);
  EXPECT_THROW(quant::dequantize_row(DType::Q4_K, src.data(), dst.data(), 128), Error);
  EXPECT_THROW(quant::dequantize_row(DType::Q5_1, src.data(), dst.data(), 48), Error);
}

// Writes a valid GGUF with one tensor of `type` and shape {rows, cols}, then rewrites its
// dimensions in place to {rows * cols / bad_cols, bad_cols} (the same byte count).
std::string gguf_with_row_length(const test::TempDir& dir, DType type, int64_t rows,
                                 int64_t cols, int64_t bad_cols) {
  format::GgufWriter w;
  w.set("general.architecture", format::GgufValue::str("llama"));
  w.add_tensor("blk.0.ffn_up.weight", type, {rows, cols}, [](uint8_t* dst, size_t n) {
    std::memset(dst, 0, n);
  });
  const std::string path = dir.path("k.gguf");
  w.write(path);
  std::vector<uint8_t> bytes = test::read_bytes(path);
  // Tensor info: u64 name length, name, u32 n_dims, then ne[0], ne[1] as u64.
  const std::string name = "blk.0.ffn_up.weight";
  const auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  EXPECT_NE(it, bytes.end());
  const size_t ne_pos = static_cast<size_t>(it - bytes.begin()) + name.size() + 4;
  const uint64_t ne0 = static_cast<uint64_t>(bad_cols);
  const uint64_t ne1 = static_cast<uint64_t>(rows * cols / bad_cols);
  std::memcpy(bytes.data() + ne_pos, &ne0, 8);
  std::memcpy(bytes.data() + ne_pos + 8, &ne1, 8);
  test::write_bytes(path, bytes);
  return path;
}

void expect_gguf_error(const std::string& path, const std::string& fragment) {
  try {
    format::GgufFile f(path);
    FAIL() << "no error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_NE(msg.find("blk.0.ffn_up.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
}

TEST(KQuants, GgufRejectsKQuantRowsNotAMultipleOf256) {
  test::TempDir dir;
  // 4 rows of 256 stored, declared as 8 rows of 128: the data size still matches, only the
  // row length is wrong.
  for (DType type : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(type));
    const std::string path = gguf_with_row_length(dir, type, 4, 256, 128);
    expect_gguf_error(path, "row length 128 is not a multiple of the " +
                                std::string(dtype_name(type)) + " block size 256");
  }
  // The legacy blocks of 32: a row of 48.
  const std::string path = gguf_with_row_length(dir, DType::Q5_1, 3, 64, 48);
  expect_gguf_error(path, "row length 48 is not a multiple of the q5_1 block size 32");
}

TEST(KQuants, GgufReadsKQuantTensors) {
  test::TempDir dir;
  format::GgufWriter w;
  w.set("general.architecture", format::GgufValue::str("llama"));
  const std::vector<uint8_t> blocks = test::read_bytes(fixture_path(DType::Q6_K));
  const size_t rb = row_bytes(DType::Q6_K, kRowLen);
  w.add_tensor("t", DType::Q6_K, {kRows, kRowLen}, [&](uint8_t* dst, size_t n) {
    ASSERT_EQ(n, kRows * rb);
    std::memcpy(dst, blocks.data(), n);
  });
  w.write(dir.path("q6.gguf"));
  format::GgufFile f(dir.path("q6.gguf"));
  const auto* t = f.find_tensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, DType::Q6_K);
  EXPECT_EQ(t->nbytes, kRows * rb);
  std::vector<float> got(static_cast<size_t>(kRowLen)), want(static_cast<size_t>(kRowLen));
  quant::dequantize_row(DType::Q6_K, f.view(*t).row(1), got.data(), kRowLen);
  std::memcpy(want.data(), blocks.data() + kRows * rb + kRowLen * 4, kRowLen * 4);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace mcmoe

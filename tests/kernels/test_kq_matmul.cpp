// ggml's Q4_1 / Q5_0 / Q5_1, K-quant, i-quant, ternary and MXFP4 weights through ops::matmul_batch on every ISA path
// this CPU runs, for 1, 3 and 17 tokens (decode, a small and a tiled prefill) and wide rows,
// against two references:
//  - tight: the same int8 activations the kernels see (quantize_acts_ref) times the weights'
//    exact integer form (quant::decode_block), in double;
//  - end to end: ops::matmul_reference (dequantized weights × f32 activations), within the
//    exact bound on activation rounding (act_quant_bound), as for Q8_0 / Q4_0.
// The weights are random bytes with random finite fp16 scales, so every code, sub-block
// scale and min pattern of each format occurs (llama-quantize's blocks are a subset).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/kq_blocks.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "matmul_test_util.h"
#include "ops/matmul.h"
#include "quant/kquants.h"

namespace mcmoe {
namespace {

using kernels::Isa;
using test::Comparison;

constexpr DType kTypes[] = {DType::Q4_1,   DType::Q5_0,    DType::Q5_1,   DType::Q2_K,
                            DType::Q3_K,   DType::Q4_K,    DType::Q5_K,   DType::Q6_K,
                            DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S,  DType::IQ3_XXS,
                            DType::IQ3_S,  DType::IQ1_S,   DType::IQ1_M,  DType::IQ4_NL,
                            DType::IQ4_XS, DType::TQ1_0,   DType::TQ2_0,  DType::MXFP4};

test::OwnedWeight random_kq_weight(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  test::OwnedWeight w;
  // +1 byte: data need not be row-aligned.
  w.bytes = test::random_kq_blocks(type, rows, cols, seed, 0.01f, 1);
  w.view.type = type;
  w.view.shape = {rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = row_bytes(type, cols) * static_cast<size_t>(rows);
  return w;
}

// The tight reference and its bound: the kernels round products of a few f32 scales and
// accumulate at most cols / 32 terms per f32 lane (the scalar kernel: per token), so each
// output is within (16 + cols / 16) · 2^-24 of Σ (|d·scale·q| + |dmin·min|) · |dx·qx|; a
// wrong code, scale or min moves it by far more.
void kq_reference(const TensorView& w, const float* x, int64_t n_tokens, int64_t ldx,
                  std::vector<double>* ref, std::vector<double>* bound) {
  const int64_t rows = w.rows(), cols = w.cols();
  const DTypeTraits& tr = dtype_traits(w.type);
  const kernels::ActRowLayout l = kernels::act_row_layout(cols);
  std::vector<uint8_t> acts(l.bytes * static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    kernels::quantize_acts_ref(x + t * ldx, cols, acts.data() + t * l.bytes,
                               kernels::ActLayout::kNatural);
  }
  ref->assign(static_cast<size_t>(n_tokens * rows), 0.0);
  bound->assign(ref->size(), 0.0);
  const double rel = (16.0 + static_cast<double>(cols) / 16) * 0x1p-24;
  quant::IntBlock b;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < cols / tr.block_size; ++k) {
      quant::decode_block(w.type, w.row(r) + k * tr.block_bytes, &b);
      for (int64_t t = 0; t < n_tokens; ++t) {
        const uint8_t* row = acts.data() + t * l.bytes;
        const auto* qx = reinterpret_cast<const int8_t*>(row);
        const auto* dx = reinterpret_cast<const float*>(row + l.d_off);
        double s = 0, m = 0;
        for (int e = 0; e < b.n; ++e) {
          const int64_t c = k * b.n + e;
          const double xv = static_cast<double>(dx[c / 32]) * qx[c];
          const double a = static_cast<double>(b.d) * b.scale[e / 16] * b.q[e];
          const double mn = static_cast<double>(b.dmin) * b.min[e / 16];
          s += (a - mn) * xv;
          m += (std::fabs(a) + std::fabs(mn)) * std::fabs(xv);
        }
        (*ref)[t * rows + r] += s;
        (*bound)[t * rows + r] += rel * m;
      }
    }
  }
  for (double& v : *bound) v += 1e-30;
}

struct Case {
  int64_t rows, cols, n_tokens;
};

void check_case(Isa isa, DType type, const Case& c, ThreadPool& pool, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << kernels::isa_name(isa) << "_" << dtype_name(type)
                                  << " rows=" << c.rows << " cols=" << c.cols
                                  << " n_tokens=" << c.n_tokens);
  const test::OwnedWeight w = random_kq_weight(type, c.rows, c.cols, seed);
  const int64_t ldx = c.cols + 3, ldy = c.rows + 5;
  const std::vector<float> x = test::random_floats(static_cast<size_t>(c.n_tokens * ldx), seed + 1);
  constexpr float kSentinel = 12345.f;
  std::vector<float> y(static_cast<size_t>(c.n_tokens * ldy), kSentinel);
  {
    kernels::ScopedIsa force(isa);
    const ops::MatmulJob job{
        .w = &w.view, .x = x.data(), .y = y.data(), .n_tokens = c.n_tokens, .ldx = ldx, .ldy = ldy};
    ops::matmul_batch(std::span<const ops::MatmulJob>(&job, 1), pool);
  }
  for (int64_t t = 0; t < c.n_tokens; ++t) {
    for (int64_t r = c.rows; r < ldy; ++r) ASSERT_EQ(y[t * ldy + r], kSentinel) << "t=" << t;
  }

  std::vector<double> ref, bound;
  kq_reference(w.view, x.data(), c.n_tokens, ldx, &ref, &bound);
  const Comparison tight = test::compare(ref, bound, y.data(), c.n_tokens, c.rows, ldy);
  EXPECT_LE(tight.worst, 1.0) << "an element is outside its bound";

  // End to end against the f32 reference of the same weights. Activation rounding gives a
  // relative RMS error near 0.5% for Gaussian activations (see test_matmul.cpp): NMSE below
  // 1e-4 where there are enough outputs for the mean to mean something.
  std::vector<float> y_ref(static_cast<size_t>(c.n_tokens * c.rows));
  const ops::MatmulJob job{
      .w = &w.view, .x = x.data(), .y = y_ref.data(), .n_tokens = c.n_tokens, .ldx = ldx};
  ops::matmul_reference(job);
  std::vector<double> ref64(y_ref.begin(), y_ref.end()), loose_bound;
  test::act_quant_bound(w.view, x.data(), c.n_tokens, ldx, bound, &loose_bound);
  const Comparison loose = test::compare(ref64, loose_bound, y.data(), c.n_tokens, c.rows, ldy);
  EXPECT_LE(loose.worst, 1.0) << "an element is further from the f32 result than rounding allows";
  if (c.rows * c.n_tokens >= 64) {
    EXPECT_LT(loose.nmse, 1e-4);
  }
}

class KQuantMatmulTest : public testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(KQuantMatmulTest, TokensOneThreeSeventeen) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  std::vector<int64_t> cols_list = {256, 768};
  if (dtype_traits(type).block_size == 32) {
    // Legacy blocks: partial groups of 4 blocks at the row end (1, 3 and 5 blocks).
    for (int64_t cc : {32, 96, 160}) cols_list.push_back(cc);
  }
  uint32_t seed = 1;
  for (int64_t rows : {1, 6, 37}) {
    for (int64_t cols : cols_list) {
      for (int64_t n_tokens : {1, 3, 17}) check_case(isa, type, {rows, cols, n_tokens}, pool, ++seed);
    }
  }
}

TEST_P(KQuantMatmulTest, WideRowsAndPrefill) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  // 4352 columns: 136 activation blocks, more than one prefill column chunk (128 blocks);
  // 4256 (legacy only): 133 blocks, a partial group of 4 in the last chunk.
  const int64_t wide = dtype_traits(type).block_size == 32 ? 4256 : 4352;
  check_case(isa, type, {21, wide, 1}, pool, 100);
  check_case(isa, type, {21, wide, 9}, pool, 101);
  check_case(isa, type, {40, 1024, 67}, pool, 102);
}

INSTANTIATE_TEST_SUITE_P(KQuants, KQuantMatmulTest,
                         testing::Combine(testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                                          testing::ValuesIn(kTypes)),
                         [](const testing::TestParamInfo<KQuantMatmulTest::ParamType>& info) {
                           return std::string(kernels::isa_name(std::get<0>(info.param))) + "_" +
                                  std::string(dtype_name(std::get<1>(info.param)));
                         });

// MXFP4 scale bytes 0 and 1 decode to subnormal 2^-128 and 2^-127 (ggml's reading), which the
// AVX-512 kernel builds by a separate path: blocks with them among normal ones, every ISA, one
// and several tokens, against the reference (a wrong exponent there gives -Inf or NaN).
TEST(KQuantMatmul, Mxfp4TinyScales) {
  ThreadPool pool(2);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!kernels::isa_supported(isa)) continue;
    test::OwnedWeight w = random_kq_weight(DType::MXFP4, 5, 256, 7);
    for (int64_t b = 0; b < 5 * 8; b += 3) w.bytes[b * 17] = static_cast<uint8_t>(b % 4);
    const std::vector<float> x = test::random_floats(256 * 3, 8);
    for (int64_t n : {1, 3}) {
      SCOPED_TRACE(testing::Message() << kernels::isa_name(isa) << " tokens " << n);
      std::vector<float> y(static_cast<size_t>(5 * n));
      {
        kernels::ScopedIsa force(isa);
        ops::matmul(w.view, x.data(), n, y.data(), pool);
      }
      std::vector<double> ref, bound;
      kq_reference(w.view, x.data(), n, 256, &ref, &bound);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_TRUE(std::isfinite(y[i])) << i;
        EXPECT_LE(std::fabs(y[i] - ref[i]), bound[i]) << i;
      }
    }
  }
}

TEST(KQuantMatmul, RowsNotWholeSuperBlocksAreRejected) {
  test::OwnedWeight w = random_kq_weight(DType::Q4_K, 2, 256, 5);
  w.view.shape = {4, 128};  // same bytes, rows of 128: not a whole super-block
  std::vector<float> x(128, 1.f), y(4, 0.f);
  ThreadPool pool(1);
  try {
    ops::matmul(w.view, x.data(), 1, y.data(), pool);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cols 128 must be a positive multiple of 256"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mcmoe

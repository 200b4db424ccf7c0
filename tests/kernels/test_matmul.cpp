// Every weight format × every ISA path this CPU runs (forced through the dispatch override)
// × odd and even shapes, against the slow references. Tolerances are explained where the
// references are built (matmul_test_util.h) and at each assertion.
#include <gtest/gtest.h>

#include <functional>

#include <string>
#include <tuple>

#include "core/thread_pool.h"
#include "kernels/gemm_blas.h"
#include "matmul_test_util.h"
#include "ops/matmul.h"

namespace mcmoe {
namespace {

using kernels::Isa;
using test::Case;
using test::Comparison;
using test::kTightNmse;
using test::param_name;

// Q8_0 / Q4_0 against the f32 reference: see test::check_against_f32.

bool is_quantized(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0;
}

// Runs one product with padded strides (test::run_padded) and checks it against its tight
// reference and, for Q8_0 / Q4_0, against the f32 reference (test::check_against_f32).
void check_case(Isa isa, DType type, const Case& c, ThreadPool& pool, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << param_name(isa, type) << " rows=" << c.rows
                                  << " cols=" << c.cols << " n_tokens=" << c.n_tokens);
  const test::OwnedWeight w = test::make_weight(type, c.rows, c.cols, seed);
  const test::PaddedProduct p = test::run_padded(isa, w.view, c.n_tokens, pool, seed + 1);

  std::vector<double> ref, bound;
  if (is_quantized(type)) {
    test::quant_reference(w.view, p.x.data(), c.n_tokens, p.ldx, &ref, &bound);
  } else {
    test::float_reference(w.view, p.x.data(), c.n_tokens, p.ldx, &ref, &bound);
  }
  const Comparison tight = test::compare(ref, bound, p.y.data(), c.n_tokens, c.rows, p.ldy);
  EXPECT_LE(tight.worst, 1.0) << "an element is outside its bound";
  EXPECT_LT(tight.nmse, kTightNmse);
  // End to end against the f32 reference of the same (quantized) weights.
  if (is_quantized(type)) test::check_against_f32(w.view, p, bound);
}

class MatmulPathTest : public testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(MatmulPathTest, OddAndEvenShapes) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  uint32_t seed = 1;
  std::vector<int64_t> cols_list = {32, 96, 160, 512};
  if (!is_quantized(type)) {
    // Float formats take any width: exercise every vector tail length.
    for (int64_t c : {1, 7, 15, 17, 33, 47}) cols_list.push_back(c);
  }
  for (int64_t rows : {1, 3, 17, 256}) {
    for (int64_t cols : cols_list) {
      for (int64_t n_tokens : {1, 2, 5})
        check_case(isa, type, {rows, cols, n_tokens}, pool, ++seed);
    }
  }
}

TEST_P(MatmulPathTest, WideRowsAndPrefill) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  // 4096 columns: 128 blocks; 64 and 67 tokens: whole and partial token tiles and blocks,
  // and (float formats, where the path uses it) the OpenBLAS prefill route.
  check_case(isa, type, {17, 4096, 1}, pool, 100);
  check_case(isa, type, {256, 4096, 2}, pool, 101);
  check_case(isa, type, {37, 1056, 64}, pool, 102);
  check_case(isa, type, {64, 4096, 67}, pool, 103);
  // Wider than one prefill column chunk (4096 columns): partial sums over chunks, and a
  // partial group of blocks in the last chunk.
  check_case(isa, type, {21, 4256, 9}, pool, 104);
}

INSTANTIATE_TEST_SUITE_P(Matmul, MatmulPathTest,
                         testing::Combine(testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                                          testing::Values(DType::F32, DType::F16, DType::BF16,
                                                          DType::Q8_0, DType::Q4_0)),
                         [](const testing::TestParamInfo<MatmulPathTest::ParamType>& info) {
                           return param_name(std::get<0>(info.param), std::get<1>(info.param));
                         });

// Runs `gemm` on a rows × cols float weight of each format against n_tokens f32 rows and
// checks the result against the double reference with the tight float bounds.
void check_float_gemm(
    int64_t rows, int64_t cols, int64_t n_tokens, uint32_t seed,
    const std::function<void(const kernels::KernelSet&, kernels::WFormat, const kernels::GemmArgs&)>& gemm) {
  for (Isa isa : test::supported_isas()) {
    for (DType type : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(param_name(isa, type));
      const test::OwnedWeight w = test::make_weight(type, rows, cols, seed);
      const std::vector<float> x = test::random_floats(static_cast<size_t>(n_tokens * cols), seed + 1);
      std::vector<float> y(static_cast<size_t>(n_tokens * rows), -1.f);
      kernels::WFormat f;
      ASSERT_TRUE(kernels::wformat_of(type, &f));
      const kernels::GemmArgs args{.w = static_cast<const uint8_t*>(w.view.data),
                                   .w_stride = w.view.row_stride(),
                                   .cols = cols,
                                   .x = x.data(),
                                   .x_stride = cols * sizeof(float),
                                   .n_tokens = n_tokens,
                                   .y = y.data(),
                                   .ldy = rows,
                                   .row_begin = 0,
                                   .row_end = rows};
      gemm(kernels::kernels_for(isa), f, args);
      std::vector<double> ref, bound;
      test::float_reference(w.view, x.data(), n_tokens, cols, &ref, &bound);
      const Comparison c = test::compare(ref, bound, y.data(), n_tokens, rows, rows);
      EXPECT_LE(c.worst, 1.0);
      EXPECT_LT(c.nmse, kTightNmse);
    }
  }
}

// The kernels' own prefill tiles for float weights (ops/ sends >= 32 tokens to OpenBLAS, so
// call the kernel table directly), every token-tile remainder included.
TEST(KernelGemm, FloatTilesWithManyTokens) {
  check_float_gemm(19, 300, 71, 7, [](const kernels::KernelSet& ks, kernels::WFormat f, const kernels::GemmArgs& args) {
    ks.gemm[static_cast<int>(f)](args);
  });
}

// The row wideners that feed OpenBLAS: exact (F16 and BF16 are subsets of f32), any length.
TEST(KernelGemm, RowWidenersAreExact) {
  for (Isa isa : test::supported_isas()) {
    const kernels::KernelSet& ks = kernels::kernels_for(isa);
    for (DType type : {DType::F32, DType::F16, DType::BF16}) {
      for (int64_t n : {1, 7, 8, 15, 16, 17, 100}) {
        SCOPED_TRACE(testing::Message() << param_name(isa, type) << " n=" << n);
        const test::OwnedWeight w = test::make_weight(type, 1, n, static_cast<uint32_t>(n));
        std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n) + 1, -7.f);
        quant::dequantize_row(type, w.view.row(0), want.data(), n);
        kernels::WFormat f;
        ASSERT_TRUE(kernels::wformat_of(type, &f));
        ks.row_to_f32[static_cast<int>(f)](w.view.row(0), got.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << i;
        EXPECT_EQ(got[n], -7.f) << "wrote past the row";
      }
    }
  }
}

// The OpenBLAS route for float prefill with each ISA's wideners, whichever path ops/ picks.
// 70 rows: a full and a partial panel.
TEST(KernelGemm, BlasPrefillMatchesReference) {
  check_float_gemm(70, 136, 33, 21, [](const kernels::KernelSet& ks, kernels::WFormat f, const kernels::GemmArgs& args) {
    kernels::gemm_blas(ks, f, args);
  });
}

// Several jobs in one call (shared and distinct inputs, mixed formats, different token
// counts) on pools of 1, 2 and 3 threads: the row split across jobs and threads, and the
// sharing of quantized activations between jobs that read the same x.
TEST(MatmulBatch, MixedJobsMatchSingleJobs) {
  const test::OwnedWeight gate = test::make_weight(DType::Q4_0, 300, 256, 11);
  const test::OwnedWeight up = test::make_weight(DType::Q4_0, 300, 256, 12);
  const test::OwnedWeight down = test::make_weight(DType::Q8_0, 256, 320, 13);
  const test::OwnedWeight proj = test::make_weight(DType::BF16, 45, 256, 14);
  const std::vector<float> x1 = test::random_floats(3 * 256, 15);
  const std::vector<float> x2 = test::random_floats(3 * 320, 16);
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    ThreadPool pool(threads);
    std::vector<float> yg(3 * 300), yu(3 * 300), yd(3 * 256), yp(256);
    const ops::MatmulJob jobs[] = {
        {.w = &gate.view, .x = x1.data(), .y = yg.data(), .n_tokens = 3},
        {.w = &up.view, .x = x1.data(), .y = yu.data(), .n_tokens = 3},
        {.w = &down.view, .x = x2.data(), .y = yd.data(), .n_tokens = 3},
        {.w = &proj.view, .x = x1.data() + 256, .y = yp.data(), .n_tokens = 1},
    };
    ops::matmul_batch(jobs, pool);
    for (const ops::MatmulJob& job : jobs) {
      std::vector<float> single(static_cast<size_t>(job.n_tokens * job.w->rows()));
      ops::MatmulJob one = job;
      one.y = single.data();
      ThreadPool serial(1);
      ops::matmul(*one.w, one.x, one.n_tokens, one.y, serial);
      for (size_t i = 0; i < single.size(); ++i) {
        // Same kernels on the same rows: identical whatever the split.
        ASSERT_EQ(job.y[i], single[i]) << "job with " << job.w->rows() << " rows, i=" << i;
      }
    }
  }
}

TEST(MatmulBatch, ZeroTokensAndEmptyBatchDoNothing) {
  const test::OwnedWeight w = test::make_weight(DType::Q8_0, 8, 64, 1);
  std::vector<float> x(64, 1.f), y(8, 7.f);
  ThreadPool pool(2);
  ops::matmul(w.view, x.data(), 0, y.data(), pool);
  for (float v : y) EXPECT_EQ(v, 7.f);
  ops::matmul_batch({}, pool);
}

}  // namespace
}  // namespace mcmoe

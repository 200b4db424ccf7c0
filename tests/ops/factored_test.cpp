// The engine's factored product y = L(R x) + scatter(S x) against the dense product of the
// rebuilt W = L·R + S, alone and mixed with dense products in one ProductBatch.
#include <gtest/gtest.h>

#include <random>

#include "common/test_util.h"
#include "compress/dense_test_util.h"
#include "compress/lowrank.h"
#include "core/error.h"
#include "ops/factored.h"

namespace mcmoe::ops {
namespace {

using compress::DenseMatrix;

using test::random_matrix;

// The dense product over the rebuilt matrix, in double (matmul_reference).
std::vector<float> dense_product(const DenseMatrix& w, const float* x, int64_t n) {
  const TensorView v = w.view();
  std::vector<float> y(static_cast<size_t>(n * w.rows));
  matmul_reference({.w = &v, .x = x, .y = y.data(), .n_tokens = n});
  return y;
}

TEST(Factored, MatchesTheDenseProductOfTheRebuiltMatrix) {
  ThreadPool pool(2);
  // f32 and f16 weights run on f32 activations; q8_0 quantizes x and then R·x to 8 bits,
  // hence its looser bound (about two 8-bit roundings of the activations).
  for (auto [type, tol] : {std::pair<DType, double>{DType::F32, 1e-5}, {DType::F16, 1e-5}, {DType::Q8_0, 2e-2}}) {
    const DenseMatrix w = random_matrix(96, 64, 11);
    compress::TensorStore store;
    const auto f = compress::factor_matrix(w, std::vector<double>(64, 1.0), {.rank = 32, .sparse_rows = 7, .type = type}, store);
    const DenseMatrix rebuilt = compress::to_dense(f.lr);
    for (int64_t n : {1, 3, 17}) {
      const DenseMatrix x = random_matrix(n, 64, 100 + static_cast<uint32_t>(n));
      std::vector<float> y(static_cast<size_t>(n * 96));
      low_rank_matmul(f.lr, x.data.data(), n, y.data(), pool);
      EXPECT_LT(test::relative_max_error(y, dense_product(rebuilt, x.data.data(), n)), tol)
          << dtype_name(type) << " n=" << n;
    }
  }
}

TEST(Factored, BatchMixesDenseAndFactoredProducts) {
  ThreadPool pool(2);
  const DenseMatrix a = random_matrix(64, 128, 1), b = random_matrix(128, 64, 2), dense = random_matrix(48, 128, 3);
  compress::TensorStore store;
  const compress::FactorOptions o{.rank = 32, .sparse_rows = 4, .type = DType::F16};
  const auto fa = compress::factor_matrix(a, std::vector<double>(128, 1.0), o, store);
  const auto fb = compress::factor_matrix(b, std::vector<double>(64, 1.0), {.rank = 16, .sparse_rows = 0, .type = DType::F16}, store);
  const TensorView dv = dense.view();
  const DenseMatrix x128 = random_matrix(5, 128, 7), x64 = random_matrix(2, 64, 8);
  std::vector<float> ya(5 * 64), yb(2 * 128), yd(5 * 48);
  ProductBatch batch;
  batch.reserve(3);
  for (int round = 0; round < 2; ++round) {  // reuse after clear()
    batch.clear();
    batch.add(TensorView{}, fa.lr, x128.data.data(), ya.data(), 5);
    batch.add(dv, LowRankWeights{}, x128.data.data(), yd.data(), 5);  // not factored: dense
    batch.add(TensorView{}, fb.lr, x64.data.data(), yb.data(), 2);
    batch.run(pool);
    EXPECT_LT(test::relative_max_error(ya, dense_product(compress::to_dense(fa.lr), x128.data.data(), 5)), 1e-5);
    EXPECT_LT(test::relative_max_error(yb, dense_product(compress::to_dense(fb.lr), x64.data.data(), 2)), 1e-5);
    EXPECT_LT(test::relative_max_error(yd, dense_product(dense, x128.data.data(), 5)), 1e-5);
  }
}

TEST(Factored, CheckRejectsInconsistentParts) {
  const DenseMatrix w = random_matrix(16, 32, 4);
  compress::TensorStore store;
  const auto f = compress::factor_matrix(w, std::vector<double>(32, 1.0), {.rank = 4, .sparse_rows = 3, .type = DType::F32}, store);
  EXPECT_NO_THROW(check_low_rank(f.lr, "ok"));
  LowRankWeights bad = f.lr;
  bad.index = TensorView{};
  EXPECT_THROW(check_low_rank(bad, "no index"), Error);
  int32_t unsorted[3] = {5, 2, 9};
  bad = f.lr;
  bad.index.data = unsorted;
  try {
    check_low_rank(bad, "blk.0.ffn_gate.1.*");
    FAIL() << "unsorted index accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blk.0.ffn_gate.1.*: sparse index entry 1 is 2"), std::string::npos) << e.what();
  }
  int32_t out_of_range[3] = {1, 2, 16};
  bad.index.data = out_of_range;
  EXPECT_THROW(check_low_rank(bad, "range"), Error);
  bad = f.lr;
  bad.right = f.lr.left;  // [16, 4] where [4, 32] belongs
  EXPECT_THROW(check_low_rank(bad, "rank"), Error);
}

}  // namespace
}  // namespace mcmoe::ops

// The pieces of `mcmoe lowrank`: truncated SVD (full rank reproduces, rank r leaves exactly the
// tail singular values), the sparse-row importance, and factor_matrix's stored form.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "compress/dense_test_util.h"
#include "compress/lowrank.h"
#include "core/error.h"

namespace mcmoe::compress {
namespace {

using test::random_matrix;

// Columns 0..k-1 of an orthonormal basis of R^n (Gram–Schmidt on Gaussian vectors, in double).
std::vector<double> orthonormal(int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::vector<double> q(static_cast<size_t>(n * k));  // column c at [c * n, (c + 1) * n)
  for (int64_t c = 0; c < k; ++c) {
    double* v = q.data() + c * n;
    for (int64_t i = 0; i < n; ++i) v[i] = nd(rng);
    for (int pass = 0; pass < 2; ++pass) {  // twice: classical Gram–Schmidt loses orthogonality once
      for (int64_t p = 0; p < c; ++p) {
        const double* u = q.data() + p * n;
        const double d = std::inner_product(u, u + n, v, 0.0);
        for (int64_t i = 0; i < n; ++i) v[i] -= d * u[i];
      }
    }
    const double norm = std::sqrt(std::inner_product(v, v + n, v, 0.0));
    for (int64_t i = 0; i < n; ++i) v[i] /= norm;
  }
  return q;
}

DenseMatrix product(const DenseMatrix& a, const DenseMatrix& b) {
  DenseMatrix c{a.rows, b.cols, std::vector<float>(static_cast<size_t>(a.rows * b.cols))};
  for (int64_t i = 0; i < a.rows; ++i) {
    for (int64_t j = 0; j < b.cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < a.cols; ++k) s += double{a.data[i * a.cols + k]} * b.data[k * b.cols + j];
      c.data[i * b.cols + j] = static_cast<float>(s);
    }
  }
  return c;
}

double frobenius_diff(const DenseMatrix& a, const DenseMatrix& b) {
  double s = 0;
  for (size_t i = 0; i < a.data.size(); ++i) s += (double{a.data[i]} - b.data[i]) * (double{a.data[i]} - b.data[i]);
  return std::sqrt(s);
}

double frobenius(const DenseMatrix& a) {
  double s = 0;
  for (float x : a.data) s += double{x} * x;
  return std::sqrt(s);
}

TEST(LowRank, FullRankSvdReproducesTheMatrix) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 32}, {32, 48}}) {
    const DenseMatrix w = random_matrix(rows, cols, 5);
    const SvdFactors f = truncated_svd(w, std::min(rows, cols));
    EXPECT_LT(frobenius_diff(product(f.left, f.right), w) / frobenius(w), 1e-6) << rows << "x" << cols;
  }
}

TEST(LowRank, TruncationErrorIsTheTailSingularValues) {
  // W = U diag(σ) Vᵀ with known σ: the rank-r factors must leave ‖W − LR‖_F = sqrt(Σ_{i≥r} σ_i²).
  const int64_t rows = 40, cols = 24, k = 24;
  const std::vector<double> u = orthonormal(rows, k, 1), v = orthonormal(cols, k, 2);
  std::vector<double> sigma(k);
  for (int64_t i = 0; i < k; ++i) sigma[i] = 10.0 * std::pow(0.8, static_cast<double>(i));
  DenseMatrix w{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += u[c * rows + i] * sigma[c] * v[c * cols + j];
      w.data[i * cols + j] = static_cast<float>(s);
    }
  }
  for (int64_t r : {1, 4, 12, 23}) {
    const SvdFactors f = truncated_svd(w, r);
    ASSERT_EQ(f.singular.size(), static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) EXPECT_NEAR(f.singular[i], sigma[i], 1e-5 * sigma[0]) << i;
    double tail = 0;
    for (int64_t i = r; i < k; ++i) tail += sigma[i] * sigma[i];
    EXPECT_NEAR(frobenius_diff(product(f.left, f.right), w), std::sqrt(tail), 2e-5 * sigma[0]) << "rank " << r;
  }
}

TEST(LowRank, SparseRowsAreTheMostImportantOnTheInputs) {
  // Column norms 10, 1, 0.1. Plain row mass would keep rows 2 (20) and 1 (5); weighted by the
  // inputs, row 2 is worth 20 · 0.1 = 2, less than row 3's 0.4 · 10 = 4.
  const DenseMatrix e{4, 3, {0.1f, 0, 0,  //
                             0, 5, 0,     //
                             0, 0, 20,    //
                             0.4f, 0, 0}};
  const std::vector<double> norms{10, 1, 0.1};
  const std::vector<double> imp = row_importance(e, norms);
  ASSERT_EQ(imp.size(), 4u);
  EXPECT_NEAR(imp[0], 1.0, 1e-6);
  EXPECT_NEAR(imp[1], 5.0, 1e-6);
  EXPECT_NEAR(imp[2], 2.0, 1e-6);
  EXPECT_NEAR(imp[3], 4.0, 1e-6);
  EXPECT_EQ(top_rows(imp, 2), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(top_rows(imp, 3), (std::vector<int32_t>{1, 2, 3}));  // ascending by index
  EXPECT_EQ(top_rows(imp, 0), std::vector<int32_t>{});
  EXPECT_EQ(top_rows(std::vector<double>{1, 1, 1}, 1), std::vector<int32_t>{0});  // ties: lower index
}

TEST(LowRank, FactorMatrixKeepsWholeResidualRows) {
  const DenseMatrix w = random_matrix(32, 64, 9);
  std::vector<double> norms(64);
  for (size_t j = 0; j < norms.size(); ++j) norms[j] = 0.5 + static_cast<double>(j % 7);
  TensorStore store;
  const FactoredMatrix f = factor_matrix(w, norms, {.rank = 8, .sparse_rows = 5, .type = DType::F32}, store);
  ASSERT_TRUE(f.lr.valid());
  EXPECT_EQ(f.lr.shape(), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(f.lr.rank(), 8);
  ASSERT_EQ(f.lr.n_sparse(), 5);
  ops::check_low_rank(f.lr, "factored");
  // The kept rows are the most important rows of the residual of the factors ...
  const DenseMatrix lr = product(to_dense(f.lr.left), to_dense(f.lr.right));
  DenseMatrix residual = w;
  for (size_t i = 0; i < residual.data.size(); ++i) residual.data[i] -= lr.data[i];
  const std::vector<int32_t> want = top_rows(row_importance(residual, norms), 5);
  const auto* idx = static_cast<const int32_t*>(f.lr.index.data);
  EXPECT_EQ(std::vector<int32_t>(idx, idx + 5), want);
  // ... and with f32 storage those rows come back exactly, the others as L·R.
  const DenseMatrix rebuilt = to_dense(f.lr);
  for (int64_t i = 0; i < w.rows; ++i) {
    const bool kept = std::find(want.begin(), want.end(), i) != want.end();
    for (int64_t j = 0; j < w.cols; ++j) {
      const float expect = kept ? w.data[i * 64 + j] : lr.data[i * 64 + j];
      EXPECT_NEAR(rebuilt.data[i * 64 + j], expect, 1e-5f) << i << "," << j;
    }
  }
  EXPECT_NEAR(f.rel_error, frobenius_diff(rebuilt, w) / frobenius(w), 1e-6);
  // Sparse rows only ever reduce the error.
  TensorStore store2;
  const FactoredMatrix no_rows = factor_matrix(w, norms, {.rank = 8, .sparse_rows = 0, .type = DType::F32}, store2);
  EXPECT_FALSE(no_rows.lr.sparse.valid());
  EXPECT_LT(f.rel_error, no_rows.rel_error);
  EXPECT_LT(f.weighted_error, no_rows.weighted_error);
}

TEST(LowRank, FullRankInF32ReproducesTheMatrix) {
  const DenseMatrix w = random_matrix(64, 32, 3);
  TensorStore store;
  const FactoredMatrix f = factor_matrix(w, std::vector<double>(32, 1.0), {.rank = 32, .sparse_rows = 0, .type = DType::F32}, store);
  EXPECT_LT(f.rel_error, 1e-6);
  EXPECT_LT(frobenius_diff(to_dense(f.lr), w) / frobenius(w), 1e-6);
}

TEST(LowRank, WhitenedSvdMinimisesTheOutputError) {
  // Inputs X [200, 32] with correlated, unequal columns; the whitened fit must beat the plain
  // one on ‖(W − Ŵ)Xᵀ‖ and lose to it on ‖W − Ŵ‖ (each is optimal in its own norm).
  const DenseMatrix w = random_matrix(48, 32, 21), z = random_matrix(200, 32, 22);
  DenseMatrix x = z;
  for (int64_t t = 0; t < x.rows; ++t) {
    for (int64_t j = 0; j < 32; ++j) x.data[t * 32 + j] = z.data[t * 32 + j] * (j < 6 ? 8.f : 0.5f) + 2.f * z.data[t * 32];
  }
  std::vector<double> gram(32 * 32, 0.0), norms(32, 0.0);
  for (int64_t t = 0; t < x.rows; ++t) {
    for (int64_t i = 0; i < 32; ++i) {
      for (int64_t j = 0; j < 32; ++j) gram[i * 32 + j] += double{x.data[t * 32 + i]} * x.data[t * 32 + j];
    }
  }
  for (int64_t j = 0; j < 32; ++j) norms[j] = std::sqrt(gram[j * 32 + j]);
  auto output_error = [&](const DenseMatrix& fit) {
    DenseMatrix e = w;
    for (size_t i = 0; i < e.data.size(); ++i) e.data[i] -= fit.data[i];
    DenseMatrix xt{32, x.rows, std::vector<float>(static_cast<size_t>(32 * x.rows))};
    for (int64_t t = 0; t < x.rows; ++t) {
      for (int64_t j = 0; j < 32; ++j) xt.data[j * x.rows + t] = x.data[t * 32 + j];
    }
    return frobenius(product(e, xt));
  };
  const SvdFactors plain = truncated_svd(w, 6), white = whitened_svd(w, gram, 6);
  const DenseMatrix fp = product(plain.left, plain.right), fw = product(white.left, white.right);
  EXPECT_LT(output_error(fw), 0.9 * output_error(fp));
  EXPECT_GT(frobenius_diff(fw, w), frobenius_diff(fp, w));
  // Full rank is exact either way (up to the conditioning of the damped C).
  const SvdFactors full = whitened_svd(w, gram, 32);
  EXPECT_LT(frobenius_diff(product(full.left, full.right), w) / frobenius(w), 1e-4);
  // factor_matrix takes the whitened path only with a Gram matrix that saw inputs.
  TensorStore store;
  FactorOptions o{.rank = 6, .sparse_rows = 0, .type = DType::F32, .whitened = true};
  EXPECT_NEAR(factor_matrix(w, norms, o, store, gram).rel_error, frobenius_diff(fw, w) / frobenius(w), 1e-4);
  EXPECT_NEAR(factor_matrix(w, norms, o, store, std::vector<double>(32 * 32, 0.0)).rel_error,
              frobenius_diff(fp, w) / frobenius(w), 1e-4);
}

TEST(LowRank, BadArgumentsAreErrors) {
  const DenseMatrix w = random_matrix(8, 4, 1);
  TensorStore store;
  EXPECT_THROW(truncated_svd(w, 5), Error);
  EXPECT_THROW(truncated_svd(w, 0), Error);
  EXPECT_THROW(factor_matrix(w, std::vector<double>(4, 1.0), {.rank = 2, .sparse_rows = 9}, store), Error);
  EXPECT_THROW(factor_matrix(w, std::vector<double>(3, 1.0), {.rank = 2}, store), Error);
  EXPECT_THROW(top_rows(std::vector<double>{1, 2}, 3), Error);
  DenseMatrix nan = w;
  nan.data[3] = std::nanf("");
  EXPECT_THROW(truncated_svd(nan, 2), Error);
}

}  // namespace
}  // namespace mcmoe::compress

// One matrix of `mcmoe lowrank`: truncated SVD, residual row importance, the stored factors.
#include "compress/lowrank.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"

// LAPACK from the OpenBLAS the library already links, declared as in hessian.cpp (no LAPACK
// header is installed; the trailing length is gfortran's hidden character-argument length).
extern "C" {
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
             const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
             size_t jobz_len);
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
}

namespace mcmoe::compress {

SvdFactors truncated_svd(const DenseMatrix& w, int64_t rank) {
  const int64_t k = std::min(w.rows, w.cols);
  if (rank < 1 || rank > k) fail("truncated_svd: rank {} outside [1, {}] for a [{}, {}] matrix", rank, k, w.rows, w.cols);
  // LAPACK's 32-bit sizes; expert matrices are far below this.
  if (w.rows * w.cols > (int64_t{1} << 30)) fail("truncated_svd: a [{}, {}] matrix is too large", w.rows, w.cols);
  for (size_t i = 0; i < w.data.size(); ++i) {
    if (!std::isfinite(w.data[i])) fail("truncated_svd: entry [{}, {}] is {}", i / w.cols, i % w.cols, w.data[i]);
  }
  // In double: the full-rank round trip and the tail-energy identity then hold to float
  // precision, and a few hundred SVDs of expert size cost seconds either way.
  // The row-major W [rows, cols] is the column-major Wᵀ [cols, rows]; LAPACK factors
  // Wᵀ = U' Σ V'ᵀ, so W = V' Σ U'ᵀ: W's left vectors are V' (LAPACK's vt buffer read
  // row-major as [rows, k]) and W's Vᵀ is U'ᵀ (the u buffer read row-major as [k, cols]).
  const int m = static_cast<int>(w.cols), n = static_cast<int>(w.rows), kk = static_cast<int>(k);
  std::vector<double> a(w.data.begin(), w.data.end()), s(k), u(static_cast<size_t>(m) * k), vt(static_cast<size_t>(k) * n);
  std::vector<int> iwork(8 * static_cast<size_t>(k));
  int info = 0, lwork = -1;
  double query = 0;
  dgesdd_("S", &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &kk, &query, &lwork, iwork.data(), &info, 1);
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_("S", &m, &n, a.data(), &m, s.data(), u.data(), &m, vt.data(), &kk, work.data(), &lwork, iwork.data(), &info, 1);
  if (info != 0) fail("truncated_svd: LAPACK dgesdd returned info {} for a [{}, {}] matrix", info, w.rows, w.cols);

  SvdFactors f;
  f.singular = s;
  f.left = DenseMatrix{w.rows, rank, std::vector<float>(static_cast<size_t>(w.rows * rank))};
  f.right = DenseMatrix{rank, w.cols, std::vector<float>(static_cast<size_t>(rank * w.cols))};
  for (int64_t r = 0; r < rank; ++r) {
    const double root = std::sqrt(s[r]);
    for (int64_t i = 0; i < w.rows; ++i) f.left.data[i * rank + r] = static_cast<float>(vt[i * k + r] * root);
    for (int64_t j = 0; j < w.cols; ++j) f.right.data[r * w.cols + j] = static_cast<float>(u[r * w.cols + j] * root);
  }
  return f;
}

std::vector<double> row_importance(const DenseMatrix& e, std::span<const double> col_norm) {
  if (static_cast<int64_t>(col_norm.size()) != e.cols) {
    fail("row_importance: {} column norms for a [{}, {}] matrix", col_norm.size(), e.rows, e.cols);
  }
  std::vector<double> imp(static_cast<size_t>(e.rows), 0.0);
  for (int64_t i = 0; i < e.rows; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < e.cols; ++j) sum += std::fabs(e.data[i * e.cols + j]) * col_norm[j];
    imp[i] = sum;
  }
  return imp;
}

std::vector<int32_t> top_rows(std::span<const double> importance, int64_t n) {
  if (n < 0 || n > static_cast<int64_t>(importance.size())) fail("top_rows: {} rows asked of {}", n, importance.size());
  std::vector<int32_t> idx(importance.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
    return importance[a] != importance[b] ? importance[a] > importance[b] : a < b;
  });
  idx.resize(static_cast<size_t>(n));
  std::sort(idx.begin(), idx.end());
  return idx;
}

SvdFactors whitened_svd(const DenseMatrix& w, std::span<const double> gram, int64_t rank) {
  const int64_t n = w.cols;
  if (static_cast<int64_t>(gram.size()) != n * n) {
    fail("whitened_svd: the Gram matrix has {} values; expected {}² = {}", gram.size(), n, n * n);
  }
  // H + λI = C Cᵀ. LAPACK reads the row-major buffer as column-major, which for a symmetric
  // matrix is the same matrix; dpotrf's lower factor C then sits, read row-major, as Cᵀ in
  // the upper triangle (C(i, j) = h[j * n + i] for i ≥ j).
  std::vector<double> h(gram.begin(), gram.end());
  double mean_diag = 0;
  for (int64_t j = 0; j < n; ++j) mean_diag += h[j * n + j];
  mean_diag /= static_cast<double>(n);
  if (!(mean_diag > 0) || !std::isfinite(mean_diag)) fail("whitened_svd: the Gram matrix has mean diagonal {}", mean_diag);
  const double lambda = 0.01 * mean_diag;
  for (int64_t j = 0; j < n; ++j) h[j * n + j] += lambda;
  const int nn = static_cast<int>(n);
  int info = 0;
  dpotrf_("L", &nn, h.data(), &nn, &info, 1);
  if (info != 0) fail("whitened_svd: Cholesky of the damped Gram matrix failed (LAPACK info {})", info);
  std::vector<double> ct(static_cast<size_t>(n * n), 0.0);  // Cᵀ row-major, upper triangular
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = j; i < n; ++i) ct[j * n + i] = h[j * n + i];
  }
  // W·C = W·(Cᵀ)ᵀ.
  std::vector<double> wd(w.data.begin(), w.data.end()), wc(w.data.size());
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(w.rows), nn, nn, 1.0, wd.data(), nn,
              ct.data(), nn, 0.0, wc.data(), nn);
  DenseMatrix scaled{w.rows, n, std::vector<float>(wc.begin(), wc.end())};
  SvdFactors f = truncated_svd(scaled, rank);
  // right ← right · C⁻¹: solve X·C = right, C = (Cᵀ)ᵀ.
  std::vector<double> r(f.right.data.begin(), f.right.data.end());
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, static_cast<int>(rank), nn, 1.0,
              ct.data(), nn, r.data(), nn);
  std::copy(r.begin(), r.end(), f.right.data.begin());
  return f;
}

namespace {

// m stored in `type`: the view of the stored bytes, and m overwritten with what they decode
// to, so later steps see exactly what the engine will compute with.
TensorView store_rows(DenseMatrix& m, DType type, TensorStore& store) {
  std::vector<uint8_t> bytes(row_bytes(type, m.cols) * static_cast<size_t>(m.rows));
  model::convert_rows(m.view(), type, nullptr, bytes.data());
  const TensorView v = store.add(type, {m.rows, m.cols}, std::move(bytes));
  m = to_dense(v);
  return v;
}

}  // namespace

FactoredMatrix factor_matrix(const DenseMatrix& w, std::span<const double> col_norm, const FactorOptions& o,
                             TensorStore& store, std::span<const double> gram) {
  if (static_cast<int64_t>(col_norm.size()) != w.cols) {
    fail("factor_matrix: {} column norms for a [{}, {}] matrix", col_norm.size(), w.rows, w.cols);
  }
  if (o.sparse_rows < 0 || o.sparse_rows > w.rows) {
    fail("factor_matrix: {} sparse rows for a [{}, {}] matrix", o.sparse_rows, w.rows, w.cols);
  }
  const bool whiten = o.whitened && !gram.empty() && std::any_of(gram.begin(), gram.end(), [](double x) { return x != 0; });
  SvdFactors f = whiten ? whitened_svd(w, gram, o.rank) : truncated_svd(w, o.rank);
  FactoredMatrix r;
  r.lr.left = store_rows(f.left, o.type, store);
  r.lr.right = store_rows(f.right, o.type, store);
  // Residual of the stored factors: e = w − left·right.
  DenseMatrix e = w;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(w.rows), static_cast<int>(w.cols),
              static_cast<int>(o.rank), -1.f, f.left.data.data(), static_cast<int>(o.rank), f.right.data.data(),
              static_cast<int>(w.cols), 1.f, e.data.data(), static_cast<int>(w.cols));
  if (o.sparse_rows > 0) {
    const std::vector<int32_t> rows = top_rows(row_importance(e, col_norm), o.sparse_rows);
    DenseMatrix s{o.sparse_rows, w.cols, std::vector<float>(static_cast<size_t>(o.sparse_rows * w.cols))};
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy_n(e.data.begin() + rows[i] * w.cols, w.cols, s.data.begin() + static_cast<int64_t>(i) * w.cols);
    }
    r.lr.sparse = store_rows(s, o.type, store);
    std::vector<uint8_t> index(rows.size() * sizeof(int32_t));
    std::memcpy(index.data(), rows.data(), index.size());
    r.lr.index = store.add(DType::I32, {o.sparse_rows}, std::move(index));
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int64_t j = 0; j < w.cols; ++j) e.data[rows[i] * w.cols + j] -= s.data[i * w.cols + j];
    }
  }
  double err = 0, norm = 0, werr = 0, wnorm = 0;
  for (int64_t i = 0; i < w.rows; ++i) {
    for (int64_t j = 0; j < w.cols; ++j) {
      const double ev = e.data[i * w.cols + j], wv = w.data[i * w.cols + j], c2 = col_norm[j] * col_norm[j];
      err += ev * ev;
      norm += wv * wv;
      werr += ev * ev * c2;
      wnorm += wv * wv * c2;
    }
  }
  r.rel_error = norm > 0 ? std::sqrt(err / norm) : 0;
  r.weighted_error = wnorm > 0 ? std::sqrt(werr / wnorm) : r.rel_error;
  return r;
}

}  // namespace mcmoe::compress

#include "compress/hessian.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

// LAPACK from the OpenBLAS the library already links (Debian builds it in). Declared here
// because no LAPACK header is installed; the trailing lengths are gfortran's hidden
// character-argument lengths, which OpenBLAS's own C implementations simply ignore.
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dtrtri_(const char* uplo, const char* diag, const int* n, double* a, const int* lda, int* info,
             size_t uplo_len, size_t diag_len);
}

namespace mcmoe::compress {

namespace {

// Rows per dsyrk call: the double copy of a chunk stays small (256 · cols · 8 bytes) while
// each call still does 256 rank-1 updates' worth of work per pass over H.
constexpr int64_t kChunkRows = 256;

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols) {
  if (cols <= 0) fail("HessianAccumulator: cols must be positive, got {}", cols);
  h_.assign(static_cast<size_t>(cols * cols), 0.0);
}

void HessianAccumulator::add(const float* x, int64_t n_rows, std::span<const float> row_weights) {
  if (n_rows < 0) fail("HessianAccumulator::add: negative row count {}", n_rows);
  if (n_rows == 0) return;
  if (x == nullptr) fail("HessianAccumulator::add: null rows (n_rows {})", n_rows);
  const bool weighted = !row_weights.empty();
  if (weighted && static_cast<int64_t>(row_weights.size()) != n_rows)
    fail("HessianAccumulator::add: {} row weights for {} rows", row_weights.size(), n_rows);
  for (size_t r = 0; r < row_weights.size(); ++r) {
    if (!(std::isfinite(row_weights[r]) && row_weights[r] >= 0.f))
      fail("HessianAccumulator::add: row {} has weight {}; expected a finite value >= 0", r,
           row_weights[r]);
  }
  // Products are summed in double (dsyrk on a converted chunk): a float sum over the
  // hundreds of thousands of calibration rows an attention input sees would lose digits
  // that GPTQ's Cholesky of a nearly singular H needs. A weighted row is scaled by √w, so
  // that its outer product carries w.
  const int64_t n = cols_;
  chunk_.resize(static_cast<size_t>(std::min(n_rows, kChunkRows) * n));
  for (int64_t r0 = 0; r0 < n_rows; r0 += kChunkRows) {
    const int64_t k = std::min(kChunkRows, n_rows - r0);
    std::copy(x + r0 * n, x + (r0 + k) * n, chunk_.begin());
    if (weighted) {
      for (int64_t r = 0; r < k; ++r) {
        const double s = std::sqrt(static_cast<double>(row_weights[r0 + r]));
        for (int64_t j = 0; j < n; ++j) chunk_[r * n + j] *= s;
      }
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(n), static_cast<int>(k),
                1.0, chunk_.data(), static_cast<int>(n), 1.0, h_.data(), static_cast<int>(n));
  }
  count_ += n_rows;
  mirrored_ = false;
}

const std::vector<double>& HessianAccumulator::h() const {
  if (!mirrored_) {
    for (int64_t i = 0; i < cols_; ++i) {
      for (int64_t j = 0; j < i; ++j) h_[i * cols_ + j] = h_[j * cols_ + i];
    }
    mirrored_ = true;
  }
  return h_;
}

double HessianAccumulator::trace() const {
  double t = 0;
  for (int64_t i = 0; i < cols_; ++i) t += h_[i * cols_ + i];
  return t;
}

GptqFactor gptq_factor(std::span<const double> h, int64_t cols, double damp, bool act_order) {
  // LAPACK's 32-bit indices must address cols² elements.
  if (cols <= 0 || cols > 46340) fail("gptq: cols {} outside 1..46340", cols);
  const int64_t n = cols;
  if (static_cast<int64_t>(h.size()) != n * n) {
    fail("gptq: the Hessian has {} values; expected cols² = {}² = {}", h.size(), n, n * n);
  }
  if (!(damp >= 0) || !std::isfinite(damp))
    fail("gptq: damp must be finite and >= 0, got {}", damp);
  for (size_t i = 0; i < h.size(); ++i) {
    if (!std::isfinite(h[i])) fail("gptq: Hessian entry [{}, {}] is {}", i / n, i % n, h[i]);
  }
  GptqFactor f;
  f.cols = n;
  f.damp = damp;
  f.act_order = act_order;
  f.dead.assign(static_cast<size_t>(n), 0);
  // Dead inputs (H_jj = 0: the input was 0 on every calibration row) get H_jj = 1, so H stays
  // invertible; their weights are zeroed by the quantizer, which the output never sees.
  std::vector<double> diag(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const double d = h[j * n + j];
    if (d < 0) fail("gptq: Hessian diagonal [{}] is negative ({}); H = XᵀX has none", j, d);
    f.dead[j] = d == 0;
    diag[j] = d == 0 ? 1.0 : d;
  }
  // λ is relative to the mean diagonal (taken after the dead fix), so H's scale (sum or mean
  // over rows, GPTQ's factor 2) does not matter.
  const double lambda =
      damp * std::accumulate(diag.begin(), diag.end(), 0.0) / static_cast<double>(n);
  f.perm.resize(static_cast<size_t>(n));
  std::iota(f.perm.begin(), f.perm.end(), int64_t{0});
  if (act_order) {
    // Stable, so equal diagonals (H = I) keep natural order and act-order changes nothing.
    std::stable_sort(f.perm.begin(), f.perm.end(),
                     [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
  }

  // GPTQ wants U upper with UᵀU = H_p⁻¹. Rather than invert H_p and factor the inverse
  // (n³/3 + 2n³/3 + n³/3 flops), factor the reversed matrix A = P H_p P (P reverses the
  // order): A = L Lᵀ gives H_p = (P L P)(P L P)ᵀ with P L P upper, hence U = (P L P)⁻¹ =
  // P L⁻¹ P. That is one Cholesky and one triangular inverse (2n³/3), and avoids forming
  // H_p⁻¹ explicitly, which squares the condition number before the second factorisation.
  std::vector<double> a(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ci = f.perm[n - 1 - i];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t cj = f.perm[n - 1 - j];
      double v = ci == cj ? diag[ci] + lambda : h[ci * n + cj];
      if (ci != cj && (f.dead[ci] || f.dead[cj])) v = 0;  // a dead input correlates with nothing
      a[i * n + j] = v;
    }
  }
  // The array is row-major and symmetric; LAPACK reads it column-major, where its "U" triangle
  // is our lower one. So potrf('U') leaves L (A = L Lᵀ) in our lower triangle and trtri('U')
  // replaces it by L⁻¹.
  const int ni = static_cast<int>(n);
  int info = 0;
  dpotrf_("U", &ni, a.data(), &ni, &info, 1);
  if (info > 0) {
    fail(
        "gptq: the damped Hessian is not positive definite (dpotrf info {} of {}); raise damp "
        "(now {}) or add calibration rows",
        info, n, damp);
  }
  if (info < 0) fail("gptq: dpotrf rejected argument {}", -info);
  dtrtri_("U", "N", &ni, a.data(), &ni, &info, 1, 1);
  if (info != 0) fail("gptq: dtrtri failed (info {})", info);
  // U = P L⁻¹ P: reversing both indices is reversing the flat array, so L⁻¹'s lower triangle
  // becomes U's upper triangle in one sequential pass.
  f.u.assign(static_cast<size_t>(n * n), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) f.u[i * n + j] = static_cast<float>(a[n * n - 1 - (i * n + j)]);
  }
  return f;
}

}  // namespace mcmoe::compress

#include "kernels/gemm_blas.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "core/aligned_scratch.h"

namespace mcmoe::kernels {

namespace {

// Rows widened per sgemm call: 64 rows × 4096 columns × 4 bytes = 1 MiB, about one L2.
constexpr int64_t kPanelRows = 64;

// Per-thread panel, kept between calls (pool threads live as long as the pool).
float* panel(size_t floats) {
  thread_local AlignedScratch scratch;
  return static_cast<float*>(scratch.get(floats * sizeof(float)));
}

}  // namespace

void gemm_blas(const KernelSet& ks, WFormat format, const GemmArgs& a) {
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] { openblas_set_num_threads(1); });
  const int64_t rows = a.row_end - a.row_begin;
  if (rows <= 0 || a.n_tokens <= 0) return;
  const auto* x = static_cast<const float*>(a.x);
  const int ldx = static_cast<int>(a.x_stride / sizeof(float));
  const int cols = static_cast<int>(a.cols);
  if (format == WFormat::kF32) {
    // Y[t, r] = Σ_c X[t, c] · W[r, c]: X row-major [n_tokens, cols], W used transposed.
    const auto* w = reinterpret_cast<const float*>(a.w + a.row_begin * a.w_stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(a.n_tokens),
                static_cast<int>(rows), cols, 1.f, x, ldx, w,
                static_cast<int>(a.w_stride / sizeof(float)), 0.f, a.y + a.row_begin,
                static_cast<int>(a.ldy));
    return;
  }
  float* buf = panel(static_cast<size_t>(kPanelRows * a.cols));
  const auto widen = ks.row_to_f32[static_cast<int>(format)];
  for (int64_t r0 = a.row_begin; r0 < a.row_end; r0 += kPanelRows) {
    const int64_t n = std::min(kPanelRows, a.row_end - r0);
    for (int64_t r = 0; r < n; ++r) widen(a.w + (r0 + r) * a.w_stride, buf + r * a.cols, a.cols);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(a.n_tokens),
                static_cast<int>(n), cols, 1.f, x, ldx, buf, cols, 0.f, a.y + r0,
                static_cast<int>(a.ldy));
  }
}

}  // namespace mcmoe::kernels

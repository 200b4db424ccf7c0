// PLACEHOLDER scalar implementation until the SIMD kernels land (kernel work in progress).
#include "ops/matmul.h"

#include <vector>

#include "core/error.h"
#include "quant/quantize.h"

namespace mcmoe::ops {

void matmul_reference(const MatmulJob& job) {
  const TensorView& w = *job.w;
  const int64_t rows = w.rows(), cols = w.cols();
  const int64_t ldx = job.ldx ? job.ldx : cols, ldy = job.ldy ? job.ldy : rows;
  std::vector<float> wrow(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(w.type, w.row(r), wrow.data(), cols);
    for (int64_t t = 0; t < job.n_tokens; ++t) {
      double acc = 0;
      const float* x = job.x + t * ldx;
      for (int64_t c = 0; c < cols; ++c) acc += static_cast<double>(wrow[c]) * x[c];
      job.y[t * ldy + r] = static_cast<float>(acc);
    }
  }
}

void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool) {
  for (const MatmulJob& job : jobs) {
    const TensorView& w = *job.w;
    const int64_t rows = w.rows(), cols = w.cols();
    const int64_t ldx = job.ldx ? job.ldx : cols, ldy = job.ldy ? job.ldy : rows;
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
      std::vector<float> wrow(static_cast<size_t>(cols));
      for (int64_t r = r0; r < r1; ++r) {
        quant::dequantize_row(w.type, w.row(r), wrow.data(), cols);
        for (int64_t t = 0; t < job.n_tokens; ++t) {
          float acc = 0;
          const float* x = job.x + t * ldx;
          for (int64_t c = 0; c < cols; ++c) acc += wrow[c] * x[c];
          job.y[t * ldy + r] = acc;
        }
      }
    });
  }
}

}  // namespace mcmoe::ops

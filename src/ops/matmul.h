#pragma once
// Linear layers over any weight format. Validation happens here, once per call; the kernels
// below assume it.
#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace mcmoe::ops {

// One product Y = X · Wᵀ:
//   W: [rows, cols] of any DType kernels::wformat_of accepts (F32, F16, BF16, Q8_0, Q4_0,
//      ggml's Q4_1, Q5_0, Q5_1 and K-quants Q2_K..Q6_K, ...)
//   X: [n_tokens, cols] f32, row stride ldx (elements)
//   Y: [n_tokens, rows] f32, row stride ldy (elements)
struct MatmulJob {
  const TensorView* w = nullptr;
  const float* x = nullptr;
  float* y = nullptr;
  int64_t n_tokens = 1;
  int64_t ldx = 0;  // 0 means cols
  int64_t ldy = 0;  // 0 means rows
};

// Runs all jobs in one parallel region (e.g. gate and up of two experts during decode), so
// a token pays one thread hand-off instead of one per matrix.
void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool);

inline void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y,
                   ThreadPool& pool) {
  const MatmulJob job{.w = &w, .x = x, .y = y, .n_tokens = n_tokens};
  matmul_batch(std::span<const MatmulJob>(&job, 1), pool);
}

// Slow, obviously correct version (dequantize each row to f32, accumulate in double): the
// reference the fast path is tested against.
void matmul_reference(const MatmulJob& job);

}  // namespace mcmoe::ops

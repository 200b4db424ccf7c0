#include "compress/dense.h"

#include <cblas.h>

#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "quant/quantize.h"

namespace mcmoe::compress {

TensorView DenseMatrix::view() const {
  TensorView v;
  v.type = DType::F32;
  v.shape = {rows, cols};
  v.data = data.data();
  v.nbytes = data.size() * sizeof(float);
  return v;
}

DenseMatrix to_dense(const TensorView& v) {
  DenseMatrix m;
  m.rows = v.rows();
  m.cols = v.cols();
  m.data.resize(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) quant::dequantize_row(v.type, v.row(r), m.data.data() + r * m.cols, m.cols);
  return m;
}

DenseMatrix to_dense(const ops::LowRankWeights& lr) {
  const DenseMatrix left = to_dense(lr.left), right = to_dense(lr.right);
  DenseMatrix w{lr.n_out(), lr.n_in(), std::vector<float>(static_cast<size_t>(lr.n_out() * lr.n_in()))};
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(w.rows), static_cast<int>(w.cols),
              static_cast<int>(lr.rank()), 1.f, left.data.data(), static_cast<int>(lr.rank()), right.data.data(),
              static_cast<int>(w.cols), 0.f, w.data.data(), static_cast<int>(w.cols));
  if (lr.n_sparse() > 0) {
    const DenseMatrix sparse = to_dense(lr.sparse);
    const auto* idx = static_cast<const int32_t*>(lr.index.data);
    for (int64_t i = 0; i < sparse.rows; ++i) {
      for (int64_t j = 0; j < w.cols; ++j) w.data[idx[i] * w.cols + j] += sparse.data[i * w.cols + j];
    }
  }
  return w;
}

DenseExpert to_dense(const moe::ExpertWeights& e) {
  auto proj = [](const TensorView& dense, const ops::LowRankWeights& lr) { return lr.valid() ? to_dense(lr) : to_dense(dense); };
  return DenseExpert{proj(e.gate, e.gate_lr), proj(e.up, e.up_lr), proj(e.down, e.down_lr)};
}

void expert_hidden(const DenseExpert& e, const float* x, int64_t n, ThreadPool& pool, std::vector<float>& hidden,
                   std::vector<float>& up_scratch) {
  const int64_t ff = e.gate.rows;
  hidden.resize(static_cast<size_t>(n * ff));
  up_scratch.resize(static_cast<size_t>(n * ff));
  const TensorView gate = e.gate.view(), up = e.up.view();
  const ops::MatmulJob jobs[2] = {{.w = &gate, .x = x, .y = hidden.data(), .n_tokens = n},
                                  {.w = &up, .x = x, .y = up_scratch.data(), .n_tokens = n}};
  ops::matmul_batch(jobs, pool);
  ops::silu_mul(hidden.data(), up_scratch.data(), n * ff);
}

void expert_forward(const DenseExpert& e, const float* x, int64_t n, float* out, ThreadPool& pool,
                    std::vector<float>& scratch_gate, std::vector<float>& scratch_up) {
  if (n == 0) return;
  expert_hidden(e, x, n, pool, scratch_gate, scratch_up);
  ops::matmul(e.down.view(), scratch_gate.data(), n, out, pool);
}

}  // namespace mcmoe::compress

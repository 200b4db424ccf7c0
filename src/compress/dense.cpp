#include "compress/dense.h"

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

DenseExpert to_dense(const moe::ExpertWeights& e) {
  return DenseExpert{to_dense(e.gate), to_dense(e.up), to_dense(e.down)};
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

#include "compress/dense.h"

#include <cblas.h>

#include "core/error.h"
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

std::vector<float> to_vector(const TensorView& v) {
  if (!v.valid()) return {};
  std::vector<float> out(static_cast<size_t>(v.numel()));
  quant::dequantize_row(v.type, v.data, out.data(), v.numel());
  return out;
}

GluActivation routed_activation(const model::ModelConfig& c) {
  return {.kind = c.activation, .alpha = c.swiglu_alpha, .limit = c.swiglu_limit};
}

namespace {

DenseExpert matrices_to_dense(const moe::ExpertWeights& e) {
  auto proj = [](const TensorView& dense, const ops::LowRankWeights& lr) { return lr.valid() ? to_dense(lr) : to_dense(dense); };
  DenseExpert d;
  d.gate = proj(e.gate, e.gate_lr);
  d.up = proj(e.up, e.up_lr);
  d.down = proj(e.down, e.down_lr);
  return d;
}

// y[r] += b for each of `rows` rows of width b.size(); nothing for an empty bias.
void add_bias(const std::vector<float>& b, float* y, int64_t rows) {
  const auto cols = static_cast<int64_t>(b.size());
  for (int64_t r = 0; r < rows && cols > 0; ++r) ops::axpy(1.f, b.data(), y + r * cols, cols);
}

void check_bias(const std::vector<float>& b, int64_t expected, const char* what) {
  if (!b.empty() && static_cast<int64_t>(b.size()) != expected) {
    fail("internal: {} bias has {} values for a width of {}", what, b.size(), expected);
  }
}

}  // namespace

DenseExpert routed_expert_to_dense(const model::ModelConfig& c, const moe::ExpertWeights& e) {
  DenseExpert d = matrices_to_dense(e);
  d.act = routed_activation(c);
  // The engine adds expert biases only for families that have them (ModelConfig::expert_bias).
  if (c.expert_bias) {
    d.gate_b = to_vector(e.gate_b);
    d.up_b = to_vector(e.up_b);
    d.down_b = to_vector(e.down_b);
  }
  return d;
}

DenseExpert mlp_to_dense(const moe::ExpertWeights& e) {
  return matrices_to_dense(e);
}

void expert_hidden(const DenseExpert& e, const float* x, int64_t n, ThreadPool& pool, std::vector<float>& hidden,
                   std::vector<float>& up_scratch) {
  const int64_t ff = e.gate.rows;
  check_bias(e.gate_b, ff, "gate");
  check_bias(e.up_b, ff, "up");
  hidden.resize(static_cast<size_t>(n * ff));
  up_scratch.resize(static_cast<size_t>(n * ff));
  const TensorView gate = e.gate.view(), up = e.up.view();
  const ops::MatmulJob jobs[2] = {{.w = &gate, .x = x, .y = hidden.data(), .n_tokens = n},
                                  {.w = &up, .x = x, .y = up_scratch.data(), .n_tokens = n}};
  ops::matmul_batch(jobs, pool);
  add_bias(e.gate_b, hidden.data(), n);
  add_bias(e.up_b, up_scratch.data(), n);
  if (e.act.kind == model::Activation::SwigluOai) {
    ops::swiglu_oai(hidden.data(), up_scratch.data(), n * ff, e.act.alpha, e.act.limit);
  } else {
    ops::silu_mul(hidden.data(), up_scratch.data(), n * ff);
  }
}

void expert_forward(const DenseExpert& e, const float* x, int64_t n, float* out, ThreadPool& pool,
                    std::vector<float>& scratch_gate, std::vector<float>& scratch_up) {
  if (n == 0) return;
  check_bias(e.down_b, e.down.rows, "down");
  expert_hidden(e, x, n, pool, scratch_gate, scratch_up);
  ops::matmul(e.down.view(), scratch_gate.data(), n, out, pool);
  add_bias(e.down_b, out, n);
}

}  // namespace mcmoe::compress

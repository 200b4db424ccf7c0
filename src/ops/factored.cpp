#include "ops/factored.h"

#include "core/error.h"

namespace mcmoe::ops {

void check_low_rank(const LowRankWeights& lr, const std::string& what) {
  auto matrix = [&](const TensorView& v, const char* part) {
    if (!v.valid()) fail("{}: low-rank part '{}' is missing", what, part);
    if (v.shape.size() != 2) fail("{}: low-rank part '{}' has shape {}, expected 2-D", what, part, shape_string(v.shape));
  };
  matrix(lr.left, "left");
  matrix(lr.right, "right");
  if (lr.left.dim(1) != lr.right.dim(0)) {
    fail("{}: left {} and right {} disagree on the rank", what, shape_string(lr.left.shape), shape_string(lr.right.shape));
  }
  if (lr.sparse.valid() != lr.index.valid()) {
    fail("{}: sparse rows and their index must come together (rows {}, index {})", what,
         lr.sparse.valid() ? "present" : "absent", lr.index.valid() ? "present" : "absent");
  }
  if (!lr.sparse.valid()) return;
  matrix(lr.sparse, "sparse_rows");
  if (lr.sparse.dim(1) != lr.n_in()) {
    fail("{}: sparse rows {} do not match the input width {}", what, shape_string(lr.sparse.shape), lr.n_in());
  }
  if (lr.index.type != DType::I32 || lr.index.shape != std::vector<int64_t>{lr.sparse.dim(0)}) {
    fail("{}: sparse index is {} {}, expected i32 [{}]", what, dtype_name(lr.index.type), shape_string(lr.index.shape),
         lr.sparse.dim(0));
  }
  if (lr.sparse.dim(0) > lr.n_out()) fail("{}: {} sparse rows for {} output rows", what, lr.sparse.dim(0), lr.n_out());
  const auto* idx = static_cast<const int32_t*>(lr.index.data);
  for (int64_t i = 0; i < lr.sparse.dim(0); ++i) {
    if (idx[i] < 0 || idx[i] >= lr.n_out() || (i > 0 && idx[i] <= idx[i - 1])) {
      fail("{}: sparse index entry {} is {}; entries must be strictly increasing within [0, {})", what, i, idx[i],
           lr.n_out());
    }
  }
}

void low_rank_matmul(const LowRankWeights& lr, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  ProductBatch b;
  b.add(TensorView{}, lr, x, y, n_tokens);
  b.run(pool);
}

void ProductBatch::clear() {
  dense_.clear();
  factored_.clear();
}

void ProductBatch::reserve(size_t products) {
  dense_.reserve(products);
  factored_.reserve(products);
  // A factored product can need two jobs (R·x and S·x) in the first stage.
  jobs_.reserve(2 * products);
}

void ProductBatch::add(const TensorView& w, const float* x, float* y, int64_t n_tokens) {
  dense_.push_back({.w = &w, .x = x, .y = y, .n_tokens = n_tokens});
}

void ProductBatch::add(const TensorView& w, const LowRankWeights& lr, const float* x, float* y, int64_t n_tokens) {
  if (!lr.valid()) return add(w, x, y, n_tokens);
  factored_.push_back({&lr, x, y, n_tokens});
}

void ProductBatch::run(ThreadPool& pool) {
  size_t need = 0;
  for (const Factored& f : factored_) need += static_cast<size_t>(f.n * (f.lr->rank() + f.lr->n_sparse()));
  scratch_.resize(need);
  // Stage 1: everything that reads only the inputs. Product i's R·x rows sit at t, its S·x
  // rows right after them.
  jobs_.assign(dense_.begin(), dense_.end());
  float* t = scratch_.data();
  for (const Factored& f : factored_) {
    jobs_.push_back({.w = &f.lr->right, .x = f.x, .y = t, .n_tokens = f.n});
    t += f.n * f.lr->rank();
    if (f.lr->n_sparse() > 0) jobs_.push_back({.w = &f.lr->sparse, .x = f.x, .y = t, .n_tokens = f.n});
    t += f.n * f.lr->n_sparse();
  }
  if (!jobs_.empty()) matmul_batch(jobs_, pool);
  if (factored_.empty()) return;
  // Stage 2: y = L·(R·x).
  jobs_.clear();
  t = scratch_.data();
  for (const Factored& f : factored_) {
    jobs_.push_back({.w = &f.lr->left, .x = t, .y = f.y, .n_tokens = f.n});
    t += f.n * (f.lr->rank() + f.lr->n_sparse());
  }
  matmul_batch(jobs_, pool);
  // Stage 3: the kept residual rows, y[:, index[i]] += (S·x)[:, i]; n_sparse · n adds, too
  // few to be worth a hand-off to the pool.
  t = scratch_.data();
  for (const Factored& f : factored_) {
    const int64_t r = f.lr->rank(), s = f.lr->n_sparse(), n_out = f.lr->n_out();
    const float* sx = t + f.n * r;
    const auto* idx = static_cast<const int32_t*>(f.lr->index.data);
    for (int64_t tok = 0; tok < f.n; ++tok) {
      for (int64_t i = 0; i < s; ++i) f.y[tok * n_out + idx[i]] += sx[tok * s + i];
    }
    t += f.n * (r + s);
  }
}

}  // namespace mcmoe::ops

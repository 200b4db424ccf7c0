#pragma once
// Linear layers whose weight is stored factored, W ≈ L·R + S (MC-SMoE's low-rank plus
// sparse form, written by `mcmoe lowrank`), computed as y = L(R x) + scatter(S x) without
// ever rebuilding W, and a batch that mixes such products with plain ones so a layer's
// experts still run in few parallel regions.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"

namespace mcmoe::ops {

// W [n_out, n_in] ≈ left · right + S, where S is zero except for n_sparse whole rows.
struct LowRankWeights {
  TensorView left;    // [n_out, rank]
  TensorView right;   // [rank, n_in]
  TensorView sparse;  // [n_sparse, n_in]: rows of the residual W − left·right kept whole; absent when n_sparse = 0
  TensorView index;   // [n_sparse] i32: the row of W each sparse row adds to, strictly increasing

  bool valid() const { return right.valid(); }
  int64_t n_out() const { return left.shape.empty() ? 0 : left.dim(0); }
  int64_t n_in() const { return right.shape.empty() ? 0 : right.dim(1); }
  int64_t rank() const { return right.shape.empty() ? 0 : right.dim(0); }
  int64_t n_sparse() const { return sparse.valid() ? sparse.dim(0) : 0; }
  // [n_out, n_in] of the matrix this stands for.
  std::vector<int64_t> shape() const { return {n_out(), n_in()}; }
};

// Throws, naming `what`, unless the four parts have consistent shapes and types (left,
// right and sparse: 2-D matmul weights; index: i32 with every entry in [0, n_out) and
// strictly increasing). Loaders call this once, so the hot path trusts the parts.
void check_low_rank(const LowRankWeights& lr, const std::string& what);

// Y[n, n_out] = X[n, n_in] · Wᵀ for W = L·R + S, one product at a time (tests, tools).
void low_rank_matmul(const LowRankWeights& lr, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

// Many products Y = X · Wᵀ, each with a dense or a factored W, run together: one parallel
// region for the dense products and every R·x and S·x, one for every L·(R·x), then the
// sparse rows are added. Weights (and the LowRankWeights) must outlive run().
class ProductBatch {
 public:
  void clear();
  // Room for this many products without allocating in add() or run().
  void reserve(size_t products);
  void add(const TensorView& w, const float* x, float* y, int64_t n_tokens);
  // Dense `w` when lr is not valid, else the factored form.
  void add(const TensorView& w, const LowRankWeights& lr, const float* x, float* y, int64_t n_tokens);
  void run(ThreadPool& pool);

 private:
  struct Factored {
    const LowRankWeights* lr;
    const float* x;
    float* y;
    int64_t n;
  };
  std::vector<MatmulJob> dense_;
  std::vector<Factored> factored_;
  std::vector<MatmulJob> jobs_;  // the stage being run
  std::vector<float> scratch_;   // R·x and S·x of every factored product
};

}  // namespace mcmoe::ops

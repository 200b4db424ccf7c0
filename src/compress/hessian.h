#pragma once
// The second-order statistics GPTQ needs (ALGORITHMS.md §5): the input Gram matrix H = XᵀX of
// one linear layer, accumulated over calibration rows, and the factor of its inverse that
// GPTQ's column loop reads. The factor depends only on H, so matrices that read the same
// input (an expert's gate and up) can share one: it costs O(cols³), more than quantizing a
// 4096-wide matrix.
#include <cstdint>
#include <span>
#include <vector>

namespace mcmoe::compress {

// H = Σ xᵀx over every row x added. Only the scale-free shape of H matters to GPTQ, so this
// is the plain sum (GPTQ's 2/n factor is left out).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);

  // Adds the rows of x [n_rows, cols] (row-major). With row_weights ([n_rows], each finite
  // and >= 0) row r adds w_r · x_rᵀx_r instead: MoEQuant's affinity-weighted Hessian, each
  // routed token weighted by the gate value it gets from the expert.
  void add(const float* x, int64_t n_rows, std::span<const float> row_weights = {});

  // [cols, cols] row-major, symmetric. Not safe to call while another thread calls add().
  const std::vector<double>& h() const;
  int64_t cols() const { return cols_; }
  int64_t count() const { return count_; }  // rows added so far
  double trace() const;

 private:
  int64_t cols_;
  int64_t count_ = 0;
  // dsyrk fills the upper triangle only; the lower one is copied in when h() is read, so
  // many small add() calls (an expert that receives a few tokens per batch) do not each pay
  // a cols² mirror.
  mutable std::vector<double> h_;
  mutable bool mirrored_ = true;
  std::vector<double> chunk_;  // rows converted to double for dsyrk
};

// What GPTQ's column loop reads, in processing order (column i of the loop is natural
// column perm[i]).
struct GptqFactor {
  int64_t cols = 0;
  double damp = 0;            // λ = damp · mean diag(H), as requested
  bool act_order = false;     // perm sorts columns by descending H_jj
  std::vector<int64_t> perm;  // [cols]: processing step → natural column
  std::vector<uint8_t> dead;  // [cols], natural order: H_jj == 0 (the input is always 0)
  // [cols, cols] row-major: the upper Cholesky factor U of (H_p + λI)⁻¹ = UᵀU, H_p being H
  // with dead diagonals set to 1 and rows/columns permuted; the lower triangle is 0.
  std::vector<float> u;
};

// Fails when h does not hold cols² values, holds a non-finite value or a negative diagonal,
// or when the damped matrix is not positive definite.
GptqFactor gptq_factor(std::span<const double> h, int64_t cols, double damp, bool act_order);

}  // namespace mcmoe::compress

#pragma once
// `mcmoe lowrank`: MC-SMoE's second stage without training (ALGORITHMS.md §4). Each expert
// matrix W [n_out, n_in] becomes L·R + S: L [n_out, r] and R [r, n_in] from a truncated SVD
// (LAPACK), and S the `sparse_rows` whole rows of the residual W − L·R that matter most on
// calibration data. MC-SMoE ranks S by |W ⊙ ∂L/∂W|; without gradients we use the output
// error a residual row would leave: Σ_j |E_ij| · ‖X_j‖, ‖X_j‖ the norm of input column j
// over the matrix's calibration inputs (an expert's routed tokens for gate and up, its
// hidden activations silu(gate x)·up x for down). The engine runs the factored form
// directly (ops/factored.h); the file layout is in format/tensor_names.h. Only routed
// experts' matrices are factored: dense layers' MLPs, shared experts and expert biases stay
// as they are.
//
// Memory: the residual streams of all samples (samples · seq · n_embd · 4 bytes), one
// expert's f32 copy and its SVD workspace (a few times n_ff · n_embd · 8 bytes), and the
// factors of every expert until the file is written; whitened, also one layer's Gram
// matrices (n_expert · (n_embd² + n_ff²) · 8 bytes).
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "compress/dense.h"
#include "compress/layer_stream.h"
#include "compress/tensor_store.h"
#include "core/dtype.h"
#include "model/model.h"
#include "ops/factored.h"

namespace mcmoe::compress {

// ---- one matrix --------------------------------------------------------------------------

// The SVD W = U Σ Vᵀ truncated to `rank`, split evenly between the factors: left = U_r √Σ_r
// [rows, rank], right = √Σ_r V_rᵀ [rank, cols], so both have rows of similar scale and
// quantize equally well. `singular` holds all min(rows, cols) singular values, largest first.
struct SvdFactors {
  DenseMatrix left, right;
  std::vector<double> singular;
};
SvdFactors truncated_svd(const DenseMatrix& w, int64_t rank);

// Σ_j |e_ij| · col_norm_j for each row i of e.
std::vector<double> row_importance(const DenseMatrix& e, std::span<const double> col_norm);
// The n rows of largest importance, ascending by index (ties: the lower index wins).
std::vector<int32_t> top_rows(std::span<const double> importance, int64_t n);

struct FactorOptions {
  int64_t rank = 32;
  int64_t sparse_rows = 0;
  DType type = DType::F16;  // of left, right and the sparse rows
  // false: the SVD of W itself (MC-SMoE), best in ‖W − Ŵ‖. true: the SVD of W·C with
  // CCᵀ = H + λI the Cholesky factor of the calibration inputs' Gram matrix H = Σ x xᵀ
  // (λ = 1% of its mean diagonal), then R·C⁻¹ (SVD-LLM's whitening): the best rank-r fit in
  // ‖(W − Ŵ)X‖, the error of the layer's output on those inputs, rather than in the weights.
  bool whitened = false;
};

struct FactoredMatrix {
  ops::LowRankWeights lr;  // views into the TensorStore
  // ‖W − Ŵ‖ / ‖W‖ of the stored form Ŵ (factors and sparse rows as stored): plain Frobenius,
  // and with column j weighted by col_norm_j (the output error for inputs with those norms
  // and uncorrelated columns).
  double rel_error = 0, weighted_error = 0;
};
// S is taken from the residual of the factors as stored, so it also repairs their rounding.
// `gram` ([cols, cols] row-major, Σ x xᵀ over the inputs) is read when o.whitened; a Gram
// matrix with no rows in it (an expert no calibration token reached) falls back to plain.
FactoredMatrix factor_matrix(const DenseMatrix& w, std::span<const double> col_norm, const FactorOptions& o,
                             TensorStore& store, std::span<const double> gram = {});

// The whitened truncated SVD alone (see FactorOptions::whitened): left [rows, rank], right
// [rank, cols] with left·right the rank-`rank` fit of w minimising ‖(W − left·right)C‖.
SvdFactors whitened_svd(const DenseMatrix& w, std::span<const double> gram, int64_t rank);

// ---- a model -----------------------------------------------------------------------------

struct LowRankOptions {
  FactorOptions factor;
  SampleOptions sampling;
  int threads = 2;
  // (layer, n_layer, what); layer == n_layer when writing.
  std::function<void(int, int, const std::string&)> progress = {};
};

// Fails, naming the flag, its value and the matrix shapes, unless rank and sparse rows fit
// every expert matrix of `m` and `type` can store the factors.
void check_lowrank_options(const model::Model& m, const FactorOptions& o);

struct LowRankReport {
  int64_t dense_expert_params = 0;   // of the input's experts, as dense matrices
  int64_t expert_params = 0;         // stored: factors, sparse rows and their indices
  int64_t model_params = 0;          // every tensor of the output
  double rel_error[3] = {0, 0, 0};   // gate, up, down: mean over experts of FactoredMatrix::rel_error
  double weighted_error[3] = {0, 0, 0};
  uint64_t file_bytes = 0;
  double seconds = 0;
};

// `m` is modified in place: its experts end up factored, each layer calibrated on the
// output of the already factored layers before it.
LowRankReport lowrank_model(model::Model& m, const std::string& text, const std::string& text_path,
                            const LowRankOptions& o, const std::string& out_path);

// Metadata keys of a factored file.
inline constexpr const char* kLowRankRankKey = "mcmoe.lowrank.rank";
inline constexpr const char* kLowRankSparseKey = "mcmoe.lowrank.sparse_rows";

}  // namespace mcmoe::compress

#pragma once
// f32 working copies of weights for the offline pipelines, and one gated MLP's forward pass
// over them: the same ops the engine runs (model/moe_block.cpp), minus the quantized formats.
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "moe/expert_provider.h"

namespace mcmoe::compress {

struct DenseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;  // [rows, cols]
  TensorView view() const;  // F32 view of data
};

// Dequantizes any stored matrix to f32 (a 3-D tensor as its [rows, cols] rows).
DenseMatrix to_dense(const TensorView& v);

// W = L·R + S of a factored projection (mcmoe lowrank), rebuilt: what the factored forward
// computes, for the offline pipelines and the tests.
DenseMatrix to_dense(const ops::LowRankWeights& lr);

// The gated activation act(gate, up) an MLP applies before its down projection.
struct GluActivation {
  model::Activation kind = model::Activation::SiluGlu;
  float alpha = 1.702f, limit = 7.f;  // SwigluOai only
};
// What the engine applies to a routed expert of a model with configuration c. Shared experts
// and dense MLPs always use SiLU-GLU (the default GluActivation).
GluActivation routed_activation(const model::ModelConfig& c);

// One gated MLP: down(act(gate x + gate_b, up x + up_b)) + down_b.
struct DenseExpert {
  DenseMatrix gate, up, down;  // [n_ff, n_embd], [n_ff, n_embd], [n_embd, n_ff]
  std::vector<float> gate_b, up_b, down_b;  // [n_ff], [n_ff], [n_embd]; empty: no bias
  GluActivation act;
  bool has_biases() const { return !gate_b.empty() || !up_b.empty() || !down_b.empty(); }
};

// A routed expert of a model with configuration c as the engine runs it: the family's
// activation and, when c.expert_bias, its biases. Factored projections are rebuilt.
DenseExpert routed_expert_to_dense(const model::ModelConfig& c, const moe::ExpertWeights& e);
// A shared expert or a dense layer's MLP as the engine runs it (Session::dense_mlp and the
// shared path): SiLU-GLU, no biases.
DenseExpert mlp_to_dense(const moe::ExpertWeights& e);

// hidden[n, n_ff] = act(gate x + gate_b, up x + up_b) for x [n, n_embd] (down's input);
// up_scratch holds up x on the way. Both are resized as needed; e.down is not read.
void expert_hidden(const DenseExpert& e, const float* x, int64_t n, ThreadPool& pool, std::vector<float>& hidden,
                   std::vector<float>& up_scratch);

// out[n, n_embd] = down(hidden) + down_b for x [n, n_embd]. Scratch is resized as needed.
void expert_forward(const DenseExpert& e, const float* x, int64_t n, float* out, ThreadPool& pool,
                    std::vector<float>& scratch_gate, std::vector<float>& scratch_up);

// The f32 values of a bias vector (any float type), empty for an absent view.
std::vector<float> to_vector(const TensorView& v);

}  // namespace mcmoe::compress

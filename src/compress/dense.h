#pragma once
// f32 working copies of weights for the offline pipelines, and one SwiGLU expert's forward
// pass over them (the same ops the engine runs, minus the quantized formats).
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "moe/expert_provider.h"

namespace mcmoe::compress {

struct DenseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> data;  // [rows, cols]
  TensorView view() const;  // F32 view of data
};

// Dequantizes any stored matrix to f32.
DenseMatrix to_dense(const TensorView& v);

// W = L·R + S of a factored projection (mcmoe lowrank), rebuilt: what the factored forward
// computes, for the offline pipelines and the tests.
DenseMatrix to_dense(const ops::LowRankWeights& lr);

struct DenseExpert {
  DenseMatrix gate, up, down;  // [n_ff, n_embd], [n_ff, n_embd], [n_embd, n_ff]
};
// Factored projections are rebuilt.
DenseExpert to_dense(const moe::ExpertWeights& e);

// hidden[n, n_ff] = silu(gate x) * up x for x [n, n_embd] (down's input); up_scratch holds
// up x on the way. Both are resized as needed; e.down is not read.
void expert_hidden(const DenseExpert& e, const float* x, int64_t n, ThreadPool& pool, std::vector<float>& hidden,
                   std::vector<float>& up_scratch);

// out[n, n_embd] = down(silu(gate x) * up x) for x [n, n_embd]. Scratch is resized as needed.
void expert_forward(const DenseExpert& e, const float* x, int64_t n, float* out, ThreadPool& pool,
                    std::vector<float>& scratch_gate, std::vector<float>& scratch_up);

}  // namespace mcmoe::compress

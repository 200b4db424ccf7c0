#pragma once
// Non-expert weights of a model, as views into the mapped file (or into owned f32 copies
// for small vectors the ops want in f32). Experts are reached only via moe::ExpertProvider.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "moe/expert_provider.h"

namespace mcmoe::model {

struct LayerWeights {
  TensorView attn_norm;  // [n_embd] f32
  TensorView wq;         // [n_head * head_dim, n_embd]
  TensorView wk;         // [n_head_kv * head_dim, n_embd]
  TensorView wv;         // [n_head_kv * head_dim, n_embd]
  TensorView wo;         // [n_embd, n_head * head_dim]
  TensorView bq, bk, bv; // [n_head * head_dim], [n_head_kv * head_dim] f32, when attn_bias
  TensorView q_norm;     // [head_dim] (PerHead) or [n_head * head_dim] (AllHeads) f32
  TensorView k_norm;     // [head_dim] or [n_head_kv * head_dim] f32
  TensorView ffn_norm;   // [n_embd] f32
  TensorView router;     // [n_expert, n_embd]; absent for dense models
  moe::ExpertWeights shared;   // shared expert, when n_ff_shared > 0
  TensorView shared_gate;      // [1, n_embd]: sigmoid scale of the shared expert
};

struct ModelWeights {
  TensorView tok_embd;     // [n_vocab, n_embd]
  TensorView output_norm;  // [n_embd] f32
  TensorView output;       // [n_vocab, n_embd] (tok_embd when tied)
  std::vector<LayerWeights> layers;
};

}  // namespace mcmoe::model

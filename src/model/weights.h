#pragma once
// Non-expert weights of a model, as views into the mapped file (or into owned f32 copies
// for small vectors the ops want in f32). Routed experts are reached only via
// moe::ExpertProvider. Which members a layer has follows from ModelConfig (model/inventory.h
// lists them); absent ones are empty views.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "moe/expert_provider.h"

namespace mcmoe::model {

struct LayerWeights {
  TensorView attn_norm;  // [n_embd] f32
  // Grouped-query attention; MLA without a q LoRA uses wq too.
  TensorView wq;         // [n_head * head_dim, n_embd]
  TensorView wk;         // [n_head_kv * head_dim, n_embd]
  TensorView wv;         // [n_head_kv * head_dim_v, n_embd]
  TensorView wo;         // [n_embd, n_head * head_dim_v]
  TensorView bq, bk, bv; // [n_head * head_dim], [n_head_kv * head_dim] f32, when attn_bias
  TensorView bo;         // [n_embd] f32, when attn_out_bias
  TensorView q_norm;     // [head_dim] (PerHead) or [n_head * head_dim] (AllHeads) f32
  TensorView k_norm;     // [head_dim] or [n_head_kv * head_dim] f32
  TensorView sinks;      // [n_head] f32, when attn_sinks
  // Multi-head latent attention (AttentionKind::Mla).
  TensorView wq_a;       // [q_lora_rank, n_embd]
  TensorView q_a_norm;   // [q_lora_rank] f32
  TensorView wq_b;       // [n_head * qk_dim, q_lora_rank]
  TensorView wkv_a;      // [kv_lora_rank + qk_rope, n_embd]
  TensorView kv_a_norm;  // [kv_lora_rank] f32
  TensorView wkv_b;      // [n_head * (qk_nope + v_dim), kv_lora_rank] (MlaConfig::split_kv_b false)
  // Each head's W_UK transposed and W_UV: the file's attn_k_b / attn_v_b when it stores them
  // split, else derived from wkv_b at load (wk_b a transposed copy, wv_b views of its rows),
  // so the absorbed attention folds W_UK into the query and applies W_UV after attention as
  // plain matrix products.
  TensorView wk_b;       // [n_head, kv_lora_rank, qk_nope]
  TensorView wv_b;       // [n_head, v_dim, kv_lora_rank] (derived: a strided view; see mla.cpp)
  TensorView ffn_norm;   // [n_embd] f32
  TensorView router;     // [router rows, n_embd]; absent for dense layers
  TensorView router_bias;  // [router rows] f32, when router.bias
  TensorView choice_bias;  // [router rows] f32, when router.choice_bias
  moe::ExpertWeights ffn;     // a dense layer's MLP (n_ff_dense)
  moe::ExpertWeights shared;  // shared expert(s), when n_ff_shared > 0
  TensorView shared_gate;     // [1, n_embd]: sigmoid scale of the shared expert, when shared_gate
};

struct ModelWeights {
  TensorView tok_embd;     // [n_vocab, n_embd]
  TensorView output_norm;  // [n_embd] f32
  TensorView output;       // [n_vocab, n_embd] (tok_embd when tied)
  std::vector<LayerWeights> layers;
};

}  // namespace mcmoe::model

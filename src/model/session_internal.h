#pragma once
// Scratch buffers of a Session, sized once for n_batch tokens so eval() never allocates
// (MLA's naive form, which expands the cached latents of the whole context, grows its
// buffers on first use).
#include <vector>

#include "model/session.h"
#include "moe/expert_provider.h"
#include "ops/factored.h"
#include "ops/matmul.h"

namespace mcmoe::model {

struct Session::Scratch {
  std::vector<float> x;        // [n_batch, n_embd] residual stream
  std::vector<float> h;        // [n_batch, n_embd] normalised input of a block
  std::vector<float> q;        // [n_batch, n_head * head_dim]
  std::vector<float> k;        // [n_batch, kv_dim]              (GQA)
  std::vector<float> v;        // [n_batch, v_dim]               (GQA)
  std::vector<float> att;      // [n_batch, n_head * head_dim_v] attention output
  std::vector<float> proj;     // [n_batch, n_embd]
  // Multi-head latent attention.
  std::vector<float> qa;       // [n_batch, q_lora_rank]
  std::vector<float> kva;      // [n_batch, kv_lora_rank + qk_rope]
  std::vector<float> q_lat;    // [n_batch, n_head, kv_lora_rank + qk_rope]  absorbed queries
  std::vector<float> att_lat;  // [n_batch, n_head, kv_lora_rank]            absorbed outputs
  std::vector<float> kv_exp;   // [ctx, n_head * (qk_nope + v_dim)]          naive: expanded latents
  std::vector<float> k_full;   // [ctx, n_head * qk_dim]
  std::vector<float> v_full;   // [ctx, n_head * v_dim]
  std::vector<float> lat_f32;  // [ctx, kv_lora_rank + qk_rope]  naive with an f16 / q8_0 cache
  std::vector<float> router_logits;  // [n_batch, n_expert]
  std::vector<float> probs;          // [n_batch, n_expert] by router row
  std::vector<float> merged_probs;   // [n_batch, n_expert] by stored expert (merged models)
  std::vector<int> topk_ids;         // [n_batch, k]
  std::vector<float> topk_w;         // [n_batch, k]
  std::vector<float> moe_out;        // [n_batch, n_embd]
  // Expert inputs gathered per expert for n_batch * k rows; gate/up outputs for those rows
  // (width n_ff) then the shared expert's n_batch rows (width n_ff_shared), or a dense
  // layer's n_batch rows (width n_ff_dense); down outputs for n_batch * (k + 1) rows.
  std::vector<float> ex_in;    // [n_batch * k, n_embd]
  std::vector<float> ex_gate;
  std::vector<float> ex_up;
  std::vector<float> ex_out;   // [n_batch * (k + 1), n_embd]
  std::vector<float> shared_gate;  // [n_batch]
  std::vector<float> final_rows;   // [n_batch, n_embd]
  // Grouping of a batch's (token, slot) picks by expert (moe_block.cpp); capacity is
  // reserved at construction.
  std::vector<int64_t> expert_offset;  // [n_expert + 1] start row of each expert's group
  std::vector<int64_t> expert_fill;    // [n_expert] next free row while grouping
  std::vector<int64_t> pick_row;       // [n_batch * k] gathered row of pick i
  std::vector<int64_t> row_token;      // [n_batch * k] token of gathered row r
  std::vector<float> row_weight;       // [n_batch * k] routing weight of gathered row r
  std::vector<int> active_experts;     // experts with at least one row, ascending
  std::vector<float> active_max_weight;  // [active] largest routing weight of its rows
  std::vector<int> experts_later, experts_now;     // a chunk split by whether its bytes are here
  std::vector<moe::ExpertWeights> expert_weights;  // [active] from the ExpertProvider
  ops::ProductBatch products;          // gate/up then down products of one layer
  std::vector<TensorView> head_views;  // MLA: per-head W_UK / W_UV views of one layer
  std::vector<ops::MatmulJob> head_jobs;
  // ODP (prefill with protection only): attention probabilities of the current layer, per
  // sequence [n_head, n, pos0 + n] at Segment::probs, token importance [n] and the
  // protected-token flags.
  std::vector<float> att_probs;
  std::vector<float> importance;
  std::vector<uint8_t> odp_protect;       // of one sequence's rows
  std::vector<uint8_t> odp_protect_rows;  // [n] of the whole batch
  std::vector<uint8_t> expert_cached;     // [n_expert] cache-aware routing: held by the provider
};

}  // namespace mcmoe::model

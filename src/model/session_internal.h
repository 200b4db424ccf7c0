#pragma once
// Scratch buffers of a Session, sized once for n_batch tokens so eval() never allocates.
#include <vector>

#include "model/session.h"
#include "moe/expert_provider.h"
#include "ops/factored.h"
#include "ops/matmul.h"

namespace mcmoe::model {

struct Session::Scratch {
  std::vector<float> x;        // [n_batch, n_embd] residual stream
  std::vector<float> h;        // [n_batch, n_embd] normalised input of a block
  std::vector<float> q;        // [n_batch, q_dim]
  std::vector<float> k;        // [n_batch, kv_dim]
  std::vector<float> v;        // [n_batch, kv_dim]
  std::vector<float> att;      // [n_batch, q_dim]
  std::vector<float> proj;     // [n_batch, n_embd]
  std::vector<float> router_logits;  // [n_batch, n_expert]
  std::vector<float> probs;          // [n_batch, n_expert] by router row
  std::vector<float> merged_probs;   // [n_batch, n_expert] by stored expert (merged models)
  std::vector<int> topk_ids;         // [n_batch, k]
  std::vector<float> topk_w;         // [n_batch, k]
  std::vector<float> moe_out;        // [n_batch, n_embd]
  // Expert inputs gathered per expert, then gate/up/down outputs, for n_batch * k rows
  // plus the shared expert's n_batch rows.
  std::vector<float> ex_in;    // [n_batch * (k + 1), n_embd]
  std::vector<float> ex_gate;  // [n_batch * (k + 1), max(n_ff, n_ff_shared)]
  std::vector<float> ex_up;    // same
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
  std::vector<moe::ExpertWeights> expert_weights;  // [active] from the ExpertProvider
  ops::ProductBatch products;          // gate/up then down products of one layer
  // ODP (prefill with protection only): attention probabilities of the current layer
  // [n_head, n, n_past + n], token importance [n] and the protected-token flags [n].
  std::vector<float> att_probs;
  std::vector<float> importance;
  std::vector<uint8_t> odp_protect;
};

}  // namespace mcmoe::model

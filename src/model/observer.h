#pragma once
// Hooks into the forward pass: calibration (routing statistics, per-expert inputs for
// Hessians), tracing for the expert cache, and dumps of named intermediates for comparison
// with a reference. All pointers are valid only during the call.
#include <cstdint>
#include <span>
#include <string_view>

namespace mcmoe::model {

struct RoutingEvent {
  int layer = 0;
  int64_t n_tokens = 0;
  int n_expert = 0;  // stored experts of the layer
  int n_router = 0;  // router rows (more than n_expert in a merged model)
  int k = 0;
  int64_t pos0 = 0;                 // position of the first token
  const float* router_logits = nullptr;  // [n_tokens, n_router]
  const float* probs = nullptr;          // [n_tokens, n_expert] softmax of the logits, summed over merged rows
  const int* topk_ids = nullptr;         // [n_tokens, k] stored experts, best first; -1 = dropped by ODP
                                         // or folded into an earlier pick of the same merged expert
  const float* topk_weights = nullptr;   // [n_tokens, k] as applied (renormalised if the model does)
};

struct ExpertEvent {
  int layer = 0;
  int expert = 0;
  std::span<const int64_t> token_rows;  // rows of the batch routed to this expert
  const float* input = nullptr;         // [token_rows.size(), n_embd] (the MoE block input)
  const float* output = nullptr;        // [token_rows.size(), n_embd] before the gate weight
  const float* hidden = nullptr;        // [token_rows.size(), n_ff] down's input: act(gate x + gate_b, up x + up_b)
  const float* weights = nullptr;       // [token_rows.size()] routing weight each row gets
  int64_t n_embd = 0;
  int64_t n_ff = 0;
};

class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  virtual void on_routing(const RoutingEvent& e) {}
  virtual void on_expert(const ExpertEvent& e) {}
  // Named intermediates, per layer: "attn_norm"; MLA only: "q_a_norm" (the normed q LoRA
  // latent, q_b's input) and "kv_a_norm" ([rows, kv_lora_rank + qk_rope]: the normed latent,
  // kv_b's input, then the roped shared key); "attn_ctx" (attention output before the output
  // projection), "attn_out", "ffn_inp", "ffn_norm", "router_logits", "dense_hidden" (a
  // dense layer's down input), "shared_hidden" (the shared expert's down input), "moe_out",
  // "layer_out"; "result_norm" and "logits" with layer = -1. data is [rows, cols] row-major.
  virtual void on_tensor(std::string_view name, int layer, const float* data, int64_t rows,
                         int64_t cols) {}
};

}  // namespace mcmoe::model

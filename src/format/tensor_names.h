#pragma once
// GGUF tensor names are API: llama.cpp's canonical names, fixed here once. mcmoe's only
// additions are the per-expert form blk.N.ffn_gate.E.weight (one tensor per expert and
// projection, so experts can carry their own type and be read alone; biases as
// blk.N.ffn_gate.E.bias) and, for a projection that `mcmoe lowrank` factored as W ≈ L·R + S,
// four tensors in its place:
//   blk.N.ffn_gate.E.lr_left       [n_out, rank]
//   blk.N.ffn_gate.E.lr_right      [rank, n_in]
//   blk.N.ffn_gate.E.sparse_rows   [n_sparse, n_in]  rows of the residual W − L·R kept whole
//   blk.N.ffn_gate.E.sparse_index  [n_sparse] i32    which row of W each one adds to
// (the last two only when n_sparse > 0). llama.cpp has no such layout.
#include <fmt/format.h>
#include <string>

namespace mcmoe::format::tensor_names {

inline constexpr const char* kTokenEmbd = "token_embd.weight";    // [n_vocab, n_embd]
inline constexpr const char* kOutputNorm = "output_norm.weight";  // [n_embd]
inline constexpr const char* kOutput = "output.weight";           // [n_vocab, n_embd]

// Per layer: "blk.{layer}." + suffix.
inline constexpr const char* kAttnNorm = "attn_norm.weight";
inline constexpr const char* kAttnQ = "attn_q.weight";
inline constexpr const char* kAttnK = "attn_k.weight";
inline constexpr const char* kAttnV = "attn_v.weight";
inline constexpr const char* kAttnOut = "attn_output.weight";
inline constexpr const char* kAttnQBias = "attn_q.bias";
inline constexpr const char* kAttnKBias = "attn_k.bias";
inline constexpr const char* kAttnVBias = "attn_v.bias";
inline constexpr const char* kAttnOutBias = "attn_output.bias";
inline constexpr const char* kAttnQNorm = "attn_q_norm.weight";
inline constexpr const char* kAttnKNorm = "attn_k_norm.weight";
inline constexpr const char* kAttnSinks = "attn_sinks.weight";  // [n_head] (gpt-oss)
// Multi-head latent attention (deepseek2).
inline constexpr const char* kAttnQA = "attn_q_a.weight";            // [q_lora_rank, n_embd]
inline constexpr const char* kAttnQANorm = "attn_q_a_norm.weight";   // [q_lora_rank]
inline constexpr const char* kAttnQB = "attn_q_b.weight";            // [n_head * qk_dim, q_lora_rank]
inline constexpr const char* kAttnKvAMqa = "attn_kv_a_mqa.weight";   // [kv_lora_rank + qk_rope, n_embd]
inline constexpr const char* kAttnKvANorm = "attn_kv_a_norm.weight"; // [kv_lora_rank]
inline constexpr const char* kAttnKvB = "attn_kv_b.weight";          // [n_head * (qk_nope + v_dim), kv_lora_rank]
inline constexpr const char* kAttnKB = "attn_k_b.weight";            // [n_head, kv_lora_rank, qk_nope]
inline constexpr const char* kAttnVB = "attn_v_b.weight";            // [n_head, v_dim, kv_lora_rank]
inline constexpr const char* kFfnNorm = "ffn_norm.weight";
inline constexpr const char* kFfnGateInp = "ffn_gate_inp.weight";  // router [n_expert, n_embd]
inline constexpr const char* kFfnGateInpBias = "ffn_gate_inp.bias";  // router bias [n_expert] (gpt-oss)
inline constexpr const char* kFfnExpProbsBias = "exp_probs_b.bias";  // selection-only bias [n_expert] (DeepSeek-V3, GLM)
inline constexpr const char* kFfnGateExps = "ffn_gate_exps.weight";  // [n_expert, n_ff, n_embd]
inline constexpr const char* kFfnUpExps = "ffn_up_exps.weight";      // [n_expert, n_ff, n_embd]
inline constexpr const char* kFfnDownExps = "ffn_down_exps.weight";  // [n_expert, n_embd, n_ff]
inline constexpr const char* kFfnGateExpsBias = "ffn_gate_exps.bias";  // [n_expert, n_ff]
inline constexpr const char* kFfnUpExpsBias = "ffn_up_exps.bias";      // [n_expert, n_ff]
inline constexpr const char* kFfnDownExpsBias = "ffn_down_exps.bias";  // [n_expert, n_embd]
inline constexpr const char* kFfnGate = "ffn_gate";  // dense: ffn_gate.weight; expert: ffn_gate.E.weight
inline constexpr const char* kFfnUp = "ffn_up";
inline constexpr const char* kFfnDown = "ffn_down";
inline constexpr const char* kFfnGateInpShexp = "ffn_gate_inp_shexp.weight";  // [1, n_embd]
inline constexpr const char* kFfnGateShexp = "ffn_gate_shexp.weight";
inline constexpr const char* kFfnUpShexp = "ffn_up_shexp.weight";
inline constexpr const char* kFfnDownShexp = "ffn_down_shexp.weight";

inline constexpr const char* kLrLeft = "lr_left";
inline constexpr const char* kLrRight = "lr_right";
inline constexpr const char* kSparseRows = "sparse_rows";
inline constexpr const char* kSparseIndex = "sparse_index";

inline std::string layer(int l, const char* suffix) {
  const std::string s = suffix;
  // Dense FFN names are given without ".weight" to share them with the per-expert form.
  if (s == kFfnGate || s == kFfnUp || s == kFfnDown) return fmt::format("blk.{}.{}.weight", l, s);
  return fmt::format("blk.{}.{}", l, s);
}
inline std::string expert(int l, const char* proj, int e) {
  return fmt::format("blk.{}.{}.{}.weight", l, proj, e);
}
inline std::string expert_bias(int l, const char* proj, int e) {
  return fmt::format("blk.{}.{}.{}.bias", l, proj, e);
}
// One part of a factored expert projection: blk.N.ffn_gate.E.lr_left, ...
inline std::string expert_part(int l, const char* proj, int e, const char* part) {
  return fmt::format("blk.{}.{}.{}.{}", l, proj, e, part);
}

}  // namespace mcmoe::format::tensor_names

// GLM-4.5 / GLM-4.5-Air (Glm4MoeForCausalLM); GGUF architecture "glm4moe".
// Partial rotary (the first head_dim · partial_rotary_factor dims, NeoX pairs), q/k/v biases
// (no o bias), optional per-head q/k RMSNorm (use_qk_norm), first_k_dense_replace dense
// layers, n_shared_experts always-on experts, and routing as DeepSeek-V3: sigmoid scores,
// e_score_correction_bias for the choice only, groups ranked by their two best choices,
// norm_topk_prob, routed_scaling_factor. The multi-token-prediction layers past
// num_hidden_layers (num_nextn_predict_layers) are not part of the forward pass: llama.cpp
// counts them in block_count (nextn_predict_layers says how many) and mcmoe skips them.
// llama.cpp names the FFN norm post_attention_norm for this family.
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  const float partial = j.get<float>("partial_rotary_factor", 0.5f);
  // Beyond this the float-to-int product below would be undefined; a factor above 1 is
  // reported by validate() as rotary dimensions beyond the head.
  if (!(partial >= 0.f && partial <= 1024.f))
    fail("{}: partial_rotary_factor {} is not in [0, 1]", j.path(), partial);
  c.rope.n_rot = static_cast<int>(static_cast<float>(c.head_dim) * partial);
  c.attn_bias = j.get<bool>("attention_bias", false);
  if (j.get<bool>("use_qk_norm", false)) c.qk_norm = QkNorm::PerHead;
  c.n_expert = j.get<int>("n_routed_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("moe_intermediate_size");
  c.n_ff_dense = j.get<int>("intermediate_size");
  c.n_ff_shared = checked_size(j.path(), "n_shared_experts x moe_intermediate_size",
                               int64_t{j.get<int>("n_shared_experts", 1)} * c.n_ff);
  c.n_dense_lead = j.get<int>("first_k_dense_replace", 1);
  RouterConfig& r = c.router;
  r.score = ScoreFunc::Sigmoid;
  r.choice_bias = true;
  r.n_group = j.get<int>("n_group", 1);
  r.topk_group = j.get<int>("topk_group", 1);
  r.group = r.n_group > 1 ? GroupSelect::Top2Sum : GroupSelect::None;
  r.norm_topk = j.get<bool>("norm_topk_prob", true);
  r.scale = j.get<float>("routed_scaling_factor", 1.f);
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  // block_count includes the multi-token-prediction layers at the end.
  const int nextn = k.u32("nextn_predict_layers", 0);
  if (nextn < 0 || nextn >= c.n_layer)
    fail("{}: glm4moe.nextn_predict_layers {} with block_count {}", k.path(), nextn, c.n_layer);
  c.n_layer -= nextn;
  c.n_ff = k.u32("expert_feed_forward_length");
  c.n_ff_dense = k.u32("feed_forward_length", 0);
  c.n_ff_shared = checked_size(k.path(), "expert_shared_count x expert_feed_forward_length",
                               int64_t{k.u32("expert_shared_count", 0)} * c.n_ff);
  c.n_dense_lead = k.u32("leading_dense_block_count", 0);
  c.attn_bias = k.has_tensor("blk.0.attn_q.bias");
  if (k.has_tensor("blk.0.attn_q_norm.weight")) c.qk_norm = QkNorm::PerHead;
  RouterConfig& r = c.router;
  const int gating = k.u32("expert_gating_func", 2);
  if (gating != 2)
    fail("{}: glm4moe.expert_gating_func = {} (GLM-4.5 routes with sigmoid scores, 2)", k.path(),
         gating);
  r.score = ScoreFunc::Sigmoid;
  r.choice_bias = true;
  r.norm_topk = k.flag("expert_weights_norm", false);
  const float scale = k.f32("expert_weights_scale", 0.f);
  r.scale = scale == 0.f ? 1.f : scale;  // llama.cpp: 0 means no scaling
  r.n_group = k.u32("expert_group_count", 1);
  r.topk_group = k.u32("expert_group_used_count", 1);
  r.group = r.n_group > 1 ? GroupSelect::Top2Sum : GroupSelect::None;
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  if (c.n_ff_shared % c.n_ff != 0)
    fail("shared expert width {} is not a multiple of the expert width {}", c.n_ff_shared, c.n_ff);
  if (c.n_ff_dense > 0) w.u32("feed_forward_length", c.n_ff_dense);
  w.u32("expert_feed_forward_length", c.n_ff);
  w.u32("expert_shared_count", c.n_ff_shared / c.n_ff);
  w.u32("leading_dense_block_count", c.n_dense_lead);
  w.u32("expert_gating_func", 2);
  w.f32("expert_weights_scale", c.router.scale);
  w.flag("expert_weights_norm", c.router.norm_topk);
  w.u32("expert_group_count", c.router.n_group);
  w.u32("expert_group_used_count", c.router.topk_group);
  w.u32("nextn_predict_layers", 0);  // the prediction layers are not kept
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  switch (s.kind) {
    case K::ChoiceBias:
      return {hf_layer(s.layer, "mlp.gate.e_score_correction_bias")};
    case K::ShexpGate:
      return {hf_layer(s.layer, "mlp.shared_experts.gate_proj.weight")};
    case K::ShexpUp:
      return {hf_layer(s.layer, "mlp.shared_experts.up_proj.weight")};
    case K::ShexpDown:
      return {hf_layer(s.layer, "mlp.shared_experts.down_proj.weight")};
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kGlm4MoeArch{.arch = Arch::Glm4Moe,
                                   .gguf_name = "glm4moe",
                                   .hf_model_types = {"glm4_moe"},
                                   .from_hf = from_hf,
                                   .from_gguf = from_gguf,
                                   .to_gguf = to_gguf,
                                   .hf_source = hf_source,
                                   .gguf_tensor_name = post_attention_norm_names};

}  // namespace mcmoe::model::arch

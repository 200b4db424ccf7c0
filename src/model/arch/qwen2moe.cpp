// Qwen1.5-MoE / Qwen2-MoE: q/k/v biases, a shared expert scaled by sigmoid(w · x), softmax
// top-k not renormalised unless norm_topk_prob.
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  c.n_expert = j.get<int>("num_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("moe_intermediate_size");
  c.n_ff_shared = j.get<int>("shared_expert_intermediate_size", 0);
  c.shared_gate = c.n_ff_shared > 0;
  c.router.norm_topk = j.get<bool>("norm_topk_prob", false);
  c.attn_bias = true;
  refuse_qwen_layer_options(j);
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.n_ff = k.u32("expert_feed_forward_length");
  c.n_ff_shared = k.u32("expert_shared_feed_forward_length", 0);
  c.shared_gate = c.n_ff_shared > 0;
  c.router.norm_topk = k.flag("expert_weights_norm", false);
  c.attn_bias = true;
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  w.u32("feed_forward_length", c.n_ff_shared ? c.n_ff_shared : c.n_ff);
  w.u32("expert_feed_forward_length", c.n_ff);
  if (c.n_ff_shared) w.u32("expert_shared_feed_forward_length", c.n_ff_shared);
  w.flag("expert_weights_norm", c.router.norm_topk);
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  switch (s.kind) {
    case K::ShexpGate:
      return {hf_layer(s.layer, "mlp.shared_expert.gate_proj.weight")};
    case K::ShexpUp:
      return {hf_layer(s.layer, "mlp.shared_expert.up_proj.weight")};
    case K::ShexpDown:
      return {hf_layer(s.layer, "mlp.shared_expert.down_proj.weight")};
    case K::ShexpRouter:
      return {hf_layer(s.layer, "mlp.shared_expert_gate.weight")};
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kQwen2MoeArch{.arch = Arch::Qwen2Moe,
                                    .gguf_name = "qwen2moe",
                                    .hf_model_types = {"qwen2_moe"},
                                    .from_hf = from_hf,
                                    .from_gguf = from_gguf,
                                    .to_gguf = to_gguf,
                                    .hf_source = hf_source};

}  // namespace mcmoe::model::arch

// OLMoE: RMSNorm over the whole q and k projections, optional clip_qkv, softmax top-k not
// renormalised; head_dim is always hidden_size / num_attention_heads.
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  c.n_expert = j.get<int>("num_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("intermediate_size");
  c.router.norm_topk = j.get<bool>("norm_topk_prob", false);
  c.qk_norm = QkNorm::AllHeads;
  c.clip_qkv = j.get<float>("clip_qkv", 0.f);
  c.attn_bias = c.attn_out_bias = j.get<bool>("attention_bias", false);
  c.head_dim = c.head_dim_v = c.rope.n_rot = derived_head_dim(j.path(), c.n_embd, c.n_head);
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.n_ff = k.u32("feed_forward_length");
  c.router.norm_topk = k.flag("expert_weights_norm", false);
  c.qk_norm = QkNorm::AllHeads;
  c.clip_qkv = k.f32("attention.clamp_kqv", 0.f);
  c.attn_bias = k.has_tensor("blk.0.attn_q.bias");
  c.attn_out_bias = k.has_tensor("blk.0.attn_output.bias");
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  w.u32("feed_forward_length", c.n_ff);
  w.flag("expert_weights_norm", c.router.norm_topk);
  if (c.clip_qkv > 0) w.f32("attention.clamp_kqv", c.clip_qkv);
}

}  // namespace

extern const ArchInfo kOlmoeArch{.arch = Arch::Olmoe,
                                 .gguf_name = "olmoe",
                                 .hf_model_types = {"olmoe"},
                                 .from_hf = from_hf,
                                 .from_gguf = from_gguf,
                                 .to_gguf = to_gguf,
                                 .hf_source = llama_style_source};

}  // namespace mcmoe::model::arch

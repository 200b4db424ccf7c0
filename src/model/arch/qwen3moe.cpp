// Qwen3-MoE: RMSNorm on each q and k head before RoPE, softmax top-k renormalised when
// norm_topk_prob (true in every release; transformers' default is false), no shared expert.
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  c.n_expert = j.get<int>("num_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("moe_intermediate_size");
  c.router.norm_topk = j.get<bool>("norm_topk_prob", false);
  c.attn_bias = c.attn_out_bias = j.get<bool>("attention_bias", false);
  c.qk_norm = QkNorm::PerHead;
  refuse_qwen_layer_options(j);
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.n_ff = k.u32("expert_feed_forward_length");
  // llama.cpp renormalises Qwen3-MoE's top-k unconditionally; mcmoe's files say which.
  c.router.norm_topk = k.flag("expert_weights_norm", true);
  c.attn_bias = k.has_tensor("blk.0.attn_q.bias");
  c.attn_out_bias = k.has_tensor("blk.0.attn_output.bias");
  c.qk_norm = QkNorm::PerHead;
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  w.u32("feed_forward_length", c.n_ff);
  w.u32("expert_feed_forward_length", c.n_ff);
  w.flag("expert_weights_norm", c.router.norm_topk);
}

}  // namespace

extern const ArchInfo kQwen3MoeArch{.arch = Arch::Qwen3Moe,
                                    .gguf_name = "qwen3moe",
                                    .hf_model_types = {"qwen3_moe"},
                                    .from_hf = from_hf,
                                    .from_gguf = from_gguf,
                                    .to_gguf = to_gguf,
                                    .hf_source = llama_style_source};

}  // namespace mcmoe::model::arch

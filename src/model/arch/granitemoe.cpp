// IBM Granite-MoE (granite-3.x-*-a*m): embedding_multiplier scales the embeddings,
// residual_multiplier each branch output before it joins the residual stream,
// attention_multiplier replaces 1/sqrt(head_dim) as the softmax scale, logits are divided by
// logits_scaling. Router: top-k of the logits, softmax over those k. Experts are stacked:
// input_linear [E, 2 n_ff, n_embd] = [gate; up], output_linear [E, n_embd, n_ff]. head_dim
// is always hidden_size / num_attention_heads. llama.cpp permutes q/k as for "llama".
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  c.n_expert = j.get<int>("num_local_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok");
  c.n_ff = j.get<int>("intermediate_size");
  c.head_dim = c.head_dim_v = c.rope.n_rot = derived_head_dim(j.path(), c.n_embd, c.n_head);
  c.attn_bias = c.attn_out_bias = j.get<bool>("attention_bias", false);
  c.embd_scale = j.get<float>("embedding_multiplier", 1.f);
  c.residual_scale = j.get<float>("residual_multiplier", 1.f);
  c.attn_scale = j.get<float>("attention_multiplier", 1.f);
  c.logit_scale = j.get<float>("logits_scaling", 1.f);
  c.router.softmax_over_topk = true;
  if (j.get<int>("shared_intermediate_size", 0) > 0) {
    fail(
        "{}: shared_intermediate_size is set (GraniteMoeShared); only Granite-MoE without a shared "
        "expert is supported",
        j.path());
  }
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.n_ff = k.u32("feed_forward_length");
  c.rope.style = RopeStyle::Interleaved;
  // llama.cpp: logit_scale is required; the others default to 0, meaning "not applied".
  auto scale = [&](const char* key) {
    const float v = k.f32(key, 0.f);
    return v == 0.f ? 1.f : v;
  };
  c.embd_scale = scale("embedding_scale");
  c.residual_scale = scale("residual_scale");
  c.attn_scale = k.f32("attention.scale", 0.f);
  c.logit_scale = k.f32("logit_scale");
  c.router.softmax_over_topk = true;
  c.attn_bias = k.has_tensor("blk.0.attn_q.bias");
  c.attn_out_bias = k.has_tensor("blk.0.attn_output.bias");
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  w.u32("feed_forward_length", c.n_ff);
  w.f32("embedding_scale", c.embd_scale);
  w.f32("residual_scale", c.residual_scale);
  if (c.attn_scale != 0.f) w.f32("attention.scale", c.attn_scale);
  w.f32("logit_scale", c.logit_scale);
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  using T = HfSource::Take;
  const std::string moe = hf_layer(s.layer, "block_sparse_moe.");
  switch (s.kind) {
    case K::Router:
      return {moe + "router.layer.weight"};
    case K::ExpGate:
      return {moe + "input_linear.weight", T::Rows, s.expert, 0, c.n_ff};
    case K::ExpUp:
      return {moe + "input_linear.weight", T::Rows, s.expert, c.n_ff, 2 * int64_t{c.n_ff}};
    case K::ExpDown:
      return {moe + "output_linear.weight", T::Slice, s.expert};
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kGraniteMoeArch{.arch = Arch::GraniteMoe,
                                      .gguf_name = "granitemoe",
                                      .hf_model_types = {"granitemoe"},
                                      .from_hf = from_hf,
                                      .from_gguf = from_gguf,
                                      .to_gguf = to_gguf,
                                      .hf_source = hf_source,
                                      .gguf_interleaved_rope = true};

}  // namespace mcmoe::model::arch

// gpt-oss (GptOssForCausalLM); GGUF architecture "gpt-oss". Attention sinks (one learned
// logit per head joins each softmax row and takes no value), alternating sliding-window and
// full-attention layers (layer_types; llama.cpp: even layers slide), YaRN, biases on q/k/v/o,
// on the router and on the experts, top-k of the router logits then a softmax over those k,
// and a clamped SwiGLU: (clamp(up, ±limit) + 1) · g · sigmoid(1.702 g), g = min(gate, limit).
// Hugging Face keeps the experts fused and used as x @ W: gate_up_proj [E, n_embd, 2 n_ff]
// with gate in the even columns and up in the odd ones, down_proj [E, n_ff, n_embd]; they are
// transposed and split on load (a copy). Released checkpoints store those two as MXFP4
// (*_blocks / *_scales, in the nn.Linear orientation), which become ggml MXFP4 tensors on load
// (loader_hf.cpp).
// llama.cpp names the FFN norm post_attention_norm for this family, and does not implement
// YaRN's truncate = false (gpt-oss's setting): its correction range is rounded.
#include "core/json_read.h"
#include "format/gguf.h"
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string&, ModelConfig& c) {
  c.n_expert = j.get<int>("num_local_experts");
  c.n_expert_used = j.get<int>("num_experts_per_tok", j.get<int>("experts_per_token", 0));
  c.n_ff = j.get<int>("intermediate_size");
  c.attn_bias = c.attn_out_bias = true;
  c.attn_sinks = true;
  c.sliding_window = j.get<int>("sliding_window", 0);
  if (j.has("layer_types")) {
    const auto types = j.get<std::vector<std::string>>("layer_types");
    if (static_cast<int>(types.size()) != c.n_layer) {
      fail("{}: layer_types has {} entries for {} layers", j.path(), types.size(), c.n_layer);
    }
    for (const std::string& t : types) {
      if (t != "sliding_attention" && t != "full_attention") {
        fail("{}: layer_types entry '{}' (expected sliding_attention or full_attention)", j.path(),
             t);
      }
      c.swa_layers.push_back(t == "sliding_attention");
    }
  }
  c.router.softmax_over_topk = true;
  c.router.bias = true;
  c.expert_bias = true;
  c.activation = Activation::SwigluOai;
  c.swiglu_limit = j.get<float>("swiglu_limit", 7.f);
  // Released checkpoints: the experts in MXFP4 (*_blocks / *_scales, read by loader_hf.cpp),
  // everything else in bf16.
  if (j.json().contains("quantization_config") && !j.json()["quantization_config"].is_null()) {
    const std::string method =
        json_string(j.json()["quantization_config"], "quant_method").value_or("?");
    if (method != "mxfp4") {
      fail(
          "{}: quantization_config.quant_method '{}': gpt-oss is read in its float form or with "
          "MXFP4 experts "
          "(quant_method mxfp4)",
          j.path(), method);
    }
  }
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  c.n_ff = k.u32("expert_feed_forward_length");
  c.attn_bias = c.attn_out_bias = true;
  c.attn_sinks = true;
  c.sliding_window = k.u32("attention.sliding_window");
  const int period = k.u32("attention.sliding_window_pattern", 2);
  if (period < 1)
    fail("{}: gpt-oss.attention.sliding_window_pattern {} must be positive", k.path(), period);
  // llama_hparams::set_swa_pattern: layer il slides when il % period < period - 1.
  for (int l = 0; l < c.n_layer; ++l) c.swa_layers.push_back(l % period < period - 1);
  c.rope.truncate = k.file().get_bool(kRopeTruncateKey, false);
  c.router.softmax_over_topk = true;
  c.router.bias = true;
  c.expert_bias = true;
  c.activation = Activation::SwigluOai;
  c.swiglu_limit = 7.f;  // llama.cpp's constant; the Hugging Face configs agree
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  if (c.swiglu_limit != 7.f)
    fail("swiglu_limit {} has no key in llama.cpp's gpt-oss GGUF (it uses 7)", c.swiglu_limit);
  w.u32("feed_forward_length", c.n_ff);
  w.u32("expert_feed_forward_length", c.n_ff);
  w.u32("attention.sliding_window", c.sliding_window);
  // The pattern llama.cpp assumes (even layers slide) must be the model's.
  for (int l = 0; l < c.n_layer; ++l) {
    if (c.is_swa(l) != (l % 2 == 0)) {
      fail("layer {} is {}: llama.cpp's gpt-oss layout slides exactly the even layers", l,
           c.is_swa(l) ? "sliding" : "full");
    }
  }
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  using T = HfSource::Take;
  const std::string mlp = hf_layer(s.layer, "mlp.");
  switch (s.kind) {
    case K::Router:
      return {mlp + "router.weight"};
    case K::RouterBias:
      return {mlp + "router.bias"};
    case K::ExpGate:
      return {mlp + "experts.gate_up_proj", T::EveryOther, s.expert, 0};
    case K::ExpUp:
      return {mlp + "experts.gate_up_proj", T::EveryOther, s.expert, 1};
    case K::ExpDown:
      return {mlp + "experts.down_proj", T::Transposed, s.expert};
    case K::ExpGateBias:
      return {mlp + "experts.gate_up_proj_bias", T::EveryOther, s.expert, 0};
    case K::ExpUpBias:
      return {mlp + "experts.gate_up_proj_bias", T::EveryOther, s.expert, 1};
    case K::ExpDownBias:
      return {mlp + "experts.down_proj_bias", T::Slice, s.expert};
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kGptOssArch{.arch = Arch::GptOss,
                                  .gguf_name = "gpt-oss",
                                  .hf_model_types = {"gpt_oss"},
                                  .from_hf = from_hf,
                                  .from_gguf = from_gguf,
                                  .to_gguf = to_gguf,
                                  .hf_source = hf_source,
                                  .gguf_tensor_name = post_attention_norm_names};

}  // namespace mcmoe::model::arch

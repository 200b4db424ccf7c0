// Mixtral and dense Llama / Mistral checkpoints; GGUF architecture "llama". llama.cpp
// stores q/k rows permuted for pair-interleaved RoPE; the top-k weights are renormalised.
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

namespace {

void from_hf(const HfConfig& j, const std::string& type, ModelConfig& c) {
  if (type == "mixtral") {
    c.n_expert = j.get<int>("num_local_experts");
    c.n_expert_used = j.get<int>("num_experts_per_tok");
    c.n_ff = j.get<int>("intermediate_size");
  } else {
    c.n_ff_dense = j.get<int>("intermediate_size");
  }
  c.router.norm_topk = true;
  // Every layer uses the window when one is set (null in released Mixtral configs).
  const int window = j.get<int>("sliding_window", 0);
  if (window > 0 && window < c.n_ctx_train) {
    c.sliding_window = window;
    c.swa_layers.assign(c.n_layer, true);
  }
}

void from_gguf(const GgufKeys& k, ModelConfig& c) {
  (c.n_expert > 0 ? c.n_ff : c.n_ff_dense) = k.u32("feed_forward_length");
  c.rope.style = RopeStyle::Interleaved;
  c.router.norm_topk = true;
}

void to_gguf(const ModelConfig& c, GgufKeyWriter& w) {
  w.u32("feed_forward_length", c.n_expert > 0 ? c.n_ff : c.n_ff_dense);
}

HfSource hf_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  auto moe = [&](const std::string& suffix) {
    return HfSource{hf_layer(s.layer, "block_sparse_moe." + suffix)};
  };
  switch (s.kind) {
    case K::Router:
      return moe("gate.weight");
    case K::ExpGate:
      return moe(fmt::format("experts.{}.w1.weight", s.expert));
    case K::ExpUp:
      return moe(fmt::format("experts.{}.w3.weight", s.expert));
    case K::ExpDown:
      return moe(fmt::format("experts.{}.w2.weight", s.expert));
    default:
      return llama_style_source(c, s);
  }
}

}  // namespace

extern const ArchInfo kLlamaArch{.arch = Arch::Llama,
                                 .gguf_name = "llama",
                                 .hf_model_types = {"mixtral", "llama", "mistral"},
                                 .from_hf = from_hf,
                                 .from_gguf = from_gguf,
                                 .to_gguf = to_gguf,
                                 .hf_source = hf_source,
                                 .gguf_interleaved_rope = true};

}  // namespace mcmoe::model::arch

// Hugging Face checkpoints: config.json + safetensors, tensor names per model family.
#include <fmt/format.h>

#include "core/error.h"
#include "format/safetensors.h"
#include "model/loaders.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

namespace {

struct HfNames {
  std::string router;                     // "" for dense models
  std::string expert_gate, expert_up, expert_down;  // with {e} for the expert index
};

HfNames hf_names(const ModelConfig& c, bool mixtral_names) {
  if (c.n_expert == 1 && c.n_ff_shared == 0 && !mixtral_names) {
    return {"", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  }
  if (mixtral_names) {
    return {"block_sparse_moe.gate", "block_sparse_moe.experts.{}.w1",
            "block_sparse_moe.experts.{}.w3", "block_sparse_moe.experts.{}.w2"};
  }
  return {"mlp.gate", "mlp.experts.{}.gate_proj", "mlp.experts.{}.up_proj",
          "mlp.experts.{}.down_proj"};
}

}  // namespace

void HfLoader::load(Model& m, const std::string& dir) {
  m.config_ = config_from_hf(dir);
  const ModelConfig& c = m.config_;
  m.safetensors_ = std::make_unique<format::SafetensorsSet>(dir);
  const format::SafetensorsSet& st = *m.safetensors_;
  for (const auto& name : st.names()) m.file_tensors_.push_back({name, st.get(name)});

  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) -> const TensorView& {
    const TensorView& v = st.get(name);
    expect_shape(dir, name, v, shape);
    return v;
  };
  const int64_t d = c.n_embd, q_dim = int64_t{c.n_head} * c.head_dim,
                kv_dim = int64_t{c.n_head_kv} * c.head_dim;
  ModelWeights& w = m.weights_;
  w.tok_embd = get("model.embed_tokens.weight", {c.n_vocab, d});
  w.output_norm = m.to_f32(get("model.norm.weight", {d}));
  if (st.find("lm_head.weight")) {
    w.output = get("lm_head.weight", {c.n_vocab, d});
  } else if (c.tie_embeddings) {
    w.output = w.tok_embd;
  } else {
    fail("{}: missing tensor 'lm_head.weight' (tie_word_embeddings is false)", dir);
  }
  const bool mixtral_names = st.find("model.layers.0.block_sparse_moe.gate.weight") != nullptr;
  const HfNames names = hf_names(c, mixtral_names);
  w.layers.resize(c.n_layer);
  m.stored_experts_.assign(c.n_layer, {});
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    LayerWeights& L = w.layers[l];
    L.attn_norm = m.to_f32(get(p + "input_layernorm.weight", {d}));
    L.ffn_norm = m.to_f32(get(p + "post_attention_layernorm.weight", {d}));
    L.wq = get(p + "self_attn.q_proj.weight", {q_dim, d});
    L.wk = get(p + "self_attn.k_proj.weight", {kv_dim, d});
    L.wv = get(p + "self_attn.v_proj.weight", {kv_dim, d});
    L.wo = get(p + "self_attn.o_proj.weight", {d, q_dim});
    if (c.attn_bias) {
      L.bq = m.to_f32(get(p + "self_attn.q_proj.bias", {q_dim}));
      L.bk = m.to_f32(get(p + "self_attn.k_proj.bias", {kv_dim}));
      L.bv = m.to_f32(get(p + "self_attn.v_proj.bias", {kv_dim}));
    }
    if (c.qk_norm == QkNorm::PerHead) {
      L.q_norm = m.to_f32(get(p + "self_attn.q_norm.weight", {c.head_dim}));
      L.k_norm = m.to_f32(get(p + "self_attn.k_norm.weight", {c.head_dim}));
    } else if (c.qk_norm == QkNorm::AllHeads) {
      L.q_norm = m.to_f32(get(p + "self_attn.q_norm.weight", {q_dim}));
      L.k_norm = m.to_f32(get(p + "self_attn.k_norm.weight", {kv_dim}));
    }
    if (!names.router.empty()) L.router = get(p + names.router + ".weight", {c.n_expert, d});
    auto& experts = m.stored_experts_[l];
    for (int e = 0; e < c.n_expert; ++e) {
      moe::ExpertWeights ew;
      ew.gate = get(p + fmt::format(fmt::runtime(names.expert_gate), e) + ".weight", {c.n_ff, d});
      ew.up = get(p + fmt::format(fmt::runtime(names.expert_up), e) + ".weight", {c.n_ff, d});
      ew.down = get(p + fmt::format(fmt::runtime(names.expert_down), e) + ".weight", {d, c.n_ff});
      experts.push_back(ew);
    }
    if (c.n_ff_shared > 0) {
      L.shared.gate = get(p + "mlp.shared_expert.gate_proj.weight", {c.n_ff_shared, d});
      L.shared.up = get(p + "mlp.shared_expert.up_proj.weight", {c.n_ff_shared, d});
      L.shared.down = get(p + "mlp.shared_expert.down_proj.weight", {d, c.n_ff_shared});
      L.shared_gate = get(p + "mlp.shared_expert_gate.weight", {1, d});
    }
  }
  m.tokenizer_ = tokenizer::Tokenizer::from_hf_dir(dir);
}

}  // namespace mcmoe::model

// What the families share: GGUF key access with the "{arch}." prefix, Llama-style Hugging
// Face tensor names, and YaRN from rope_scaling.
#include <cmath>

#include "format/gguf.h"
#include "model/arch/arch.h"

namespace mcmoe::model::arch {

const std::string& GgufKeys::path() const {
  return f_.path();
}
bool GgufKeys::has(const std::string& key) const {
  return f_.has(p_ + key);
}
int GgufKeys::u32(const std::string& key) const {
  const uint64_t v = f_.get_uint(p_ + key);
  if (v > 0x7fffffff) fail("{}: {}{} = {} is out of range", f_.path(), p_, key, v);
  return static_cast<int>(v);
}
int GgufKeys::u32(const std::string& key, int def) const {
  return has(key) ? u32(key) : def;
}
float GgufKeys::f32(const std::string& key) const {
  return static_cast<float>(f_.get_float(p_ + key));
}
float GgufKeys::f32(const std::string& key, float def) const {
  return static_cast<float>(f_.get_float(p_ + key, static_cast<double>(def)));
}
bool GgufKeys::flag(const std::string& key, bool def) const {
  return f_.get_bool(p_ + key, def);
}
std::string GgufKeys::str(const std::string& key, const std::string& def) const {
  return f_.get_string(p_ + key, def);
}
bool GgufKeys::has_tensor(const std::string& name) const {
  return f_.find_tensor(name) != nullptr;
}

void GgufKeyWriter::u32(const std::string& key, int v) {
  g_.set(p_ + key, format::GgufValue::u32(static_cast<uint32_t>(v)));
}
void GgufKeyWriter::f32(const std::string& key, float v) {
  g_.set(p_ + key, format::GgufValue::f32(v));
}
void GgufKeyWriter::flag(const std::string& key, bool v) {
  g_.set(p_ + key, format::GgufValue::boolean(v));
}
void GgufKeyWriter::str(const std::string& key, const std::string& v) {
  g_.set(p_ + key, format::GgufValue::str(v));
}
void GgufKeyWriter::unprefixed_f32(const std::string& key, float v) {
  g_.set(key, format::GgufValue::f32(v));
}
void GgufKeyWriter::unprefixed_str(const std::string& key, const std::string& v) {
  g_.set(key, format::GgufValue::str(v));
}

std::string hf_layer(int l, const std::string& suffix) {
  return fmt::format("model.layers.{}.{}", l, suffix);
}

HfSource llama_style_source(const ModelConfig& c, const TensorSlot& s) {
  using K = TensorKind;
  const int l = s.layer;
  auto layer = [&](const char* suffix) { return HfSource{hf_layer(l, suffix)}; };
  auto expert = [&](const char* proj) {
    return HfSource{hf_layer(l, fmt::format("mlp.experts.{}.{}.weight", s.expert, proj))};
  };
  switch (s.kind) {
    case K::TokenEmbd:
      return {"model.embed_tokens.weight"};
    case K::OutputNorm:
      return {"model.norm.weight"};
    case K::Output:
      return {"lm_head.weight"};
    case K::AttnNorm:
      return layer("input_layernorm.weight");
    case K::FfnNorm:
      return layer("post_attention_layernorm.weight");
    case K::AttnQ:
      return layer("self_attn.q_proj.weight");
    case K::AttnK:
      return layer("self_attn.k_proj.weight");
    case K::AttnV:
      return layer("self_attn.v_proj.weight");
    case K::AttnOut:
      return layer("self_attn.o_proj.weight");
    case K::AttnQBias:
      return layer("self_attn.q_proj.bias");
    case K::AttnKBias:
      return layer("self_attn.k_proj.bias");
    case K::AttnVBias:
      return layer("self_attn.v_proj.bias");
    case K::AttnOutBias:
      return layer("self_attn.o_proj.bias");
    case K::AttnQNorm:
      return layer("self_attn.q_norm.weight");
    case K::AttnKNorm:
      return layer("self_attn.k_norm.weight");
    case K::AttnSinks:
      return layer("self_attn.sinks");
    case K::Router:
      return layer("mlp.gate.weight");
    case K::DenseGate:
      return layer("mlp.gate_proj.weight");
    case K::DenseUp:
      return layer("mlp.up_proj.weight");
    case K::DenseDown:
      return layer("mlp.down_proj.weight");
    case K::ExpGate:
      return expert("gate_proj");
    case K::ExpUp:
      return expert("up_proj");
    case K::ExpDown:
      return expert("down_proj");
    default:
      return {};
  }
}

void refuse_qwen_layer_options(const HfConfig& j) {
  j.expect<int>("decoder_sparse_step", 1, "every layer must be an MoE layer");
  if (j.has("mlp_only_layers") && !j.json()["mlp_only_layers"].empty()) {
    fail("{}: mlp_only_layers is not supported (found {} entries)", j.path(),
         j.json()["mlp_only_layers"].size());
  }
  j.expect<bool>("use_sliding_window", false,
                 "sliding-window attention is off in every released Qwen-MoE");
}

std::string post_attention_norm_names(const TensorSlot& s) {
  return s.kind == TensorKind::FfnNorm ? fmt::format("blk.{}.post_attention_norm.weight", s.layer)
                                       : "";
}

void read_hf_rope_scaling(const HfConfig& j, ModelConfig& c) {
  if (!j.has("rope_scaling")) return;
  const nlohmann::json& rs = j.json()["rope_scaling"];
  if (!rs.is_object())
    fail("{}: rope_scaling must be an object or null, found {}", j.path(), rs.type_name());
  const HfConfig r(rs, j.path() + " rope_scaling");
  const std::string type = r.get<std::string>("rope_type", r.get<std::string>("type", "default"));
  if (type == "default") return;
  if (type != "yarn")
    fail("{}: rope_scaling type '{}' is not supported (expected yarn or default)", j.path(), type);
  RopeConfig& p = c.rope;
  p.yarn = true;
  p.factor = r.get<float>("factor");
  if (!(p.factor >= 1.f))
    fail("{}: rope_scaling.factor must be at least 1, found {}", j.path(), p.factor);
  p.orig_ctx = r.get<int>("original_max_position_embeddings", c.n_ctx_train);
  p.beta_fast = r.get<float>("beta_fast", 32.f);
  p.beta_slow = r.get<float>("beta_slow", 1.f);
  p.truncate = r.get<bool>("truncate", true);
  // get_mscale of transformers' _compute_yarn_parameters.
  auto mscale = [&](float m) {
    return p.factor <= 1.f ? 1.f : 0.1f * m * std::log(p.factor) + 1.f;
  };
  if (r.has("attention_factor")) {
    p.attn_factor = r.get<float>("attention_factor");
  } else if (r.get<float>("mscale", 0.f) != 0.f && r.get<float>("mscale_all_dim", 0.f) != 0.f) {
    p.attn_factor = mscale(r.get<float>("mscale")) / mscale(r.get<float>("mscale_all_dim"));
  } else {
    p.attn_factor = mscale(1.f);
  }
}

}  // namespace mcmoe::model::arch

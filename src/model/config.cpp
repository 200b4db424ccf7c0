#include "model/config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <variant>

#include "core/error.h"
#include "format/gguf.h"

namespace mcmoe::model {

const char* arch_gguf_name(Arch a) {
  switch (a) {
    case Arch::Llama: return "llama";
    case Arch::Qwen2Moe: return "qwen2moe";
    case Arch::Qwen3Moe: return "qwen3moe";
    case Arch::Olmoe: return "olmoe";
  }
  return "?";
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int v) {
    if (v <= 0) fail("{}: {} must be positive, found {}", source, name, v);
  };
  positive("vocab size", n_vocab);
  positive("hidden size", n_embd);
  positive("layer count", n_layer);
  positive("attention head count", n_head);
  positive("key/value head count", n_head_kv);
  positive("head dimension", head_dim);
  positive("expert count", n_expert);
  positive("experts per token", n_expert_used);
  positive("expert width", n_ff);
  if (n_head % n_head_kv != 0) fail("{}: attention heads {} not a multiple of key/value heads {}", source, n_head, n_head_kv);
  if (n_expert_used > n_expert) fail("{}: experts per token {} exceeds expert count {}", source, n_expert_used, n_expert);
  if (!layer_experts.empty()) {
    if (static_cast<int>(layer_experts.size()) != n_layer) {
      fail("{}: {} per-layer expert counts for {} layers", source, layer_experts.size(), n_layer);
    }
    for (int l = 0; l < n_layer; ++l) {
      if (layer_experts[l] < 1 || layer_experts[l] > n_expert) {
        fail("{}: layer {} has {} experts; expected 1..{}", source, l, layer_experts[l], n_expert);
      }
    }
  }
  if (!expert_map.empty()) {
    if (static_cast<int>(expert_map.size()) != n_layer) fail("{}: expert maps for {} layers, the model has {}", source, expert_map.size(), n_layer);
    for (int l = 0; l < n_layer; ++l) {
      for (int e : expert_map[l]) {
        if (e < 0 || e >= experts(l)) fail("{}: layer {} maps a router row to expert {}; the layer has {}", source, l, e, experts(l));
      }
    }
  }
  for (int l = 0; l < n_layer && (!layer_experts.empty() || !expert_map.empty()); ++l) {
    if (n_expert_used > router_rows(l)) {
      fail("{}: experts per token {} exceeds layer {}'s {} router rows", source, n_expert_used, l, router_rows(l));
    }
    if (router_rows(l) > n_expert) fail("{}: layer {} has {} router rows, more than the expert count {}", source, l, router_rows(l), n_expert);
  }
  if (head_dim % 2 != 0) fail("{}: head dimension {} must be even for RoPE", source, head_dim);
  if (!(rms_eps > 0.f)) fail("{}: rms_norm_eps must be positive, found {}", source, rms_eps);
  if (!(rope_theta > 0.f)) fail("{}: rope_theta must be positive, found {}", source, rope_theta);
}

std::string ModelConfig::summary() const {
  return fmt::format(
      "arch {} | vocab {} | hidden {} | layers {} | heads {} (kv {}, dim {}) | experts {} top-{} "
      "width {}{} | norm_topk {} | rope θ {} ({}) | eps {}",
      arch_gguf_name(arch), n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_expert,
      n_expert_used, n_ff, n_ff_shared ? fmt::format(" + shared {}", n_ff_shared) : "",
      norm_topk_prob, rope_theta, rope_style == RopeStyle::Neox ? "neox" : "interleaved", rms_eps) +
         reduction_summary();
}

std::string ModelConfig::reduction_summary() const {
  if (layer_experts.empty() && expert_map.empty()) return "";
  std::string s = " | experts per layer";
  for (int l = 0; l < n_layer; ++l) s += fmt::format("{}{}", l ? "," : " ", experts(l));
  if (!expert_map.empty()) s += " (merged; the router keeps its rows)";
  return s;
}

namespace {

template <typename T>
T json_get(const nlohmann::json& j, const std::string& key, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) fail("{}: missing key '{}'", path, key);
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: key '{}' has the wrong type (found {})", path, key, j[key].type_name());
  }
}

template <typename T>
T json_get(const nlohmann::json& j, const std::string& key, const std::string& path, T def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  return json_get<T>(j, key, path);
}

int array_int(const format::GgufFile& f, const std::string& key, const format::GgufValue& item) {
  if (const auto* u = std::get_if<uint64_t>(&item.v)) return static_cast<int>(*u);
  if (const auto* i = std::get_if<int64_t>(&item.v)) return static_cast<int>(*i);
  fail("{}: {} holds a non-integer value", f.path(), key);
}

// Per-layer expert counts and router maps of a reduced model (mcmoe reduce).
void read_reduction(const format::GgufFile& f, ModelConfig& c) {
  if (f.has(kLayerExpertsKey)) {
    const format::GgufArray& a = f.get_array(kLayerExpertsKey);
    if (static_cast<int>(a.items.size()) != c.n_layer) {
      fail("{}: {} has {} entries, expected one per layer ({})", f.path(), kLayerExpertsKey, a.items.size(), c.n_layer);
    }
    for (const auto& item : a.items) c.layer_experts.push_back(array_int(f, kLayerExpertsKey, item));
  }
  if (f.has(kExpertMapKeyPrefix + std::string("0"))) {
    for (int l = 0; l < c.n_layer; ++l) {
      const std::string key = kExpertMapKeyPrefix + std::to_string(l);
      if (!f.has(key)) fail("{}: missing key '{}' (a merged model maps the router rows of every layer)", f.path(), key);
      std::vector<int>& map = c.expert_map.emplace_back();
      for (const auto& item : f.get_array(key).items) map.push_back(array_int(f, key, item));
    }
  }
}

}  // namespace

ModelConfig config_from_hf(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", path);
  ModelConfig c;
  const std::string type = json_get<std::string>(j, "model_type", path);
  c.n_vocab = json_get<int>(j, "vocab_size", path);
  c.n_embd = json_get<int>(j, "hidden_size", path);
  c.n_layer = json_get<int>(j, "num_hidden_layers", path);
  c.n_head = json_get<int>(j, "num_attention_heads", path);
  c.n_head_kv = json_get<int>(j, "num_key_value_heads", path, c.n_head);
  c.head_dim = json_get<int>(j, "head_dim", path, c.n_head > 0 ? c.n_embd / c.n_head : 0);
  c.rms_eps = json_get<float>(j, "rms_norm_eps", path, 1e-6f);
  c.rope_theta = json_get<float>(j, "rope_theta", path, 10000.f);
  c.n_ctx_train = json_get<int>(j, "max_position_embeddings", path, 4096);
  c.tie_embeddings = json_get<bool>(j, "tie_word_embeddings", path, false);
  c.rope_style = RopeStyle::Neox;
  if (type == "mixtral") {
    c.arch = Arch::Llama;
    c.n_expert = json_get<int>(j, "num_local_experts", path);
    c.n_expert_used = json_get<int>(j, "num_experts_per_tok", path);
    c.n_ff = json_get<int>(j, "intermediate_size", path);
    c.norm_topk_prob = true;
  } else if (type == "llama" || type == "mistral") {
    c.arch = Arch::Llama;
    c.n_expert = c.n_expert_used = 1;
    c.n_ff = json_get<int>(j, "intermediate_size", path);
  } else if (type == "qwen2_moe") {
    c.arch = Arch::Qwen2Moe;
    c.n_expert = json_get<int>(j, "num_experts", path);
    c.n_expert_used = json_get<int>(j, "num_experts_per_tok", path);
    c.n_ff = json_get<int>(j, "moe_intermediate_size", path);
    c.n_ff_shared = json_get<int>(j, "shared_expert_intermediate_size", path, 0);
    c.norm_topk_prob = json_get<bool>(j, "norm_topk_prob", path, false);
    c.attn_bias = true;
    if (json_get<int>(j, "decoder_sparse_step", path, 1) != 1) fail("{}: decoder_sparse_step != 1 is not supported", path);
    if (j.contains("mlp_only_layers") && j["mlp_only_layers"].is_array() && !j["mlp_only_layers"].empty()) {
      fail("{}: mlp_only_layers is not supported (found {} entries)", path, j["mlp_only_layers"].size());
    }
  } else if (type == "qwen3_moe") {
    c.arch = Arch::Qwen3Moe;
    c.n_expert = json_get<int>(j, "num_experts", path);
    c.n_expert_used = json_get<int>(j, "num_experts_per_tok", path);
    c.n_ff = json_get<int>(j, "moe_intermediate_size", path);
    c.norm_topk_prob = json_get<bool>(j, "norm_topk_prob", path, true);
    c.attn_bias = json_get<bool>(j, "attention_bias", path, false);
    c.qk_norm = QkNorm::PerHead;
  } else if (type == "olmoe") {
    c.arch = Arch::Olmoe;
    c.n_expert = json_get<int>(j, "num_experts", path);
    c.n_expert_used = json_get<int>(j, "num_experts_per_tok", path);
    c.n_ff = json_get<int>(j, "intermediate_size", path);
    c.norm_topk_prob = json_get<bool>(j, "norm_topk_prob", path, false);
    c.qk_norm = QkNorm::AllHeads;
  } else {
    fail("{}: model_type '{}' not supported (expected mixtral, llama, mistral, qwen2_moe, qwen3_moe or olmoe)", path, type);
  }
  c.validate(path);
  return c;
}

ModelConfig config_from_gguf(const format::GgufFile& f) {
  ModelConfig c;
  const std::string arch = f.get_string("general.architecture");
  if (arch == "llama") {
    c.arch = Arch::Llama;
  } else if (arch == "qwen2moe") {
    c.arch = Arch::Qwen2Moe;
  } else if (arch == "qwen3moe") {
    c.arch = Arch::Qwen3Moe;
  } else if (arch == "olmoe") {
    c.arch = Arch::Olmoe;
  } else {
    fail("{}: general.architecture '{}' not supported (expected llama, qwen2moe, qwen3moe or olmoe)", f.path(), arch);
  }
  const std::string p = arch + ".";
  c.n_embd = static_cast<int>(f.get_uint(p + "embedding_length"));
  c.n_layer = static_cast<int>(f.get_uint(p + "block_count"));
  c.n_head = static_cast<int>(f.get_uint(p + "attention.head_count"));
  c.n_head_kv = static_cast<int>(f.get_uint(p + "attention.head_count_kv", c.n_head));
  c.head_dim = static_cast<int>(f.get_uint(p + "attention.key_length", c.n_head ? c.n_embd / c.n_head : 0));
  c.rms_eps = static_cast<float>(f.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = static_cast<float>(f.get_float(p + "rope.freq_base", 10000.0));
  c.n_ctx_train = static_cast<int>(f.get_uint(p + "context_length", 4096));
  c.n_expert = static_cast<int>(f.get_uint(p + "expert_count", 0));
  c.n_expert_used = static_cast<int>(f.get_uint(p + "expert_used_count", 0));
  if (c.n_expert == 0) c.n_expert = c.n_expert_used = 1;
  switch (c.arch) {
    case Arch::Llama:
      c.n_ff = static_cast<int>(f.get_uint(p + "feed_forward_length"));
      c.rope_style = RopeStyle::Interleaved;
      c.norm_topk_prob = true;
      break;
    case Arch::Qwen2Moe:
      c.n_ff = static_cast<int>(f.get_uint(p + "expert_feed_forward_length"));
      c.n_ff_shared = static_cast<int>(f.get_uint(p + "expert_shared_feed_forward_length", 0));
      c.rope_style = RopeStyle::Neox;
      c.norm_topk_prob = f.get_bool(p + "expert_weights_norm", false);
      c.attn_bias = true;
      break;
    case Arch::Qwen3Moe:
      c.n_ff = static_cast<int>(f.get_uint(p + "expert_feed_forward_length"));
      c.rope_style = RopeStyle::Neox;
      c.norm_topk_prob = f.get_bool(p + "expert_weights_norm", true);
      c.qk_norm = QkNorm::PerHead;
      break;
    case Arch::Olmoe:
      c.n_ff = static_cast<int>(f.get_uint(p + "feed_forward_length"));
      c.rope_style = RopeStyle::Neox;
      c.norm_topk_prob = f.get_bool(p + "expert_weights_norm", false);
      c.qk_norm = QkNorm::AllHeads;
      break;
  }
  // Vocabulary size: the metadata key is optional in llama.cpp's files; the token list and
  // the embedding agree with it when present (checked by the loader).
  if (f.has(p + "vocab_size")) {
    c.n_vocab = static_cast<int>(f.get_uint(p + "vocab_size"));
  } else if (const auto* t = f.find_tensor("token_embd.weight")) {
    c.n_vocab = static_cast<int>(t->shape[0]);
  }
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  read_reduction(f, c);
  c.validate(f.path());
  return c;
}

}  // namespace mcmoe::model

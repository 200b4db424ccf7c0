#include "model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <variant>

#include "core/error.h"
#include "core/json_file.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "model/arch/arch.h"
#include "tokenizer/vocab.h"

namespace mcmoe::model {

const char* arch_gguf_name(Arch a) { return arch::info(a).gguf_name; }

bool ModelConfig::has_dense_layers() const {
  for (int l = 0; l < n_layer; ++l) {
    if (!is_moe(l)) return true;
  }
  return false;
}

int derived_head_dim(const std::string& source, int64_t n_embd, int64_t n_head) {
  if (n_head <= 0) return 0;
  if (n_embd % n_head != 0) {
    fail(
        "{}: hidden size {} is not a multiple of the attention head count {} (and no head size is "
        "given)",
        source, n_embd, n_head);
  }
  return checked_size(source, "head size", n_embd / n_head);
}

int checked_size(const std::string& source, const char* what, int64_t value) {
  if (value < 0 || value > std::numeric_limits<int>::max())
    fail("{}: {} is {}, not a plausible size", source, what, value);
  return static_cast<int>(value);
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int v) {
    if (v <= 0) fail("{}: {} must be positive, found {}", source, name, v);
  };
  // Plausibility bounds far above any released model (DeepSeek-V3: 61 layers, 256 experts,
  // hidden 7168, vocab 129k; expert and MLP widths up to ~50k), so that a corrupted count is
  // refused before per-layer and per-expert tables are sized from it, and products such as
  // n_head * head_dim stay far from int overflow.
  auto at_most = [&](const char* name, int v, int limit) {
    if (v > limit) fail("{}: {} is {}, more than any model has (limit {})", source, name, v, limit);
  };
  at_most("vocab size", n_vocab, static_cast<int>(tokenizer::kMaxVocabSize));
  at_most("hidden size", n_embd, 1 << 17);
  at_most("layer count", n_layer, 1 << 10);
  at_most("attention head count", n_head, 1 << 12);
  at_most("key/value head count", n_head_kv, 1 << 12);
  at_most("head dimension", head_dim, 1 << 14);
  at_most("value head dimension", head_dim_v, 1 << 14);
  at_most("expert count", n_expert, 1 << 12);
  at_most("expert width", n_ff, 1 << 20);
  at_most("dense MLP width", n_ff_dense, 1 << 20);
  at_most("shared expert width", n_ff_shared, 1 << 20);
  at_most("MLA q_lora_rank", mla.q_lora_rank, 1 << 16);
  at_most("MLA kv_lora_rank", mla.kv_lora_rank, 1 << 16);
  at_most("MLA nope dimension", mla.qk_nope, 1 << 14);
  at_most("MLA rope dimension", mla.qk_rope, 1 << 14);
  at_most("MLA value dimension", mla.v_dim, 1 << 14);
  // Per-expert tables hold n_layer x n_expert entries of ~1 KB (Kimi K2: 61 x 384).
  if (int64_t{n_layer} * n_expert > (int64_t{1} << 17)) {
    fail("{}: {} layers x {} experts is more than any model has (limit {})", source, n_layer,
         n_expert, 1 << 17);
  }
  positive("vocab size", n_vocab);
  positive("hidden size", n_embd);
  positive("layer count", n_layer);
  positive("attention head count", n_head);
  positive("key/value head count", n_head_kv);
  positive("head dimension", head_dim);
  positive("value head dimension", head_dim_v);
  if (n_head % n_head_kv != 0) fail("{}: attention heads {} not a multiple of key/value heads {}", source, n_head, n_head_kv);
  if (n_expert < 0) fail("{}: expert count must not be negative, found {}", source, n_expert);
  if (n_expert > 0) {
    positive("experts per token", n_expert_used);
    positive("expert width", n_ff);
    if (n_expert_used > n_expert) fail("{}: experts per token {} exceeds expert count {}", source, n_expert_used, n_expert);
  }
  if (n_dense_lead < 0 || n_dense_lead > n_layer) fail("{}: {} leading dense layers of {}", source, n_dense_lead, n_layer);
  if (moe_every < 1) fail("{}: MoE layer frequency must be positive, found {}", source, moe_every);
  if (has_dense_layers()) positive("dense layer width", n_ff_dense);
  if (n_ff_shared < 0) fail("{}: shared expert width must not be negative, found {}", source, n_ff_shared);
  if (n_expert > 0) {
    const RouterConfig& r = router;
    if (r.group != GroupSelect::None) {
      if (r.n_group < 2 || n_expert % r.n_group != 0) {
        fail("{}: {} experts cannot be split into {} routing groups", source, n_expert, r.n_group);
      }
      if (r.topk_group < 1 || r.topk_group > r.n_group) fail("{}: {} routing groups kept of {}", source, r.topk_group, r.n_group);
      if (r.group == GroupSelect::Top2Sum && n_expert / r.n_group < 2) {
        fail("{}: groups of {} expert(s) cannot be ranked by their two best scores", source, n_expert / r.n_group);
      }
      if (n_expert_used > r.topk_group * (n_expert / r.n_group)) {
        fail("{}: top-{} does not fit in {} groups of {} experts", source, n_expert_used, r.topk_group, n_expert / r.n_group);
      }
    }
    if (!(r.scale > 0.f)) fail("{}: routed scaling factor must be positive, found {}", source, r.scale);
  }
  if (!layer_experts.empty()) {
    if (static_cast<int>(layer_experts.size()) != n_layer) {
      fail("{}: {} per-layer expert counts for {} layers", source, layer_experts.size(), n_layer);
    }
    for (int l = 0; l < n_layer; ++l) {
      const int lo = is_moe(l) ? 1 : 0, hi = is_moe(l) ? n_expert : 0;
      if (layer_experts[l] < lo || layer_experts[l] > hi) {
        fail("{}: layer {} has {} experts; expected {}..{}", source, l, layer_experts[l], lo, hi);
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
    if (!is_moe(l)) continue;
    if (n_expert_used > router_rows(l)) {
      fail("{}: experts per token {} exceeds layer {}'s {} router rows", source, n_expert_used, l, router_rows(l));
    }
    if (router_rows(l) > n_expert) fail("{}: layer {} has {} router rows, more than the expert count {}", source, l, router_rows(l), n_expert);
  }
  if (attention == AttentionKind::Mla) {
    positive("kv_lora_rank", mla.kv_lora_rank);
    positive("qk_nope_head_dim", mla.qk_nope);
    positive("qk_rope_head_dim", mla.qk_rope);
    positive("v_head_dim", mla.v_dim);
    if (mla.q_lora_rank < 0) fail("{}: q_lora_rank must not be negative, found {}", source, mla.q_lora_rank);
    if (head_dim != mla.qk_dim() || head_dim_v != mla.v_dim || n_head_kv != n_head) {
      fail("{}: MLA head sizes disagree (q/k {} vs nope {} + rope {}, v {} vs {}, kv heads {} vs {})", source, head_dim,
           mla.qk_nope, mla.qk_rope, head_dim_v, mla.v_dim, n_head_kv, n_head);
    }
  }
  if (rope.n_rot <= 0 || rope.n_rot % 2 != 0 || rope.n_rot > head_dim) {
    fail("{}: rotary dimensions {} must be even and within the head dimension {}", source, rope.n_rot, head_dim);
  }
  if (!(rms_eps > 0.f)) fail("{}: rms_norm_eps must be positive, found {}", source, rms_eps);
  if (!(rope.theta > 0.f)) fail("{}: rope_theta must be positive, found {}", source, rope.theta);
  if (rope.yarn && !(rope.factor >= 1.f && rope.orig_ctx > 0)) {
    fail("{}: YaRN needs factor >= 1 and an original context, found {} and {}", source, rope.factor, rope.orig_ctx);
  }
  if (!swa_layers.empty() && static_cast<int>(swa_layers.size()) != n_layer) {
    fail("{}: {} sliding-window flags for {} layers", source, swa_layers.size(), n_layer);
  }
  if (sliding_window < 0) fail("{}: sliding window must not be negative, found {}", source, sliding_window);
  for (float s : {embd_scale, residual_scale, logit_scale}) {
    if (!std::isfinite(s) || s == 0.f) fail("{}: a Granite multiplier is {}", source, s);
  }
}

std::string ModelConfig::summary() const {
  std::string ffn;
  if (n_expert > 0) {
    ffn = fmt::format("experts {} top-{} width {}", n_expert, n_expert_used, n_ff);
    if (n_ff_shared) ffn += fmt::format(" + shared {}", n_ff_shared);
    if (has_dense_layers()) ffn += fmt::format(" | dense layers width {}", n_ff_dense);
  } else {
    ffn = fmt::format("dense width {}", n_ff_dense);
  }
  std::string attn = attention == AttentionKind::Mla
                         ? fmt::format("MLA heads {} (q lora {}, kv lora {}, nope {}, rope {}, v {})", n_head, mla.q_lora_rank,
                                       mla.kv_lora_rank, mla.qk_nope, mla.qk_rope, mla.v_dim)
                         : fmt::format("heads {} (kv {}, dim {})", n_head, n_head_kv, head_dim);
  return fmt::format("arch {} | vocab {} | hidden {} | layers {} | {} | {} | rope θ {} ({}{}{}) | eps {}", arch_gguf_name(arch),
                     n_vocab, n_embd, n_layer, attn, ffn, rope.theta, rope.style == RopeStyle::Neox ? "neox" : "interleaved",
                     rope.n_rot != head_dim ? fmt::format(", {} dims", rope.n_rot) : "",
                     rope.yarn ? fmt::format(", yarn ×{}", rope.factor) : "", rms_eps) +
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
  if (f.has(kExpertMapKeyPrefix + std::string("0")) || f.has(kExpertMapKeyPrefix + std::to_string(c.n_dense_lead))) {
    for (int l = 0; l < c.n_layer; ++l) {
      const std::string key = kExpertMapKeyPrefix + std::to_string(l);
      std::vector<int>& map = c.expert_map.emplace_back();
      if (!c.is_moe(l)) continue;  // dense layers route nothing
      if (!f.has(key)) fail("{}: missing key '{}' (a merged model maps the router rows of every MoE layer)", f.path(), key);
      for (const auto& item : f.get_array(key).items) map.push_back(array_int(f, key, item));
    }
  }
}

}  // namespace

ModelConfig config_from_hf(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  return config_from_hf_json(read_json_file(path), path);
}

ModelConfig config_from_hf_json(const nlohmann::json& json, const std::string& path) {
  if (!json.is_object()) fail("{}: expected a JSON object", path);
  const arch::HfConfig h(json, path);
  const std::string type = h.get<std::string>("model_type");
  const arch::ArchInfo* family = arch::find_by_hf_type(type);
  if (!family) fail("{}: model_type '{}' not supported (expected one of {})", path, type, arch::known_hf_types());
  ModelConfig c;
  c.arch = family->arch;
  c.n_vocab = h.get<int>("vocab_size");
  c.n_embd = h.get<int>("hidden_size");
  c.n_layer = h.get<int>("num_hidden_layers");
  c.n_head = h.get<int>("num_attention_heads");
  c.n_head_kv = h.get<int>("num_key_value_heads", c.n_head);
  c.head_dim =
      h.has("head_dim") ? h.get<int>("head_dim") : derived_head_dim(path, c.n_embd, c.n_head);
  c.head_dim_v = c.head_dim;
  c.rms_eps = h.get<float>("rms_norm_eps", 1e-6f);
  c.rope.theta = h.get<float>("rope_theta", 10000.f);
  c.rope.n_rot = c.head_dim;
  c.rope.style = RopeStyle::Neox;
  c.n_ctx_train = h.get<int>("max_position_embeddings", 4096);
  c.tie_embeddings = h.get<bool>("tie_word_embeddings", false);
  arch::read_hf_rope_scaling(h, c);
  family->from_hf(h, type, c);
  c.validate(path);
  return c;
}

ModelConfig config_from_gguf(const format::GgufFile& f) {
  const std::string name = f.get_string("general.architecture");
  const arch::ArchInfo* family = arch::find_by_gguf_name(name);
  if (!family) fail("{}: general.architecture '{}' not supported (expected one of {})", f.path(), name, arch::known_gguf_names());
  const arch::GgufKeys k(f, name);
  ModelConfig c;
  c.arch = family->arch;
  c.n_embd = k.u32("embedding_length");
  c.n_layer = k.u32("block_count");
  c.n_head = k.u32("attention.head_count");
  c.n_head_kv = k.u32("attention.head_count_kv", c.n_head);
  c.head_dim = k.has("attention.key_length") ? k.u32("attention.key_length")
                                             : derived_head_dim(f.path(), c.n_embd, c.n_head);
  c.head_dim_v = k.u32("attention.value_length", c.head_dim);
  c.rms_eps = k.f32("attention.layer_norm_rms_epsilon", 1e-5f);
  c.rope.theta = k.f32("rope.freq_base", 10000.f);
  c.rope.n_rot = k.u32("rope.dimension_count", c.head_dim);
  c.rope.style = RopeStyle::Neox;
  c.n_ctx_train = k.u32("context_length", 4096);
  c.n_expert = k.u32("expert_count", 0);
  c.n_expert_used = k.u32("expert_used_count", 0);
  const std::string scaling = k.str("rope.scaling.type", "none");
  if (scaling == "yarn") {
    RopeConfig& r = c.rope;
    r.yarn = true;
    r.factor = k.f32("rope.scaling.factor");
    r.orig_ctx = k.u32("rope.scaling.original_context_length", c.n_ctx_train);
    r.beta_fast = k.f32("rope.scaling.yarn_beta_fast", 32.f);
    r.beta_slow = k.f32("rope.scaling.yarn_beta_slow", 1.f);
    r.truncate = f.get_bool(arch::kRopeTruncateKey, true);
    // llama.cpp's rope magnitude for YaRN without mscale keys: 0.1 ln(factor) + 1, as
    // transformers' default attention_factor.
    r.attn_factor = static_cast<float>(f.get_float(arch::kRopeAttnFactorKey, r.factor > 1.f ? 0.1 * std::log(r.factor) + 1.0 : 1.0));
  } else if (scaling != "none" && scaling != "linear") {
    fail("{}: {}.rope.scaling.type '{}' is not supported (expected yarn or none)", f.path(), name, scaling);
  } else if (scaling == "linear" && k.f32("rope.scaling.factor", 1.f) != 1.f) {
    fail("{}: linear RoPE scaling (factor {}) is not supported", f.path(), k.f32("rope.scaling.factor", 1.f));
  }
  family->from_gguf(k, c);
  // Vocabulary size: the metadata key is optional in llama.cpp's files; the token list and
  // the embedding agree with it when present (checked by the loader).
  if (k.has("vocab_size")) {
    c.n_vocab = k.u32("vocab_size");
  } else if (const auto* t = f.find_tensor("token_embd.weight")) {
    c.n_vocab = static_cast<int>(t->shape[0]);
  }
  c.tie_embeddings = f.find_tensor("output.weight") == nullptr;
  read_reduction(f, c);
  c.validate(f.path());
  return c;
}

}  // namespace mcmoe::model

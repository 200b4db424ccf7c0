#pragma once
// Hyperparameters of every supported architecture. Families differ only in the switches
// here, named after the config keys that set them; what each family sets lives in its arch
// file (model/arch/NAME.cpp). The forward pass is one code path over these switches.
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "moe/router.h"

namespace mcmoe::format {
class GgufFile;
}

namespace mcmoe::model {

enum class Arch {
  Llama,       // Mixtral and dense Llama/Mistral: GGUF arch "llama"
  Qwen2Moe,    // shared expert with sigmoid gate, q/k/v bias, top-k not renormalised
  Qwen3Moe,    // per-head q/k RMSNorm, renormalised top-k
  Olmoe,       // q/k RMSNorm over all heads, top-k not renormalised
  Deepseek2,   // DeepSeek-V2/V3: multi-head latent attention, grouped routing, shared experts
  Glm4Moe,     // GLM-4.5: partial rotary, sigmoid grouped routing, shared expert
  GptOss,      // attention sinks, sliding-window layers, biases everywhere, clamped SwiGLU
  GraniteMoe,  // embedding / residual / attention / logit multipliers
};
const char* arch_gguf_name(Arch a);  // "llama", "qwen2moe", ..., "deepseek2", "gpt-oss"

// How RoPE pairs dimensions: Hugging Face checkpoints mostly rotate the two halves of the
// rotated part (NeoX style); llama.cpp's "llama" GGUFs store q/k rows permuted so that
// adjacent pairs rotate (GPT-J style), and DeepSeek keeps adjacent pairs natively.
enum class RopeStyle { Neox, Interleaved };

enum class QkNorm { None, PerHead, AllHeads };

// Rotary embedding of `n_rot` dimensions per head (the first n_rot; the rest pass
// unchanged), with optional YaRN (arXiv 2309.00071) as Hugging Face's
// _compute_yarn_parameters computes it.
struct RopeConfig {
  float theta = 10000.f;
  int n_rot = 0;  // 0 until the loader sets it: head_dim, or qk_rope_head_dim (MLA), or partial
  RopeStyle style = RopeStyle::Neox;
  bool yarn = false;
  float factor = 1.f;      // rope_scaling.factor
  int orig_ctx = 0;        // original_max_position_embeddings
  float beta_fast = 32.f;  // correction range, in rotations
  float beta_slow = 1.f;
  bool truncate = true;    // round the correction range to whole dimensions (false: gpt-oss)
  float attn_factor = 1.f; // multiplies cos and sin (so q·k by its square)
};

enum class AttentionKind {
  Gqa,  // grouped-query attention with per-head K and V in the cache
  Mla,  // DeepSeek's multi-head latent attention: the cache holds the compressed latent
};

// MLA dimensions (DeepSeek-V2/V3). q = q_b(norm(q_a(x))) with a q LoRA, else q_proj(x);
// kv_a_mqa(x) = [c_kv (kv_lora_rank) | k_pe (qk_rope)]; kv_b(norm(c_kv)) = per head
// [k_nope (qk_nope) | v (v_dim)].
struct MlaConfig {
  int q_lora_rank = 0;  // 0: no q LoRA (q_proj)
  int kv_lora_rank = 0;
  int qk_nope = 0;
  int qk_rope = 0;
  int v_dim = 0;
  // The file stores kv_b split as attn_k_b [n_head, kv_lora_rank, qk_nope] (W_UK transposed)
  // and attn_v_b [n_head, v_dim, kv_lora_rank], as llama.cpp's converters have since 2025;
  // false: one attn_kv_b (Hugging Face, and older GGUFs).
  bool split_kv_b = false;
  int qk_dim() const { return qk_nope + qk_rope; }
  int latent() const { return kv_lora_rank + qk_rope; }  // cache values per token and layer
};

// Routing rules live with the router (moe/router.h); a family's is part of its config.
using moe::GroupSelect;
using moe::ScoreFunc;
using RouterConfig = moe::RouterRule;

enum class Activation {
  SiluGlu,    // silu(gate) * up
  SwigluOai,  // gpt-oss: (clamp(up, ±limit) + 1) · g · sigmoid(alpha · g), g = min(gate, limit)
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;    // q/k head size (GQA); MLA: qk_nope + qk_rope
  int head_dim_v = 0;  // v head size: head_dim, or MLA's v_dim
  AttentionKind attention = AttentionKind::Gqa;
  MlaConfig mla;
  bool attn_bias = false;      // q/k/v projections carry a bias
  bool attn_out_bias = false;  // the output projection carries a bias (gpt-oss)
  QkNorm qk_norm = QkNorm::None;
  float clip_qkv = 0.f;        // OLMoE: clamp q, k, v to ±clip_qkv after the norms; 0: off
  float attn_scale = 0.f;      // softmax scale; 0: 1/sqrt(head_dim) (MLA: also YaRN's mscale²)
  float mla_mscale = 1.f;      // MLA with YaRN: the softmax scale is multiplied by this squared
  bool attn_sinks = false;     // gpt-oss: one learned logit per head joins every softmax
  int sliding_window = 0;      // keys a query sees in a sliding layer (i − j < window); 0: none
  std::vector<bool> swa_layers;  // [n_layer] layers that use the window; empty: none
  RopeConfig rope;
  float rms_eps = 1e-5f;
  int n_ctx_train = 4096;
  bool tie_embeddings = false;
  // Granite-MoE multipliers: embeddings × embd_scale, each branch output × residual_scale
  // before it joins the residual stream, logits ÷ logit_scale.
  float embd_scale = 1.f;
  float residual_scale = 1.f;
  float logit_scale = 1.f;

  // Feed-forward. A layer is dense (one MLP of n_ff_dense, no router) or MoE (n_expert
  // routed experts of n_ff, top n_expert_used, plus an always-on shared MLP of n_ff_shared
  // when that is > 0). Dense layers: the first n_dense_lead, and with moe_every > 1 those
  // whose index is not a multiple of it (DeepSeek's moe_layer_freq).
  int n_expert = 0;       // routed experts per MoE layer; the widest router when layers differ; 0: dense model
  int n_expert_used = 0;  // top-k
  int n_ff = 0;           // width of one routed expert
  int n_ff_dense = 0;     // width of a dense layer's MLP
  int n_ff_shared = 0;    // width of the shared expert(s), 0 when absent
  bool shared_gate = false;  // Qwen2-MoE: the shared expert is scaled by sigmoid(w · x)
  int n_dense_lead = 0;
  int moe_every = 1;
  RouterConfig router;
  Activation activation = Activation::SiluGlu;
  float swiglu_alpha = 1.702f, swiglu_limit = 7.f;  // SwigluOai
  bool expert_bias = false;  // gpt-oss: biases on the experts' gate, up and down

  // Expert reduction (mcmoe reduce). layer_experts: experts stored in each layer, when
  // pruning left layers with different counts or merging left fewer experts than router
  // rows; empty: n_expert in every MoE layer. expert_map: for merged models, the stored expert each
  // router row points at ([n_layer][router rows]); empty: router row e is expert e. The
  // router keeps all rows, so a merged expert picked through two rows runs once with the
  // two gates summed (moe::fold_merged_picks).
  std::vector<int> layer_experts;
  std::vector<std::vector<int>> expert_map;

  bool is_moe(int layer) const {
    return n_expert > 0 && layer >= n_dense_lead && (moe_every <= 1 || layer % moe_every == 0);
  }
  bool has_dense_layers() const;
  // Stored routed experts of a layer (0 for a dense layer).
  int experts(int layer) const {
    if (!is_moe(layer)) return 0;
    return layer_experts.empty() ? n_expert : layer_experts[layer];
  }
  int router_rows(int layer) const {
    if (!is_moe(layer)) return 0;
    return expert_map.empty() ? experts(layer) : static_cast<int>(expert_map[layer].size());
  }
  bool is_swa(int layer) const { return sliding_window > 0 && !swa_layers.empty() && swa_layers[layer]; }
  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }       // GQA k (and v when head_dim_v == head_dim)
  int v_dim() const { return n_head_kv * head_dim_v; }      // GQA v
  int attn_out_dim() const { return n_head * head_dim_v; }  // input width of the output projection

  // Throws an Error naming `source` when a value is out of range or inconsistent.
  void validate(const std::string& source) const;
  std::string summary() const;
  std::string reduction_summary() const;  // "" for a model that was not reduced
};

// GGUF metadata of expert reduction: u32 [n_layer] experts per layer, and one i32 array
// per layer (key + layer number) mapping router rows to stored experts.
inline constexpr const char* kLayerExpertsKey = "mcmoe.layer_expert_count";
inline constexpr const char* kExpertMapKeyPrefix = "mcmoe.reduce.expert_map.";

// Arithmetic on a configuration's raw values, before validate() has bounded them: a head size
// derived from the width (0 when there are no heads, which validate() reports; an error when
// the heads do not divide the width), and a product or sum of two sizes that must stay a
// positive int (an error naming `what` otherwise: int overflow is undefined).
int derived_head_dim(const std::string& source, int64_t n_embd, int64_t n_head);
int checked_size(const std::string& source, const char* what, int64_t value);

ModelConfig config_from_hf(const std::string& dir);  // config.json
// A parsed config.json (synthetic models describe themselves this way); `source` names it in errors.
ModelConfig config_from_hf_json(const nlohmann::json& j, const std::string& source);
ModelConfig config_from_gguf(const format::GgufFile& f);

}  // namespace mcmoe::model

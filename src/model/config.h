#pragma once
// Hyperparameters of every supported architecture. The families differ only in switches
// here; the forward pass is one code path (a dense FFN model is a MoE with one expert).
#include <string>
#include <vector>

namespace mcmoe::format {
class GgufFile;
}

namespace mcmoe::model {

enum class Arch {
  Llama,     // Mixtral and dense Llama/Mistral: GGUF arch "llama"
  Qwen2Moe,  // shared expert with sigmoid gate, q/k/v bias, top-k not renormalised
  Qwen3Moe,  // per-head q/k RMSNorm, renormalised top-k
  Olmoe,     // q/k RMSNorm over all heads, top-k not renormalised
};
const char* arch_gguf_name(Arch a);  // "llama", "qwen2moe", "qwen3moe", "olmoe"

// How RoPE pairs dimensions: Hugging Face checkpoints rotate the two halves of each head
// (NeoX style); llama.cpp's "llama" GGUFs store q/k rows permuted so that adjacent pairs
// rotate (GPT-J style). The converter applies that permutation, so a file's layout decides.
enum class RopeStyle { Neox, Interleaved };

enum class QkNorm { None, PerHead, AllHeads };

struct ModelConfig {
  Arch arch = Arch::Llama;
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int n_expert = 1;       // experts per MoE layer (1: dense FFN); the widest router when layers differ
  int n_expert_used = 1;  // top-k
  int n_ff = 0;           // width of one expert
  int n_ff_shared = 0;    // width of the shared expert, 0 when absent
  bool norm_topk_prob = true;
  bool attn_bias = false;  // q/k/v projections carry a bias
  QkNorm qk_norm = QkNorm::None;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.f;
  RopeStyle rope_style = RopeStyle::Neox;
  int n_ctx_train = 4096;
  bool tie_embeddings = false;
  // Expert reduction (mcmoe reduce). layer_experts: experts stored in each layer, when
  // pruning left layers with different counts or merging left fewer experts than router
  // rows; empty: n_expert everywhere. expert_map: for merged models, the stored expert each
  // router row points at ([n_layer][router rows]); empty: router row e is expert e. The
  // router keeps all rows, so a merged expert picked through two rows runs once with the
  // two gates summed (moe::fold_merged_picks).
  std::vector<int> layer_experts;
  std::vector<std::vector<int>> expert_map;
  int experts(int layer) const { return layer_experts.empty() ? n_expert : layer_experts[layer]; }
  int router_rows(int layer) const {
    return expert_map.empty() ? experts(layer) : static_cast<int>(expert_map[layer].size());
  }

  // Throws an Error naming `source` when a value is out of range or inconsistent.
  void validate(const std::string& source) const;
  std::string summary() const;
  std::string reduction_summary() const;  // "" for a model that was not reduced
};

// GGUF metadata of expert reduction: u32 [n_layer] experts per layer, and one i32 array
// per layer (key + layer number) mapping router rows to stored experts.
inline constexpr const char* kLayerExpertsKey = "mcmoe.layer_expert_count";
inline constexpr const char* kExpertMapKeyPrefix = "mcmoe.reduce.expert_map.";

ModelConfig config_from_hf(const std::string& dir);  // config.json
ModelConfig config_from_gguf(const format::GgufFile& f);

}  // namespace mcmoe::model

#pragma once
// The tensor inventory: every tensor a model of a given configuration has, with its GGUF
// name, shape, role and where it lives in ModelWeights / the stored experts. It is the one
// list of "the tensors of a layer": the loaders, the GGUF writer, quantize, calibrate,
// reduce, lowrank, the offloading cache, bench and inspect all walk it, so a family's
// tensors are declared once, by the switches of its ModelConfig.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/weights.h"

namespace mcmoe::model {

enum class TensorRole {
  Embedding,     // token embeddings
  Output,        // the output head
  Norm,          // RMSNorm weights (layer, q/k, latent and final norms)
  Attention,     // attention projections, their biases and sinks
  Router,        // router weights and biases
  RoutedExpert,  // routed experts' projections and biases (what offloading caches)
  SharedExpert,  // the always-on shared expert and its gate
  DenseMlp,      // the MLP of a dense layer
};
const char* role_name(TensorRole r);  // "attention", "routed expert", ...

// One kind of tensor; with the layer (and expert) it names a tensor of the file.
enum class TensorKind {
  TokenEmbd,
  OutputNorm,
  Output,
  AttnNorm,
  AttnQ,
  AttnK,
  AttnV,
  AttnOut,
  AttnQBias,
  AttnKBias,
  AttnVBias,
  AttnOutBias,
  AttnQNorm,
  AttnKNorm,
  AttnSinks,
  AttnQA,
  AttnQANorm,
  AttnQB,
  AttnKvAMqa,
  AttnKvANorm,
  AttnKvB,
  AttnKB,
  AttnVB,
  FfnNorm,
  Router,
  RouterBias,
  ChoiceBias,
  DenseGate,
  DenseUp,
  DenseDown,
  ShexpGate,
  ShexpUp,
  ShexpDown,
  ShexpRouter,
  ExpGate,
  ExpUp,
  ExpDown,
  ExpGateBias,
  ExpUpBias,
  ExpDownBias,
};

struct TensorSlot {
  TensorKind kind;
  TensorRole role;
  int layer = -1;    // -1: a global tensor
  int expert = -1;   // routed experts only
  std::string name;  // GGUF name (routed experts in the per-expert form blk.N.ffn_gate.E.weight)
  std::vector<int64_t> shape;
  // A linear weight [n_out, n_in] (quantizable); false: a vector kept in f32 (norm, bias,
  // sink), converted to f32 on load.
  bool matrix = true;
  // For matrices: the forward pass's named intermediate (model/observer.h) the matrix reads,
  // whose Gram matrix is its GPTQ Hessian: "attn_norm", "q_a_norm", "kv_a_norm",
  // "attn_ctx", "ffn_norm", "dense_hidden", "shared_hidden"; routed experts read their
  // routed rows ("expert_in") and hidden state ("expert_hidden").
  const char* input = "";
  TensorView* view = nullptr;
  ops::LowRankWeights* low_rank = nullptr;  // routed expert projections: their factored form
};

using SlotVisitor = std::function<void(const TensorSlot&)>;
using LayerExperts = std::vector<std::vector<moe::ExpertWeights>>;  // [n_layer][stored experts]

// Non-routed tensors of layer l (attention, norms, router, dense MLP, shared expert), then
// its routed experts (each expert's gate, up, down and biases, expert by expert).
void for_each_layer_tensor(const ModelConfig& c, int l, LayerWeights& L,
                           std::vector<moe::ExpertWeights>& experts, const SlotVisitor& f);
// Token embeddings, output norm and output head (not when tied), then every layer.
void for_each_tensor(const ModelConfig& c, ModelWeights& w, LayerExperts& experts,
                     const SlotVisitor& f);
// Read-only walks: the slots' views point into w / experts; do not write through them.
void for_each_layer_tensor(const ModelConfig& c, int l, const LayerWeights& L,
                           const std::vector<moe::ExpertWeights>& experts, const SlotVisitor& f);
void for_each_tensor(const ModelConfig& c, const ModelWeights& w, const LayerExperts& experts,
                     const SlotVisitor& f);

// The stacked GGUF name of a routed expert kind in layer l: blk.N.ffn_gate_exps.weight, ...
std::string stacked_expert_name(TensorKind kind, int l);
// The projection of an expert kind: "ffn_gate", "ffn_up" or "ffn_down".
const char* expert_proj_name(TensorKind kind);

}  // namespace mcmoe::model

#pragma once
// Random-weight models of any family and size, for tests and speed benchmarks. A synthetic
// model describes itself as the family's own config.json would (so the family's arch file,
// not this one, decides what its keys mean) and its tensors are the inventory's
// (model/inventory.h), filled with random values. The vocabulary is a SentencePiece-style
// one (control tokens, 256 byte tokens, then filler pieces) so every text can be tokenized
// and every command works on a synthetic file.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mcmoe::api {

struct SynthOptions {
  // GGUF architecture: mixtral (GGUF arch llama), qwen2moe, qwen3moe, olmoe, deepseek2,
  // glm4moe, gpt-oss, granitemoe.
  std::string arch = "mixtral";
  int layers = 2;
  int dim = 256;
  int ff = 512;  // routed expert width
  int experts = 8;
  int top_k = 2;
  int vocab = 512;
  int heads = 0;         // 0: dim / 64 (at least 1)
  int kv_heads = 0;      // 0: heads / 4 (at least 1); MLA: heads
  int head_dim = 0;      // 0: dim / heads
  int shared_ff = 0;     // shared expert width (qwen2moe, deepseek2, glm4moe), 0: none
  int dense_ff = 0;      // width of the leading dense layers' MLP (deepseek2, glm4moe); 0: 4 · dim
  int dense_layers = 0;  // leading dense layers (deepseek2, glm4moe)
  // Multi-head latent attention (deepseek2).
  int q_lora = 0, kv_lora = 512, rope_dim = 64, nope_dim = 128, v_dim = 128;
  bool v3_routing = false;  // deepseek2: V3's sigmoid scores + bias, 8 groups keep 4, scale 2.5
  float rope_theta = 0.f;   // 0: the family's usual base
  bool yarn = false;  // deepseek2: DeepSeek's YaRN (factor 40 from 4096); gpt-oss always has YaRN
  DType type = DType::Q8_0;
  uint64_t seed = 1;
  std::function<void(size_t, size_t)> progress = {};
  // The vocabulary (tokenizer.* metadata) of this GGUF instead of the filler one; --vocab is
  // then its size. Lets llama.cpp and mcmoe read real text with the synthetic model.
  std::string tokenizer_from = {};
  // Route like the model of this trace (api/synth_routing.h); needs tokenizer_from (the
  // trace's token ids) and experts a multiple of the trace's (each traced expert split into
  // that many copies); softmax-routed families only.
  std::string routing_from = {};
  float routing_noise = 0.3f;
  // Deeper than the trace: "stretch" (blocks of adjacent layers imitate one traced layer) or
  // "cycle" (layer l imitates traced layer l mod the trace's layers).
  std::string routing_layers = "stretch";
};

// Released models' shapes (all layers): deepseek-v2-lite, deepseek-v3, qwen3-30b-a3b,
// gpt-oss-20b, glm-4.5-air, granite-3.0-1b-a400m, olmoe-1b-7b, mixtral-8x7b. Fails naming
// the known ones for anything else.
SynthOptions synth_preset(const std::string& name);
std::vector<std::string> synth_preset_names();

void synth_model(const SynthOptions& o, const std::string& out_path);

}  // namespace mcmoe::api

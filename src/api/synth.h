#pragma once
// Random-weight models of any size, for tests and speed benchmarks. The vocabulary is a
// SentencePiece-style one (control tokens, 256 byte tokens, then filler pieces) so every
// text can be tokenized and every command works on a synthetic file.
#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"

namespace mcmoe::api {

struct SynthOptions {
  std::string arch = "mixtral";  // mixtral (GGUF arch llama) or qwen2moe
  int layers = 2;
  int dim = 256;
  int ff = 512;
  int experts = 8;
  int top_k = 2;
  int vocab = 512;
  int heads = 0;     // 0: dim / 64 (at least 1)
  int kv_heads = 0;  // 0: heads / 4 (at least 1)
  int shared_ff = 0; // qwen2moe only
  DType type = DType::Q8_0;
  uint64_t seed = 1;
  std::function<void(size_t, size_t)> progress;
  // The vocabulary (tokenizer.* metadata) of this GGUF instead of the filler one; --vocab is
  // then its size. Lets llama.cpp and mcmoe read real text with the synthetic model.
  std::string tokenizer_from;
  // Route like the model of this trace (api/synth_routing.h); needs tokenizer_from (the
  // trace's token ids) and experts equal to the trace's.
  std::string routing_from;
  float routing_noise = 0.3f;
};

void synth_model(const SynthOptions& o, const std::string& out_path);

}  // namespace mcmoe::api

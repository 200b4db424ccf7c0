#pragma once
// Text generation: sampling and the prefill/decode loop.
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::api {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy (argmax)
  int top_k = 40;            // <= 0: no top-k cut
  float top_p = 0.95f;       // >= 1: no nucleus cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  int32_t sample(std::span<const float> logits);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

int32_t argmax(std::span<const float> logits);

// A prompt's token ids: BOS when the tokenizer asks for one and the text does not already
// start with it, then the text. parse_special: control tokens spelled in the text become their
// ids (a rendered chat template, llama.cpp's parse_special); otherwise the text is only text.
std::vector<int32_t> prompt_tokens(const tokenizer::Tokenizer& tok, const std::string& text,
                                   bool parse_special);

// Tokens that end a generation: EOS, and the end-of-turn control tokens chat templates close
// a reply with (<|im_end|>, <|eot_id|>, <|end|>, <|return|>, <|call|>, <|endoftext|>, ...)
// when the vocabulary has them as control tokens.
std::vector<int32_t> end_of_generation_ids(const tokenizer::Tokenizer& tok);

struct GenerateStats {
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Prefills `prompt` then samples up to n_predict tokens, calling on_token for each; stops
// early at end-of-sequence or when on_token returns false.
GenerateStats generate(model::Session& session, std::span<const int32_t> prompt, int n_predict,
                       Sampler& sampler, int32_t eos_id,
                       const std::function<bool(int32_t)>& on_token);

}  // namespace mcmoe::api

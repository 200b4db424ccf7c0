#include "api/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace mcmoe::api {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

int32_t Sampler::sample(std::span<const float> logits) {
  if (p_.temperature <= 0.f) return argmax(logits);
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = candidates_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
    keep = static_cast<size_t>(p_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  candidates_.resize(keep);
  const float mx = candidates_[0].first;
  double sum = 0;
  for (auto& c : candidates_) {
    c.first = std::exp((c.first - mx) / p_.temperature);
    sum += c.first;
  }
  if (p_.top_p < 1.f) {
    double cum = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      cum += candidates_[n].first / sum;
      ++n;
      if (cum >= p_.top_p) break;
    }
    candidates_.resize(n);
    sum = 0;
    for (const auto& c : candidates_) sum += c.first;
  }
  std::uniform_real_distribution<double> uni(0.0, sum);
  double r = uni(rng_);
  for (const auto& c : candidates_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return candidates_.back().second;
}

GenerateStats generate(model::Session& session, std::span<const int32_t> prompt, int n_predict,
                       Sampler& sampler, int32_t eos_id,
                       const std::function<bool(int32_t)>& on_token) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) fail("generate: empty prompt");
  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(prompt.size());
  auto t0 = clock::now();
  std::span<const float> logits = session.eval(prompt, false);
  st.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  for (int i = 0; i < n_predict; ++i) {
    const int32_t tok = sampler.sample(logits);
    ++st.generated_tokens;
    if (!on_token(tok) || tok == eos_id) break;
    if (i + 1 == n_predict || session.n_past() >= session.n_ctx()) break;
    logits = session.eval(std::span<const int32_t>(&tok, 1), false);
  }
  st.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return st;
}

std::vector<int32_t> prompt_tokens(const tokenizer::Tokenizer& tok, const std::string& text,
                                   bool parse_special) {
  std::vector<int32_t> body = parse_special ? tok.encode_with_special(text) : tok.encode(text);
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 1);
  if (tok.add_bos() && tok.bos_id() >= 0 && (body.empty() || body.front() != tok.bos_id()))
    ids.push_back(tok.bos_id());
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int32_t> end_of_generation_ids(const tokenizer::Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
  for (const char* text : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|return|>",
                           "<|call|>", "<|endoftext|>", "<|end_of_text|>", "<end_of_turn>",
                           "<|user|>", "<|observation|>", "</s>", "<｜end▁of▁sentence｜>"}) {
    const int32_t id = tok.find_token(text);
    if (id >= 0 && tok.token_type(id) == tokenizer::TokenType::Control &&
        std::find(ids.begin(), ids.end(), id) == ids.end()) {
      ids.push_back(id);
    }
  }
  return ids;
}

}  // namespace mcmoe::api

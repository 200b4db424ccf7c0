#include "api/self_generate.h"

#include <algorithm>

#include "core/error.h"
#include "model/observer.h"
#include "model/session.h"

namespace mcmoe::api {

namespace {

// The top-k picks of the last forward pass, per layer: [n_tokens * k], -1 for none.
class RoutingCapture final : public model::ForwardObserver {
 public:
  explicit RoutingCapture(int n_layer) : picks(static_cast<size_t>(n_layer)) {}
  std::vector<std::vector<int>> picks;
  void on_routing(const model::RoutingEvent& e) override {
    if (e.layer < 0 || e.layer >= static_cast<int>(picks.size())) return;
    picks[e.layer].assign(e.topk_ids, e.topk_ids + e.n_tokens * e.k);
  }
};

class Tally {
 public:
  Tally(const model::ModelConfig& c, int64_t minimum) : minimum_(minimum) {
    counts.resize(static_cast<size_t>(c.n_layer));
    for (int l = 0; l < c.n_layer; ++l) {
      if (c.is_moe(l)) counts[l].assign(static_cast<size_t>(c.experts(l)), 0);
      if (minimum > 0) short_ += static_cast<int64_t>(counts[l].size());
    }
  }
  std::vector<std::vector<int64_t>> counts;

  // How much a token routed as `picks` brings the experts still short of the minimum:
  // Σ over its picks of the missing share (minimum − count) / minimum.
  double gain(const std::vector<std::vector<int>>& picks) const {
    double g = 0;
    for (size_t l = 0; l < counts.size(); ++l) {
      for (int e : picks[l]) {
        if (e < 0 || e >= static_cast<int>(counts[l].size())) continue;
        g += static_cast<double>(std::max<int64_t>(0, minimum_ - counts[l][e])) /
             static_cast<double>(minimum_);
      }
    }
    return g;
  }
  void add(const std::vector<std::vector<int>>& picks) {
    for (size_t l = 0; l < counts.size(); ++l) {
      for (int e : picks[l]) {
        if (e < 0 || e >= static_cast<int>(counts[l].size())) continue;
        if (++counts[l][e] == minimum_) --short_;
      }
    }
  }
  int64_t short_experts() const { return short_; }

 private:
  int64_t minimum_;
  int64_t short_ = 0;
};

}  // namespace

SelfGenerateResult self_generate(model::Model& m, const SelfGenerateOptions& o) {
  const model::ModelConfig& c = m.config();
  if (o.tokens < 2) fail("--self-generate {}: need at least 2 tokens", o.tokens);
  if (o.seq < 2) fail("self-generation: --seq {} is too short; need at least 2", o.seq);
  if (o.min_expert_tokens < 0)
    fail("--min-expert-tokens {}: expected 0 or more", o.min_expert_tokens);
  if (o.candidates < 1) fail("--steer-candidates {}: expected 1 or more", o.candidates);
  const int32_t bos = m.tokenizer().bos_id(), eos = m.tokenizer().eos_id();
  if (bos < 0) fail("self-generation: the model's tokenizer has no BOS token to start from");

  RoutingCapture capture(c.n_layer);
  model::Session s(m, {.n_ctx = o.seq, .n_threads = o.threads, .n_batch = 1, .observer = &capture});
  Sampler sampler(o.sampler);
  Tally tally(c, o.min_expert_tokens);
  SelfGenerateResult r;
  const int64_t n_vocab = c.n_vocab;
  std::vector<float> logits(static_cast<size_t>(n_vocab));
  auto forward = [&](int32_t t) {
    const std::span<const float> out = s.eval(std::span<const int32_t>(&t, 1), false);
    std::copy(out.begin(), out.end(), logits.begin());
    ++r.forwards;
  };
  std::vector<int32_t> cands;
  int64_t done = 0;
  while (done < o.tokens) {
    s.reset();
    std::vector<int32_t> ids{bos};
    forward(bos);
    tally.add(capture.picks);
    ++done;
    if (!o.seeds.empty()) {
      const std::vector<int32_t>& seed = o.seeds[r.sequences.size() % o.seeds.size()];
      for (int32_t t : seed) {
        if (static_cast<int>(ids.size()) >= o.seq - 1 || done >= o.tokens) break;
        if (t < 0 || t >= n_vocab)
          fail("self-generation: seed token {} is outside the vocabulary of {}", t, n_vocab);
        forward(t);
        tally.add(capture.picks);
        ids.push_back(t);
        ++done;
      }
    }
    while (static_cast<int>(ids.size()) < o.seq && done < o.tokens) {
      int32_t next = sampler.sample(logits);
      if (o.min_expert_tokens > 0 && o.candidates > 1 && tally.short_experts() > 0) {
        // Distinct samples, the first as drawn: with no gain anywhere the choice is an
        // ordinary sample.
        cands.assign(1, next);
        for (int i = 1; i < o.candidates; ++i) {
          const int32_t t = sampler.sample(logits);
          if (std::find(cands.begin(), cands.end(), t) == cands.end()) cands.push_back(t);
        }
        const int64_t pos = s.n_past();
        double best_gain = -1;
        size_t best = 0;
        for (size_t i = 0; i < cands.size(); ++i) {
          if (i > 0) s.truncate(0, pos);
          forward(cands[i]);
          const double g = tally.gain(capture.picks);
          if (g > best_gain) {
            best_gain = g;
            best = i;
          }
        }
        next = cands[best];
        if (best + 1 != cands.size()) {  // the forward pass is deterministic: redo the kept one
          s.truncate(0, pos);
          forward(next);
        }
      } else {
        forward(next);
      }
      tally.add(capture.picks);
      ids.push_back(next);
      ++done;
      if (o.progress && done % 64 == 0) o.progress(done, o.tokens, tally.short_experts());
      if (next == eos) break;
    }
    r.sequences.push_back(std::move(ids));
  }
  if (o.progress) o.progress(done, o.tokens, tally.short_experts());
  for (const std::vector<int32_t>& seq : r.sequences) {
    std::vector<int32_t> body;
    for (int32_t t : seq) {
      if (t != bos && t != eos) body.push_back(t);
    }
    if (!r.text.empty()) r.text += "\n\n";
    r.text += m.tokenizer().decode(body);
  }
  r.counts = tally.counts;
  if (o.min_expert_tokens > 0) {
    for (int l = 0; l < c.n_layer; ++l) {
      for (size_t e = 0; e < r.counts[l].size(); ++e) {
        if (r.counts[l][e] < o.min_expert_tokens)
          r.short_of_minimum.push_back(
              {.layer = l, .expert = static_cast<int>(e), .tokens = r.counts[l][e]});
      }
    }
  }
  return r;
}

}  // namespace mcmoe::api

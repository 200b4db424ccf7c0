// The layer-aware demand policy ("cycle"): evict the expert whose next use is expected
// furthest away, estimated from what is known about MoE decoding and nothing else.
//
// Layers are visited in a fixed cycle, one step each per token. An expert of layer j is
// first needed again d steps from now (d = 1 for the next layer, a whole cycle L for the
// layer just computed). It is used at that visit with probability q; when it is not, each
// later visit uses it with its per-token rate p, so the expected wait is
//     E[next use] = d + (1 - q) · L / p.
// Belady evicts the largest true next use; this evicts the largest expected one.
//   * p is the expert's share of its layer's steps, counted with a half-life in tokens
//     (frequency with decay per layer), plus a prior worth `prior_tokens` tokens at the
//     layer's mean rate (or at its calibration share, when seeded) so that an expert seen
//     once is not taken for a hot one.
//   * q is p, except for the layers this token has still to visit: where the next layers'
//     routers have guessed (hint(), the predictor's top-k from the residual stream, no read
//     involved), q is the measured chance that a guessed or an unguessed expert is used;
//     without a guess, the next layer's q is conditioned on the experts this token picked in
//     the current layer (co-occurrence counts learned online).
// Admission follows from the same estimate: an expert read on demand that is rarely used
// gets a large E at once (it has just been used, so d = L, and p is small), so the next miss
// evicts it rather than a hot expert; LRU-flavoured policies need a separate admission
// filter for this, here it is the ordering itself.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "offload/cache_policy.h"

namespace mcmoe::offload {

namespace {

class Cycle final : public CachePolicy {
 public:
  Cycle(int n_layer, int n_expert, const CycleOptions& o, std::span<const double> seed)
      : n_layer_(n_layer),
        n_expert_(n_expert),
        o_(o),
        keep_(o.half_life_tokens > 0 ? std::exp2(-1.0 / o.half_life_tokens) : 1.0),
        count_(static_cast<size_t>(n_layer) * n_expert, 0.0),
        last_use_(count_.size(), 0),
        steps_(n_layer, 0),
        weight_(n_layer, 0.0),
        uses_(n_layer, 0),
        cooc_(static_cast<size_t>(n_layer) * n_expert * n_expert, 0.f),
        from_(count_.size(), 0.f),
        hinted_(count_.size(), 0),
        hint_ahead_(n_layer, 0),
        last_used_(count_.size(), 0) {
    for (int x = 0; x < 2; ++x) {
      visits_[x].assign(count_.size(), 0.0);
      reuses_[x].assign(count_.size(), 0.0);
    }
    if (n_layer < 1 || n_expert < 1)
      fail("cycle policy: {} layers x {} experts", n_layer, n_expert);
    // Each expert's share of its layer's uses, for the prior: calibration frequencies when
    // given (a cold cache then starts from what calibration says is hot), else uniform.
    share_.assign(count_.size(), 1.0 / n_expert);
    if (!seed.empty()) {
      if (seed.size() != count_.size())
        fail("cycle policy seed has {} counts for {} experts", seed.size(), count_.size());
      for (int l = 0; l < n_layer; ++l) {
        double sum = 0;
        for (int e = 0; e < n_expert; ++e) sum += std::max(0.0, seed[l * n_expert + e]);
        if (sum <= 0) continue;
        for (int e = 0; e < n_expert; ++e)
          share_[l * n_expert + e] = std::max(0.0, seed[l * n_expert + e]) / sum;
      }
    }
  }

  std::string name() const override { return "cycle"; }

  void begin_step(int layer, std::span<const int> ids, uint64_t) override {
    if (layer < 0 || layer >= n_layer_) return;
    // How good the hint for this layer was: the chance that a guessed expert is used, and
    // that one not guessed is, for hints made `ahead` layers before.
    if (const int a = hint_ahead_[layer]; a > 0) {
      int guessed = 0, right = 0;
      for (int e = 0; e < n_expert_; ++e) guessed += hinted_[layer * n_expert_ + e];
      for (int id : ids) right += hinted_[id];
      Outcome& o = outcome_[std::min(a, kMaxAhead) - 1];
      o.guessed += guessed;
      o.guessed_used += right;
      o.other += n_expert_ - guessed;
      o.other_used += static_cast<double>(ids.size()) - right;
      std::fill_n(hinted_.begin() + layer * n_expert_, n_expert_, uint8_t{0});
      hint_ahead_[layer] = 0;
    }
    // Co-occurrence: the previous step was this token's layer - 1 (one token per step in
    // decode; prefill steps carry many tokens and their union says nothing about pairs).
    const bool single =
        static_cast<int>(ids.size()) <= max_single_ && static_cast<int>(cur_.size()) <= max_single_;
    if (o_.co_occurrence && single && cur_layer_ == layer - 1 && !cur_.empty()) {
      for (int a : cur_) {
        from_[a] += 1.f;
        float* row = cooc_.data() + static_cast<size_t>(a) * n_expert_;
        for (int b : ids) row[b - layer * n_expert_] += 1.f;
      }
    }
    // Temporal: did each expert of the layer follow its own state at the last visit (used or
    // not by the previous token)? Counts decay with the half-life as the rates do.
    const bool learn = o_.temporal && static_cast<int>(ids.size()) <= max_single_;
    for (int e = 0; e < n_expert_; ++e) {
      const int id = layer * n_expert_ + e;
      const bool used = std::find(ids.begin(), ids.end(), id) != ids.end();
      if (learn) {
        const int st = last_used_[id];
        for (int x = 0; x < 2; ++x) {
          visits_[x][id] *= keep_;
          reuses_[x][id] *= keep_;
        }
        visits_[st][id] += 1.0;
        reuses_[st][id] += used;
      }
      last_used_[id] = used;
      count_[id] *= keep_;  // the uses of this step are added by on_use
    }
    ++steps_[layer];
    weight_[layer] = weight_[layer] * keep_ + 1.0;
    uses_[layer] += static_cast<int64_t>(ids.size());
    cur_layer_ = layer;
    cur_.assign(ids.begin(), ids.end());
  }

  void hint(int layer, int ahead, std::span<const int> ids) override {
    if (!o_.hints || layer < 0 || layer >= n_layer_ || ahead < 1) return;
    // The nearest guess wins: one made a layer before replaces one made two layers before.
    if (hint_ahead_[layer] > 0 && hint_ahead_[layer] < ahead) return;
    std::fill_n(hinted_.begin() + layer * n_expert_, n_expert_, uint8_t{0});
    for (int id : ids) {
      if (id >= layer * n_expert_ && id < (layer + 1) * n_expert_) hinted_[id] = 1;
    }
    hint_ahead_[layer] = ahead;
  }
  int hint_depth() const override { return o_.hints ? kMaxAhead : 0; }

  void on_use(int id, uint64_t clock) override {
    count_[id] += 1.0;
    last_use_[id] = clock + 1;
  }
  void on_prefetch(int id, uint64_t clock) override { last_use_[id] = clock + 1; }

  int victim(std::span<const int> candidates, uint64_t) const override {
    int best = candidates.front();
    double best_e = -1;
    for (int id : candidates) {
      const double e = expected_next_use(id);
      if (e > best_e || (e == best_e && last_use_[id] < last_use_[best])) {
        best = id;
        best_e = e;
      }
    }
    return best;
  }

  double expected_next_use(int id) const {
    const int j = id / n_expert_;
    const double p = rate(id);
    // Steps until layer j is visited again; the current layer's turn is a cycle away.
    const int d = cur_layer_ < 0 ? n_layer_ : ((j - cur_layer_ - 1 + n_layer_) % n_layer_) + 1;
    // After a visit that does not use it, each later visit uses it with q_idle; the first
    // visit with q_next, which knows more: the guess for this token's coming layers, the
    // co-occurrence with this layer's picks, or whether the last token used it.
    const double q_idle = o_.temporal ? chance(id, 0, p) : p;
    double q_next = o_.temporal ? chance(id, last_used_[id], p) : p;
    if (const int a = hint_ahead_[j]; a > 0 && j > cur_layer_) {
      // A guess for this token's layer j: the measured chance of a guessed (or an unguessed)
      // expert being used, which starts from a prior of 10 guesses right 8 times.
      const Outcome& o = outcome_[std::min(a, kMaxAhead) - 1];
      q_next = hinted_[id] ? (o.guessed_used + 8) / (o.guessed + 10)
                           : (o.other_used + 0.5) / (o.other + 10);
    } else if (o_.co_occurrence && j == cur_layer_ + 1 && !cur_.empty()) {
      double together = 0, seen = 0;
      for (int a : cur_) {
        together += cooc_[static_cast<size_t>(a) * n_expert_ + (id - j * n_expert_)];
        seen += from_[a];
      }
      // The marginal rate stands for `prior_tokens` observations, so a pair seen a few
      // times moves the estimate only a little.
      q_next = (together + o_.prior_tokens * p) / (seen + o_.prior_tokens);
    }
    return d + (1.0 - q_next) * n_layer_ / std::max(q_idle, 1e-9);
  }

 private:
  // The chance a visit uses the expert after a visit in state `st` (1: used), from the
  // decayed transition counts, with the rate p as a prior worth prior_tokens visits.
  double chance(int id, int st, double p) const {
    return (reuses_[st][id] + o_.prior_tokens * p) / (visits_[st][id] + o_.prior_tokens);
  }
  // Uses per step of the expert's layer, with the prior at the layer's mean picks per step.
  double rate(int id) const {
    const int l = id / n_expert_;
    const double mean_picks = steps_[l] ? static_cast<double>(uses_[l]) / steps_[l] : 1.0;
    const double prior_rate = std::min(1.0, mean_picks * share_[id]);
    const double p = (count_[id] + o_.prior_tokens * prior_rate) / (weight_[l] + o_.prior_tokens);
    return std::clamp(p, 1e-9, 1.0);
  }

  int n_layer_, n_expert_;
  CycleOptions o_;
  double keep_;                 // per-step factor of the half-life
  std::vector<double> count_;   // [id] uses, decayed at each step of its layer (begin_step)
  std::vector<uint64_t> last_use_;  // [id] clock + 1, for ties
  std::vector<int64_t> steps_;      // [layer] steps seen
  std::vector<double> weight_;      // [layer] decayed steps seen (= steps_ without a half-life)
  std::vector<int64_t> uses_;       // [layer] expert uses seen
  std::vector<float> cooc_;         // [a][b - (l+1) * n_expert]: a in layer l then b in l + 1
  std::vector<float> from_;         // [a] steps of a followed by a step of the next layer
  std::vector<double> share_;       // [id] prior share of its layer's uses
  std::vector<uint8_t> hinted_;     // [id] guessed for its layer's coming step
  std::vector<int> hint_ahead_;     // [layer] layers ahead the standing guess was made; 0: none
  static constexpr int kMaxAhead = 2;
  struct Outcome {
    double guessed = 0, guessed_used = 0, other = 0, other_used = 0;
  };
  Outcome outcome_[kMaxAhead];      // per distance of the guess
  std::vector<uint8_t> last_used_;  // [id] used at its layer's last step
  std::vector<double> visits_[2],
      reuses_[2];  // [state][id] decayed visits after a visit in state, uses among them
  int cur_layer_ = -1;
  std::vector<int> cur_;  // ids picked in the current step
  // Steps with more ids than this are batched prefill (many tokens): no co-occurrence.
  static constexpr int max_single_ = 16;
};

}  // namespace

std::unique_ptr<CachePolicy> make_cycle(int n_layer, int n_expert, const CycleOptions& o,
                                        std::span<const double> seed) {
  return std::make_unique<Cycle>(n_layer, n_expert, o, seed);
}

}  // namespace mcmoe::offload

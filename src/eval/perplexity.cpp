#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "model/observer.h"
#include "ops/logits.h"

namespace mcmoe::eval {

namespace {
size_t argmax(std::span<const float> v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Keeps each MoE layer's top-k picks of the window being evaluated, sorted per token so that
// two sets compare as arrays; everything is passed on to the session's own observer.
class RoutingRecorder final : public model::ForwardObserver {
 public:
  RoutingRecorder(model::ForwardObserver* next, int n_layer, int64_t n_tokens)
      : next_(next), layers_(static_cast<size_t>(n_layer)), n_tokens_(n_tokens) {}

  struct Layer {
    bool seen = false;
    int k = 0, n_expert = 0;
    std::vector<int> ids;  // [n_tokens, k]
  };
  const std::vector<Layer>& layers() const { return layers_; }

  void on_routing(const model::RoutingEvent& e) override {
    if (next_) next_->on_routing(e);
    if (e.layer < 0 || e.layer >= static_cast<int>(layers_.size())) return;
    Layer& L = layers_[static_cast<size_t>(e.layer)];
    L.seen = true;
    L.k = e.k;
    L.n_expert = e.n_expert;
    L.ids.resize(static_cast<size_t>(n_tokens_ * e.k), -1);
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      const int64_t pos = e.pos0 + t;
      if (pos < 0 || pos >= n_tokens_) continue;
      int* dst = L.ids.data() + pos * e.k;
      std::copy_n(e.topk_ids + t * e.k, e.k, dst);
      std::sort(dst, dst + e.k);
    }
  }
  void on_expert(const model::ExpertEvent& e) override {
    if (next_) next_->on_expert(e);
  }
  void on_tensor(std::string_view name, int layer, const float* data, int64_t rows,
                 int64_t cols) override {
    if (next_) next_->on_tensor(name, layer, data, rows, cols);
  }

 private:
  model::ForwardObserver* next_;
  std::vector<Layer> layers_;
  int64_t n_tokens_;
};

// Installs an observer for the lifetime of the object and puts the previous one back.
class ObserverScope {
 public:
  ObserverScope(model::Session& s, model::ForwardObserver* o) : s_(s), prev_(s.observer()) {
    s_.set_observer(o);
  }
  ~ObserverScope() { s_.set_observer(prev_); }
  ObserverScope(const ObserverScope&) = delete;
  ObserverScope& operator=(const ObserverScope&) = delete;

 private:
  model::Session& s_;
  model::ForwardObserver* prev_;
};
}  // namespace

PerplexityResult perplexity(model::Session& session, std::span<const int32_t> ids, int ctx,
                            int32_t bos_id,
                            const std::function<void(int64_t, int64_t, double)>& progress,
                            model::Session* base) {
  if (ctx < 2) fail("ppl: --ctx must be at least 2, found {}", ctx);
  if (ctx > session.n_ctx()) fail("ppl: --ctx {} exceeds the session context {}", ctx, session.n_ctx());
  const int64_t n = ctx - 1;  // text tokens per window
  const int64_t total = static_cast<int64_t>(ids.size());
  if (total <= n) fail("ppl: the text has {} tokens, need more than {} for one window of --ctx {}", total, n, ctx);
  const int64_t n_windows = (total - n + n - 1) / n;  // windows start at 0, n, 2n, ... < total - n
  const int64_t n_vocab = session.model().config().n_vocab;
  if (base) {
    if (base->model().config().n_vocab != n_vocab) {
      fail("ppl --kl-base: the base model has {} vocabulary entries, the model {}",
           base->model().config().n_vocab, n_vocab);
    }
    if (ctx > base->n_ctx()) fail("ppl: --ctx {} exceeds the base session context {}", ctx, base->n_ctx());
  }
  PerplexityResult r;
  r.has_base = base != nullptr;
  const int n_layer = session.model().config().n_layer;
  std::optional<RoutingRecorder> rec, base_rec;
  std::optional<ObserverScope> rec_scope, base_rec_scope;
  if (base && base->model().config().n_layer == n_layer) {
    rec.emplace(session.observer(), n_layer, n);
    base_rec.emplace(base->observer(), n_layer, n);
    rec_scope.emplace(session, &*rec);
    base_rec_scope.emplace(*base, &*base_rec);
  }
  bool routing_comparable = rec.has_value();
  std::vector<int64_t> route_same(static_cast<size_t>(n_layer), 0);
  int64_t any_flip = 0;
  double base_nll = 0, kl_sum = 0;
  int64_t agree = 0;
  std::vector<double> kls;
  std::vector<int32_t> window(static_cast<size_t>(ctx));
  for (int64_t s = 0; s < total - n; s += n) {
    // chunk = [BOS] + ids[s, s+n); inputs are chunk[:-1], targets chunk[1:].
    window[0] = bos_id;
    for (int64_t i = 0; i < n; ++i) window[i + 1] = ids[s + i];
    session.reset();
    const std::span<const float> logits = session.eval(std::span<const int32_t>(window.data(), n), true);
    for (int64_t i = 0; i < n; ++i) {
      r.nll_sum += ops::token_nll(logits.subspan(i * n_vocab, n_vocab), window[i + 1]);
    }
    if (base) {
      base->reset();
      const std::span<const float> bl = base->eval(std::span<const int32_t>(window.data(), n), true);
      for (int64_t i = 0; i < n; ++i) {
        const auto p = bl.subspan(i * n_vocab, n_vocab), q = logits.subspan(i * n_vocab, n_vocab);
        base_nll += ops::token_nll(p, window[i + 1]);
        kls.push_back(ops::kl_divergence(p, q));
        kl_sum += kls.back();
        agree += argmax(p) == argmax(q);
      }
      if (routing_comparable) {
        std::vector<uint8_t> flipped(static_cast<size_t>(n), 0);
        for (int l = 0; l < n_layer && routing_comparable; ++l) {
          const auto& a = rec->layers()[l];
          const auto& b = base_rec->layers()[l];
          if (a.seen != b.seen || a.k != b.k || a.n_expert != b.n_expert)
            routing_comparable = false;
          if (!a.seen || !routing_comparable) continue;
          for (int64_t i = 0; i < n; ++i) {
            const bool same = std::equal(a.ids.begin() + i * a.k, a.ids.begin() + (i + 1) * a.k,
                                         b.ids.begin() + i * b.k);
            route_same[l] += same;
            flipped[i] |= !same;
          }
        }
        for (uint8_t f : flipped) any_flip += f;
      }
    }
    r.tokens_scored += n;
    ++r.windows;
    if (progress) progress(r.windows, n_windows, std::exp(r.nll_sum / r.tokens_scored));
  }
  r.ppl = std::exp(r.nll_sum / r.tokens_scored);
  if (base) {
    r.base_ppl = std::exp(base_nll / r.tokens_scored);
    r.kl_mean = kl_sum / r.tokens_scored;
    r.top1_agree = static_cast<double>(agree) / r.tokens_scored;
    const size_t k99 = std::min(kls.size() - 1, static_cast<size_t>(0.99 * kls.size()));
    std::nth_element(kls.begin(), kls.begin() + k99, kls.end());
    r.kl_p99 = kls[k99];
    if (routing_comparable) {
      for (int l = 0; l < n_layer; ++l) {
        if (!rec->layers()[l].seen) continue;
        r.route_layers.push_back(l);
        r.route_agree.push_back(static_cast<double>(route_same[l]) / r.tokens_scored);
      }
      r.has_routing = !r.route_layers.empty();
      r.route_any_flip = static_cast<double>(any_flip) / r.tokens_scored;
    }
  }
  return r;
}

}  // namespace mcmoe::eval

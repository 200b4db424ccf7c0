#include "eval/odp_fit.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/observer.h"
#include "model/session.h"
#include "moe/odp.h"
#include "ops/logits.h"

namespace mcmoe::eval {

namespace {

// The ratios ODP compares with its thresholds: p_j / p_1 for each token's j-th pick.
class RatioCollector final : public model::ForwardObserver {
 public:
  RatioCollector(int n_layer, int k)
      : ratios(static_cast<size_t>(n_layer),
               std::vector<std::vector<float>>(static_cast<size_t>(k - 1))) {}
  bool enabled = false;
  std::vector<std::vector<std::vector<float>>> ratios;  // [layer][j - 1][...]
  std::vector<uint8_t> moe_layer;                       // layers that routed
  void on_routing(const model::RoutingEvent& e) override {
    if (!enabled) return;
    if (moe_layer.size() < ratios.size()) moe_layer.assign(ratios.size(), 0);
    moe_layer[e.layer] = 1;
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      const int* ids = e.topk_ids + t * e.k;
      const float p1 = e.probs[t * e.n_expert + ids[0]];
      for (int j = 1; j < e.k && j <= static_cast<int>(ratios[e.layer].size()); ++j) {
        if (ids[j] >= 0 && p1 > 0)
          ratios[e.layer][j - 1].push_back(e.probs[t * e.n_expert + ids[j]] / p1);
      }
    }
  }
};

float quantile_of(std::vector<float>& v, double q) {
  if (v.empty()) return 0.f;
  const size_t i = std::min(
      v.size() - 1, static_cast<size_t>(std::llround(q * static_cast<double>(v.size() - 1))));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

std::vector<int> choose_within_budget(const std::vector<std::vector<double>>& cost,
                                      const std::vector<std::vector<double>>& value,
                                      double budget) {
  const size_t n = cost.size();
  std::vector<int> choice(n, -1);
  if (!(budget > 0) || n == 0) return choice;
  constexpr int kSteps = 4096;
  // best[b]: the most value within b steps of the budget; pick[l][b]: layer l's option there.
  std::vector<double> best(kSteps + 1, 0.0), next(kSteps + 1);
  std::vector<std::vector<int>> pick(n, std::vector<int>(kSteps + 1, -1));
  for (size_t l = 0; l < n; ++l) {
    if (value[l].size() != cost[l].size())
      fail("internal: choose_within_budget: layer {} has {} costs and {} values", l, cost[l].size(),
           value[l].size());
    next = best;  // option "none"
    for (size_t o = 0; o < cost[l].size(); ++o) {
      const double c = std::max(0.0, cost[l][o]);
      if (!std::isfinite(c)) continue;
      const double steps = std::ceil(c / budget * kSteps);
      if (steps > kSteps) continue;
      const int s = std::max(1, static_cast<int>(steps));
      for (int b = s; b <= kSteps; ++b) {
        const double v = best[b - s] + value[l][o];
        if (v > next[b]) {
          next[b] = v;
          pick[l][b] = static_cast<int>(o);
        }
      }
    }
    best.swap(next);
  }
  // Walk back from the full budget: layer l's option at b tells how many steps it took.
  int b = kSteps;
  for (size_t l = n; l-- > 0;) {
    const int o = pick[l][b];
    choice[l] = o;
    if (o >= 0)
      b -= std::max(1, static_cast<int>(std::ceil(std::max(0.0, cost[l][o]) / budget * kSteps)));
  }
  return choice;
}

OdpFitResult fit_odp(model::Model& m, std::span<const std::vector<int32_t>> windows,
                     const OdpFitOptions& o) {
  const model::ModelConfig& c = m.config();
  const int k = c.n_expert_used;
  if (k < 2) fail("odp-fit: {} routes each token to {} expert; nothing to prune", m.path(), k);
  if (windows.empty()) fail("odp-fit: no calibration windows");
  if (o.quantiles.empty()) fail("odp-fit: no candidate quantiles");
  for (double q : o.quantiles) {
    if (!(q > 0 && q < 1)) fail("odp-fit: quantile {} is outside (0, 1)", q);
  }
  size_t max_len = 0;
  for (const auto& w : windows) max_len = std::max(max_len, w.size());
  if (max_len < 2) fail("odp-fit: windows need at least 2 tokens");

  RatioCollector ratios(c.n_layer, k);
  moe::OdpParams params;
  params.n_layer = c.n_layer;
  params.k = k;
  params.mu.assign(static_cast<size_t>(c.n_layer) * (k - 1), 0.f);
  params.layer_on.assign(static_cast<size_t>(c.n_layer), 0);
  params.protect_fraction = o.protect_fraction;
  // One batch per window, as ppl runs it: token protection ranks a batch's tokens.
  model::Session s(m, {.n_ctx = static_cast<int>(max_len),
                       .n_threads = o.threads,
                       .n_batch = static_cast<int>(max_len),
                       .observer = &ratios,
                       .odp = &params});
  const int64_t n_vocab = c.n_vocab;

  // Pass 1: the ratio distributions, ODP off.
  ratios.enabled = true;
  for (const auto& w : windows) {
    s.reset();
    s.eval(w, false);
  }
  ratios.enabled = false;
  OdpFitResult r;
  r.quantiles = o.quantiles;
  for (int l = 0; l < c.n_layer; ++l) {
    if (ratios.moe_layer.empty() || !ratios.moe_layer[l]) continue;
    OdpFitLayer L;
    L.layer = l;
    for (double q : o.quantiles) {
      std::vector<float> mu;
      for (auto& v : ratios.ratios[l]) mu.push_back(quantile_of(v, q));
      L.mu.push_back(std::move(mu));
    }
    L.kl.assign(o.quantiles.size(), 0.0);
    L.pruned.assign(o.quantiles.size(), 0.0);
    r.layers.push_back(std::move(L));
  }
  if (r.layers.empty()) fail("odp-fit: {} has no routed layer", m.path());

  // Pass 2: per window, the logits without ODP, then with ODP in one layer at one threshold.
  const int64_t total = static_cast<int64_t>(windows.size()) *
                        (1 + static_cast<int64_t>(r.layers.size() * o.quantiles.size()));
  int64_t done = 0, tokens = 0;
  std::vector<float> base;
  std::vector<std::vector<int64_t>> pruned(r.layers.size(),
                                           std::vector<int64_t>(o.quantiles.size(), 0));
  for (const auto& w : windows) {
    const int64_t n = static_cast<int64_t>(w.size());
    s.reset();
    const std::span<const float> bl = s.eval(w, true);
    base.assign(bl.begin(), bl.end());
    ++done;
    tokens += n;
    for (size_t li = 0; li < r.layers.size(); ++li) {
      OdpFitLayer& L = r.layers[li];
      params.layer_on[L.layer] = 1;
      for (size_t qi = 0; qi < o.quantiles.size(); ++qi) {
        std::copy(L.mu[qi].begin(), L.mu[qi].end(),
                  params.mu.begin() + static_cast<ptrdiff_t>(L.layer) * (k - 1));
        const moe::OdpCounters before = s.odp_counters();
        s.reset();
        const std::span<const float> ol = s.eval(w, true);
        double kl = 0;
        for (int64_t t = 0; t < n; ++t)
          kl += ops::kl_divergence(std::span<const float>(base).subspan(t * n_vocab, n_vocab),
                                   ol.subspan(t * n_vocab, n_vocab));
        L.kl[qi] += kl;
        pruned[li][qi] += s.odp_counters().pruned - before.pruned;
        if (qi == 0) L.picks += n * k;
        if (o.progress) o.progress(++done, total);
      }
      params.layer_on[L.layer] = 0;
    }
  }

  std::vector<std::vector<double>> cost, value;
  int64_t all_picks = 0;
  for (size_t li = 0; li < r.layers.size(); ++li) {
    OdpFitLayer& L = r.layers[li];
    for (size_t qi = 0; qi < o.quantiles.size(); ++qi) {
      L.kl[qi] /= static_cast<double>(tokens);
      L.pruned[qi] =
          L.picks ? static_cast<double>(pruned[li][qi]) / static_cast<double>(L.picks) : 0.0;
    }
    cost.push_back(L.kl);
    std::vector<double> v;
    for (size_t qi = 0; qi < o.quantiles.size(); ++qi)
      v.push_back(static_cast<double>(pruned[li][qi]));
    value.push_back(std::move(v));
    all_picks += L.picks;
  }
  const std::vector<int> choice = choose_within_budget(cost, value, o.kl_budget);
  double dropped = 0;
  for (size_t li = 0; li < r.layers.size(); ++li) {
    r.layers[li].chosen = choice[li];
    if (choice[li] < 0) continue;
    r.predicted_kl += r.layers[li].kl[choice[li]];
    dropped += value[li][choice[li]];
  }
  r.predicted_pruned = all_picks ? dropped / static_cast<double>(all_picks) : 0.0;
  return r;
}

}  // namespace mcmoe::eval

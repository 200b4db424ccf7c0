#include "offload/predictor.h"

#include <algorithm>

#include "core/error.h"
#include "moe/router.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "quant/quantize.h"

namespace mcmoe::offload {

RoutePredictor::RoutePredictor(const model::Model& m)
    : w_(m.weights()), cfg_(m.config()), h_(static_cast<size_t>(cfg_.n_embd)) {}

bool RoutePredictor::predict(int from_layer, int ahead, const float* x, int m, int* out, float* prob) {
  const int target = from_layer + ahead;
  if (ahead < 1 || target >= cfg_.n_layer || !cfg_.is_moe(target)) return false;
  const model::LayerWeights& L = w_.layers[target];
  if (!L.router.valid()) return false;
  ops::rms_norm(x, static_cast<const float*>(L.ffn_norm.data), h_.data(), cfg_.n_embd, cfg_.rms_eps);
  // Router rows and stored experts differ in merged models (ModelConfig::expert_map).
  const int n_rows = cfg_.router_rows(target), n_expert = cfg_.experts(target);
  logits_.resize(n_rows);
  RouterFit* fit =
      ahead <= 2 && !fits_[ahead - 1].empty() ? fits_[ahead - 1][target].get() : nullptr;
  const bool on_residual = fit && fit_input_ == FitInput::kResidual;
  if (on_residual) fit->add_input(h_.data());
  if (on_residual && fit->fitted()) {
    fit->apply(h_.data(), logits_.data());  // bias included
  } else {
    ops::matmul(L.router, h_.data(), 1, logits_.data(), pool_);
    if (L.router_bias.valid()) {
      const auto* bias = static_cast<const float*>(L.router_bias.data);
      for (int r = 0; r < n_rows; ++r) logits_[r] += bias[r];
    }
    if (fit && !on_residual) {
      fit->add_input(logits_.data());
      if (fit->fitted()) {
        fit_in_.assign(logits_.begin(), logits_.end());
        fit->apply(fit_in_.data(), logits_.data());
      }
    }
  }
  // The rows a grouped router can choose at all: those of its topk_group best groups.
  const moe::RouterRule& rule = cfg_.router;
  const int choosable = rule.group == moe::GroupSelect::None ? n_rows : rule.topk_group * (n_rows / rule.n_group);
  // route() with k = `rank` lists rows in the order the layer's rule chooses them: its first
  // k are the layer's picks and the rest the ones it would take next (a prefix of the order
  // does not depend on its length). A merged model folds rows onto stored experts, so it
  // ranks every choosable row; otherwise the first m rows are m distinct experts.
  const int rank = cfg_.expert_map.empty() ? std::min(m, choosable) : choosable;
  scores_.resize(n_rows);
  ranked_.resize(rank);
  ranked_weight_.resize(rank);
  const moe::RouterParams rp{.n_expert = n_rows, .k = rank, .rule = rule,
                             .choice_bias = static_cast<const float*>(L.choice_bias.data)};
  moe::route(rp, logits_.data(), 1, scores_.data(), ranked_.data(), ranked_weight_.data());

  // Each stored expert's score: the scores of its router rows summed (merged models, as the
  // MoE block sums their gates), one row otherwise.
  expert_scores_.assign(n_expert, 0.f);
  float total = 0.f;
  for (int r = 0; r < n_rows; ++r) {
    expert_scores_[cfg_.expert_map.empty() ? r : cfg_.expert_map[target][r]] += scores_[r];
    total += scores_[r];
  }
  // Sigmoid scores are independent per expert; as a share of their sum they read like the
  // softmax probabilities of the other rules (which sum to 1 already and stay as they are).
  const bool share = rule.score == moe::ScoreFunc::Sigmoid && !rule.softmax_over_topk && total > 0.f;
  std::fill_n(out, m, -1);
  if (prob) std::fill_n(prob, m, 0.f);
  taken_.assign(n_expert, 0);
  int j = 0;
  for (int i = 0; i < rank && j < m; ++i) {
    const int e = cfg_.expert_map.empty() ? ranked_[i] : cfg_.expert_map[target][ranked_[i]];
    if (taken_[e]) continue;  // a merged expert reached again through another of its rows
    taken_[e] = 1;
    out[j] = e;
    if (prob) prob[j] = share ? expert_scores_[e] / total : expert_scores_[e];
    ++j;
  }
  return true;
}

RoutePredictor::FitInput RoutePredictor::fit_input_named(const std::string& name) {
  if (name == "residual") return FitInput::kResidual;
  if (name == "logits") return FitInput::kLogits;
  fail("predictor fit input must be residual or logits, found '{}'", name);
}

void RoutePredictor::enable_fit(int refit_every, FitInput input) {
  fit_input_ = input;
  for (auto& f : fits_) {
    f.clear();
    f.resize(cfg_.n_layer);
  }
  const int d = cfg_.n_embd;
  for (int l = 1; l < cfg_.n_layer; ++l) {
    const model::LayerWeights& L = w_.layers[l];
    if (!cfg_.is_moe(l) || !L.router.valid()) continue;
    const int rows = cfg_.router_rows(l);
    if (input == FitInput::kLogits) {
      // The identity (no bias) as the prior: the router's own guess until the data say more.
      for (int ahead = 1; ahead <= 2 && l - ahead >= 0; ++ahead) {
        std::vector<float> prior(static_cast<size_t>(rows) * (rows + 1), 0.f);
        for (int r = 0; r < rows; ++r) prior[static_cast<size_t>(r) * (rows + 1) + r] = 1.f;
        fits_[ahead - 1][l] =
            std::make_unique<RouterFit>(rows, rows, std::move(prior), refit_every);
      }
      continue;
    }
    // The router as the fit's prior, [rows][d + 1] with the bias last.
    const std::vector<float> w =
        quant::dequantize_rows(L.router.type, static_cast<const uint8_t*>(L.router.data), rows, d);
    std::vector<float> prior(static_cast<size_t>(rows) * (d + 1), 0.f);
    for (int r = 0; r < rows; ++r) {
      std::copy_n(w.data() + static_cast<size_t>(r) * d, d,
                  prior.data() + static_cast<size_t>(r) * (d + 1));
      if (L.router_bias.valid())
        prior[static_cast<size_t>(r) * (d + 1) + d] =
            static_cast<const float*>(L.router_bias.data)[r];
    }
    fits_[0][l] = std::make_unique<RouterFit>(d, rows, std::move(prior), refit_every);
  }
}

void RoutePredictor::observe(int layer, const float* logits, int64_t n) {
  if (layer < 0 || layer >= cfg_.n_layer) return;
  for (auto& f : fits_) {
    if (!f.empty() && f[layer]) f[layer]->add_targets(logits, n);
  }
}

}  // namespace mcmoe::offload

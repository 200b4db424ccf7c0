#include "offload/predictor.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/elementwise.h"
#include "ops/matmul.h"

namespace mcmoe::offload {

RoutePredictor::RoutePredictor(const model::Model& m)
    : w_(m.weights()), cfg_(m.config()), h_(static_cast<size_t>(cfg_.n_embd)), logits_(static_cast<size_t>(cfg_.n_expert)) {}

bool RoutePredictor::predict(int from_layer, int ahead, const float* x, int m, int* out, float* prob) {
  const int target = from_layer + ahead;
  if (ahead < 1 || target >= cfg_.n_layer) return false;
  const model::LayerWeights& L = w_.layers[target];
  if (!L.router.valid()) return false;
  ops::rms_norm(x, static_cast<const float*>(L.ffn_norm.data), h_.data(), cfg_.n_embd, cfg_.rms_eps);
  const int n_rows = static_cast<int>(L.router.shape[0]);
  row_logits_.resize(n_rows);
  ops::matmul(L.router, h_.data(), 1, row_logits_.data(), pool_);
  // A merged model's router rows point at stored experts; an expert's probability is the sum
  // over its rows (the gates the block sums), compared here as log-sum-exp of its logits.
  const int n_expert = cfg_.experts(target);
  if (cfg_.expert_map.empty()) {
    logits_ = row_logits_;
  } else {
    const float top = *std::max_element(row_logits_.begin(), row_logits_.end());
    std::vector<double> mass(n_expert, 0.0);
    for (int r = 0; r < n_rows; ++r) mass[cfg_.expert_map[target][r]] += std::exp(static_cast<double>(row_logits_[r] - top));
    logits_.resize(n_expert);
    for (int e = 0; e < n_expert; ++e) logits_[e] = mass[e] > 0 ? top + static_cast<float>(std::log(mass[e])) : -INFINITY;
  }
  order_.resize(n_expert);
  std::iota(order_.begin(), order_.end(), 0);
  const int m_all = m;
  m = std::min(m, n_expert);
  std::fill_n(out, m_all, -1);  // a layer with fewer experts than m: the rest stay -1
  if (prob) std::fill_n(prob, m_all, 0.f);
  // Softmax is monotone: the top-m logits are the top-m probabilities. Ties go to the lower
  // id, as in the router.
  std::partial_sort(order_.begin(), order_.begin() + m, order_.end(), [&](int a, int b) {
    return logits_[a] != logits_[b] ? logits_[a] > logits_[b] : a < b;
  });
  std::copy_n(order_.begin(), m, out);
  if (prob) {
    const float top = logits_[order_[0]];
    double z = 0;
    for (int e = 0; e < n_expert; ++e) z += std::exp(static_cast<double>(logits_[e] - top));
    for (int j = 0; j < m; ++j) prob[j] = static_cast<float>(std::exp(static_cast<double>(logits_[out[j]] - top)) / z);
  }
  return true;
}

}  // namespace mcmoe::offload

#include "ops/logits.h"

#include <algorithm>
#include <cmath>

namespace mcmoe::ops {

double log_sum_exp(std::span<const float> logits) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return std::log(sum) + mx;
}

double token_nll(std::span<const float> logits, int32_t target) {
  return log_sum_exp(logits) - logits[target];
}

double kl_divergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  const double lp = log_sum_exp(p_logits), lq = log_sum_exp(q_logits);
  double kl = 0;
  for (size_t i = 0; i < p_logits.size(); ++i) {
    const double log_p = p_logits[i] - lp, log_q = q_logits[i] - lq;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(0.0, kl);  // rounding can leave tiny negatives for identical inputs
}

}  // namespace mcmoe::ops

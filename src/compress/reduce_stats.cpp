#include "compress/reduce_stats.h"

#include <cmath>

#include "core/error.h"

namespace mcmoe::compress {

std::vector<double> LayerReduceStats::reap_scores() const {
  std::vector<double> s(picks.size());
  for (size_t e = 0; e < s.size(); ++e) s[e] = reap(static_cast<int>(e));
  return s;
}

std::vector<double> LayerReduceStats::frequencies() const {
  int64_t total = 0;
  for (int64_t p : picks) total += p;
  std::vector<double> f(picks.size(), 0.0);
  for (size_t e = 0; e < f.size(); ++e) f[e] = total > 0 ? static_cast<double>(picks[e]) / total : 0.0;
  return f;
}

ReduceCollector::ReduceCollector(int n_expert, int64_t n_embd, int64_t inputs_per_sample)
    : n_expert_(n_expert), n_embd_(n_embd), inputs_per_sample_(inputs_per_sample) {
  stats_.picks.assign(n_expert, 0);
  stats_.reap_sum.assign(n_expert, 0.0);
  stats_.router_gram.assign(static_cast<size_t>(n_expert) * n_expert, 0.0);
}

void ReduceCollector::on_routing(const model::RoutingEvent& e) {
  if (e.n_expert != n_expert_ || e.n_router != n_expert_) {
    fail("reduce: layer {} routes over {} rows to {} experts, expected {} (an already merged model?)", e.layer,
         e.n_router, e.n_expert, n_expert_);
  }
  const int n = n_expert_;
  for (int64_t t = 0; t < e.n_tokens; ++t) {
    const float* z = e.router_logits + t * n;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j <= i; ++j) stats_.router_gram[i * n + j] += double{z[i]} * z[j];
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < i; ++j) stats_.router_gram[j * n + i] = stats_.router_gram[i * n + j];
  }
}

void ReduceCollector::on_expert(const model::ExpertEvent& e) {
  const int64_t rows = static_cast<int64_t>(e.token_rows.size());
  stats_.picks[e.expert] += rows;
  for (int64_t r = 0; r < rows; ++r) {
    double sq = 0;
    const float* y = e.output + r * e.n_embd;
    for (int64_t c = 0; c < e.n_embd; ++c) sq += double{y[c]} * y[c];
    stats_.reap_sum[e.expert] += double{e.weights[r]} * std::sqrt(sq);
  }
}

void ReduceCollector::on_tensor(std::string_view name, int, const float* data, int64_t rows, int64_t cols) {
  if (name != "ffn_norm" || inputs_per_sample_ <= 0 || cols != n_embd_) return;
  // Evenly spaced positions after the first (BOS, whose state is atypical).
  const int64_t avail = rows > 1 ? rows - 1 : rows, first = rows > 1 ? 1 : 0;
  const int64_t take = std::min(avail, inputs_per_sample_);
  for (int64_t i = 0; i < take; ++i) {
    const float* row = data + (first + i * avail / take) * cols;
    stats_.block_inputs.insert(stats_.block_inputs.end(), row, row + cols);
  }
}

}  // namespace mcmoe::compress

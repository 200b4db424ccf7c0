#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace mcmoe::eval {


namespace {
// log Σ exp(v), computed in double around the maximum.
double log_sum_exp(std::span<const float> logits) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return std::log(sum) + mx;
}
size_t argmax(std::span<const float> v) {
  return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}
}  // namespace

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
      r.nll_sum += token_nll(logits.subspan(i * n_vocab, n_vocab), window[i + 1]);
    }
    if (base) {
      base->reset();
      const std::span<const float> bl = base->eval(std::span<const int32_t>(window.data(), n), true);
      for (int64_t i = 0; i < n; ++i) {
        const auto p = bl.subspan(i * n_vocab, n_vocab), q = logits.subspan(i * n_vocab, n_vocab);
        base_nll += token_nll(p, window[i + 1]);
        kls.push_back(kl_divergence(p, q));
        kl_sum += kls.back();
        agree += argmax(p) == argmax(q);
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
  }
  return r;
}

}  // namespace mcmoe::eval

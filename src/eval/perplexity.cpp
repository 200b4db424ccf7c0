#include "eval/perplexity.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace mcmoe::eval {

double token_nll(std::span<const float> logits, int32_t target) {
  float mx = logits[0];
  for (float v : logits) mx = std::max(mx, v);
  double sum = 0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  return std::log(sum) + mx - logits[target];
}

PerplexityResult perplexity(model::Session& session, std::span<const int32_t> ids, int ctx,
                            int32_t bos_id,
                            const std::function<void(int64_t, int64_t, double)>& progress) {
  if (ctx < 2) fail("ppl: --ctx must be at least 2, found {}", ctx);
  if (ctx > session.n_ctx()) fail("ppl: --ctx {} exceeds the session context {}", ctx, session.n_ctx());
  const int64_t n = ctx - 1;  // text tokens per window
  const int64_t total = static_cast<int64_t>(ids.size());
  if (total <= n) fail("ppl: the text has {} tokens, need more than {} for one window of --ctx {}", total, n, ctx);
  const int64_t n_windows = (total - n + n - 1) / n;  // windows start at 0, n, 2n, ... < total - n
  const int64_t n_vocab = session.model().config().n_vocab;
  PerplexityResult r;
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
    r.tokens_scored += n;
    ++r.windows;
    if (progress) progress(r.windows, n_windows, std::exp(r.nll_sum / r.tokens_scored));
  }
  r.ppl = std::exp(r.nll_sum / r.tokens_scored);
  return r;
}

}  // namespace mcmoe::eval

#include "ops/attention.h"

#include <cmath>
#include <vector>

#include "ops/elementwise.h"

namespace mcmoe::ops {

void attention(const AttentionParams& p, ThreadPool& pool) {
  const int group = p.n_head / p.n_head_kv;
  const int64_t q_stride = static_cast<int64_t>(p.n_head) * p.head_dim;
  const int64_t kv_stride = static_cast<int64_t>(p.n_head_kv) * p.head_dim;
  const int64_t n_ctx_seen = p.pos0 + p.n_tokens;
  const float scale = 1.f / std::sqrt(static_cast<float>(p.head_dim));
  const int64_t work = p.n_tokens * p.n_head;
  // Short contexts in decode are a few hundred thousand multiply-adds: cheaper on the
  // calling thread than a hand-off to the pool and back.
  const int64_t macs = work * n_ctx_seen * p.head_dim * 2;
  constexpr int64_t kMinParallelMacs = 1 << 20;
  auto body = [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(n_ctx_seen));
    for (int64_t w = begin; w < end; ++w) {
      const int64_t t = w / p.n_head;
      const int h = static_cast<int>(w % p.n_head);
      const int kvh = h / group;
      const float* q = p.q + t * q_stride + static_cast<int64_t>(h) * p.head_dim;
      const int64_t n_keys = p.pos0 + t + 1;
      float mx = -INFINITY;
      for (int64_t j = 0; j < n_keys; ++j) {
        const float s = dot(q, p.k_cache + j * kv_stride + kvh * p.head_dim, p.head_dim) * scale;
        scores[j] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (int64_t j = 0; j < n_keys; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      float* out = p.out + t * q_stride + static_cast<int64_t>(h) * p.head_dim;
      for (int d = 0; d < p.head_dim; ++d) out[d] = 0.f;
      for (int64_t j = 0; j < n_keys; ++j) {
        const float a = scores[j] * inv;
        axpy(a, p.v_cache + j * kv_stride + kvh * p.head_dim, out, p.head_dim);
      }
      if (p.probs_out) {
        float* row = p.probs_out + (static_cast<int64_t>(h) * p.n_tokens + t) * n_ctx_seen;
        for (int64_t j = 0; j < n_ctx_seen; ++j) row[j] = j < n_keys ? scores[j] * inv : 0.f;
      }
    }
  };
  if (macs < kMinParallelMacs) {
    body(0, work);
  } else {
    pool.parallel_for(work, 1, body);
  }
}

}  // namespace mcmoe::ops

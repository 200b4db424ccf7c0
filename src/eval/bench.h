#pragma once
// Prefill and decode speed of a model, with the bytes each decode token touches, so the
// figure can be judged against the memory roofline.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"
#include "moe/odp.h"
#include "moe/router.h"

namespace mcmoe::eval {

struct BenchOptions {
  int threads = 2;
  int prompt_tokens = 512;
  int gen_tokens = 128;
  // Decode starts after this many prompt tokens in the KV cache (llama-bench's depth), so its
  // speed includes reading that much cache per token; 0: from an empty cache.
  int depth = 0;
  DType cache_type = DType::F16;  // KV cache element type
  int batch_size = 512;           // prefill runs in chunks of this many tokens
  int repetitions = 2;  // best of
  bool measure_bandwidth = true;
  const moe::OdpParams* odp = nullptr;  // online dynamic pruning during the runs
  float cache_aware_margin = 0;         // model::SessionOptions::cache_aware_margin
  // Page in every weight before timing (right for a resident model; wrong when experts are
  // offloaded, where it would fill the page cache with the very bytes the cache budgets).
  bool touch_weights = true;
  // Decode feeds these tokens one at a time (teacher forcing, as a real text routes) instead
  // of the model's own greedy picks; gen_tokens of them are used.
  std::vector<int32_t> decode_tokens;
  // Called when a timed decode run starts (after prefill and the first token): e.g. to
  // reset an expert cache's counters so they describe decode only.
  std::function<void()> on_decode_start;
};

struct BenchResult {
  double prefill_tok_s = 0;
  double decode_tok_s = 0;
  double bytes_per_token = 0;   // read per decode token: weights (non-expert + routed experts) + KV cache
  double kv_bytes_per_token = 0;      // KV cache each position occupies, all layers
  double kv_read_per_token = 0;       // KV cache bytes a decode step reads on average (in bytes_per_token)
  double decode_gb_s = 0;       // bytes_per_token * decode_tok_s / 1e9
  double bandwidth_gb_s = 0;    // measured machine read bandwidth (0 if not measured)
  double roofline_tok_s = 0;    // bandwidth / bytes_per_token
  double prefill_gflop_s = 0;   // 2 * active parameters per token * tok/s
  double expert_hit_avg = 0;    // average distinct experts used per layer per decode token
  double odp_pruned_fraction = 0;  // with odp: expert activations dropped, over all runs
  moe::CacheAwareCounts cache_aware;  // with a cache-aware routing margin: over all runs
  int n_ctx = 0;                   // the session's context (prompt or depth + generated)
  size_t kv_cache_bytes = 0;       // allocated up front for n_ctx
  size_t scratch_bytes = 0;        // batch scratch for batch_size-token chunks
};

BenchResult bench(model::Model& m, const BenchOptions& o);

}  // namespace mcmoe::eval

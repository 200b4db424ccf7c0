#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "core/clock.h"
#include "core/membw.h"
#include "model/inventory.h"
#include "model/observer.h"
#include "model/session.h"

namespace mcmoe::eval {

namespace {

// Counts the expert bytes each decode step actually reads, from the real routing.
class ExpertBytesCounter : public model::ForwardObserver {
 public:
  explicit ExpertBytesCounter(const model::Model& m) : m_(m) {}
  void on_routing(const model::RoutingEvent& e) override {
    if (!enabled) return;
    std::vector<bool> used(static_cast<size_t>(e.n_expert), false);
    for (int64_t i = 0; i < e.n_tokens * e.k; ++i) {
      if (e.topk_ids[i] >= 0) used[e.topk_ids[i]] = true;  // -1: dropped by ODP, not read
    }
    for (int x = 0; x < e.n_expert; ++x) {
      if (used[x]) {
        bytes += static_cast<double>(m_.stored_experts()[e.layer][x].nbytes());
        ++experts;
      }
    }
  }
  bool enabled = false;
  double bytes = 0;
  double experts = 0;

 private:
  const model::Model& m_;
};

}  // namespace

BenchResult bench(model::Model& m, const BenchOptions& o) {
  const model::ModelConfig& c = m.config();
  const model::ModelWeights& w = m.weights();
  BenchResult r;
  ExpertBytesCounter counter(m);
  model::SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = std::max(o.prompt_tokens, o.depth) + o.gen_tokens + 8;
  so.n_batch = o.batch_size;
  so.observer = &counter;
  so.odp = o.odp;
  so.cache_aware_margin = o.cache_aware_margin;
  so.cache_type = o.cache_type;
  model::Session session(m, so);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> tok(3, c.n_vocab - 1);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
  for (auto& t : prompt) t = tok(rng);

  // Non-routed bytes per decode token, from the tensor inventory: every layer tensor but the
  // routed experts (attention, router, shared experts, dense MLPs, norms), the output head
  // and one embedding row. Routed experts are counted from the real routing as decode runs.
  double dense_bytes = static_cast<double>(w.tok_embd.row_stride());
  double active_params = 0;
  model::for_each_tensor(c, w, m.stored_experts(), [&](const model::TensorSlot& s) {
    if (s.role == model::TensorRole::Embedding || s.role == model::TensorRole::RoutedExpert || !s.view->valid()) return;
    dense_bytes += static_cast<double>(s.view->nbytes);
    active_params += static_cast<double>(s.view->numel());
  });
  if (c.tie_embeddings) {
    dense_bytes += static_cast<double>(w.output.nbytes);
    active_params += static_cast<double>(w.output.numel());
  }
  for (int l = 0; l < c.n_layer; ++l) {
    if (c.experts(l) > 0) active_params += c.n_expert_used * static_cast<double>(m.stored_experts()[l][0].n_params());
  }

  // Touch every page of the weights first: a mapped file's first pass costs page faults
  // (and disk reads) that are not what decode speed means.
  if (o.touch_weights) {
    volatile uint8_t sink = 0;
    for (const auto& t : m.file_tensors()) {
      const auto* p = static_cast<const uint8_t*>(t.view.data);
      for (size_t off = 0; off < t.view.nbytes; off += 4096) sink = sink + p[off];
    }
  }
  double best_prefill = 0, best_decode = 0;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    session.reset();
    counter.enabled = false;
    auto t0 = std::chrono::steady_clock::now();
    std::span<const float> logits = session.eval(prompt, false);
    best_prefill = std::max(best_prefill, o.prompt_tokens / seconds_since(t0));
    // Decode starts from an empty cache, as llama-bench's tg test does, so the figure is the
    // weight-streaming rate rather than a mix with attention over the prompt; with a depth,
    // after that many prompt tokens (llama-bench -d). A depth equal to the prompt reuses the
    // prompt just timed.
    if (o.depth != o.prompt_tokens) {
      session.reset();
      if (o.depth > 0) {
        for (int done = 0; done < o.depth;) {
          const int n = std::min(o.depth - done, o.prompt_tokens);
          std::vector<int32_t> chunk(static_cast<size_t>(n));
          for (auto& t : chunk) t = tok(rng);
          logits = session.eval(chunk, false);
          done += n;
        }
      } else {
        logits = session.eval(std::span<const int32_t>(prompt.data(), 1), false);
      }
    }
    counter.enabled = true;
    counter.bytes = counter.experts = 0;
    int32_t next = 3;
    if (o.on_decode_start) o.on_decode_start();
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.gen_tokens; ++i) {
      next = o.decode_tokens.empty() ? static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())
                                     : o.decode_tokens[static_cast<size_t>(i) % o.decode_tokens.size()];
      logits = session.eval(std::span<const int32_t>(&next, 1), false);
    }
    const double tps = o.gen_tokens / seconds_since(t0);
    if (tps > best_decode) {
      best_decode = tps;
      r.kv_bytes_per_token = static_cast<double>(session.kv_cache_bytes_per_token());
      // Positions in the cache during the timed steps: depth (or 1) + 0.5 .. + gen_tokens.
      r.kv_read_per_token = r.kv_bytes_per_token * (std::max(o.depth, 1) + (o.gen_tokens + 1) / 2.0);
      r.bytes_per_token = dense_bytes + counter.bytes / o.gen_tokens + r.kv_read_per_token;
      r.expert_hit_avg = counter.experts / o.gen_tokens / c.n_layer;
    }
  }
  r.prefill_tok_s = best_prefill;
  r.decode_tok_s = best_decode;
  r.decode_gb_s = r.bytes_per_token * best_decode / 1e9;
  r.prefill_gflop_s = 2.0 * active_params * best_prefill / 1e9;
  if (o.measure_bandwidth) {
    r.bandwidth_gb_s = measure_read_bandwidth(session.pool()) / 1e9;
    r.roofline_tok_s = r.bandwidth_gb_s * 1e9 / r.bytes_per_token;
  }
  r.odp_pruned_fraction = session.odp_counters().pruned_fraction();
  r.cache_aware = session.cache_aware_counts();
  r.n_ctx = session.n_ctx();
  r.kv_cache_bytes = session.kv_cache_bytes();
  r.scratch_bytes = session.scratch_bytes();
  return r;
}

}  // namespace mcmoe::eval

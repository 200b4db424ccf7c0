#include "eval/bench.h"

#include <chrono>
#include <random>
#include <vector>

#include "core/membw.h"
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

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

BenchResult bench(model::Model& m, const BenchOptions& o) {
  const model::ModelConfig& c = m.config();
  const model::ModelWeights& w = m.weights();
  BenchResult r;
  ExpertBytesCounter counter(m);
  model::SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = o.prompt_tokens + o.gen_tokens + 8;
  so.n_batch = o.prompt_tokens;
  so.observer = &counter;
  so.odp = o.odp;
  model::Session session(m, so);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int32_t> tok(3, c.n_vocab - 1);
  std::vector<int32_t> prompt(static_cast<size_t>(o.prompt_tokens));
  for (auto& t : prompt) t = tok(rng);

  // Non-expert bytes per decode token: attention, router, shared expert, output head and
  // one embedding row.
  double dense_bytes = static_cast<double>(w.output.nbytes) + static_cast<double>(w.tok_embd.row_stride());
  double active_params = static_cast<double>(w.output.numel());
  for (const auto& L : w.layers) {
    for (const TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.router, &L.shared.gate, &L.shared.up, &L.shared.down, &L.shared_gate}) {
      if (t->valid()) {
        dense_bytes += static_cast<double>(t->nbytes);
        active_params += static_cast<double>(t->numel());
      }
    }
  }
  const auto& e0 = m.stored_experts()[0][0];
  active_params += static_cast<double>(c.n_layer) * c.n_expert_used * static_cast<double>(e0.n_params());

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
    // weight-streaming rate rather than a mix with attention over the prompt.
    session.reset();
    logits = session.eval(std::span<const int32_t>(prompt.data(), 1), false);
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
      r.bytes_per_token = dense_bytes + counter.bytes / o.gen_tokens;
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
  return r;
}

}  // namespace mcmoe::eval

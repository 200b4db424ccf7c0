// The feed-forward half of a decoder layer: norm → a dense MLP, or router → top-k → experts
// (through the ExpertProvider) → weighted sum (+ shared expert) → residual. Tokens are
// grouped by expert so each expert runs once per batch as a matmul over its tokens.
#include <algorithm>
#include <cmath>

#include "core/error.h"

#include "model/session.h"
#include "model/session_internal.h"
#include "moe/router.h"
#include "ops/elementwise.h"
#include "ops/factored.h"
#include "ops/matmul.h"

namespace mcmoe::model {

namespace {

// The gated activation of a family's routed experts, in place on gate rows.
void activate(const ModelConfig& c, float* g, const float* u, int64_t n) {
  if (c.activation == Activation::SwigluOai) {
    ops::swiglu_oai(g, u, n, c.swiglu_alpha, c.swiglu_limit);
  } else {
    ops::silu_mul(g, u, n);
  }
}

// Adds a bias vector [cols] to `rows` rows of width cols.
void add_bias(const TensorView& b, float* y, int64_t rows, int64_t cols) {
  if (!b.valid()) return;
  for (int64_t r = 0; r < rows; ++r) ops::axpy(1.f, static_cast<const float*>(b.data), y + r * cols, cols);
}

}  // namespace

void Session::dense_mlp(int l, const moe::ExpertWeights& w, int64_t ff, const float* x, int64_t n, float* out,
                        const char* hidden_name) {
  Scratch& s = *s_;
  ops::ProductBatch& jobs = s.products;
  jobs.clear();
  jobs.add(w.gate, x, s.ex_gate.data(), n);
  jobs.add(w.up, x, s.ex_up.data(), n);
  jobs.run(pool_);
  ops::silu_mul(s.ex_gate.data(), s.ex_up.data(), n * ff);
  if (observer_) observer_->on_tensor(hidden_name, l, s.ex_gate.data(), n, ff);
  jobs.clear();
  jobs.add(w.down, s.ex_gate.data(), out, n);
  jobs.run(pool_);
}

void Session::moe_block(int l, int64_t n) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const int64_t d = cfg_.n_embd, ffs = cfg_.n_ff_shared;
  for (int64_t t = 0; t < n; ++t) {
    ops::rms_norm(s.x.data() + t * d, static_cast<const float*>(L.ffn_norm.data), s.h.data() + t * d, d, cfg_.rms_eps);
  }
  if (observer_) observer_->on_tensor("ffn_norm", l, s.h.data(), n, d);
  auto add_residual = [&](const float* y) {
    if (cfg_.residual_scale != 1.f) {
      ops::axpy(cfg_.residual_scale, y, s.x.data(), n * d);
    } else {
      for (int64_t i = 0; i < n * d; ++i) s.x[i] += y[i];
    }
  };
  if (!cfg_.is_moe(l)) {
    dense_mlp(l, L.ffn, cfg_.n_ff_dense, s.h.data(), n, s.moe_out.data(), "dense_hidden");
    if (observer_) observer_->on_tensor("moe_out", l, s.moe_out.data(), n, d);
    add_residual(s.moe_out.data());
    return;
  }
  // Router rows and stored experts differ in merged models (ModelConfig::expert_map).
  const int k = cfg_.n_expert_used, n_expert = cfg_.experts(l), n_router = cfg_.router_rows(l);

  // Routing.
  ops::matmul(L.router, s.h.data(), n, s.router_logits.data(), pool_);
  add_bias(L.router_bias, s.router_logits.data(), n, n_router);
  model_.experts().on_router_logits(l, s.router_logits.data(), n);
  if (observer_) observer_->on_tensor("router_logits", l, s.router_logits.data(), n, n_router);
  const moe::RouterParams rp{.n_expert = n_router, .k = k, .rule = cfg_.router,
                             .choice_bias = static_cast<const float*>(L.choice_bias.data)};
  moe::route(rp, s.router_logits.data(), n, s.probs.data(), s.topk_ids.data(), s.topk_w.data());
  // From here on picks, probabilities and ids are by stored expert.
  const float* probs = s.probs.data();
  if (!cfg_.expert_map.empty()) {
    moe::fold_merged_picks(cfg_.expert_map[l].data(), n_router, n_expert, n, k, s.probs.data(), s.merged_probs.data(),
                           s.topk_ids.data(), s.topk_w.data());
    probs = s.merged_probs.data();
  }
  if (odp_ && odp_->enabled(l) && k > 1) {
    // Token protection ranks the tokens of each sequence's rows among themselves (as when it
    // runs alone); rows without probabilities (decode) are not protected.
    const uint8_t* protect = nullptr;
    if (!s.att_probs.empty()) {
      s.importance.resize(n);
      s.odp_protect_rows.assign(n, 0);
      for (const Segment& seg : segments_) {
        if (seg.probs < 0) continue;
        moe::token_importance(s.att_probs.data() + seg.probs, cfg_.n_head, seg.n, seg.pos0,
                              s.h.data() + seg.row0 * d, d, s.importance.data() + seg.row0);
        moe::protect_top(s.importance.data() + seg.row0, seg.n, odp_->protect_fraction,
                         s.odp_protect);
        std::copy(s.odp_protect.begin(), s.odp_protect.end(),
                  s.odp_protect_rows.begin() + seg.row0);
      }
      protect = s.odp_protect_rows.data();
    }
    moe::apply_odp(*odp_, l, n, n_expert, probs, s.topk_ids.data(), s.topk_w.data(), protect, odp_counters_);
  } else if (odp_) {
    // A layer ODP leaves alone still counts its activations, so the pruned share is of all
    // of them (--odp-layers, odp-fit's thresholds), not only of the pruned layers'.
    odp_counters_.picks += n * k;
  }
  if (cache_aware_margin_ > 0.f) {
    // After ODP: a pick it dropped needs no expert, cached or not.
    s.expert_cached.resize(n_expert);
    model_.experts().cached_mask(l, s.expert_cached);
    moe::prefer_cached(cache_aware_margin_, probs, n_expert, n, k, s.expert_cached.data(),
                       cfg_.router.norm_topk || cfg_.router.softmax_over_topk, s.topk_ids.data(),
                       s.topk_w.data(), cache_aware_counts_);
  }
  if (observer_) {
    observer_->on_routing({.layer = l,
                           .n_tokens = n,
                           .n_expert = n_expert,
                           .n_router = n_router,
                           .k = k,
                           .pos0 = segments_.front().pos0,
                           .router_logits = s.router_logits.data(),
                           .probs = probs,
                           .topk_ids = s.topk_ids.data(),
                           .topk_weights = s.topk_w.data()});
  }

  // Group (token, slot) picks by expert with a counting sort: rows of expert e occupy
  // [offset[e], offset[e + 1]) of the gathered buffers.
  std::vector<int64_t>& offset = s.expert_offset;
  offset.assign(n_expert + 1, 0);
  // Picks with id -1 were dropped by ODP: they join no group and add nothing.
  for (int64_t i = 0; i < n * k; ++i) {
    if (s.topk_ids[i] >= 0) ++offset[s.topk_ids[i] + 1];
  }
  for (int e = 0; e < n_expert; ++e) offset[e + 1] += offset[e];
  s.pick_row.resize(n * k);
  s.row_token.resize(n * k);
  s.row_weight.resize(n * k);
  s.expert_fill.assign(offset.begin(), offset.end() - 1);
  const int64_t n_rows = offset[n_expert];
  for (int64_t i = 0; i < n * k; ++i) {
    if (s.topk_ids[i] < 0) {
      s.pick_row[i] = -1;
      continue;
    }
    const int64_t r = s.expert_fill[s.topk_ids[i]]++;
    s.pick_row[i] = r;
    s.row_token[r] = i / k;
    s.row_weight[r] = s.topk_w[i];
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    std::copy_n(s.h.data() + s.row_token[r] * d, d, s.ex_in.data() + r * d);
  }
  std::vector<int>& active = s.active_experts;
  active.clear();
  for (int e = 0; e < n_expert; ++e) {
    if (offset[e + 1] > offset[e]) active.push_back(e);
  }

  std::vector<float>& max_weight = s.active_max_weight;
  max_weight.assign(active.size(), 0.f);
  for (size_t i = 0; i < active.size(); ++i) {
    for (int64_t r = offset[active[i]]; r < offset[active[i] + 1]; ++r) max_weight[i] = std::max(max_weight[i], s.row_weight[r]);
  }
  // The provider may hand out fewer experts than asked (a byte-budgeted cache); run them in
  // as many chunks as it takes. The shared expert runs with the first chunk.
  moe::ExpertProvider& provider = model_.experts();
  const float* shared_out = s.ex_out.data() + n * k * d;  // [n, d], written by experts_chunk
  bool shared_pending = ffs > 0;
  size_t first = 0;
  do {
    const std::span<const int> rest(active.data() + first, active.size() - first);
    const size_t count = rest.empty() ? 0 : provider.begin_layer(l, rest, std::span<const float>(max_weight.data() + first, rest.size()));
    if (!rest.empty() && count == 0) fail("layer {}: the expert provider could not make room for any expert", l);
    // Two rounds: the experts whose bytes are here, while the reads of the others go on (an
    // offloaded cache's prefetch may still be reading some), then the rest, get() waiting for
    // each. Rounds that ran each expert as its read landed were slower on 2 cores (8.8
    // against 10.3 tok/s, RESULTS §12): every round is two parallel regions and a wake-up.
    // The outputs do not depend on the order, bit for bit; a resident provider is always
    // ready, so one round.
    std::vector<int>& later = s.experts_later;
    std::vector<int>& now = s.experts_now;
    now.clear();
    later.clear();
    for (size_t j = 0; j < count; ++j)
      (provider.ready(l, rest[j]) ? now : later).push_back(rest[j]);
    if (!now.empty() || shared_pending) experts_chunk(l, n, now, shared_pending);
    shared_pending = false;
    if (!later.empty()) experts_chunk(l, n, later, false);
    if (!rest.empty()) provider.end_layer(l);
    first += count;
  } while (first < active.size());

  // Weighted sum over each token's picks, best pick first.
  std::fill_n(s.moe_out.data(), n * d, 0.f);
  for (int64_t i = 0; i < n * k; ++i) {
    if (s.pick_row[i] < 0) continue;
    const int64_t t = i / k;
    ops::axpy(s.topk_w[i], s.ex_out.data() + s.pick_row[i] * d, s.moe_out.data() + t * d, d);
  }
  if (ffs > 0 && cfg_.shared_gate) {
    ops::matmul(L.shared_gate, s.h.data(), n, s.shared_gate.data(), pool_);
    for (int64_t t = 0; t < n; ++t) {
      const float g = 1.f / (1.f + std::exp(-s.shared_gate[t]));
      ops::axpy(g, shared_out + t * d, s.moe_out.data() + t * d, d);
    }
  } else if (ffs > 0) {
    ops::axpy(1.f, shared_out, s.moe_out.data(), n * d);
  }
  if (observer_) observer_->on_tensor("moe_out", l, s.moe_out.data(), n, d);
  add_residual(s.moe_out.data());
}

void Session::experts_chunk(int l, int64_t n, std::span<const int> chunk, bool with_shared) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const int64_t d = cfg_.n_embd, ff = cfg_.n_ff, ffs = with_shared ? cfg_.n_ff_shared : 0;
  const int k = cfg_.n_expert_used;
  const std::vector<int64_t>& offset = s.expert_offset;
  moe::ExpertProvider& provider = model_.experts();
  std::vector<moe::ExpertWeights>& ew = s.expert_weights;
  ew.resize(chunk.size());
  for (size_t i = 0; i < chunk.size(); ++i) ew[i] = provider.get(l, chunk[i]);

  float* shared_gate_out = s.ex_gate.data() + n * k * ff;  // [n, ffs] after the routed rows
  float* shared_up_out = s.ex_up.data() + n * k * ff;
  float* shared_out = s.ex_out.data() + n * k * d;  // [n, d]
  // A projection stored as low-rank plus sparse rows (mcmoe lowrank) runs factored; the
  // batch keeps every expert of the chunk in as few parallel regions as it can.
  ops::ProductBatch& jobs = s.products;
  jobs.clear();
  for (size_t i = 0; i < chunk.size(); ++i) {
    const int64_t off = offset[chunk[i]], cnt = offset[chunk[i] + 1] - off;
    jobs.add(ew[i].gate, ew[i].gate_lr, s.ex_in.data() + off * d, s.ex_gate.data() + off * ff, cnt);
    jobs.add(ew[i].up, ew[i].up_lr, s.ex_in.data() + off * d, s.ex_up.data() + off * ff, cnt);
  }
  if (ffs > 0) {
    jobs.add(L.shared.gate, s.h.data(), shared_gate_out, n);
    jobs.add(L.shared.up, s.h.data(), shared_up_out, n);
  }
  jobs.run(pool_);
  if (cfg_.expert_bias) {
    for (size_t i = 0; i < chunk.size(); ++i) {
      const int64_t off = offset[chunk[i]], cnt = offset[chunk[i] + 1] - off;
      add_bias(ew[i].gate_b, s.ex_gate.data() + off * ff, cnt, ff);
      add_bias(ew[i].up_b, s.ex_up.data() + off * ff, cnt, ff);
    }
  }
  // Each expert owns a contiguous row range (a chunk need not be contiguous: the ready
  // experts of a layer may run before the others).
  for (int e : chunk) {
    const int64_t off = offset[e], cnt = offset[e + 1] - off;
    activate(cfg_, s.ex_gate.data() + off * ff, s.ex_up.data() + off * ff, cnt * ff);
  }
  if (ffs > 0) {
    ops::silu_mul(shared_gate_out, shared_up_out, n * ffs);
    if (observer_) observer_->on_tensor("shared_hidden", l, shared_gate_out, n, ffs);
  }

  jobs.clear();
  for (size_t i = 0; i < chunk.size(); ++i) {
    const int64_t off = offset[chunk[i]], cnt = offset[chunk[i] + 1] - off;
    jobs.add(ew[i].down, ew[i].down_lr, s.ex_gate.data() + off * ff, s.ex_out.data() + off * d, cnt);
  }
  if (ffs > 0) jobs.add(L.shared.down, shared_gate_out, shared_out, n);
  jobs.run(pool_);
  if (cfg_.expert_bias) {
    for (size_t i = 0; i < chunk.size(); ++i) {
      const int64_t off = offset[chunk[i]], cnt = offset[chunk[i] + 1] - off;
      add_bias(ew[i].down_b, s.ex_out.data() + off * d, cnt, d);
    }
  }
  if (observer_) {
    for (size_t i = 0; i < chunk.size(); ++i) {
      const int64_t off = offset[chunk[i]], cnt = offset[chunk[i] + 1] - off;
      observer_->on_expert({.layer = l, .expert = chunk[i],
                            .token_rows = std::span<const int64_t>(s.row_token.data() + off, cnt),
                            .input = s.ex_in.data() + off * d, .output = s.ex_out.data() + off * d,
                            .hidden = s.ex_gate.data() + off * ff, .weights = s.row_weight.data() + off,
                            .n_embd = d, .n_ff = ff});
    }
  }
}

}  // namespace mcmoe::model

#include "model/session.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/session_internal.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "quant/quantize.h"

namespace mcmoe::model {

Session::Session(Model& model, const SessionOptions& options)
    : model_(model),
      cfg_(model.config()),
      n_ctx_(options.n_ctx > 0 ? options.n_ctx : std::min(cfg_.n_ctx_train, 4096)),
      n_batch_(std::max(1, options.n_batch)),
      pool_(options.n_threads),
      observer_(options.observer),
      odp_(options.odp),
      s_(std::make_unique<Scratch>()) {
  if (odp_) {
    if (odp_->n_layer != cfg_.n_layer || odp_->k != cfg_.n_expert_used ||
        odp_->mu.size() != static_cast<size_t>(cfg_.n_layer) * (cfg_.n_expert_used - 1)) {
      fail("ODP thresholds are for {} layers with top-{} ({} values); the model has {} layers with top-{}",
           odp_->n_layer, odp_->k, odp_->mu.size(), cfg_.n_layer, cfg_.n_expert_used);
    }
  }
  const size_t kv_dim = static_cast<size_t>(cfg_.n_head_kv) * cfg_.head_dim;
  const size_t q_dim = static_cast<size_t>(cfg_.n_head) * cfg_.head_dim;
  k_cache_.assign(cfg_.n_layer, std::vector<float>(static_cast<size_t>(n_ctx_) * kv_dim));
  v_cache_.assign(cfg_.n_layer, std::vector<float>(static_cast<size_t>(n_ctx_) * kv_dim));
  const size_t b = static_cast<size_t>(n_batch_), d = static_cast<size_t>(cfg_.n_embd);
  const size_t rows = b * static_cast<size_t>(cfg_.n_expert_used + 1);
  const size_t ff = static_cast<size_t>(std::max(cfg_.n_ff, cfg_.n_ff_shared));
  Scratch& s = *s_;
  s.x.resize(b * d);
  s.h.resize(b * d);
  s.q.resize(b * q_dim);
  s.k.resize(b * kv_dim);
  s.v.resize(b * kv_dim);
  s.att.resize(b * q_dim);
  s.proj.resize(b * d);
  s.router_logits.resize(b * cfg_.n_expert);
  s.probs.resize(b * cfg_.n_expert);
  if (!cfg_.expert_map.empty()) s.merged_probs.resize(b * cfg_.n_expert);
  s.topk_ids.resize(b * cfg_.n_expert_used);
  s.topk_w.resize(b * cfg_.n_expert_used);
  s.moe_out.resize(b * d);
  s.ex_in.resize(rows * d);
  s.ex_gate.resize(rows * ff);
  s.ex_up.resize(rows * ff);
  s.ex_out.resize(rows * d);
  s.shared_gate.resize(b);
  s.final_rows.resize(b * d);
  s.expert_offset.reserve(cfg_.n_expert + 1);
  s.expert_fill.reserve(cfg_.n_expert);
  s.pick_row.reserve(b * cfg_.n_expert_used);
  s.row_token.reserve(b * cfg_.n_expert_used);
  s.row_weight.reserve(b * cfg_.n_expert_used);
  s.active_experts.reserve(cfg_.n_expert);
  s.active_max_weight.reserve(cfg_.n_expert);
  s.expert_weights.reserve(cfg_.n_expert);
  s.products.reserve(2 * static_cast<size_t>(cfg_.n_expert) + 2);
}

Session::~Session() = default;

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  if (tokens.empty()) fail("eval: no tokens given");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    fail("context full: {} tokens already in the cache + {} new exceed the context size {}",
         n_past_, tokens.size(), n_ctx_);
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= cfg_.n_vocab) fail("token id {} out of range [0, {})", t, cfg_.n_vocab);
  }
  const size_t n_out = all_logits ? tokens.size() : 1;
  logits_.resize(n_out * static_cast<size_t>(cfg_.n_vocab));
  for (size_t begin = 0; begin < tokens.size(); begin += static_cast<size_t>(n_batch_)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(n_batch_));
    const bool last_chunk = end == tokens.size();
    float* out = nullptr;
    if (all_logits) {
      out = logits_.data() + begin * static_cast<size_t>(cfg_.n_vocab);
    } else if (last_chunk) {
      out = logits_.data();
    }
    forward_chunk(tokens.subspan(begin, end - begin), all_logits, out);
  }
  return logits_;
}

void Session::eval_layer(int layer, float* x, int64_t n) {
  if (layer < 0 || layer >= cfg_.n_layer) fail("eval_layer: layer {} out of range [0, {})", layer, cfg_.n_layer);
  if (n <= 0 || n > n_batch_ || n > n_ctx_) {
    fail("eval_layer: {} tokens; a layer pass takes 1..min(n_batch {}, n_ctx {})", n, n_batch_, n_ctx_);
  }
  const int64_t d = cfg_.n_embd;
  Scratch& s = *s_;
  std::copy_n(x, n * d, s.x.data());
  // The sequence starts at position 0 in this layer's cache; the other layers' caches and
  // n_past() are untouched.
  const int64_t saved_past = n_past_;
  n_past_ = 0;
  attention_block(layer, n);
  moe_block(layer, n);
  n_past_ = saved_past;
  if (observer_) observer_->on_tensor("layer_out", layer, s.x.data(), n, d);
  std::copy_n(s.x.data(), n * d, x);
}

void Session::embed(std::span<const int32_t> tokens, float* x) const {
  const ModelWeights& w = model_.weights();
  const int64_t d = cfg_.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= cfg_.n_vocab) fail("token id {} out of range [0, {})", tokens[t], cfg_.n_vocab);
    quant::dequantize_row(w.tok_embd.type, w.tok_embd.row(tokens[t]), x + t * d, d);
  }
}

void Session::forward_chunk(std::span<const int32_t> tokens, bool all_logits, float* logits_out) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t d = cfg_.n_embd;
  const ModelWeights& w = model_.weights();
  Scratch& s = *s_;
  embed(tokens, s.x.data());
  for (int l = 0; l < cfg_.n_layer; ++l) {
    attention_block(l, n);
    moe_block(l, n);
    if (observer_) observer_->on_tensor("layer_out", l, s.x.data(), n, d);
    model_.experts().after_layer(l, s.x.data(), n);
  }
  n_past_ += n;
  if (!logits_out) return;
  // Only the rows whose logits are wanted go through the (large) output projection.
  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  for (int64_t t = 0; t < rows; ++t) {
    ops::rms_norm(s.x.data() + (first + t) * d, static_cast<const float*>(w.output_norm.data),
                  s.final_rows.data() + t * d, d, cfg_.rms_eps);
  }
  if (observer_) observer_->on_tensor("result_norm", -1, s.final_rows.data(), rows, d);
  ops::matmul(w.output, s.final_rows.data(), rows, logits_out, pool_);
  if (observer_) observer_->on_tensor("logits", -1, logits_out, rows, cfg_.n_vocab);
}

void Session::attention_block(int l, int64_t n) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const int64_t d = cfg_.n_embd;
  const int64_t q_dim = int64_t{cfg_.n_head} * cfg_.head_dim;
  const int64_t kv_dim = int64_t{cfg_.n_head_kv} * cfg_.head_dim;
  for (int64_t t = 0; t < n; ++t) {
    ops::rms_norm(s.x.data() + t * d, static_cast<const float*>(L.attn_norm.data),
                  s.h.data() + t * d, d, cfg_.rms_eps);
  }
  if (observer_) observer_->on_tensor("attn_norm", l, s.h.data(), n, d);
  const ops::MatmulJob qkv[3] = {
      {.w = &L.wq, .x = s.h.data(), .y = s.q.data(), .n_tokens = n},
      {.w = &L.wk, .x = s.h.data(), .y = s.k.data(), .n_tokens = n},
      {.w = &L.wv, .x = s.h.data(), .y = s.v.data(), .n_tokens = n},
  };
  ops::matmul_batch(qkv, pool_);
  float* k_cache = k_cache_[l].data();
  float* v_cache = v_cache_[l].data();
  for (int64_t t = 0; t < n; ++t) {
    float* q = s.q.data() + t * q_dim;
    float* k = s.k.data() + t * kv_dim;
    float* v = s.v.data() + t * kv_dim;
    if (L.bq.valid()) {
      ops::axpy(1.f, static_cast<const float*>(L.bq.data), q, q_dim);
      ops::axpy(1.f, static_cast<const float*>(L.bk.data), k, kv_dim);
      ops::axpy(1.f, static_cast<const float*>(L.bv.data), v, kv_dim);
    }
    if (cfg_.qk_norm == QkNorm::PerHead) {
      for (int h = 0; h < cfg_.n_head; ++h) {
        float* qh = q + int64_t{h} * cfg_.head_dim;
        ops::rms_norm(qh, static_cast<const float*>(L.q_norm.data), qh, cfg_.head_dim, cfg_.rms_eps);
      }
      for (int h = 0; h < cfg_.n_head_kv; ++h) {
        float* kh = k + int64_t{h} * cfg_.head_dim;
        ops::rms_norm(kh, static_cast<const float*>(L.k_norm.data), kh, cfg_.head_dim, cfg_.rms_eps);
      }
    } else if (cfg_.qk_norm == QkNorm::AllHeads) {
      ops::rms_norm(q, static_cast<const float*>(L.q_norm.data), q, q_dim, cfg_.rms_eps);
      ops::rms_norm(k, static_cast<const float*>(L.k_norm.data), k, kv_dim, cfg_.rms_eps);
    }
    const int64_t pos = n_past_ + t;
    ops::rope(q, cfg_.n_head, cfg_.head_dim, pos, cfg_.rope_theta, cfg_.rope_style);
    ops::rope(k, cfg_.n_head_kv, cfg_.head_dim, pos, cfg_.rope_theta, cfg_.rope_style);
    std::copy(k, k + kv_dim, k_cache + pos * kv_dim);
    std::copy(v, v + kv_dim, v_cache + pos * kv_dim);
  }
  ops::AttentionParams ap;
  ap.q = s.q.data();
  ap.k_cache = k_cache;
  ap.v_cache = v_cache;
  ap.out = s.att.data();
  ap.n_tokens = n;
  ap.pos0 = n_past_;
  ap.n_head = cfg_.n_head;
  ap.n_head_kv = cfg_.n_head_kv;
  ap.head_dim = cfg_.head_dim;
  // ODP's token protection needs the attention each token receives (prefill only).
  s.att_probs.clear();  // (keeps its capacity) empty = no probabilities for this layer
  const bool protect = odp_ && odp_->enabled(l) && odp_->protect_fraction > 0 && n > 1;
  if (protect) {
    s.att_probs.resize(static_cast<size_t>(cfg_.n_head) * n * (n_past_ + n));
    ap.probs_out = s.att_probs.data();
  }
  ops::attention(ap, pool_);
  if (observer_) observer_->on_tensor("attn_ctx", l, s.att.data(), n, q_dim);
  ops::matmul(L.wo, s.att.data(), n, s.proj.data(), pool_);
  if (observer_) observer_->on_tensor("attn_out", l, s.proj.data(), n, d);
  for (int64_t i = 0; i < n * d; ++i) s.x[i] += s.proj[i];
  if (observer_) observer_->on_tensor("ffn_inp", l, s.x.data(), n, d);
}

}  // namespace mcmoe::model

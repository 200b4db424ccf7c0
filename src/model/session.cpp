#include "model/session.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/dispatch.h"
#include "model/session_internal.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/kv_rows.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "quant/quantize.h"

namespace mcmoe::model {

Session::Session(Model& model, const SessionOptions& options)
    : model_(model),
      cfg_(model.config()),
      n_ctx_(options.n_ctx > 0 ? options.n_ctx : default_context(cfg_)),
      // A batch holds at most n_ctx tokens of each sequence.
      n_batch_(std::clamp(options.n_batch, 1, n_ctx_ * std::max(1, options.n_seq))),
      pool_(options.n_threads),
      observer_(options.observer),
      odp_(options.odp),
      cache_aware_margin_(options.cache_aware_margin),
      cache_type_(options.cache_type),
      rope_(ops::RopeTable::make(cfg_.rope)),
      mla_mode_(options.mla_mode),
      s_(std::make_unique<Scratch>()) {
  if (options.n_seq < 1) fail("a session needs at least one sequence, got n_seq {}", options.n_seq);
  if (!(options.cache_aware_margin >= 0.f && options.cache_aware_margin <= 1.f)) {
    fail("cache-aware routing margin {} is not in [0, 1]", options.cache_aware_margin);
  }
  n_past_.assign(static_cast<size_t>(options.n_seq), 0);
  // eval_batch promises each sequence its alone-run bits; OpenBLAS's float products would
  // break that on the ISAs that use it for prefill (kernels/dispatch.h).
  if (options.n_seq > 1) kernels::set_batch_invariant(true);
  if (odp_) {
    if (odp_->n_layer != cfg_.n_layer || odp_->k != cfg_.n_expert_used ||
        odp_->mu.size() != static_cast<size_t>(cfg_.n_layer) * (cfg_.n_expert_used - 1)) {
      fail("ODP thresholds are for {} layers with top-{} ({} values); the model has {} layers with top-{}",
           odp_->n_layer, odp_->k, odp_->mu.size(), cfg_.n_layer, cfg_.n_expert_used);
    }
  }
  const bool mla = cfg_.attention == AttentionKind::Mla;
  if (mla && mla_mode_ == SessionOptions::MlaMode::kNaive && cfg_.mla.split_kv_b) {
    fail("{}: the naive MLA form needs attn_kv_b whole; this file stores it split (attn_k_b, attn_v_b)", model.path());
  }
  if (!ops::kv_type_supported(cache_type_)) {
    fail("KV cache type {} is not supported (expected f32, f16 or q8_0)", dtype_name(cache_type_));
  }
  const int64_t block = dtype_traits(cache_type_).block_size;
  const int64_t k_width = mla ? cfg_.mla.latent() : cfg_.kv_dim(), v_width = mla ? 0 : cfg_.v_dim();
  // Rows are stored per key/value head (session.h), so each head's row is whole blocks.
  const int64_t k_row = mla ? k_width : cfg_.head_dim, v_row = mla ? 0 : cfg_.head_dim_v;
  if (k_row % block != 0 || v_row % block != 0) {
    fail(
        "{}: KV cache type {} stores blocks of {} values; the cache rows of one head hold {} "
        "(keys) and {} (values)",
        model.path(), dtype_name(cache_type_), block, k_row, v_row);
  }
  const size_t ctx = static_cast<size_t>(n_ctx_) * n_past_.size();  // every sequence's rows
  k_cache_.resize(cfg_.n_layer);
  v_cache_.resize(cfg_.n_layer);
  for (int l = 0; l < cfg_.n_layer; ++l) {
    k_cache_[l].resize(ctx * row_bytes(cache_type_, k_width));
    if (v_width > 0) v_cache_[l].resize(ctx * row_bytes(cache_type_, v_width));
  }
  const size_t b = static_cast<size_t>(n_batch_), d = static_cast<size_t>(cfg_.n_embd);
  const size_t k = static_cast<size_t>(cfg_.n_expert_used), h = static_cast<size_t>(cfg_.n_head);
  Scratch& s = *s_;
  s.x.resize(b * d);
  s.h.resize(b * d);
  s.q.resize(b * cfg_.q_dim());
  s.att.resize(b * cfg_.attn_out_dim());
  s.proj.resize(b * d);
  if (mla) {
    const MlaConfig& a = cfg_.mla;
    s.qa.resize(b * a.q_lora_rank);
    s.kva.resize(b * a.latent());
    s.q_lat.resize(b * h * a.latent());
    s.att_lat.resize(b * h * a.kv_lora_rank);
    s.head_views.reserve(2 * h);
    s.head_jobs.reserve(h);
  } else {
    s.k.resize(b * cfg_.kv_dim());
    s.v.resize(b * cfg_.v_dim());
  }
  const size_t n_expert = static_cast<size_t>(cfg_.n_expert);
  s.router_logits.resize(b * n_expert);
  s.probs.resize(b * n_expert);
  if (!cfg_.expert_map.empty()) s.merged_probs.resize(b * n_expert);
  s.topk_ids.resize(b * k);
  s.topk_w.resize(b * k);
  s.moe_out.resize(b * d);
  s.ex_in.resize(b * k * d);
  const size_t ff_rows = std::max(b * (k * static_cast<size_t>(cfg_.n_ff) + static_cast<size_t>(cfg_.n_ff_shared)),
                                  b * static_cast<size_t>(cfg_.n_ff_dense));
  s.ex_gate.resize(ff_rows);
  s.ex_up.resize(ff_rows);
  s.ex_out.resize(b * (k + 1) * d);
  s.shared_gate.resize(b);
  s.final_rows.resize(b * d);
  s.expert_offset.reserve(n_expert + 1);
  s.expert_fill.reserve(n_expert);
  s.pick_row.reserve(b * k);
  s.row_token.reserve(b * k);
  s.row_weight.reserve(b * k);
  s.active_experts.reserve(n_expert);
  s.active_max_weight.reserve(n_expert);
  s.expert_weights.reserve(n_expert);
  s.products.reserve(2 * n_expert + 2);
}

size_t kv_cache_bytes_per_token(const ModelConfig& c, DType cache_type) {
  const size_t per_layer = c.attention == AttentionKind::Mla ? row_bytes(cache_type, c.mla.latent())
                                                             : row_bytes(cache_type, c.kv_dim()) +
                                                                   row_bytes(cache_type, c.v_dim());
  return per_layer * c.n_layer;
}

size_t Session::kv_cache_bytes_per_token() const {
  return model::kv_cache_bytes_per_token(cfg_, cache_type_);
}

size_t Session::scratch_bytes() const {
  const Scratch& s = *s_;
  const auto bytes = [](const auto&... v) { return ((v.capacity() * sizeof(v[0])) + ...); };
  return bytes(s.x, s.h, s.q, s.k, s.v, s.att, s.proj, s.qa, s.kva, s.q_lat, s.att_lat, s.kv_exp,
               s.k_full, s.v_full, s.lat_f32, s.router_logits, s.probs, s.merged_probs, s.topk_ids,
               s.topk_w, s.moe_out, s.ex_in, s.ex_gate, s.ex_up, s.ex_out, s.shared_gate,
               s.final_rows, s.pick_row, s.row_token, s.row_weight, s.att_probs, s.importance);
}

Session::~Session() = default;

uint8_t* Session::k_cache(int l, int seq) {
  return k_cache_[l].data() + k_cache_[l].size() / n_past_.size() * static_cast<size_t>(seq);
}

uint8_t* Session::v_cache(int l, int seq) {
  return v_cache_[l].data() + v_cache_[l].size() / n_past_.size() * static_cast<size_t>(seq);
}

std::span<const float> Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  if (tokens.empty()) fail("eval: no tokens given");
  if (n_past_[0] + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    fail("context full: {} tokens already in the cache + {} new exceed the context size {}",
         n_past_[0], tokens.size(), n_ctx_);
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= cfg_.n_vocab) fail("token id {} out of range [0, {})", t, cfg_.n_vocab);
  }
  const size_t n_out = all_logits ? tokens.size() : 1;
  logits_.resize(n_out * static_cast<size_t>(cfg_.n_vocab));
  for (size_t begin = 0; begin < tokens.size(); begin += static_cast<size_t>(n_batch_)) {
    const size_t end = std::min(tokens.size(), begin + static_cast<size_t>(n_batch_));
    const int64_t n = static_cast<int64_t>(end - begin);
    segments_.assign(1, Segment{.seq = 0, .row0 = 0, .n = n, .pos0 = n_past_[0]});
    out_rows_.clear();
    float* out = nullptr;
    if (all_logits) {
      for (int64_t r = 0; r < n; ++r) out_rows_.push_back(r);
      out = logits_.data() + begin * static_cast<size_t>(cfg_.n_vocab);
    } else if (end == tokens.size()) {
      out_rows_.push_back(n - 1);
      out = logits_.data();
    }
    forward(tokens.data() + begin, n, out_rows_, out);
  }
  return logits_;
}

std::span<const float> Session::eval_batch(std::span<const SeqTokens> batch) {
  if (batch.empty()) fail("eval_batch: no sequences given");
  std::vector<int32_t>& tokens = batch_tokens_;
  tokens.clear();
  segments_.clear();
  out_rows_.clear();
  std::vector<uint8_t> seen(n_past_.size(), 0);
  for (const SeqTokens& e : batch) {
    if (e.seq < 0 || e.seq >= n_seq())
      fail("eval_batch: sequence {} out of range [0, {})", e.seq, n_seq());
    if (seen[e.seq]++) fail("eval_batch: sequence {} appears twice in one batch", e.seq);
    if (e.tokens.empty()) fail("eval_batch: sequence {} has no tokens", e.seq);
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    if (n_past_[e.seq] + n > n_ctx_) {
      fail(
          "context full: sequence {} has {} tokens in its cache + {} new, more than the context "
          "size {}",
          e.seq, n_past_[e.seq], n, n_ctx_);
    }
    for (int32_t t : e.tokens) {
      if (t < 0 || t >= cfg_.n_vocab) fail("token id {} out of range [0, {})", t, cfg_.n_vocab);
    }
    segments_.push_back(Segment{
        .seq = e.seq, .row0 = static_cast<int64_t>(tokens.size()), .n = n, .pos0 = n_past_[e.seq]});
    tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
    out_rows_.push_back(static_cast<int64_t>(tokens.size()) - 1);
  }
  if (static_cast<int64_t>(tokens.size()) > n_batch_) {
    fail("eval_batch: {} tokens in one batch; at most n_batch = {}", tokens.size(), n_batch_);
  }
  logits_.resize(batch.size() * static_cast<size_t>(cfg_.n_vocab));
  forward(tokens.data(), static_cast<int64_t>(tokens.size()), out_rows_, logits_.data());
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
  // The sequence starts at position 0 in this layer's cache of sequence 0; the other
  // layers' caches and n_past() are untouched.
  segments_.assign(1, Segment{.seq = 0, .row0 = 0, .n = n, .pos0 = 0});
  attention_block(layer, n);
  moe_block(layer, n);
  if (observer_) observer_->on_tensor("layer_out", layer, s.x.data(), n, d);
  std::copy_n(s.x.data(), n * d, x);
}

void Session::embed(std::span<const int32_t> tokens, float* x) const {
  const ModelWeights& w = model_.weights();
  const int64_t d = cfg_.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= cfg_.n_vocab) fail("token id {} out of range [0, {})", tokens[t], cfg_.n_vocab);
    quant::dequantize_row(w.tok_embd.type, w.tok_embd.row(tokens[t]), x + t * d, d);
    if (cfg_.embd_scale != 1.f) ops::scale_in_place(x + t * d, cfg_.embd_scale, d);
  }
}

void Session::forward(const int32_t* tokens, int64_t n, std::span<const int64_t> out_rows,
                      float* logits_out) {
  const int64_t d = cfg_.n_embd;
  const ModelWeights& w = model_.weights();
  Scratch& s = *s_;
  embed(std::span<const int32_t>(tokens, static_cast<size_t>(n)), s.x.data());
  for (int l = 0; l < cfg_.n_layer; ++l) {
    attention_block(l, n);
    moe_block(l, n);
    if (observer_) observer_->on_tensor("layer_out", l, s.x.data(), n, d);
    model_.experts().after_layer(l, s.x.data(), n);
  }
  for (const Segment& seg : segments_) n_past_[seg.seq] += seg.n;
  if (!logits_out || out_rows.empty()) return;
  // Only the rows whose logits are wanted go through the (large) output projection.
  const int64_t rows = static_cast<int64_t>(out_rows.size());
  for (int64_t i = 0; i < rows; ++i) {
    ops::rms_norm(s.x.data() + out_rows[i] * d, static_cast<const float*>(w.output_norm.data),
                  s.final_rows.data() + i * d, d, cfg_.rms_eps);
  }
  if (observer_) observer_->on_tensor("result_norm", -1, s.final_rows.data(), rows, d);
  ops::matmul(w.output, s.final_rows.data(), rows, logits_out, pool_);
  if (cfg_.logit_scale != 1.f) ops::scale_in_place(logits_out, 1.f / cfg_.logit_scale, rows * cfg_.n_vocab);
  if (observer_) observer_->on_tensor("logits", -1, logits_out, rows, cfg_.n_vocab);
}

}  // namespace mcmoe::model

// The attention half of a decoder layer: norm → attention (grouped-query or multi-head
// latent) over the KV cache → output projection → residual.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/mla.h"
#include "model/session.h"
#include "model/session_internal.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/kv_rows.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace mcmoe::model {

void Session::attention_block(int l, int64_t n) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const int64_t d = cfg_.n_embd;
  for (int64_t t = 0; t < n; ++t) {
    ops::rms_norm(s.x.data() + t * d, static_cast<const float*>(L.attn_norm.data),
                  s.h.data() + t * d, d, cfg_.rms_eps);
  }
  if (observer_) observer_->on_tensor("attn_norm", l, s.h.data(), n, d);
  s.att_probs.clear();  // (keeps its capacity) filled by attend() where ODP protects tokens
  for (Segment& seg : segments_) seg.probs = -1;
  if (cfg_.attention == AttentionKind::Mla) {
    attention_mla(l, n);
  } else {
    attention_gqa(l, n);
  }
  if (observer_) observer_->on_tensor("attn_ctx", l, s.att.data(), n, cfg_.attn_out_dim());
  ops::matmul(L.wo, s.att.data(), n, s.proj.data(), pool_);
  if (L.bo.valid()) {
    for (int64_t t = 0; t < n; ++t)
      ops::axpy(1.f, static_cast<const float*>(L.bo.data), s.proj.data() + t * d, d);
  }
  if (observer_) observer_->on_tensor("attn_out", l, s.proj.data(), n, d);
  if (cfg_.residual_scale != 1.f) {
    ops::axpy(cfg_.residual_scale, s.proj.data(), s.x.data(), n * d);
  } else {
    for (int64_t i = 0; i < n * d; ++i) s.x[i] += s.proj[i];
  }
  if (observer_) observer_->on_tensor("ffn_inp", l, s.x.data(), n, d);
}

void Session::attend(int l, Segment& seg, ops::AttentionParams& ap) {
  Scratch& s = *s_;
  ap.n_tokens = seg.n;
  ap.pos0 = seg.pos0;
  if (cfg_.is_swa(l)) ap.window = cfg_.sliding_window;
  if (cfg_.attn_sinks) ap.sinks = static_cast<const float*>(model_.weights().layers[l].sinks.data);
  // ODP's token protection needs the attention each token receives (prefill only).
  const bool protect = odp_ && odp_->enabled(l) && odp_->protect_fraction > 0 && seg.n > 1;
  if (protect) {
    seg.probs = static_cast<int64_t>(s.att_probs.size());
    s.att_probs.resize(s.att_probs.size() +
                       static_cast<size_t>(cfg_.n_head) * seg.n * (seg.pos0 + seg.n));
    ap.probs_out = s.att_probs.data() + seg.probs;
  }
  ops::attention(ap, pool_);
}

void Session::attention_gqa(int l, int64_t n) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const int64_t q_dim = cfg_.q_dim(), kv_dim = cfg_.kv_dim(), v_dim = cfg_.v_dim(),
                hd = cfg_.head_dim;
  const ops::MatmulJob qkv[3] = {
      {.w = &L.wq, .x = s.h.data(), .y = s.q.data(), .n_tokens = n},
      {.w = &L.wk, .x = s.h.data(), .y = s.k.data(), .n_tokens = n},
      {.w = &L.wv, .x = s.h.data(), .y = s.v.data(), .n_tokens = n},
  };
  ops::matmul_batch(qkv, pool_);
  const int64_t hd_v = cfg_.head_dim_v;
  const size_t k_row = row_bytes(cache_type_, hd), v_row = row_bytes(cache_type_, hd_v);
  const float clip = cfg_.clip_qkv;
  for (Segment& seg : segments_) {
    uint8_t* kc = k_cache(l, seg.seq);
    uint8_t* vc = v_cache(l, seg.seq);
    for (int64_t t = seg.row0; t < seg.row0 + seg.n; ++t) {
      float* q = s.q.data() + t * q_dim;
      float* k = s.k.data() + t * kv_dim;
      float* v = s.v.data() + t * v_dim;
      if (L.bq.valid()) {
        ops::axpy(1.f, static_cast<const float*>(L.bq.data), q, q_dim);
        ops::axpy(1.f, static_cast<const float*>(L.bk.data), k, kv_dim);
        ops::axpy(1.f, static_cast<const float*>(L.bv.data), v, v_dim);
      }
      if (cfg_.qk_norm == QkNorm::AllHeads) {
        ops::rms_norm(q, static_cast<const float*>(L.q_norm.data), q, q_dim, cfg_.rms_eps);
        ops::rms_norm(k, static_cast<const float*>(L.k_norm.data), k, kv_dim, cfg_.rms_eps);
      }
      if (clip > 0) {  // OLMoE's clip_qkv, after the whole-projection norms
        for (float* p : {q, k, v}) {
          const int64_t m = p == q ? q_dim : p == k ? kv_dim : v_dim;
          for (int64_t i = 0; i < m; ++i) p[i] = std::clamp(p[i], -clip, clip);
        }
      }
      if (cfg_.qk_norm == QkNorm::PerHead) {
        for (int h = 0; h < cfg_.n_head; ++h) {
          float* qh = q + h * hd;
          ops::rms_norm(qh, static_cast<const float*>(L.q_norm.data), qh, hd, cfg_.rms_eps);
        }
        for (int h = 0; h < cfg_.n_head_kv; ++h) {
          float* kh = k + h * hd;
          ops::rms_norm(kh, static_cast<const float*>(L.k_norm.data), kh, hd, cfg_.rms_eps);
        }
      }
      const int64_t pos = seg.pos0 + (t - seg.row0);
      ops::rope(q, cfg_.n_head, hd, pos, rope_);
      ops::rope(k, cfg_.n_head_kv, hd, pos, rope_);
      for (int g = 0; g < cfg_.n_head_kv; ++g) {  // head-major rows (session.h)
        ops::kv_row_from_f32(cache_type_, k + g * hd, hd, kc + (g * n_ctx_ + pos) * k_row);
        ops::kv_row_from_f32(cache_type_, v + g * hd_v, hd_v, vc + (g * n_ctx_ + pos) * v_row);
      }
    }
    ops::AttentionParams ap;
    ap.q = s.q.data() + seg.row0 * q_dim;
    ap.k = kc;
    ap.v = vc;
    ap.k_stride = hd;
    ap.k_head_stride = static_cast<int64_t>(n_ctx_) * hd;
    ap.v_stride = hd_v;
    ap.v_head_stride = static_cast<int64_t>(n_ctx_) * hd_v;
    ap.out = s.att.data() + seg.row0 * cfg_.attn_out_dim();
    ap.n_head = cfg_.n_head;
    ap.n_head_kv = cfg_.n_head_kv;
    ap.head_dim = cfg_.head_dim;
    ap.head_dim_v = cfg_.head_dim_v;
    ap.scale = cfg_.attn_scale;
    ap.kv_type = cache_type_;
    attend(l, seg, ap);
  }
}

// Multi-head latent attention. The cache keeps, per position, the normed latent c_kv
// [kv_lora_rank] and the roped shared key k_pe [qk_rope]. Absorbed: each head's query
// becomes [W_UK_hᵀ q_nope | q_pe] and attends, as one multi-query head, over the cached rows
// (keys: the whole row; values: its c_kv part); W_UV_h then maps the latent output to v.
// Naive: the cached latents are expanded by kv_b into per-head k_nope and v, and attention
// runs per head over [k_nope | k_pe]. Both compute softmax(q·k · scale) with
// scale = mscale² / sqrt(qk_nope + qk_rope) (mscale: YaRN's mscale_all_dim correction).
void Session::attention_mla(int l, int64_t n) {
  const LayerWeights& L = model_.weights().layers[l];
  Scratch& s = *s_;
  const MlaConfig& a = cfg_.mla;
  const int64_t H = cfg_.n_head, qk = a.qk_dim(), lat = a.latent(), lora = a.kv_lora_rank;
  // Queries [n, H, qk] and the new latents [n, lat].
  if (a.q_lora_rank > 0) {
    ops::matmul(L.wq_a, s.h.data(), n, s.qa.data(), pool_);
    for (int64_t t = 0; t < n; ++t) {
      float* r = s.qa.data() + t * a.q_lora_rank;
      ops::rms_norm(r, static_cast<const float*>(L.q_a_norm.data), r, a.q_lora_rank, cfg_.rms_eps);
    }
    if (observer_) observer_->on_tensor("q_a_norm", l, s.qa.data(), n, a.q_lora_rank);
    const ops::MatmulJob jobs[2] = {
        {.w = &L.wq_b, .x = s.qa.data(), .y = s.q.data(), .n_tokens = n},
        {.w = &L.wkv_a, .x = s.h.data(), .y = s.kva.data(), .n_tokens = n}};
    ops::matmul_batch(jobs, pool_);
  } else {
    const ops::MatmulJob jobs[2] = {
        {.w = &L.wq, .x = s.h.data(), .y = s.q.data(), .n_tokens = n},
        {.w = &L.wkv_a, .x = s.h.data(), .y = s.kva.data(), .n_tokens = n}};
    ops::matmul_batch(jobs, pool_);
  }
  const size_t row = row_bytes(cache_type_, lat);
  for (const Segment& seg : segments_) {
    uint8_t* cache = k_cache(l, seg.seq);
    for (int64_t t = seg.row0; t < seg.row0 + seg.n; ++t) {
      float* c = s.kva.data() + t * lat;
      ops::rms_norm(c, static_cast<const float*>(L.kv_a_norm.data), c, lora, cfg_.rms_eps);
      const int64_t pos = seg.pos0 + (t - seg.row0);
      ops::rope(c + lora, 1, a.qk_rope, pos, rope_);  // k_pe, shared by all heads
      ops::rope(s.q.data() + t * H * qk + a.qk_nope, static_cast<int>(H), qk, pos,
                rope_);  // each head's q_pe
      ops::kv_row_from_f32(cache_type_, c, lat, cache + pos * row);
    }
  }
  if (observer_) observer_->on_tensor("kv_a_norm", l, s.kva.data(), n, lat);
  const float scale = cfg_.mla_mscale * cfg_.mla_mscale / std::sqrt(static_cast<float>(qk));
  // The form is chosen per sequence from its own rows and context, as if it ran alone.
  const auto use_absorbed = [&](const Segment& seg) {
    if (mla_mode_ != SessionOptions::MlaMode::kAuto || a.split_kv_b)
      return mla_mode_ != SessionOptions::MlaMode::kNaive;
    // Multiply-adds of each form: absorbed folds W_UK into n queries, attends over 2·lora +
    // rope per key and applies W_UV; naive expands every cached position (ctx · H · (nope +
    // v) · lora) and attends over qk + v per key.
    const double m = static_cast<double>(seg.n), ctx = static_cast<double>(seg.pos0 + seg.n);
    const double pairs = m * (seg.pos0 + (m + 1) / 2.0) * H;
    const double absorbed_cost =
        m * H * static_cast<double>(a.qk_nope + a.v_dim) * lora + pairs * (2.0 * lora + a.qk_rope);
    const double naive_cost =
        ctx * H * static_cast<double>(a.qk_nope + a.v_dim) * lora + pairs * (qk + a.v_dim);
    return absorbed_cost <= naive_cost;
  };
  bool any_absorbed = false;
  for (const Segment& seg : segments_) any_absorbed = any_absorbed || use_absorbed(seg);
  if (any_absorbed) {
    // q_lat[t, h] = [W_UK_hᵀ q_nope[t, h] | q_pe[t, h]], for every row (per-row products, so
    // rows of naive sequences cost a little and change nothing).
    s.head_views.clear();
    for (int h = 0; h < H; ++h) s.head_views.push_back(mla_k_b(cfg_, L, h));
    for (int h = 0; h < H; ++h) s.head_views.push_back(mla_v_b(cfg_, L, h));
    s.head_jobs.clear();
    for (int h = 0; h < H; ++h) {
      s.head_jobs.push_back({.w = &s.head_views[h],
                             .x = s.q.data() + h * qk,
                             .y = s.q_lat.data() + h * lat,
                             .n_tokens = n,
                             .ldx = H * qk,
                             .ldy = H * lat});
    }
    ops::matmul_batch(s.head_jobs, pool_);
    for (int64_t t = 0; t < n; ++t) {
      for (int h = 0; h < H; ++h) {
        const float* pe = s.q.data() + (t * H + h) * qk + a.qk_nope;
        std::copy(pe, pe + a.qk_rope, s.q_lat.data() + (t * H + h) * lat + lora);
      }
    }
    for (Segment& seg : segments_) {
      if (!use_absorbed(seg)) continue;
      ops::AttentionParams ap;
      ap.n_head = static_cast<int>(H);
      ap.scale = scale;
      ap.q = s.q_lat.data() + seg.row0 * H * lat;
      ap.k = k_cache(l, seg.seq);
      ap.v = ap.k;
      ap.kv_type = cache_type_;
      ap.v_stride = lat;
      ap.out = s.att_lat.data() + seg.row0 * H * lora;
      ap.n_head_kv = 1;
      ap.head_dim = static_cast<int>(lat);
      ap.head_dim_v = static_cast<int>(lora);
      attend(l, seg, ap);
    }
    // att[t, h] = W_UV_h att_lat[t, h] (rows of naive sequences are overwritten below).
    s.head_jobs.clear();
    for (int h = 0; h < H; ++h) {
      s.head_jobs.push_back({.w = &s.head_views[H + h],
                             .x = s.att_lat.data() + h * lora,
                             .y = s.att.data() + h * a.v_dim,
                             .n_tokens = n,
                             .ldx = H * lora,
                             .ldy = H * a.v_dim});
    }
    ops::matmul_batch(s.head_jobs, pool_);
  }
  for (Segment& seg : segments_) {
    if (use_absorbed(seg)) continue;
    // Naive: expand every cached latent of the sequence's context, [ctx, H, nope + v], then
    // per head K = [k_nope | k_pe] and V.
    const int64_t ctx = seg.pos0 + seg.n;
    const uint8_t* cache = k_cache(l, seg.seq);
    const int64_t per_head = a.qk_nope + a.v_dim;
    s.kv_exp.resize(static_cast<size_t>(ctx * H * per_head));
    s.k_full.resize(static_cast<size_t>(ctx * H * qk));
    s.v_full.resize(static_cast<size_t>(ctx * H * a.v_dim));
    const float* latents = reinterpret_cast<const float*>(cache);
    if (cache_type_ != DType::F32) {  // the products read f32
      s.lat_f32.resize(static_cast<size_t>(ctx * lat));
      ops::kv_rows_to_f32(cache_type_, cache, row, ctx, lat, s.lat_f32.data(), lat);
      latents = s.lat_f32.data();
    }
    const ops::MatmulJob expand{
        .w = &L.wkv_b, .x = latents, .y = s.kv_exp.data(), .n_tokens = ctx, .ldx = lat};
    ops::matmul_batch(std::span<const ops::MatmulJob>(&expand, 1), pool_);
    for (int64_t j = 0; j < ctx; ++j) {
      for (int h = 0; h < H; ++h) {
        const float* e = s.kv_exp.data() + (j * H + h) * per_head;
        float* kf = s.k_full.data() + (j * H + h) * qk;
        std::copy(e, e + a.qk_nope, kf);
        std::copy(latents + j * lat + lora, latents + j * lat + lat, kf + a.qk_nope);
        std::copy(e + a.qk_nope, e + per_head, s.v_full.data() + (j * H + h) * a.v_dim);
      }
    }
    ops::AttentionParams ap;
    ap.n_head = static_cast<int>(H);
    ap.scale = scale;
    ap.q = s.q.data() + seg.row0 * H * qk;
    ap.k = s.k_full.data();
    ap.v = s.v_full.data();
    ap.out = s.att.data() + seg.row0 * cfg_.attn_out_dim();
    ap.n_head_kv = static_cast<int>(H);
    ap.head_dim = static_cast<int>(qk);
    ap.head_dim_v = a.v_dim;
    attend(l, seg, ap);
  }
}

}  // namespace mcmoe::model

#include "model/inventory.h"

#include "core/error.h"
#include "format/tensor_names.h"
#include "model/arch/arch.h"

namespace mcmoe::model {

namespace tn = format::tensor_names;

const char* role_name(TensorRole r) {
  switch (r) {
    case TensorRole::Embedding:
      return "embedding";
    case TensorRole::Output:
      return "output";
    case TensorRole::Norm:
      return "norm";
    case TensorRole::Attention:
      return "attention";
    case TensorRole::Router:
      return "router";
    case TensorRole::RoutedExpert:
      return "routed expert";
    case TensorRole::SharedExpert:
      return "shared expert";
    case TensorRole::DenseMlp:
      return "dense MLP";
  }
  return "?";
}

const char* expert_proj_name(TensorKind k) {
  switch (k) {
    case TensorKind::ExpGate:
    case TensorKind::ExpGateBias:
      return tn::kFfnGate;
    case TensorKind::ExpUp:
    case TensorKind::ExpUpBias:
      return tn::kFfnUp;
    case TensorKind::ExpDown:
    case TensorKind::ExpDownBias:
      return tn::kFfnDown;
    default:
      fail("internal: {} is not a routed expert tensor kind", static_cast<int>(k));
  }
}

std::string stacked_expert_name(TensorKind k, int l) {
  switch (k) {
    case TensorKind::ExpGate:
      return tn::layer(l, tn::kFfnGateExps);
    case TensorKind::ExpUp:
      return tn::layer(l, tn::kFfnUpExps);
    case TensorKind::ExpDown:
      return tn::layer(l, tn::kFfnDownExps);
    case TensorKind::ExpGateBias:
      return tn::layer(l, tn::kFfnGateExpsBias);
    case TensorKind::ExpUpBias:
      return tn::layer(l, tn::kFfnUpExpsBias);
    case TensorKind::ExpDownBias:
      return tn::layer(l, tn::kFfnDownExpsBias);
    default:
      fail("internal: {} is not a routed expert tensor kind", static_cast<int>(k));
  }
}

namespace {

// The three projections of a dense layer's MLP or of the shared expert.
void mlp_slots(const ModelConfig& c, int l, moe::ExpertWeights& e, TensorRole role, int64_t ff,
               const char* hidden_input, const SlotVisitor& f) {
  const int64_t d = c.n_embd;
  const bool shared = role == TensorRole::SharedExpert;
  using K = TensorKind;
  f({.kind = shared ? K::ShexpGate : K::DenseGate,
     .role = role,
     .layer = l,
     .name = shared ? tn::layer(l, tn::kFfnGateShexp) : tn::layer(l, tn::kFfnGate),
     .shape = {ff, d},
     .input = "ffn_norm",
     .view = &e.gate});
  f({.kind = shared ? K::ShexpUp : K::DenseUp,
     .role = role,
     .layer = l,
     .name = shared ? tn::layer(l, tn::kFfnUpShexp) : tn::layer(l, tn::kFfnUp),
     .shape = {ff, d},
     .input = "ffn_norm",
     .view = &e.up});
  f({.kind = shared ? K::ShexpDown : K::DenseDown,
     .role = role,
     .layer = l,
     .name = shared ? tn::layer(l, tn::kFfnDownShexp) : tn::layer(l, tn::kFfnDown),
     .shape = {d, ff},
     .input = hidden_input,
     .view = &e.down});
}

// Applies the family's GGUF name departures (model/arch/arch.h) to every slot.
SlotVisitor with_family_names(const ModelConfig& c, const SlotVisitor& f) {
  const auto rename = arch::info(c.arch).gguf_tensor_name;
  if (!rename) return f;
  return [rename, &f](const TensorSlot& s) {
    std::string name = rename(s);
    if (name.empty()) return f(s);
    TensorSlot t = s;
    t.name = std::move(name);
    f(t);
  };
}

void layer_slots(const ModelConfig& c, int l, LayerWeights& L,
                 std::vector<moe::ExpertWeights>& experts, const SlotVisitor& f) {
  const int64_t d = c.n_embd;
  auto vec = [&](TensorKind kind, TensorRole role, const char* suffix, int64_t n, TensorView& v) {
    f({.kind = kind,
       .role = role,
       .layer = l,
       .name = tn::layer(l, suffix),
       .shape = {n},
       .matrix = false,
       .view = &v});
  };
  auto mat = [&](TensorKind kind, TensorRole role, const char* suffix, int64_t rows, int64_t cols,
                 const char* input, TensorView& v) {
    f({.kind = kind,
       .role = role,
       .layer = l,
       .name = tn::layer(l, suffix),
       .shape = {rows, cols},
       .input = input,
       .view = &v});
  };
  using K = TensorKind;
  using R = TensorRole;
  vec(K::AttnNorm, R::Norm, tn::kAttnNorm, d, L.attn_norm);
  if (c.attention == AttentionKind::Mla) {
    const MlaConfig& a = c.mla;
    const int64_t h = c.n_head;
    if (a.q_lora_rank > 0) {
      mat(K::AttnQA, R::Attention, tn::kAttnQA, a.q_lora_rank, d, "attn_norm", L.wq_a);
      vec(K::AttnQANorm, R::Norm, tn::kAttnQANorm, a.q_lora_rank, L.q_a_norm);
      mat(K::AttnQB, R::Attention, tn::kAttnQB, h * a.qk_dim(), a.q_lora_rank, "q_a_norm", L.wq_b);
    } else {
      mat(K::AttnQ, R::Attention, tn::kAttnQ, h * a.qk_dim(), d, "attn_norm", L.wq);
    }
    mat(K::AttnKvAMqa, R::Attention, tn::kAttnKvAMqa, a.latent(), d, "attn_norm", L.wkv_a);
    vec(K::AttnKvANorm, R::Norm, tn::kAttnKvANorm, a.kv_lora_rank, L.kv_a_norm);
    if (a.split_kv_b) {
      f({.kind = K::AttnKB,
         .role = R::Attention,
         .layer = l,
         .name = tn::layer(l, tn::kAttnKB),
         .shape = {h, a.kv_lora_rank, a.qk_nope},
         .input = "",
         .view = &L.wk_b});
      f({.kind = K::AttnVB,
         .role = R::Attention,
         .layer = l,
         .name = tn::layer(l, tn::kAttnVB),
         .shape = {h, a.v_dim, a.kv_lora_rank},
         .input = "",
         .view = &L.wv_b});
    } else {
      mat(K::AttnKvB, R::Attention, tn::kAttnKvB, h * (a.qk_nope + a.v_dim), a.kv_lora_rank,
          "kv_a_norm", L.wkv_b);
    }
    mat(K::AttnOut, R::Attention, tn::kAttnOut, d, h * a.v_dim, "attn_ctx", L.wo);
  } else {
    mat(K::AttnQ, R::Attention, tn::kAttnQ, c.q_dim(), d, "attn_norm", L.wq);
    mat(K::AttnK, R::Attention, tn::kAttnK, c.kv_dim(), d, "attn_norm", L.wk);
    mat(K::AttnV, R::Attention, tn::kAttnV, c.v_dim(), d, "attn_norm", L.wv);
    mat(K::AttnOut, R::Attention, tn::kAttnOut, d, c.attn_out_dim(), "attn_ctx", L.wo);
    if (c.attn_bias) {
      vec(K::AttnQBias, R::Attention, tn::kAttnQBias, c.q_dim(), L.bq);
      vec(K::AttnKBias, R::Attention, tn::kAttnKBias, c.kv_dim(), L.bk);
      vec(K::AttnVBias, R::Attention, tn::kAttnVBias, c.v_dim(), L.bv);
    }
    if (c.attn_out_bias) vec(K::AttnOutBias, R::Attention, tn::kAttnOutBias, d, L.bo);
    if (c.qk_norm == QkNorm::PerHead) {
      vec(K::AttnQNorm, R::Norm, tn::kAttnQNorm, c.head_dim, L.q_norm);
      vec(K::AttnKNorm, R::Norm, tn::kAttnKNorm, c.head_dim, L.k_norm);
    } else if (c.qk_norm == QkNorm::AllHeads) {
      vec(K::AttnQNorm, R::Norm, tn::kAttnQNorm, c.q_dim(), L.q_norm);
      vec(K::AttnKNorm, R::Norm, tn::kAttnKNorm, c.kv_dim(), L.k_norm);
    }
    if (c.attn_sinks) vec(K::AttnSinks, R::Attention, tn::kAttnSinks, c.n_head, L.sinks);
  }
  vec(K::FfnNorm, R::Norm, tn::kFfnNorm, d, L.ffn_norm);
  if (!c.is_moe(l)) {
    mlp_slots(c, l, L.ffn, R::DenseMlp, c.n_ff_dense, "dense_hidden", f);
    return;
  }
  const int rows = c.router_rows(l);
  mat(K::Router, R::Router, tn::kFfnGateInp, rows, d, "ffn_norm", L.router);
  if (c.router.bias) vec(K::RouterBias, R::Router, tn::kFfnGateInpBias, rows, L.router_bias);
  if (c.router.choice_bias)
    vec(K::ChoiceBias, R::Router, tn::kFfnExpProbsBias, rows, L.choice_bias);
  if (c.n_ff_shared > 0) {
    mlp_slots(c, l, L.shared, R::SharedExpert, c.n_ff_shared, "shared_hidden", f);
    if (c.shared_gate)
      mat(K::ShexpRouter, R::SharedExpert, tn::kFfnGateInpShexp, 1, d, "ffn_norm", L.shared_gate);
  }
  const int64_t ff = c.n_ff;
  for (int e = 0; e < static_cast<int>(experts.size()); ++e) {
    moe::ExpertWeights& ew = experts[e];
    auto proj = [&](K kind, int64_t rows_, int64_t cols, const char* input, TensorView& v,
                    ops::LowRankWeights& lr) {
      f({.kind = kind,
         .role = R::RoutedExpert,
         .layer = l,
         .expert = e,
         .name = tn::expert(l, expert_proj_name(kind), e),
         .shape = {rows_, cols},
         .input = input,
         .view = &v,
         .low_rank = &lr});
    };
    auto bias = [&](K kind, int64_t n, TensorView& v) {
      f({.kind = kind,
         .role = R::RoutedExpert,
         .layer = l,
         .expert = e,
         .name = tn::expert_bias(l, expert_proj_name(kind), e),
         .shape = {n},
         .matrix = false,
         .view = &v});
    };
    proj(K::ExpGate, ff, d, "expert_in", ew.gate, ew.gate_lr);
    proj(K::ExpUp, ff, d, "expert_in", ew.up, ew.up_lr);
    proj(K::ExpDown, d, ff, "expert_hidden", ew.down, ew.down_lr);
    if (c.expert_bias) {
      bias(K::ExpGateBias, ff, ew.gate_b);
      bias(K::ExpUpBias, ff, ew.up_b);
      bias(K::ExpDownBias, d, ew.down_b);
    }
  }
}

}  // namespace

void for_each_layer_tensor(const ModelConfig& c, int l, LayerWeights& L,
                           std::vector<moe::ExpertWeights>& experts, const SlotVisitor& f) {
  layer_slots(c, l, L, experts, with_family_names(c, f));
}

void for_each_tensor(const ModelConfig& c, ModelWeights& w, LayerExperts& experts,
                     const SlotVisitor& f) {
  const int64_t d = c.n_embd;
  f({.kind = TensorKind::TokenEmbd,
     .role = TensorRole::Embedding,
     .name = format::tensor_names::kTokenEmbd,
     .shape = {c.n_vocab, d},
     .view = &w.tok_embd});
  f({.kind = TensorKind::OutputNorm,
     .role = TensorRole::Norm,
     .name = format::tensor_names::kOutputNorm,
     .shape = {d},
     .matrix = false,
     .view = &w.output_norm});
  if (!c.tie_embeddings) {
    f({.kind = TensorKind::Output,
       .role = TensorRole::Output,
       .name = format::tensor_names::kOutput,
       .shape = {c.n_vocab, d},
       .input = "result_norm",
       .view = &w.output});
  }
  for (int l = 0; l < c.n_layer; ++l) for_each_layer_tensor(c, l, w.layers[l], experts[l], f);
}

void for_each_layer_tensor(const ModelConfig& c, int l, const LayerWeights& L,
                           const std::vector<moe::ExpertWeights>& experts, const SlotVisitor& f) {
  for_each_layer_tensor(c, l, const_cast<LayerWeights&>(L),
                        const_cast<std::vector<moe::ExpertWeights>&>(experts), f);
}

void for_each_tensor(const ModelConfig& c, const ModelWeights& w, const LayerExperts& experts,
                     const SlotVisitor& f) {
  for_each_tensor(c, const_cast<ModelWeights&>(w), const_cast<LayerExperts&>(experts), f);
}

}  // namespace mcmoe::model

#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "cli/common.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

namespace {
std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.2f} {}", b, units[u]);
}
// Experts factored by mcmoe lowrank: rank and sparse rows per projection (one line when
// every expert agrees), and what the factors cost against the dense matrices.
void print_low_rank_summary(const model::Model& m) {
  std::vector<std::pair<std::string, int>> forms;  // ("gate rank 32 + 16 sparse rows (f16)", count), first seen first
  int64_t stored = 0, dense = 0;
  size_t bytes = 0;
  const char* names[3] = {"gate", "up", "down"};
  for (const auto& layer : m.stored_experts()) {
    for (const auto& e : layer) {
      const TensorView* d[3] = {&e.gate, &e.up, &e.down};
      const ops::LowRankWeights* lr[3] = {&e.gate_lr, &e.up_lr, &e.down_lr};
      for (int p = 0; p < 3; ++p) {
        const std::string form = lr[p]->valid() ? fmt::format("{} rank {} + {} sparse rows ({})", names[p], lr[p]->rank(),
                                                              lr[p]->n_sparse(), dtype_name(lr[p]->left.type))
                                                : fmt::format("{} dense ({})", names[p], dtype_name(d[p]->type));
        auto it = std::find_if(forms.begin(), forms.end(), [&](const auto& f) { return f.first == form; });
        if (it == forms.end()) forms.emplace_back(form, 1);
        else ++it->second;
        dense += lr[p]->valid() ? lr[p]->n_out() * lr[p]->n_in() : d[p]->numel();
      }
      stored += e.n_params();
      bytes += e.nbytes();
    }
  }
  std::printf("low-rank experts (W = L R + S, mcmoe lowrank):\n");
  for (const auto& [form, n] : forms) std::printf("  %-56s x %d\n", form.c_str(), n);
  std::printf("  stored expert parameters %lld of %lld as dense matrices (%.1f%%), %.3f bits per dense weight\n",
              static_cast<long long>(stored), static_cast<long long>(dense), 100.0 * stored / std::max<int64_t>(1, dense),
              8.0 * bytes / std::max<int64_t>(1, dense));
}
}  // namespace

int cmd_inspect(const Argv& argv) {
  static const CommandSpec spec{
      "inspect",
      "a model's configuration, tokenizer, tensors and bits per weight (mcmoe inspect MODEL "
      "[flags])",
      {{"--metadata", nullptr, "", "also print a GGUF's metadata"}}};
  const Args a(argv, spec);
  if (a.positional().size() != 1) fail("inspect: expected exactly one MODEL argument, found {}", a.positional().size());
  auto m = model::Model::load(a.positional()[0]);
  const model::ModelConfig& c = m->config();
  std::printf("model: %s (%s)\n", m->path().c_str(), m->is_gguf() ? "GGUF" : "Hugging Face safetensors");
  std::printf("architecture: %s\n", model::arch_gguf_name(c.arch));
  std::printf("  vocab %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d (v %d)\n", c.n_vocab, c.n_embd,
              c.n_layer, c.n_head, c.n_head_kv, c.head_dim, c.head_dim_v);
  if (c.attention == model::AttentionKind::Mla) {
    std::printf("  multi-head latent attention: q lora %d, kv lora %d, nope %d, rope %d, v %d (%s kv_b), cache %d values per token and layer\n",
                c.mla.q_lora_rank, c.mla.kv_lora_rank, c.mla.qk_nope, c.mla.qk_rope, c.mla.v_dim,
                c.mla.split_kv_b ? "split" : "whole", c.mla.latent());
  }
  if (c.n_expert > 0) {
    const char* score = c.router.softmax_over_topk ? "top-k logits, softmax over k"
                        : c.router.score == model::ScoreFunc::Sigmoid ? "sigmoid" : "softmax";
    std::printf("  experts %d, used per token %d, expert width %d, shared expert width %d%s, routing %s%s%s, renormalise top-k %s, scale %g\n",
                c.n_expert, c.n_expert_used, c.n_ff, c.n_ff_shared, c.shared_gate ? " (gated)" : "", score,
                c.router.choice_bias ? " + selection bias" : "",
                c.router.group == model::GroupSelect::None ? ""
                : fmt::format(", groups {} keep {} by {}", c.router.n_group, c.router.topk_group,
                              c.router.group == model::GroupSelect::Max ? "max" : "top-2 sum").c_str(),
                c.router.norm_topk ? "yes" : "no", c.router.scale);
  }
  if (c.has_dense_layers()) {
    std::printf("  dense layers:");
    for (int l = 0; l < c.n_layer; ++l) {
      if (!c.is_moe(l)) std::printf(" %d", l);
    }
    std::printf(" (MLP width %d)\n", c.n_ff_dense);
  }
  std::printf("  rope theta %g (%s, %d of %d dims)%s, rms eps %g, context %d, attention bias %s%s, q/k norm %s\n", c.rope.theta,
              c.rope.style == model::RopeStyle::Neox ? "neox" : "interleaved", c.rope.n_rot, c.head_dim,
              c.rope.yarn ? fmt::format(", yarn factor {} from {}", c.rope.factor, c.rope.orig_ctx).c_str() : "", c.rms_eps,
              c.n_ctx_train, c.attn_bias ? "yes" : "no", c.attn_out_bias ? " (+ output)" : "",
              c.qk_norm == model::QkNorm::None ? "none" : c.qk_norm == model::QkNorm::PerHead ? "per head" : "all heads");
  if (c.attn_sinks || c.sliding_window > 0) {
    int swa = 0;
    for (int l = 0; l < c.n_layer; ++l) swa += c.is_swa(l);
    std::printf("  attention sinks %s, sliding window %d on %d of %d layers\n", c.attn_sinks ? "yes" : "no", c.sliding_window, swa,
                c.n_layer);
  }
  if (c.embd_scale != 1.f || c.residual_scale != 1.f || c.logit_scale != 1.f || c.attn_scale != 0.f) {
    std::printf("  multipliers: embedding %g, residual %g, attention scale %g, logits ÷ %g\n", c.embd_scale, c.residual_scale,
                c.attn_scale, c.logit_scale);
  }
  if (c.activation == model::Activation::SwigluOai) {
    std::printf("  experts: clamped SwiGLU (alpha %g, limit %g)%s\n", c.swiglu_alpha, c.swiglu_limit, c.expert_bias ? " with biases" : "");
  }
  std::printf("tokenizer: %d tokens, bos %d, eos %d, add bos %s\n", m->tokenizer().n_vocab(), m->tokenizer().bos_id(),
              m->tokenizer().eos_id(), m->tokenizer().add_bos() ? "yes" : "no");
  if (m->gguf() && a.has("--metadata")) {
    std::printf("metadata:\n");
    for (const auto& [k, v] : m->gguf()->metadata()) std::printf("  %-48s %s\n", k.c_str(), v.to_string().c_str());
  }
  std::printf("tensors:\n");
  size_t total = 0, expert_bytes = 0;
  int64_t params = 0;
  std::map<std::string, std::pair<size_t, int64_t>> by_type;
  for (const auto& t : m->file_tensors()) {
    std::printf("  %-48s %-6s %-24s %12zu\n", t.name.c_str(), std::string(dtype_name(t.view.type)).c_str(),
                shape_string(t.view.shape).c_str(), t.view.nbytes);
    total += t.view.nbytes;
    params += t.view.numel();
    by_type[std::string(dtype_name(t.view.type))].first += t.view.nbytes;
    by_type[std::string(dtype_name(t.view.type))].second += t.view.numel();
  }
  for (const auto& layer : m->stored_experts()) {
    for (const auto& e : layer) expert_bytes += e.nbytes();
  }
  // The expert precision plan: one column per expert, the width of its weights (MQ types:
  // the code bits; other types: the type's name), and true bits per weight by part.
  bool mixed = false, factored = false;
  const moe::ExpertWeights* first = nullptr;  // of the first MoE layer (dense layers have none)
  for (const auto& layer : m->stored_experts()) {
    for (const auto& e : layer) {
      if (!first) first = &e;
      mixed |= e.gate.type != first->gate.type;
      factored |= e.factored();
    }
  }
  if (factored) {
    print_low_rank_summary(*m);
    mixed = false;  // the table below describes dense experts
  }
  if (mixed || (m->gguf() && m->gguf()->has("mcmoe.quant.expert_bits"))) {
    std::printf("expert bit-widths (layers x experts):\n");
    for (size_t l = 0; l < m->stored_experts().size(); ++l) {
      std::printf("  layer %3zu:", l);
      if (m->stored_experts()[l].empty()) std::printf(" (dense)");
      for (const auto& e : m->stored_experts()[l]) {
        int bits = 0;
        if (mq_params(e.gate.type, &bits, nullptr)) {
          std::printf(" %d", bits);
        } else {
          std::printf(" %s", std::string(dtype_name(e.gate.type)).c_str());
        }
      }
      std::printf("\n");
    }
  }
  {
    // Bytes and parameters by role, from the tensor inventory; "decoder linears" are every
    // layer matrix (attention, router, experts, shared experts, dense MLPs).
    std::map<std::string, std::pair<size_t, int64_t>> by_role;
    size_t eb = 0, lb = 0;
    int64_t ep = 0, lp = 0;
    model::for_each_tensor(c, m->weights(), m->stored_experts(), [&](const model::TensorSlot& s) {
      std::vector<const TensorView*> views{s.view};
      if (s.low_rank && s.low_rank->valid()) views = {&s.low_rank->left, &s.low_rank->right, &s.low_rank->sparse, &s.low_rank->index};
      for (const TensorView* v : views) {
        if (!v->valid()) continue;
        auto& r = by_role[model::role_name(s.role)];
        r.first += v->nbytes;
        r.second += v->numel();
        if (!s.matrix || s.layer < 0) continue;
        lb += v->nbytes;
        lp += v->numel();
        if (s.role == model::TensorRole::RoutedExpert) {
          eb += v->nbytes;
          ep += v->numel();
        }
      }
    });
    for (const auto& [role, bp] : by_role) {
      std::printf("  %-14s %14zu bytes, %12lld params, %.3f bits per weight\n", role.c_str(), bp.first,
                  static_cast<long long>(bp.second), 8.0 * bp.first / std::max<int64_t>(1, bp.second));
    }
    std::printf("true bits per weight (scales and mins included): experts %.4f, decoder linears %.4f\n",
                8.0 * eb / std::max<int64_t>(1, ep), 8.0 * lb / std::max<int64_t>(1, lp));
  }
  for (const auto& [type, bp] : by_type) {
    std::printf("  type %-6s %14zu bytes, %12lld params\n", type.c_str(), bp.first, static_cast<long long>(bp.second));
  }
  std::printf("total: %zu tensors, %lld parameters, %zu bytes (%s), experts %s (%.1f%%), %.3f bits per weight\n",
              m->file_tensors().size(), static_cast<long long>(params), total, human_bytes(total).c_str(),
              human_bytes(expert_bytes).c_str(), 100.0 * expert_bytes / std::max<size_t>(1, total),
              8.0 * total / std::max<int64_t>(1, params));
  return 0;
}

}  // namespace mcmoe::cli

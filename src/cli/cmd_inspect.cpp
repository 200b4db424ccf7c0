#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "cli/common.h"
#include "format/gguf.h"
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
  const Args a(argv, {}, {"--metadata"});
  if (a.positional().size() != 1) fail("inspect: expected exactly one MODEL argument, found {}", a.positional().size());
  auto m = model::Model::load(a.positional()[0]);
  const model::ModelConfig& c = m->config();
  std::printf("model: %s (%s)\n", m->path().c_str(), m->is_gguf() ? "GGUF" : "Hugging Face safetensors");
  std::printf("architecture: %s\n", model::arch_gguf_name(c.arch));
  std::printf("  vocab %d, hidden %d, layers %d, heads %d, kv heads %d, head dim %d\n", c.n_vocab, c.n_embd,
              c.n_layer, c.n_head, c.n_head_kv, c.head_dim);
  std::printf("  experts %d, used per token %d, expert width %d, shared expert width %d, renormalise top-k %s\n",
              c.n_expert, c.n_expert_used, c.n_ff, c.n_ff_shared, c.norm_topk_prob ? "yes" : "no");
  std::printf("  rope theta %g (%s), rms eps %g, context %d, attention bias %s, q/k norm %s\n", c.rope_theta,
              c.rope_style == model::RopeStyle::Neox ? "neox" : "interleaved", c.rms_eps, c.n_ctx_train,
              c.attn_bias ? "yes" : "no",
              c.qk_norm == model::QkNorm::None ? "none" : c.qk_norm == model::QkNorm::PerHead ? "per head" : "all heads");
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
  for (const auto& layer : m->stored_experts()) {
    for (const auto& e : layer) {
      mixed |= e.gate.type != m->stored_experts()[0][0].gate.type;
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
    size_t eb = 0, lb = 0;
    int64_t ep = 0, lp = 0;
    for (const auto& layer : m->stored_experts()) {
      for (const auto& e : layer) {
        for (const TensorView* v : e.views()) {
          eb += v->nbytes;
          ep += v->numel();
        }
      }
    }
    lb = eb;
    lp = ep;
    for (const auto& L : m->weights().layers) {
      for (const TensorView* v : {&L.wq, &L.wk, &L.wv, &L.wo, &L.router, &L.shared.gate, &L.shared.up, &L.shared.down}) {
        if (!v->valid()) continue;
        lb += v->nbytes;
        lp += v->numel();
      }
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

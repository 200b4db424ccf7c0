// GGUF files in llama.cpp's layout (and mcmoe's per-expert variant of it).
#include <fmt/format.h>

#include "core/error.h"
#include "format/gguf.h"
#include "format/tensor_names.h"
#include "model/loaders.h"
#include "ops/factored.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

void GgufLoader::load(Model& m, const std::string& path, LoadMode mode) {
  m.gguf_ = std::make_unique<format::GgufFile>(path, mode);
  const format::GgufFile& f = *m.gguf_;
  m.config_ = config_from_gguf(f);
  const ModelConfig& c = m.config_;
  for (const auto& t : f.tensors()) m.file_tensors_.push_back({t.name, f.view(t)});

  auto find = [&](const std::string& name) -> const format::GgufTensorInfo* { return f.find_tensor(name); };
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const format::GgufTensorInfo* t = find(name);
    if (!t) fail("{}: missing tensor '{}'", path, name);
    TensorView v = f.view(*t);
    expect_shape(path, name, v, shape);
    return v;
  };
  namespace tn = format::tensor_names;
  // A per-expert projection: blk.N.P.E.weight, or the low-rank parts `mcmoe lowrank` wrote
  // in its place (format/tensor_names.h), checked here once so the forward pass trusts them.
  auto expert_proj = [&](int l, int e, const char* proj, const std::vector<int64_t>& shape, TensorView& dense,
                         ops::LowRankWeights& lr) {
    const std::string name = tn::expert(l, proj, e);
    if (find(name) || !find(tn::expert_part(l, proj, e, tn::kLrRight))) {
      dense = get(name, shape);
      return;
    }
    auto part = [&](const char* p) {
      const format::GgufTensorInfo* t = find(tn::expert_part(l, proj, e, p));
      return t ? f.view(*t) : TensorView{};
    };
    lr = {part(tn::kLrLeft), part(tn::kLrRight), part(tn::kSparseRows), part(tn::kSparseIndex)};
    const std::string what = fmt::format("{}: {}", path, tn::expert_part(l, proj, e, "*"));
    ops::check_low_rank(lr, what);
    if (lr.shape() != shape) {
      fail("{}: the low-rank parts stand for a {} matrix, expected {}", what, shape_string(lr.shape()), shape_string(shape));
    }
  };
  const int64_t d = c.n_embd, q_dim = int64_t{c.n_head} * c.head_dim,
                kv_dim = int64_t{c.n_head_kv} * c.head_dim;
  ModelWeights& w = m.weights_;
  w.tok_embd = get(tn::kTokenEmbd, {c.n_vocab, d});
  w.output_norm = m.to_f32(get(tn::kOutputNorm, {d}));
  w.output = find(tn::kOutput) ? get(tn::kOutput, {c.n_vocab, d}) : w.tok_embd;
  w.layers.resize(c.n_layer);
  m.stored_experts_.assign(c.n_layer, {});
  for (int l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[l];
    L.attn_norm = m.to_f32(get(tn::layer(l, tn::kAttnNorm), {d}));
    L.ffn_norm = m.to_f32(get(tn::layer(l, tn::kFfnNorm), {d}));
    L.wq = get(tn::layer(l, tn::kAttnQ), {q_dim, d});
    L.wk = get(tn::layer(l, tn::kAttnK), {kv_dim, d});
    L.wv = get(tn::layer(l, tn::kAttnV), {kv_dim, d});
    L.wo = get(tn::layer(l, tn::kAttnOut), {d, q_dim});
    if (c.attn_bias) {
      L.bq = m.to_f32(get(tn::layer(l, tn::kAttnQBias), {q_dim}));
      L.bk = m.to_f32(get(tn::layer(l, tn::kAttnKBias), {kv_dim}));
      L.bv = m.to_f32(get(tn::layer(l, tn::kAttnVBias), {kv_dim}));
    }
    if (c.qk_norm == QkNorm::PerHead) {
      L.q_norm = m.to_f32(get(tn::layer(l, tn::kAttnQNorm), {c.head_dim}));
      L.k_norm = m.to_f32(get(tn::layer(l, tn::kAttnKNorm), {c.head_dim}));
    } else if (c.qk_norm == QkNorm::AllHeads) {
      L.q_norm = m.to_f32(get(tn::layer(l, tn::kAttnQNorm), {q_dim}));
      L.k_norm = m.to_f32(get(tn::layer(l, tn::kAttnKNorm), {kv_dim}));
    }
    auto& experts = m.stored_experts_[l];
    const int n_exp = c.experts(l), n_rows = c.router_rows(l);
    if (find(tn::layer(l, tn::kFfnGateExps))) {
      // llama.cpp layout: one 3-D tensor per projection, expert e is slice e.
      L.router = get(tn::layer(l, tn::kFfnGateInp), {n_rows, d});
      const TensorView g = get(tn::layer(l, tn::kFfnGateExps), {n_exp, c.n_ff, d});
      const TensorView u = get(tn::layer(l, tn::kFfnUpExps), {n_exp, c.n_ff, d});
      const TensorView dn = get(tn::layer(l, tn::kFfnDownExps), {n_exp, d, c.n_ff});
      for (int e = 0; e < n_exp; ++e) experts.push_back({g.slice0(e), u.slice0(e), dn.slice0(e)});
    } else if (c.n_expert > 1 || find(tn::expert(l, tn::kFfnGate, 0))) {
      // One tensor per expert and projection (older Mixtral GGUFs, mcmoe mixed precision).
      L.router = get(tn::layer(l, tn::kFfnGateInp), {n_rows, d});
      for (int e = 0; e < n_exp; ++e) {
        moe::ExpertWeights& ew = experts.emplace_back();
        expert_proj(l, e, tn::kFfnGate, {c.n_ff, d}, ew.gate, ew.gate_lr);
        expert_proj(l, e, tn::kFfnUp, {c.n_ff, d}, ew.up, ew.up_lr);
        expert_proj(l, e, tn::kFfnDown, {d, c.n_ff}, ew.down, ew.down_lr);
      }
    } else {
      // Dense FFN: one expert, no router.
      experts.push_back({get(tn::layer(l, tn::kFfnGate), {c.n_ff, d}),
                         get(tn::layer(l, tn::kFfnUp), {c.n_ff, d}),
                         get(tn::layer(l, tn::kFfnDown), {d, c.n_ff})});
    }
    if (c.n_ff_shared > 0) {
      L.shared.gate = get(tn::layer(l, tn::kFfnGateShexp), {c.n_ff_shared, d});
      L.shared.up = get(tn::layer(l, tn::kFfnUpShexp), {c.n_ff_shared, d});
      L.shared.down = get(tn::layer(l, tn::kFfnDownShexp), {d, c.n_ff_shared});
      // llama.cpp stores the shared-expert gate as a vector {n_embd}; it is a [1, n_embd] matrix.
      const format::GgufTensorInfo* sg = find(tn::layer(l, tn::kFfnGateInpShexp));
      L.shared_gate = get(tn::layer(l, tn::kFfnGateInpShexp), sg && sg->shape.size() == 2 ? std::vector<int64_t>{1, d} : std::vector<int64_t>{d});
      L.shared_gate.shape = {1, d};
    }
  }
  m.tokenizer_ = tokenizer::Tokenizer::from_gguf(f);
}

}  // namespace mcmoe::model

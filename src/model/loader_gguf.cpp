// GGUF files in llama.cpp's layout (and mcmoe's per-expert variant of it), walked through
// the tensor inventory: every tensor the configuration implies must be present with its
// shape; routed experts come stacked (blk.N.ffn_gate_exps.weight, expert e = slice e), one
// tensor per expert and projection, or factored (mcmoe lowrank).
#include <fmt/format.h>

#include <map>

#include "core/error.h"
#include "format/gguf.h"
#include "format/tensor_names.h"
#include "model/inventory.h"
#include "model/loaders.h"
#include "ops/factored.h"
#include "quant/block_check.h"
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
  // Stacked expert tensors of the current layer, checked once each.
  std::map<std::string, TensorView> stacked;
  auto routed = [&](const TensorSlot& s) {
    const std::string stacked_name = stacked_expert_name(s.kind, s.layer);
    if (find(stacked_name)) {
      auto it = stacked.find(stacked_name);
      if (it == stacked.end()) {
        std::vector<int64_t> shape{c.experts(s.layer)};
        shape.insert(shape.end(), s.shape.begin(), s.shape.end());
        it = stacked.emplace(stacked_name, get(stacked_name, shape)).first;
      }
      return it->second.slice0(s.expert);
    }
    const char* proj = expert_proj_name(s.kind);
    if (!find(s.name) && (!s.matrix || !find(tn::expert_part(s.layer, proj, s.expert, tn::kLrRight)))) {
      fail("{}: missing tensor '{}' (the experts of layer {} stacked; or one per expert, '{}')", path, stacked_name, s.layer, s.name);
    }
    if (!s.matrix) return get(s.name, s.shape);
    // One tensor per expert and projection, or the low-rank parts `mcmoe lowrank` wrote in
    // its place (format/tensor_names.h), checked here once so the forward pass trusts them.
    if (find(s.name) || !find(tn::expert_part(s.layer, proj, s.expert, tn::kLrRight))) return get(s.name, s.shape);
    auto part = [&](const char* p) {
      const format::GgufTensorInfo* t = find(tn::expert_part(s.layer, proj, s.expert, p));
      return t ? f.view(*t) : TensorView{};
    };
    ops::LowRankWeights& lr = *s.low_rank;
    lr = {part(tn::kLrLeft), part(tn::kLrRight), part(tn::kSparseRows), part(tn::kSparseIndex)};
    const std::string what = fmt::format("{}: {}", path, tn::expert_part(s.layer, proj, s.expert, "*"));
    ops::check_low_rank(lr, what);
    if (lr.shape() != s.shape) {
      fail("{}: the low-rank parts stand for a {} matrix, expected {}", what, shape_string(lr.shape()), shape_string(s.shape));
    }
    return TensorView{};
  };
  ModelWeights& w = m.weights_;
  w.layers.assign(c.n_layer, {});
  m.stored_experts_.assign(c.n_layer, {});
  for (int l = 0; l < c.n_layer; ++l) m.stored_experts_[l].resize(c.experts(l));
  int layer = -2;
  for_each_tensor(c, w, m.stored_experts_, [&](const TensorSlot& s) {
    if (s.layer != layer) {
      stacked.clear();
      layer = s.layer;
    }
    TensorView v;
    if (s.role == TensorRole::RoutedExpert) {
      v = routed(s);
      // Read into memory: the bytes are here, check them now. Mapped (larger than RAM or
      // offloaded): each expert is checked when first used (moe::ResidentExpertProvider,
      // offload::OffloadingProvider), not by paging in the whole file at load.
      if (mode == LoadMode::kReadHugePages) {
        const std::string stacked_name = stacked_expert_name(s.kind, s.layer);
        if (find(stacked_name)) {
          quant::check_scales(v, fmt::format("{}: tensor '{}', expert {}", path, stacked_name, s.expert));
        } else if (v.valid()) {
          quant::check_scales(v, fmt::format("{}: tensor '{}'", path, s.name));
        } else if (s.low_rank) {
          const ops::LowRankWeights& lr = *s.low_rank;
          for (const TensorView* part : {&lr.left, &lr.right, &lr.sparse}) {
            if (part->valid()) quant::check_scales(*part, fmt::format("{}: low-rank parts of '{}'", path, s.name));
          }
        }
      }
      // Expert biases stay views into the file when they are f32 already, so an offloading
      // provider can read an expert's bytes from the file as they are.
      if (!s.matrix && v.type != DType::F32) v = m.to_f32(v);
      *s.view = v;
      return;
    }
    if (s.kind == TensorKind::ShexpRouter) {
      // llama.cpp stores the shared-expert gate as a vector {n_embd}; it is a [1, n_embd] matrix.
      const format::GgufTensorInfo* t = find(s.name);
      v = get(s.name, t && t->shape.size() == 1 ? std::vector<int64_t>{s.shape[1]} : s.shape);
      v.shape = s.shape;
    } else {
      v = get(s.name, s.shape);
    }
    quant::check_scales(v, fmt::format("{}: tensor '{}'", path, s.name));
    *s.view = s.matrix ? v : m.to_f32(v);
  });
  if (c.tie_embeddings) w.output = w.tok_embd;
  if (mode == LoadMode::kMap) m.experts_check_path_ = path;
  for (int l = 0; l < c.n_layer; ++l) m.derive_layer(l);
  m.tokenizer_ = tokenizer::Tokenizer::from_gguf(f);
}

}  // namespace mcmoe::model

#include "model/model_writer.h"

#include <cstring>
#include <memory>

#include "core/error.h"
#include "format/tensor_names.h"
#include "model/arch/arch.h"
#include "model/chat_template.h"
#include "model/inventory.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

using format::GgufValue;
using format::GgufWriter;
namespace tn = format::tensor_names;

void set_model_metadata(GgufWriter& g, const Model& m, const ModelConfig& c, const std::string& name,
                        uint32_t file_type) {
  set_config_metadata(g, c, name, file_type);
  m.tokenizer().write_gguf_metadata(g);
  // The chat template travels with the model (llama.cpp's converter keeps it too).
  if (const ChatTemplate t = chat_template_of(m); t.source != kPlainTemplate) {
    g.set("tokenizer.chat_template", GgufValue::str(t.source));
  }
}

void set_config_metadata(GgufWriter& g, const ModelConfig& c, const std::string& name, uint32_t file_type) {
  const arch::ArchInfo& family = arch::info(c.arch);
  const std::string arch_name = family.gguf_name;
  g.set("general.architecture", GgufValue::str(arch_name));
  g.set("general.name", GgufValue::str(name));
  g.set("general.file_type", GgufValue::u32(file_type));
  g.set("general.quantization_version", GgufValue::u32(2));
  g.set("mcmoe.format_version", GgufValue::u32(1));
  arch::GgufKeyWriter w(g, arch_name);
  w.u32("vocab_size", c.n_vocab);
  w.u32("context_length", c.n_ctx_train);
  w.u32("embedding_length", c.n_embd);
  w.u32("block_count", c.n_layer);
  w.u32("attention.head_count", c.n_head);
  w.u32("attention.head_count_kv", c.n_head_kv);
  w.f32("attention.layer_norm_rms_epsilon", c.rms_eps);
  w.f32("rope.freq_base", c.rope.theta);
  w.u32("rope.dimension_count", c.rope.n_rot);
  if (c.head_dim * c.n_head != c.n_embd || c.head_dim_v != c.head_dim) {
    w.u32("attention.key_length", c.head_dim);
    w.u32("attention.value_length", c.head_dim_v);
  }
  if (c.n_expert > 0) {
    w.u32("expert_count", c.n_expert);
    w.u32("expert_used_count", c.n_expert_used);
  }
  if (c.rope.yarn) {
    w.str("rope.scaling.type", "yarn");
    w.f32("rope.scaling.factor", c.rope.factor);
    w.u32("rope.scaling.original_context_length", c.rope.orig_ctx);
    w.f32("rope.scaling.yarn_beta_fast", c.rope.beta_fast);
    w.f32("rope.scaling.yarn_beta_slow", c.rope.beta_slow);
    // What llama.cpp's files leave implicit (model/arch/arch.h).
    g.set(arch::kRopeTruncateKey, GgufValue::boolean(c.rope.truncate));
    g.set(arch::kRopeAttnFactorKey, GgufValue::f32(c.rope.attn_factor));
  }
  if (c.sliding_window > 0 && c.arch == Arch::Llama) w.u32("attention.sliding_window", c.sliding_window);
  family.to_gguf(c, w);
  if (!c.layer_experts.empty()) {
    std::vector<GgufValue> counts;
    for (int n : c.layer_experts) counts.push_back(GgufValue::u32(static_cast<uint32_t>(n)));
    g.set(kLayerExpertsKey, GgufValue::array(format::GgufType::U32, counts));
  }
  for (size_t l = 0; l < c.expert_map.size(); ++l) {
    if (!c.is_moe(static_cast<int>(l))) continue;
    std::vector<GgufValue> map;
    for (int e : c.expert_map[l]) map.push_back(GgufValue::i32(e));
    g.set(kExpertMapKeyPrefix + std::to_string(l), GgufValue::array(format::GgufType::I32, map));
  }
}

// llama.cpp rotates adjacent pairs (GPT-J style) for arch "llama", while Hugging Face
// checkpoints rotate halves: within each head, output row 2i comes from row i and row
// 2i + 1 from row i + head_dim/2, which makes the two conventions compute the same thing.
std::vector<int64_t> rope_permutation(int n_heads, int head_dim) {
  std::vector<int64_t> map(static_cast<size_t>(n_heads) * head_dim);
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < half; ++i) {
      map[h * head_dim + 2 * i] = h * head_dim + i;
      map[h * head_dim + 2 * i + 1] = h * head_dim + half + i;
    }
  }
  return map;
}

void convert_rows(const TensorView& src, DType type, const std::vector<int64_t>* map, uint8_t* dst) {
  const int64_t rows = src.rows(), cols = src.cols();
  const size_t out_row = row_bytes(type, cols);
  if (type == src.type) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * out_row, src.row(map ? (*map)[r] : r), out_row);
    return;
  }
  std::vector<float> tmp(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(src.type, src.row(map ? (*map)[r] : r), tmp.data(), cols);
    quant::quantize_row(type, tmp.data(), dst + r * out_row, cols);
  }
}

namespace {

// The writer of write_model_gguf; `path` only names the file in messages.
GgufWriter model_writer(const Model& source, const ModelTensors& t, const std::string& name,
                        uint32_t file_type,
                        const std::vector<std::pair<std::string, GgufValue>>& extra,
                        const std::string& path) {
  const ModelConfig& c = t.config ? *t.config : source.config();
  GgufWriter g;
  set_model_metadata(g, source, c, name, file_type);
  for (const auto& [k, v] : extra) g.set(k, v);
  // Integer tensors (sparse row indices) are never converted.
  auto type_of = [&](const std::string& tname, const TensorView& v) {
    return t.type_for && v.type != DType::I32 ? t.type_for(tname, v) : v.type;
  };
  auto add = [&](const std::string& tname, const TensorView& v, std::shared_ptr<std::vector<int64_t>> map = nullptr) {
    if (!v.valid()) fail("write {}: tensor '{}' has no data", path, tname);
    const DType type = type_of(tname, v);
    g.add_tensor(tname, type, v.shape, [v, type, map](uint8_t* dst, size_t) { convert_rows(v, type, map.get(), dst); });
  };
  // llama.cpp's "llama" and "granitemoe" rotate adjacent pairs: NeoX-ordered q/k rows (a
  // Hugging Face source) are permuted on the way out, biases with them.
  const bool permute = arch::info(c.arch).gguf_interleaved_rope && c.rope.style == RopeStyle::Neox;
  if (permute && c.rope.n_rot != c.head_dim) fail("write {}: partial rotary with the llama row permutation is not supported", path);
  auto q_map = permute ? std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head, c.head_dim)) : nullptr;
  auto k_map = permute ? std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head_kv, c.head_dim)) : nullptr;
  auto add_permuted_vector = [&](const std::string& tname, const TensorView& v, std::shared_ptr<std::vector<int64_t>> map) {
    TensorView column = v;
    column.shape = {v.numel(), 1};  // one element per row, so the row map permutes elements
    const DType type = type_of(tname, v);
    if (type != DType::F32 && type != DType::F16 && type != DType::BF16) fail("write {}: bias '{}' in type {}", path, tname, dtype_name(type));
    g.add_tensor(tname, type, v.shape, [column, type, map](uint8_t* dst, size_t) { convert_rows(column, type, map.get(), dst); });
  };
  const ModelWeights& w = t.weights;
  for (int l = 0; l < c.n_layer; ++l) {
    for (const auto& e : t.experts[l]) {
      if (e.factored() && !t.per_expert) {
        fail("write {}: layer {} has low-rank experts (mcmoe lowrank), which llama.cpp's stacked layout cannot hold", path, l);
      }
    }
  }
  for_each_tensor(c, w, t.experts, [&](const TensorSlot& s) {
    if (s.role != TensorRole::RoutedExpert) {
      if (s.kind == TensorKind::ShexpRouter) {
        TensorView gate_1d = *s.view;
        gate_1d.shape = {c.n_embd};  // llama.cpp declares ffn_gate_inp_shexp as {n_embd}
        return add(s.name, gate_1d);
      }
      const bool q = s.kind == TensorKind::AttnQ || s.kind == TensorKind::AttnQBias;
      const bool k = s.kind == TensorKind::AttnK || s.kind == TensorKind::AttnKBias;
      if (permute && (q || k)) {
        if (!s.matrix) return add_permuted_vector(s.name, *s.view, q ? q_map : k_map);
        return add(s.name, *s.view, q ? q_map : k_map);
      }
      return add(s.name, *s.view);
    }
    const auto& experts = t.experts[s.layer];
    if (t.per_expert) {
      // A factored projection (mcmoe lowrank) is written as its parts in place of .weight.
      if (s.low_rank && s.low_rank->valid()) {
        const ops::LowRankWeights& lr = *s.low_rank;
        const char* proj = expert_proj_name(s.kind);
        add(tn::expert_part(s.layer, proj, s.expert, tn::kLrLeft), lr.left);
        add(tn::expert_part(s.layer, proj, s.expert, tn::kLrRight), lr.right);
        if (lr.n_sparse() > 0) {
          add(tn::expert_part(s.layer, proj, s.expert, tn::kSparseRows), lr.sparse);
          add(tn::expert_part(s.layer, proj, s.expert, tn::kSparseIndex), lr.index);
        }
        return;
      }
      return add(s.name, *s.view);
    }
    if (s.expert != 0) return;  // the stacked tensor is written once, at expert 0
    // The same kind of tensor of every expert of the layer, stacked.
    std::vector<TensorView> views;
    for_each_layer_tensor(c, s.layer, w.layers[s.layer], experts, [&](const TensorSlot& o) {
      if (o.kind != s.kind) return;
      if (o.view->type != s.view->type) fail("write {}: experts of layer {} differ in type; write them per expert", path, s.layer);
      views.push_back(*o.view);
    });
    const std::string stacked = stacked_expert_name(s.kind, s.layer);
    const DType type = type_of(stacked, views[0]);
    std::vector<int64_t> shape{static_cast<int64_t>(views.size())};
    shape.insert(shape.end(), views[0].shape.begin(), views[0].shape.end());
    g.add_tensor(stacked, type, shape, [views, type](uint8_t* dst, size_t) {
      for (const auto& v : views) {
        convert_rows(v, type, nullptr, dst);
        dst += row_bytes(type, v.cols()) * static_cast<size_t>(v.rows());
      }
    });
  });
  return g;
}

}  // namespace

void write_model_gguf(const Model& source, const ModelTensors& t, const std::string& name,
                      uint32_t file_type,
                      const std::vector<std::pair<std::string, GgufValue>>& extra,
                      const std::string& path,
                      const std::function<void(size_t, size_t)>& progress) {
  model_writer(source, t, name, file_type, extra, path).write(path, progress);
}

uint64_t model_gguf_size(const Model& source, const ModelTensors& t, const std::string& name,
                         uint32_t file_type,
                         const std::vector<std::pair<std::string, GgufValue>>& extra) {
  return model_writer(source, t, name, file_type, extra, "(size estimate)").file_size();
}

}  // namespace mcmoe::model

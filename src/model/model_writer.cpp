#include "model/model_writer.h"

#include <cstring>
#include <memory>

#include "core/error.h"
#include "format/tensor_names.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

using format::GgufValue;
using format::GgufWriter;
namespace tn = format::tensor_names;

void set_model_metadata(GgufWriter& g, const Model& m, const ModelConfig& c, const std::string& name,
                        uint32_t file_type) {
  const std::string arch = arch_gguf_name(c.arch);
  const std::string p = arch + ".";
  g.set("general.architecture", GgufValue::str(arch));
  g.set("general.name", GgufValue::str(name));
  g.set("general.file_type", GgufValue::u32(file_type));
  g.set("general.quantization_version", GgufValue::u32(2));
  g.set("mcmoe.format_version", GgufValue::u32(1));
  g.set(p + "vocab_size", GgufValue::u32(static_cast<uint32_t>(c.n_vocab)));
  g.set(p + "context_length", GgufValue::u32(static_cast<uint32_t>(c.n_ctx_train)));
  g.set(p + "embedding_length", GgufValue::u32(static_cast<uint32_t>(c.n_embd)));
  g.set(p + "block_count", GgufValue::u32(static_cast<uint32_t>(c.n_layer)));
  g.set(p + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(c.n_head)));
  g.set(p + "attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(c.n_head_kv)));
  g.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(c.rms_eps));
  g.set(p + "rope.freq_base", GgufValue::f32(c.rope_theta));
  g.set(p + "rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  if (c.head_dim * c.n_head != c.n_embd) {
    g.set(p + "attention.key_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
    g.set(p + "attention.value_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  }
  if (c.n_expert > 1) {
    g.set(p + "expert_count", GgufValue::u32(static_cast<uint32_t>(c.n_expert)));
    g.set(p + "expert_used_count", GgufValue::u32(static_cast<uint32_t>(c.n_expert_used)));
  }
  if (c.arch == Arch::Llama || c.arch == Arch::Olmoe) {
    g.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.n_ff)));
  } else {
    g.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.n_ff_shared ? c.n_ff_shared : c.n_ff)));
    g.set(p + "expert_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.n_ff)));
    if (c.n_ff_shared) g.set(p + "expert_shared_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.n_ff_shared)));
  }
  if (c.arch != Arch::Llama) g.set(p + "expert_weights_norm", GgufValue::boolean(c.norm_topk_prob));
  if (!c.layer_experts.empty()) {
    std::vector<GgufValue> counts;
    for (int n : c.layer_experts) counts.push_back(GgufValue::u32(static_cast<uint32_t>(n)));
    g.set(kLayerExpertsKey, GgufValue::array(format::GgufType::U32, counts));
  }
  for (size_t l = 0; l < c.expert_map.size(); ++l) {
    std::vector<GgufValue> map;
    for (int e : c.expert_map[l]) map.push_back(GgufValue::i32(e));
    g.set(kExpertMapKeyPrefix + std::to_string(l), GgufValue::array(format::GgufType::I32, map));
  }
  m.tokenizer().write_gguf_metadata(g);
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

void write_model_gguf(const Model& source, const ModelTensors& t, const std::string& name,
                      uint32_t file_type, const std::vector<std::pair<std::string, GgufValue>>& extra,
                      const std::string& path, const std::function<void(size_t, size_t)>& progress) {
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
  const bool permute = c.arch == Arch::Llama && c.rope_style == RopeStyle::Neox;
  auto q_map = permute ? std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head, c.head_dim)) : nullptr;
  auto k_map = permute ? std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head_kv, c.head_dim)) : nullptr;
  const ModelWeights& w = t.weights;
  add(tn::kTokenEmbd, w.tok_embd);
  add(tn::kOutputNorm, w.output_norm);
  if (!c.tie_embeddings) add(tn::kOutput, w.output);
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = w.layers[l];
    add(tn::layer(l, tn::kAttnNorm), L.attn_norm);
    add(tn::layer(l, tn::kAttnQ), L.wq, q_map);
    add(tn::layer(l, tn::kAttnK), L.wk, k_map);
    add(tn::layer(l, tn::kAttnV), L.wv);
    add(tn::layer(l, tn::kAttnOut), L.wo);
    if (c.attn_bias) {
      if (permute) fail("write {}: q/k biases with the llama row permutation are not supported", path);
      add(tn::layer(l, tn::kAttnQBias), L.bq);
      add(tn::layer(l, tn::kAttnKBias), L.bk);
      add(tn::layer(l, tn::kAttnVBias), L.bv);
    }
    if (c.qk_norm != QkNorm::None) {
      add(tn::layer(l, tn::kAttnQNorm), L.q_norm);
      add(tn::layer(l, tn::kAttnKNorm), L.k_norm);
    }
    add(tn::layer(l, tn::kFfnNorm), L.ffn_norm);
    const auto& experts = t.experts[l];
    if (!L.router.valid()) {
      add(tn::layer(l, tn::kFfnGate), experts[0].gate);
      add(tn::layer(l, tn::kFfnUp), experts[0].up);
      add(tn::layer(l, tn::kFfnDown), experts[0].down);
    } else {
      add(tn::layer(l, tn::kFfnGateInp), L.router);
      if (t.per_expert) {
        // A factored projection (mcmoe lowrank) is written as its parts in place of .weight.
        auto add_proj = [&](int e, const char* proj, const TensorView& dense, const ops::LowRankWeights& lr) {
          if (!lr.valid()) return add(tn::expert(l, proj, e), dense);
          add(tn::expert_part(l, proj, e, tn::kLrLeft), lr.left);
          add(tn::expert_part(l, proj, e, tn::kLrRight), lr.right);
          if (lr.n_sparse() > 0) {
            add(tn::expert_part(l, proj, e, tn::kSparseRows), lr.sparse);
            add(tn::expert_part(l, proj, e, tn::kSparseIndex), lr.index);
          }
        };
        for (int e = 0; e < static_cast<int>(experts.size()); ++e) {
          add_proj(e, tn::kFfnGate, experts[e].gate, experts[e].gate_lr);
          add_proj(e, tn::kFfnUp, experts[e].up, experts[e].up_lr);
          add_proj(e, tn::kFfnDown, experts[e].down, experts[e].down_lr);
        }
      } else {
        for (const auto& e : experts) {
          if (e.factored()) {
            fail("write {}: layer {} has low-rank experts (mcmoe lowrank), which llama.cpp's stacked layout cannot hold", path, l);
          }
        }
        auto add_stacked = [&](const char* tname, TensorView moe::ExpertWeights::*proj) {
          std::vector<TensorView> views;
          for (const auto& e : experts) {
            if ((e.*proj).type != (experts[0].*proj).type) {
              fail("write {}: experts of layer {} differ in type; write them per expert", path, l);
            }
            views.push_back(e.*proj);
          }
          const TensorView& first = views[0];
          const DType type = type_of(tn::layer(l, tname), first);
          g.add_tensor(tn::layer(l, tname), type,
                       {static_cast<int64_t>(views.size()), first.shape[0], first.shape[1]},
                       [views, type](uint8_t* dst, size_t) {
                         for (const auto& v : views) {
                           convert_rows(v, type, nullptr, dst);
                           dst += row_bytes(type, v.cols()) * static_cast<size_t>(v.rows());
                         }
                       });
        };
        add_stacked(tn::kFfnGateExps, &moe::ExpertWeights::gate);
        add_stacked(tn::kFfnUpExps, &moe::ExpertWeights::up);
        add_stacked(tn::kFfnDownExps, &moe::ExpertWeights::down);
      }
    }
    if (c.n_ff_shared > 0) {
      TensorView gate_1d = L.shared_gate;
      gate_1d.shape = {c.n_embd};  // llama.cpp declares ffn_gate_inp_shexp as {n_embd}
      add(tn::layer(l, tn::kFfnGateInpShexp), gate_1d);
      add(tn::layer(l, tn::kFfnGateShexp), L.shared.gate);
      add(tn::layer(l, tn::kFfnUpShexp), L.shared.up);
      add(tn::layer(l, tn::kFfnDownShexp), L.shared.down);
    }
  }
  g.write(path, progress);
}

}  // namespace mcmoe::model

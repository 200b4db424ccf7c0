#include "api/convert.h"

#include <filesystem>
#include <vector>

#include "core/error.h"
#include "format/gguf.h"
#include "format/tensor_names.h"
#include "model/model.h"
#include "api/model_writer.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::api {

uint32_t gguf_file_type(DType type) {
  switch (type) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::BF16: return 32;
    default: return 1;  // mixed or mcmoe-only types: the per-tensor types are authoritative
  }
}

namespace {

using format::GgufValue;
using format::GgufWriter;
namespace tn = format::tensor_names;

// Writes rows [src_rows] of `src` converted to `type`, optionally reordering rows:
// row i of the output is row row_map[i] of the input.
void convert_rows(const TensorView& src, DType type, const std::vector<int64_t>* row_map, uint8_t* dst) {
  const int64_t rows = src.rows(), cols = src.cols();
  const size_t out_row = row_bytes(type, cols);
  std::vector<float> tmp(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t from = row_map ? (*row_map)[r] : r;
    quant::dequantize_row(src.type, src.row(from), tmp.data(), cols);
    quant::quantize_row(type, tmp.data(), dst + r * out_row, cols);
  }
}

}  // namespace

void convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                        const ConvertOptions& options) {
  if (!std::filesystem::is_directory(hf_dir)) fail("{}: not a Hugging Face model directory", hf_dir);
  const auto m = model::Model::load(hf_dir);
  const model::ModelConfig& c = m->config();
  const model::ModelWeights& w = m->weights();
  const DType mat = options.type;
  GgufWriter g;
  const std::string arch = model::arch_gguf_name(c.arch);
  const std::string p = arch + ".";
  set_model_metadata(g, *m, std::filesystem::path(hf_dir).filename().string(), gguf_file_type(mat));

  // Matrices take the requested type when their rows fit its blocks, else stay F16.
  auto type_for = [&](const TensorView& v, DType wanted) {
    return v.cols() % dtype_traits(wanted).block_size == 0 ? wanted : DType::F16;
  };
  auto add_matrix = [&](const std::string& name, const TensorView& v, DType type,
                        std::shared_ptr<std::vector<int64_t>> row_map = nullptr) {
    g.add_tensor(name, type, v.shape, [v, type, row_map](uint8_t* dst, size_t) { convert_rows(v, type, row_map.get(), dst); });
  };
  auto add_f32 = [&](const std::string& name, const TensorView& v) {
    add_matrix(name, v, DType::F32);
  };
  add_matrix(tn::kTokenEmbd, w.tok_embd, type_for(w.tok_embd, mat));
  add_f32(tn::kOutputNorm, w.output_norm);
  if (!c.tie_embeddings) {
    // The output projection decides every logit: at 4 bits it is kept at 8 (as llama.cpp
    // keeps it at 6 for its 4-bit types).
    const DType out_type = mat == DType::Q4_0 ? DType::Q8_0 : mat;
    add_matrix(tn::kOutput, w.output, type_for(w.output, out_type));
  }
  const bool permute = c.arch == model::Arch::Llama;
  auto q_map = std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head, c.head_dim));
  auto k_map = std::make_shared<std::vector<int64_t>>(rope_permutation(c.n_head_kv, c.head_dim));
  for (int l = 0; l < c.n_layer; ++l) {
    const model::LayerWeights& L = w.layers[l];
    add_f32(tn::layer(l, tn::kAttnNorm), L.attn_norm);
    add_matrix(tn::layer(l, tn::kAttnQ), L.wq, type_for(L.wq, mat), permute ? q_map : nullptr);
    add_matrix(tn::layer(l, tn::kAttnK), L.wk, type_for(L.wk, mat), permute ? k_map : nullptr);
    add_matrix(tn::layer(l, tn::kAttnV), L.wv, type_for(L.wv, mat));
    add_matrix(tn::layer(l, tn::kAttnOut), L.wo, type_for(L.wo, mat));
    if (c.attn_bias) {
      add_f32(tn::layer(l, tn::kAttnQBias), L.bq);
      add_f32(tn::layer(l, tn::kAttnKBias), L.bk);
      add_f32(tn::layer(l, tn::kAttnVBias), L.bv);
    }
    if (c.qk_norm != model::QkNorm::None) {
      add_f32(tn::layer(l, tn::kAttnQNorm), L.q_norm);
      add_f32(tn::layer(l, tn::kAttnKNorm), L.k_norm);
    }
    add_f32(tn::layer(l, tn::kFfnNorm), L.ffn_norm);
    const auto& experts = m->stored_experts()[l];
    if (c.n_expert == 1 && !L.router.valid()) {
      add_matrix(tn::layer(l, tn::kFfnGate), experts[0].gate, type_for(experts[0].gate, mat));
      add_matrix(tn::layer(l, tn::kFfnUp), experts[0].up, type_for(experts[0].up, mat));
      add_matrix(tn::layer(l, tn::kFfnDown), experts[0].down, type_for(experts[0].down, mat));
    } else {
      // The router stays F32: routing decisions flip on small logit differences.
      add_f32(tn::layer(l, tn::kFfnGateInp), L.router);
      auto add_stacked = [&](const char* name, TensorView moe::ExpertWeights::*proj) {
        const TensorView& first = experts[0].*proj;
        const DType type = type_for(first, mat);
        std::vector<TensorView> views;
        for (const auto& e : experts) views.push_back(e.*proj);
        std::vector<int64_t> shape{c.n_expert, first.shape[0], first.shape[1]};
        g.add_tensor(tn::layer(l, name), type, shape, [views, type](uint8_t* dst, size_t) {
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
    if (c.n_ff_shared > 0) {
      TensorView gate_1d = L.shared_gate;
      gate_1d.shape = {c.n_embd};  // llama.cpp declares ffn_gate_inp_shexp as {n_embd}
      add_f32(tn::layer(l, tn::kFfnGateInpShexp), gate_1d);
      add_matrix(tn::layer(l, tn::kFfnGateShexp), L.shared.gate, type_for(L.shared.gate, mat));
      add_matrix(tn::layer(l, tn::kFfnUpShexp), L.shared.up, type_for(L.shared.up, mat));
      add_matrix(tn::layer(l, tn::kFfnDownShexp), L.shared.down, type_for(L.shared.down, mat));
    }
  }
  g.write(out_path, options.progress);
}

}  // namespace mcmoe::api

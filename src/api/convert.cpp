#include "api/convert.h"

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "format/gguf.h"
#include "format/tensor_names.h"
#include "model/model.h"
#include "model/model_writer.h"

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

// The stored type of each tensor when converting to matrix type `mat`.
std::function<DType(const std::string&, const TensorView&)> type_rule(DType mat) {
  return [mat](const std::string& name, const TensorView& v) {
    const bool vector_like = v.shape.size() == 1 || name.ends_with("norm.weight") || name.ends_with(".bias");
    // The router stays F32: routing decisions flip on small logit differences.
    if (vector_like || name.find("ffn_gate_inp") != std::string::npos) return DType::F32;
    // The output projection decides every logit: at 4 bits it is kept at 8 (as llama.cpp
    // keeps it at 6 for its 4-bit types).
    const DType wanted = name == format::tensor_names::kOutput && mat == DType::Q4_0 ? DType::Q8_0 : mat;
    // Matrices take the requested type when their rows fit its blocks, else stay F16.
    return v.cols() % dtype_traits(wanted).block_size == 0 ? wanted : DType::F16;
  };
}

}  // namespace

void convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                        const ConvertOptions& options) {
  if (!std::filesystem::is_directory(hf_dir)) fail("{}: not a Hugging Face model directory", hf_dir);
  const auto m = model::Model::load(hf_dir);
  const DType mat = options.type;
  model::ModelTensors t;
  t.weights = m->weights();
  t.experts = m->stored_experts();
  t.per_expert = false;
  // A checkpoint's own quantized tensors (gpt-oss's MXFP4 experts) stay as they are, as
  // llama.cpp's converter keeps them: re-rounding them to another type only loses.
  t.type_for = [rule = type_rule(mat)](const std::string& name, const TensorView& v) {
    return dtype_traits(v.type).quantized ? v.type : rule(name, v);
  };
  model::write_model_gguf(*m, t, std::filesystem::path(hf_dir).filename().string(), gguf_file_type(mat), {}, out_path,
                   options.progress);
}

void export_llama_gguf(const std::string& gguf_path, const std::string& out_path, const ConvertOptions& options) {
  {
    // Factored experts have no llama.cpp layout: say so before loading.
    const format::GgufFile f(gguf_path);
    for (const auto& t : f.tensors()) {
      if (t.name.ends_with(std::string(".") + format::tensor_names::kLrRight)) {
        fail("{}: tensor '{}': experts are stored low-rank plus sparse (mcmoe lowrank), which llama.cpp cannot run; "
             "export the model before factoring it", gguf_path, t.name);
      }
    }
  }
  const auto m = model::Model::load(gguf_path);
  if (!m->is_gguf()) fail("{}: expected a GGUF file", gguf_path);
  const model::ModelConfig& c = m->config();
  model::ModelConfig out = c;
  out.layer_experts.clear();
  out.expert_map.clear();
  model::ModelTensors t;
  t.config = &out;
  t.weights = m->weights();
  t.experts.resize(c.n_layer);
  const int first_moe = c.n_dense_lead;
  for (int l = 0; l < c.n_layer; ++l) {
    if (!c.is_moe(l)) continue;
    if (c.router_rows(l) != c.router_rows(first_moe)) {
      fail("{}: layer {} has {} experts and layer {} has {}; llama.cpp's format needs one expert count for all layers "
           "(reduce with --per-layer uniform)", gguf_path, l, c.router_rows(l), first_moe, c.router_rows(first_moe));
    }
    const auto& stored = m->stored_experts()[l];
    for (int r = 0; r < c.router_rows(l); ++r) {
      t.experts[l].push_back(stored[c.expert_map.empty() ? r : c.expert_map[l][r]]);
      const moe::ExpertWeights& e = t.experts[l].back();
      if (options.keep_types && (e.gate.type != stored[0].gate.type || e.up.type != stored[0].up.type ||
                                 e.down.type != stored[0].down.type)) {
        fail("{}: layer {}'s experts differ in type (mixed precision); llama.cpp stacks a layer's experts in one "
             "tensor of one type: give --type to convert them", gguf_path, l);
      }
    }
  }
  if (c.n_expert > 0) out.n_expert = c.router_rows(first_moe);
  out.validate(out_path);
  t.per_expert = false;
  if (!options.keep_types) t.type_for = type_rule(options.type);
  const uint32_t file_type = options.keep_types ? static_cast<uint32_t>(m->gguf()->get_uint("general.file_type", 1))
                                                : gguf_file_type(options.type);
  model::write_model_gguf(*m, t, std::filesystem::path(gguf_path).stem().string(), file_type, {}, out_path,
                          options.progress);
}

}  // namespace mcmoe::api

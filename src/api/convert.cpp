#include "api/convert.h"

#include <filesystem>

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

void convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                        const ConvertOptions& options) {
  if (std::filesystem::is_regular_file(hf_dir)) {
    // Factored experts have no llama.cpp layout: say so rather than "not a directory".
    const format::GgufFile f(hf_dir);
    for (const auto& t : f.tensors()) {
      if (t.name.ends_with(std::string(".") + format::tensor_names::kLrRight)) {
        fail("{}: tensor '{}': experts are stored low-rank plus sparse (mcmoe lowrank), which llama.cpp cannot run; "
             "export the model before factoring it", hf_dir, t.name);
      }
    }
  }
  if (!std::filesystem::is_directory(hf_dir)) fail("{}: not a Hugging Face model directory", hf_dir);
  const auto m = model::Model::load(hf_dir);
  const DType mat = options.type;
  model::ModelTensors t;
  t.weights = m->weights();
  t.experts = m->stored_experts();
  t.per_expert = false;
  t.type_for = [mat](const std::string& name, const TensorView& v) {
    const bool vector_like = name.ends_with("norm.weight") || name.ends_with(".bias");
    // The router stays F32: routing decisions flip on small logit differences.
    if (vector_like || name.find("ffn_gate_inp") != std::string::npos) return DType::F32;
    // The output projection decides every logit: at 4 bits it is kept at 8 (as llama.cpp
    // keeps it at 6 for its 4-bit types).
    const DType wanted = name == format::tensor_names::kOutput && mat == DType::Q4_0 ? DType::Q8_0 : mat;
    // Matrices take the requested type when their rows fit its blocks, else stay F16.
    return v.cols() % dtype_traits(wanted).block_size == 0 ? wanted : DType::F16;
  };
  model::write_model_gguf(*m, t, std::filesystem::path(hf_dir).filename().string(), gguf_file_type(mat), {}, out_path,
                   options.progress);
}

}  // namespace mcmoe::api

#pragma once
// Writing a loaded (and possibly transformed) model back to GGUF: the metadata every mcmoe
// file carries, and the tensors from views of any type. Used by convert, quantize and the
// expert-reduction pipelines (compress/, api/) so that all of them produce files `run` loads the same way.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "model/model.h"

namespace mcmoe::model {

// general.*, the architecture's hyperparameters (from `c`, which may differ from m's after
// expert reduction), per-layer expert counts and router maps when present, and the tokenizer.
void set_model_metadata(format::GgufWriter& g, const Model& m, const ModelConfig& c, const std::string& name,
                        uint32_t file_type);
// The same without the tokenizer (synthetic models bring their own vocabulary).
void set_config_metadata(format::GgufWriter& g, const ModelConfig& c, const std::string& name, uint32_t file_type);

// Row map that turns Hugging Face (NeoX) q/k rows into llama.cpp's interleaved order.
std::vector<int64_t> rope_permutation(int n_heads, int head_dim);

// Rows of src in `type` (row i from row map[i] when a map is given): copied when the types
// agree, else dequantized and requantized row by row.
void convert_rows(const TensorView& src, DType type, const std::vector<int64_t>* map, uint8_t* dst);

// The tensors to write, from views of any DType; q/k rows are permuted when the model came
// from a Hugging Face "llama"-arch checkpoint.
struct ModelTensors {
  // The configuration the tensors follow; null: the source model's. Expert reduction
  // changes expert counts and router shapes.
  const ModelConfig* config = nullptr;
  ModelWeights weights;
  std::vector<std::vector<moe::ExpertWeights>> experts;  // [n_layer][n_expert]
  // One tensor per expert and projection (blk.N.ffn_gate.E.weight, each expert's three
  // tensors adjacent) instead of stacked ffn_*_exps: required when experts differ in type.
  bool per_expert = false;
  // The stored type of each tensor (by GGUF name); null: every view keeps its own type. A
  // stacked expert tensor asks once, with expert 0's view.
  std::function<DType(const std::string& name, const TensorView& v)> type_for;
};

void write_model_gguf(const Model& source, const ModelTensors& t, const std::string& name,
                      uint32_t file_type, const std::vector<std::pair<std::string, format::GgufValue>>& extra,
                      const std::string& path, const std::function<void(size_t, size_t)>& progress = nullptr);
// The size in bytes of the file write_model_gguf would make with the same arguments (nothing
// is converted or written).
uint64_t model_gguf_size(const Model& source, const ModelTensors& t, const std::string& name,
                         uint32_t file_type,
                         const std::vector<std::pair<std::string, format::GgufValue>>& extra);

}  // namespace mcmoe::model

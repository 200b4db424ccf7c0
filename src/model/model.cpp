#include "model/model.h"
#include "model/loaders.h"

#include <filesystem>

#include "core/error.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

Model::~Model() = default;

void expect_shape(const std::string& source, const std::string& name, const TensorView& v,
                  const std::vector<int64_t>& expected) {
  if (v.shape != expected) {
    fail("{}: tensor '{}' has shape {}, but the configuration implies {}", source, name,
         shape_string(v.shape), shape_string(expected));
  }
}

TensorView Model::to_f32(const TensorView& v) {
  const int64_t n = v.numel();
  owned_.push_back(std::make_unique<float[]>(static_cast<size_t>(n)));
  quant::dequantize_row(v.type, v.data, owned_.back().get(), n);
  TensorView out;
  out.type = DType::F32;
  out.shape = v.shape;
  out.data = owned_.back().get();
  out.nbytes = static_cast<size_t>(n) * 4;
  return out;
}

std::unique_ptr<Model> Model::load(const std::string& path) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  if (std::filesystem::is_directory(path)) {
    HfLoader::load(*m, path);
  } else if (std::filesystem::exists(path)) {
    GgufLoader::load(*m, path);
  } else {
    fail("{}: no such file or directory", path);
  }
  m->experts_ = std::make_unique<moe::ResidentExpertProvider>(m->stored_experts_);
  // Embeddings may be padded beyond the tokenizer (Qwen pads to a multiple of 128).
  if (m->tokenizer_->n_vocab() > m->config_.n_vocab) {
    fail("{}: tokenizer has {} tokens, more than the model's vocabulary size {}", path,
         m->tokenizer_->n_vocab(), m->config_.n_vocab);
  }
  return m;
}

}  // namespace mcmoe::model

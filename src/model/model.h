#pragma once
// A loaded model: configuration, non-expert weights, the expert provider and the tokenizer.
// Loading maps the file(s) and checks every tensor's presence, type and shape against the
// configuration before anything runs.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/weights.h"
#include "moe/expert_provider.h"

namespace mcmoe::format {
class GgufFile;
class SafetensorsSet;
}  // namespace mcmoe::format
namespace mcmoe::tokenizer {
class Tokenizer;
}

namespace mcmoe::model {

struct NamedTensor {
  std::string name;
  TensorView view;
};

struct LoadOptions {
  // GGUF files: kAuto reads the file into huge-page memory when it takes at most half of
  // the memory available now, and maps it otherwise (models larger than RAM).
  enum class Memory { kAuto, kMap, kRead } memory = Memory::kAuto;
};

class Model {
 public:
  // A directory is read as a Hugging Face checkpoint, a file as GGUF.
  static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& options = {});
  ~Model();

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }
  moe::ExpertProvider& experts() { return *experts_; }
  void set_expert_provider(std::unique_ptr<moe::ExpertProvider> p) { experts_ = std::move(p); }
  // The experts as stored, [n_layer][n_expert], independent of the active provider.
  const std::vector<std::vector<moe::ExpertWeights>>& stored_experts() const { return stored_experts_; }

  // Replaces layer l's weights and experts (views whose memory the caller keeps alive) and
  // rebuilds the resident expert provider: how layer-sequential compression makes the next
  // layers see the already-compressed ones. Shapes must match the configuration.
  void replace_layer(int l, const LayerWeights& weights, std::vector<moe::ExpertWeights> experts);

  // Offloading re-points non-expert views at copies it owns (read with pread, so no page of
  // the file stays mapped); `owner` keeps those copies alive as long as the model.
  ModelWeights& mutable_weights() { return weights_; }
  void keep_alive(std::shared_ptr<void> owner) { kept_alive_.push_back(std::move(owner)); }

  const std::string& path() const { return path_; }
  bool is_gguf() const { return gguf_ != nullptr; }
  const format::GgufFile* gguf() const { return gguf_.get(); }
  // Every tensor of the file in file order, for inspect.
  const std::vector<NamedTensor>& file_tensors() const { return file_tensors_; }

 private:
  Model() = default;
  friend class HfLoader;
  friend class GgufLoader;
  // f32 copy of a small vector (norm weights, biases): ops read them as plain floats.
  TensorView to_f32(const TensorView& v);
  // Zeroed memory the model owns for a tensor derived at load (transposed or split Hugging
  // Face tensors, MLA's W_UK transposed), 64-byte aligned.
  TensorView own(DType type, std::vector<int64_t> shape);
  // Derived tensors of layer l that follow from its file tensors (MLA's wk_b from wkv_b).
  void derive_layer(int l);

  std::string path_;
  // Non-empty when routed experts' scales were not checked at load (a mapped GGUF): the
  // expert provider checks each on first use, naming this file.
  std::string experts_check_path_;
  ModelConfig config_;
  ModelWeights weights_;
  std::vector<std::vector<moe::ExpertWeights>> stored_experts_;
  std::unique_ptr<moe::ExpertProvider> experts_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<format::GgufFile> gguf_;
  std::unique_ptr<format::SafetensorsSet> safetensors_;
  std::vector<std::unique_ptr<float[]>> owned_;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<uint8_t[], FreeDeleter>> owned_bytes_;
  std::vector<NamedTensor> file_tensors_;
  std::vector<std::shared_ptr<void>> kept_alive_;
};

// Throws an Error naming `source` and `name` when the view's shape differs from `expected`.
void expect_shape(const std::string& source, const std::string& name, const TensorView& v,
                  const std::vector<int64_t>& expected);

}  // namespace mcmoe::model

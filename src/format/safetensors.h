#pragma once
// Safetensors reader: one file, or a sharded set described by model.safetensors.index.json.
// Header JSON and every tensor's [begin, end) range are validated against the file size.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace mcmoe::format {

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
};

// All tensors of a Hugging Face model directory, from model.safetensors or from the shards
// listed in model.safetensors.index.json.
class SafetensorsSet {
 public:
  explicit SafetensorsSet(const std::string& dir);
  const TensorView* find(const std::string& name) const;
  // Throws an Error naming the directory and the tensor.
  const TensorView& get(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorView*>> index_;
};

}  // namespace mcmoe::format

namespace mcmoe::format {

// Writes tensors (F32, F16 or BF16) as one safetensors file, atomically.
void write_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors);

}  // namespace mcmoe::format

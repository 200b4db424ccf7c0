#pragma once
// Hugging Face checkpoint → GGUF in llama.cpp's layout, so the file runs in mcmoe and in
// llama.cpp alike.
#include <functional>
#include <string>

#include "core/dtype.h"

namespace mcmoe::api {

struct ConvertOptions {
  DType type = DType::F16;  // type of the 2-D weight matrices
  std::function<void(size_t done, size_t total)> progress;
};

void convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                        const ConvertOptions& options);

// llama.cpp's general.file_type value for a matrix type.
uint32_t gguf_file_type(DType type);

}  // namespace mcmoe::api

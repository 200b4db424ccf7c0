#pragma once
// Hugging Face checkpoint → GGUF in llama.cpp's layout, so the file runs in mcmoe and in
// llama.cpp alike.
#include <functional>
#include <string>

#include "core/dtype.h"

namespace mcmoe::api {

struct ConvertOptions {
  DType type = DType::F16;  // type of the 2-D weight matrices
  bool keep_types = false;  // GGUF input: keep every tensor's stored type (type is ignored)
  std::function<void(size_t done, size_t total)> progress = {};
};

void convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path,
                        const ConvertOptions& options);

// An mcmoe GGUF (e.g. from mcmoe reduce) rewritten in llama.cpp's layout: stacked experts
// and one expert count for all layers. A merged model's experts are copied into the slot of
// every router row that points at them, which computes the same function (a token that
// picks two rows of one merged expert adds the expert's output twice, each with its gate,
// which is what summing the gates does). Fails when layers keep different expert counts
// (adaptive pruning), which llama.cpp's format cannot express, or when a layer's experts
// differ in type and keep_types is set.
void export_llama_gguf(const std::string& gguf_path, const std::string& out_path, const ConvertOptions& options);

// llama.cpp's general.file_type value for a matrix type.
uint32_t gguf_file_type(DType type);

}  // namespace mcmoe::api

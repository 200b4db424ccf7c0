#pragma once
// Where an expert's bytes are in the model file and where they go in its cache buffer.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "moe/expert_provider.h"

namespace mcmoe::offload {

struct ReadRange {
  uint64_t file_offset = 0;    // O_DIRECT-aligned start
  uint64_t read_bytes = 0;     // aligned length
  uint64_t needed = 0;         // bytes from file_offset that must exist (the rest is padding)
  uint64_t buffer_offset = 0;  // where the range lands in the expert's buffer
};

struct ExpertLayout {
  // view_offset of a view that is not read from the file: an f32 bias the loader converted
  // into memory the model owns (the file stores it in another type), which stays where it is.
  static constexpr uint64_t kInPlace = ~uint64_t{0};
  std::vector<ReadRange> ranges;      // tensors closer than 64 KiB share one read
  std::vector<uint64_t> view_offset;  // data offset of each of ExpertWeights::views(), or kInPlace
  // Bytes the cache charges and allocates. Each range gets its length rounded up plus one
  // spare page, so the size does not depend on how the tensors sit against page boundaries:
  // experts of one shape all get the same size, and an evicted buffer always fits its
  // replacement.
  uint64_t buffer_bytes = 0;
};

// The expert's matrices (and f32 biases stored as f32: gpt-oss) are read from the file; a
// bias the loader converted to f32 stays in place. Throws naming the file, layer, expert and
// tensor when a matrix does not lie inside the mapped file.
ExpertLayout layout_expert(const model::Model& m, const moe::ExpertWeights& e, int layer, int expert);

// Bytes the cache charges for every expert, [n_layer * n_expert]: layout_expert's
// buffer_bytes for GGUF files, the tensors' sizes otherwise. Percent budgets and cachesim
// use these, so "50%" means half of what caching every expert would take.
// Layers may store different numbers of experts (mcmoe reduce), and a dense layer none
// (DeepSeek's and GLM's first layers): ids are layer * expert_stride(m) + expert, and absent
// experts cost 0 bytes.
std::vector<uint64_t> expert_cache_bytes(const model::Model& m);
int expert_stride(const model::Model& m);  // most experts any layer stores

}  // namespace mcmoe::offload

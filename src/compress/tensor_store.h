#pragma once
// Owns the bytes of tensors a compression pipeline makes (quantized matrices, low-rank
// factors) until the output file is written; hands out views of them.
#include <cstdint>
#include <deque>
#include <vector>

#include "core/tensor.h"
#include "model/model_writer.h"

namespace mcmoe::compress {

class TensorStore {
 public:
  TensorView add(DType type, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
    buffers_.push_back(std::move(bytes));
    TensorView v;
    v.type = type;
    v.shape = std::move(shape);
    v.data = buffers_.back().data();
    v.nbytes = buffers_.back().size();
    return v;
  }
  // A copy of v converted to `type` (embeddings, output head).
  TensorView convert(const TensorView& v, DType type) {
    std::vector<uint8_t> bytes(row_bytes(type, v.cols()) * static_cast<size_t>(v.rows()));
    model::convert_rows(v, type, nullptr, bytes.data());
    return add(type, v.shape, std::move(bytes));
  }

 private:
  std::deque<std::vector<uint8_t>> buffers_;  // a deque: adding never moves earlier buffers
};

}  // namespace mcmoe::compress

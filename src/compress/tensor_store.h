#pragma once
// Owns the bytes of tensors an offline pipeline creates (quantized or merged weights,
// low-rank factors) until the model file is written; views into it stay valid for the
// store's lifetime.
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
  // A copy of v converted to `type`, rows taken in the order of `row_map` when given.
  TensorView convert(const TensorView& v, DType type, const std::vector<int64_t>* row_map = nullptr) {
    const int64_t rows = row_map ? static_cast<int64_t>(row_map->size()) : v.rows();
    std::vector<uint8_t> bytes(row_bytes(type, v.cols()) * static_cast<size_t>(rows));
    TensorView src = v;
    if (row_map) src.shape = {rows, v.cols()};  // convert_rows walks the map's rows
    model::convert_rows(src, type, row_map, bytes.data());
    return add(type, src.shape, std::move(bytes));
  }

 private:
  std::deque<std::vector<uint8_t>> buffers_;
};

}  // namespace mcmoe::compress

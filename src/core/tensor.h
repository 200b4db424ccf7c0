#pragma once
// A non-owning view of a tensor's bytes. Shapes are row-major, outermost first, as in
// PyTorch: a linear weight is [n_out, n_in]; GGUF's ne[] is the reverse and is converted
// once by the reader.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mcmoe {

struct TensorView {
  DType type = DType::F32;
  std::vector<int64_t> shape;  // outermost first
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t dim(int i) const { return shape[static_cast<size_t>(i < 0 ? i + shape.size() : i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t rows() const { return numel() / shape.back(); }
  int64_t cols() const { return shape.back(); }
  size_t row_stride() const { return row_bytes(type, cols()); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_stride(); }
  // Sub-tensor i along the outermost dimension (expert e of a [n_expert, n_ff, n_embd] tensor).
  TensorView slice0(int64_t i) const;
  // Rows [begin, begin + n) of a 2-D tensor (a view; rows are contiguous).
  TensorView row_range(int64_t begin, int64_t n) const;
  bool valid() const { return data != nullptr; }
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace mcmoe

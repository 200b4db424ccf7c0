#include "core/tensor.h"

#include "core/error.h"

namespace mcmoe {

TensorView TensorView::slice0(int64_t i) const {
  if (shape.size() < 2 || i < 0 || i >= shape[0]) {
    fail("internal: slice {} of tensor with shape {}", i, shape_string(shape));
  }
  TensorView v;
  v.type = type;
  v.shape.assign(shape.begin() + 1, shape.end());
  v.nbytes = nbytes / static_cast<size_t>(shape[0]);
  v.data = static_cast<const uint8_t*>(data) + static_cast<size_t>(i) * v.nbytes;
  return v;
}

TensorView TensorView::row_range(int64_t begin, int64_t n) const {
  if (shape.size() != 2 || begin < 0 || n < 0 || begin + n > shape[0]) {
    fail("internal: rows [{}, {}) of tensor with shape {}", begin, begin + n, shape_string(shape));
  }
  TensorView v;
  v.type = type;
  v.shape = {n, shape[1]};
  v.nbytes = static_cast<size_t>(n) * row_stride();
  v.data = static_cast<const uint8_t*>(data) + static_cast<size_t>(begin) * row_stride();
  return v;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace mcmoe

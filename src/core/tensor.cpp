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

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace mcmoe

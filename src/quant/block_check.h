#pragma once
// Load-time checks of quantized blocks: a scale field that decodes to NaN or Inf makes every
// weight of its block NaN or Inf, and from there every activation of the model, silently. The
// check names the tensor, the block and the field, so a corrupted file is refused where it is
// read instead of producing garbage text.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/dtype.h"
#include "core/tensor.h"

namespace mcmoe::quant {

struct ScaleFault {
  int64_t block = 0;  // index of the block in the checked range
  std::string field;  // "d", "dmin", "m", "e (E8M0)", "scale of group 2", ...
  std::string value;  // "NaN" or "Inf"
  uint32_t bits = 0;  // the field's raw bits
};

// The first block of `type` in [data, data + nbytes) whose scale field is not finite. Types
// without scale fields (f32, f16, bf16, i32) have none to check.
std::optional<ScaleFault> find_bad_scale(DType type, const void* data, size_t nbytes);

// Fails (mcmoe::Error, naming `what` — file and tensor — and the block) when find_bad_scale
// finds one.
void check_scales(const TensorView& v, std::string_view what);

}  // namespace mcmoe::quant

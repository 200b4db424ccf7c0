#include "ops/kv_rows.h"

#include <cstring>

#include "kernels/dispatch.h"
#include "ops/elementwise.h"
#include "quant/quantize.h"

namespace mcmoe::ops {

bool kv_type_supported(DType type) {
  return type == DType::F32 || type == DType::F16 || type == DType::Q8_0;
}

void kv_rows_to_f32(DType type, const void* rows, size_t src_row_bytes, int64_t n_rows,
                    int64_t width, float* out, int64_t out_stride) {
  const auto* src = static_cast<const uint8_t*>(rows);
  const size_t rb = src_row_bytes;
  switch (type) {
    case DType::F32:
      for (int64_t r = 0; r < n_rows; ++r)
        std::memcpy(out + r * out_stride, src + r * rb, width * sizeof(float));
      return;
    case DType::F16: {
      const auto widen =
          kernels::active_kernels().row_to_f32[static_cast<int>(kernels::WFormat::kF16)];
      for (int64_t r = 0; r < n_rows; ++r) widen(src + r * rb, out + r * out_stride, width);
      return;
    }
    case DType::Q8_0:
      for (int64_t r = 0; r < n_rows; ++r) q8_0_to_f32(src + r * rb, out + r * out_stride, width);
      return;
    default:
      quant::dequantize_row(type, src, out, width);  // unreachable: sessions check the type
  }
}

void kv_row_from_f32(DType type, const float* row, int64_t width, void* dst) {
  quant::quantize_row(type, row, dst, width);
}

}  // namespace mcmoe::ops

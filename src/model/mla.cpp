#include "model/mla.h"

#include <cstring>

#include "core/error.h"
#include "quant/quantize.h"

namespace mcmoe::model {

TensorView mla_derive_wk_b(const ModelConfig& c, const TensorView& wkv_b, const OwnTensor& own) {
  const MlaConfig& a = c.mla;
  const int64_t h = c.n_head, lora = a.kv_lora_rank, nope = a.qk_nope,
                per_head = a.qk_nope + a.v_dim;
  DType type = wkv_b.type;
  if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
    type = nope % 32 == 0 ? DType::Q8_0 : DType::F16;
  TensorView out = own(type, {h, lora, nope});
  std::vector<float> rows(static_cast<size_t>(nope * lora)), row(static_cast<size_t>(nope));
  auto* dst = static_cast<uint8_t*>(const_cast<void*>(out.data));
  const size_t out_row = row_bytes(type, nope);
  for (int64_t hd = 0; hd < h; ++hd) {
    // W_UK_h [nope, lora] in f32, then each of its columns becomes a row of the output.
    for (int64_t d = 0; d < nope; ++d) {
      quant::dequantize_row(wkv_b.type, wkv_b.row(hd * per_head + d), rows.data() + d * lora, lora);
    }
    for (int64_t cidx = 0; cidx < lora; ++cidx) {
      for (int64_t d = 0; d < nope; ++d) row[d] = rows[d * lora + cidx];
      quant::quantize_row(type, row.data(), dst + (hd * lora + cidx) * out_row, nope);
    }
  }
  return out;
}

TensorView mla_k_b(const ModelConfig& c, const LayerWeights& L, int h) {
  return L.wk_b.slice0(h);
}

TensorView mla_v_b(const ModelConfig& c, const LayerWeights& L, int h) {
  if (c.mla.split_kv_b) return L.wv_b.slice0(h);
  const int64_t per_head = c.mla.qk_nope + c.mla.v_dim;
  return L.wkv_b.row_range(h * per_head + c.mla.qk_nope, c.mla.v_dim);
}

}  // namespace mcmoe::model

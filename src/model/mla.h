#pragma once
// Weights of multi-head latent attention (DeepSeek-V2/V3) seen per head. kv_b maps the
// normed latent c [kv_lora_rank] to each head's k_nope = W_UK_h c and v = W_UV_h c. The
// absorbed form never expands the latent: the query folds W_UK in (q_lat = W_UK_hᵀ q_nope),
// attention runs over the cached latents, and W_UV maps each head's latent output to v
// space. W_UK_hᵀ is kept as its own matrix (llama.cpp's attn_k_b), made here from kv_b when
// the file holds kv_b whole.
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/weights.h"

namespace mcmoe::model {

using OwnTensor = std::function<TensorView(DType type, std::vector<int64_t> shape)>;

// [n_head, kv_lora_rank, qk_nope] from kv_b [n_head * (qk_nope + v_dim), kv_lora_rank]:
// float types are transposed exactly; quantized ones are stored as Q8_0 (F16 when qk_nope is
// not a multiple of 32), 8-bit rows of W_UK read once per token and layer.
TensorView mla_derive_wk_b(const ModelConfig& c, const TensorView& wkv_b, const OwnTensor& own);

// W_UK_hᵀ [kv_lora_rank, qk_nope] of head h.
TensorView mla_k_b(const ModelConfig& c, const LayerWeights& L, int h);
// W_UV_h [v_dim, kv_lora_rank] of head h: rows of kv_b, or slice h of attn_v_b.
TensorView mla_v_b(const ModelConfig& c, const LayerWeights& L, int h);

}  // namespace mcmoe::model

// Hugging Face checkpoints: config.json + safetensors, walked through the tensor inventory;
// each family's arch file says where its checkpoint keeps each tensor (model/arch/arch.h).
// Tensors used as they are stay views into the mapped file; fused or transposed ones
// (Granite's input_linear halves are views; gpt-oss's gate_up_proj and down_proj are copied
// transposed, or repacked from MXFP4 into ggml's MXFP4 blocks) are taken apart here.
#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "core/memory_info.h"
#include "format/safetensors.h"
#include "model/arch/arch.h"
#include "model/inventory.h"
#include "model/loaders.h"
#include "quant/block_check.h"
#include "quant/iquants.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

namespace {

size_t element_size(const std::string& dir, const std::string& name, DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    default: fail("{}: tensor '{}' has type {}; checkpoints are read in f32, f16 or bf16", dir, name, dtype_name(t));
  }
}

// Bytes the load copies out of the mapped checkpoint: vectors converted to f32, and matrices
// transposed, interleaved or repacked from MXFP4 (gpt-oss: every expert, most of the model).
// Tensors used as they are stay in the map and need no room.
uint64_t copied_bytes(const ModelConfig& c, const arch::ArchInfo& family,
                      const format::SafetensorsSet& st) {
  ModelWeights w;
  w.layers.assign(c.n_layer, {});
  LayerExperts experts(c.n_layer);
  for (int l = 0; l < c.n_layer; ++l) experts[l].resize(c.experts(l));
  uint64_t total = 0;
  for_each_tensor(c, w, experts, [&](const TensorSlot& s) {
    if (s.shape.empty()) return;
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    const int64_t cols = s.shape.back();
    if (!s.matrix) {
      total += static_cast<uint64_t>(n) * 4;
      return;
    }
    const arch::HfSource src = family.hf_source(c, s);
    using T = arch::HfSource::Take;
    const TensorView* t = st.find(src.name);
    if (!t && st.find(src.name + "_blocks")) {
      total += row_bytes(DType::MXFP4, cols) * static_cast<uint64_t>(n / cols);
    } else if (t && (src.take == T::Transposed || src.take == T::EveryOther)) {
      total += row_bytes(t->type, cols) * static_cast<uint64_t>(n / cols);
    }
  });
  return total;
}

}  // namespace

void HfLoader::load(Model& m, const std::string& dir) {
  m.config_ = config_from_hf(dir);
  const ModelConfig& c = m.config_;
  m.safetensors_ = std::make_unique<format::SafetensorsSet>(dir);
  const format::SafetensorsSet& st = *m.safetensors_;
  for (const auto& name : st.names()) m.file_tensors_.push_back({name, st.get(name)});
  const arch::ArchInfo& family = arch::info(c.arch);
  check_memory_fits(
      copied_bytes(c, family, st), available_memory(),
      fmt::format("{}: loading the checkpoint (the tensors it copies: transposed, interleaved, "
                  "repacked or converted to f32)",
                  dir),
      "");

  // The sub-tensor `index` of a stacked tensor, checked to exist.
  auto sub = [&](const arch::HfSource& src, const TensorView& t) {
    if (t.shape.size() < 2 || src.index < 0 || src.index >= t.shape[0]) {
      fail("{}: tensor '{}' has shape {}; expected a stack holding entry {}", dir, src.name, shape_string(t.shape), src.index);
    }
    return t.slice0(src.index);
  };
  auto take = [&](const arch::HfSource& src, const TensorSlot& s) -> TensorView {
    const TensorView& t = st.get(src.name);
    using T = arch::HfSource::Take;
    switch (src.take) {
      case T::Whole: return t;
      case T::Slice: return sub(src, t);
      case T::Rows: {
        const TensorView e = sub(src, t);
        if (e.shape.size() != 2 || src.end > e.shape[0]) {
          fail("{}: tensor '{}' has shape {}; expected at least {} rows per entry", dir, src.name, shape_string(t.shape), src.end);
        }
        return e.row_range(src.begin, src.end - src.begin);
      }
      case T::Transposed: {
        const TensorView e = sub(src, t);
        if (e.shape.size() != 2) fail("{}: tensor '{}' has shape {}; expected a stack of matrices", dir, src.name, shape_string(t.shape));
        const size_t es = element_size(dir, src.name, e.type);
        const int64_t a = e.shape[0], b = e.shape[1];
        TensorView out = m.own(e.type, {b, a});
        auto* dst = static_cast<uint8_t*>(const_cast<void*>(out.data));
        const auto* in = static_cast<const uint8_t*>(e.data);
        for (int64_t i = 0; i < a; ++i) {
          for (int64_t j = 0; j < b; ++j) std::memcpy(dst + (j * a + i) * es, in + (i * b + j) * es, es);
        }
        return out;
      }
      case T::EveryOther: {
        const TensorView e = sub(src, t);
        const size_t es = element_size(dir, src.name, e.type);
        const auto* in = static_cast<const uint8_t*>(e.data);
        if (e.shape.size() == 1) {  // a bias [2 n_ff]: entries begin, begin + 2, ...
          const int64_t n = e.shape[0] / 2;
          TensorView out = m.own(e.type, {n});
          auto* dst = static_cast<uint8_t*>(const_cast<void*>(out.data));
          for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * es, in + (2 * i + src.begin) * es, es);
          return out;
        }
        if (e.shape.size() != 2 || e.shape[1] % 2 != 0) {
          fail("{}: tensor '{}' has shape {}; expected [experts, n_embd, 2 n_ff]", dir, src.name, shape_string(t.shape));
        }
        // [n_embd, 2 n_ff] used as x @ W → columns begin, begin + 2, ... transposed: [n_ff, n_embd].
        const int64_t rows = e.shape[0], n = e.shape[1] / 2;
        TensorView out = m.own(e.type, {n, rows});
        auto* dst = static_cast<uint8_t*>(const_cast<void*>(out.data));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t i = 0; i < n; ++i) std::memcpy(dst + (i * rows + r) * es, in + (r * 2 * n + 2 * i + src.begin) * es, es);
        }
        return out;
      }
    }
    fail("internal: unknown take for '{}'", s.name);
  };

  // A stack stored as MXFP4 in Hugging Face's packing (gpt-oss): NAME_blocks U8 [E, out, in / 32,
  // 16] and NAME_scales U8 [E, out, in / 32], already in the [out, in] orientation, so a
  // transposed take is the whole entry and an every-other take its even or odd rows. Repacked
  // into ggml MXFP4 blocks (quant/iquants.h), a copy.
  auto take_mxfp4 = [&](const arch::HfSource& src) -> TensorView {
    const std::string bn = src.name + "_blocks", sn = src.name + "_scales";
    if (!st.find(sn)) fail("{}: tensor '{}' has no '{}' beside it", dir, bn, sn);
    const TensorView& blocks = st.get(bn);
    const TensorView& scales = st.get(sn);
    const auto& b = blocks.shape;
    if (blocks.type != DType::I8 || scales.type != DType::I8 || b.size() != 4 || b[3] != 16 ||
        scales.shape != std::vector<int64_t>{b[0], b[1], b[2]}) {
      fail(
          "{}: '{}' {} {} and '{}' {} {}: expected U8 [experts, out, in / 32, 16] and U8 [experts, "
          "out, in / 32]",
          dir, bn, dtype_name(blocks.type), shape_string(b), sn, dtype_name(scales.type),
          shape_string(scales.shape));
    }
    if (src.index < 0 || src.index >= b[0])
      fail("{}: '{}' has {} experts; expected entry {}", dir, bn, b[0], src.index);
    using T = arch::HfSource::Take;
    const bool every_other = src.take == T::EveryOther;
    if (!every_other && src.take != T::Transposed && src.take != T::Slice) {
      fail("internal: MXFP4 tensor '{}' taken in an unsupported way", bn);
    }
    const int64_t rows = every_other ? b[1] / 2 : b[1], nb = b[2];
    TensorView out = m.own(DType::MXFP4, {rows, nb * 32});
    auto* dst = static_cast<uint8_t*>(const_cast<void*>(out.data));
    const auto* codes =
        static_cast<const uint8_t*>(blocks.data) + static_cast<size_t>(src.index * b[1] * nb * 16);
    const auto* exps =
        static_cast<const uint8_t*>(scales.data) + static_cast<size_t>(src.index * b[1] * nb);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t from = every_other ? 2 * r + src.begin : r;
      for (int64_t k = 0; k < nb; ++k) {
        quant::mxfp4_block_from_hf(codes + (from * nb + k) * 16, exps[from * nb + k],
                                   dst + (r * nb + k) * 17);
      }
    }
    quant::check_scales(out, fmt::format("{}: tensor '{}' expert {}", dir, sn, src.index));
    return out;
  };

  ModelWeights& w = m.weights_;
  w.layers.assign(c.n_layer, {});
  m.stored_experts_.assign(c.n_layer, {});
  for (int l = 0; l < c.n_layer; ++l) m.stored_experts_[l].resize(c.experts(l));
  for_each_tensor(c, w, m.stored_experts_, [&](const TensorSlot& s) {
    const arch::HfSource src = family.hf_source(c, s);
    if (src.name.empty()) fail("internal: {} names no Hugging Face tensor for '{}'", family.gguf_name, s.name);
    const bool mxfp4 = !st.find(src.name) && st.find(src.name + "_blocks");
    if (!st.find(src.name) && !mxfp4) {
      if (s.kind == TensorKind::Output) fail("{}: missing tensor '{}' (tie_word_embeddings is false)", dir, src.name);
      fail("{}: missing tensor '{}'", dir, src.name);
    }
    TensorView v = mxfp4 ? take_mxfp4(src) : take(src, s);
    if (v.shape != s.shape) {
      fail("{}: tensor '{}'{} has shape {}, but the configuration implies {}", dir, src.name,
           src.take == arch::HfSource::Take::Whole ? "" : fmt::format(" (entry {})", src.index), shape_string(v.shape),
           shape_string(s.shape));
    }
    *s.view = s.matrix ? v : m.to_f32(v);
  });
  if (c.tie_embeddings) w.output = w.tok_embd;
  for (int l = 0; l < c.n_layer; ++l) m.derive_layer(l);
  m.tokenizer_ = tokenizer::Tokenizer::from_hf_dir(dir);
}

}  // namespace mcmoe::model

#include "model/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/inventory.h"
#include "model/loaders.h"
#include "model/mla.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::model {

Model::~Model() = default;

void expect_shape(const std::string& source, const std::string& name, const TensorView& v,
                  const std::vector<int64_t>& expected) {
  if (v.shape != expected) {
    fail("{}: tensor '{}' has shape {}, but the configuration implies {}", source, name,
         shape_string(v.shape), shape_string(expected));
  }
}

TensorView Model::to_f32(const TensorView& v) {
  const int64_t n = v.numel();
  owned_.push_back(std::make_unique<float[]>(static_cast<size_t>(n)));
  quant::dequantize_row(v.type, v.data, owned_.back().get(), n);
  TensorView out;
  out.type = DType::F32;
  out.shape = v.shape;
  out.data = owned_.back().get();
  out.nbytes = static_cast<size_t>(n) * 4;
  return out;
}

TensorView Model::own(DType type, std::vector<int64_t> shape) {
  TensorView out;
  out.type = type;
  out.shape = std::move(shape);
  out.nbytes = row_bytes(type, out.cols()) * static_cast<size_t>(out.rows());
  const size_t alloc = (std::max<size_t>(out.nbytes, 1) + 63) / 64 * 64;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, alloc));
  if (!p) fail("out of memory allocating {} bytes for a derived tensor", alloc);
  std::memset(p, 0, alloc);
  owned_bytes_.emplace_back(p);
  out.data = p;
  return out;
}

void Model::derive_layer(int l) {
  LayerWeights& L = weights_.layers[l];
  if (config_.attention == AttentionKind::Mla && !config_.mla.split_kv_b) {
    L.wk_b = mla_derive_wk_b(config_, L.wkv_b, [this](DType t, std::vector<int64_t> shape) { return own(t, std::move(shape)); });
  }
}

void Model::replace_layer(int l, const LayerWeights& weights, std::vector<moe::ExpertWeights> experts) {
  if (l < 0 || l >= config_.n_layer) fail("replace_layer: layer {} out of range [0, {})", l, config_.n_layer);
  if (experts.size() != stored_experts_[l].size()) {
    fail("replace_layer: {} experts given for layer {}, the model has {}", experts.size(), l, stored_experts_[l].size());
  }
  // Every tensor keeps its shape; an expert projection may change between dense and
  // factored (mcmoe lowrank), the matrix it stands for keeping its shape.
  std::vector<std::pair<std::string, std::vector<int64_t>>> before, after;
  auto shapes = [&](std::vector<std::pair<std::string, std::vector<int64_t>>>& out) {
    return [&out](const TensorSlot& s) {
      const bool factored = s.low_rank && s.low_rank->valid();
      out.emplace_back(s.name, factored ? s.low_rank->shape() : s.view->valid() ? s.view->shape : std::vector<int64_t>{});
    };
  };
  for_each_layer_tensor(config_, l, weights_.layers[l], stored_experts_[l], shapes(before));
  for_each_layer_tensor(config_, l, weights, experts, shapes(after));
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i].second != after[i].second) {
      fail("replace_layer: layer {} tensor '{}' has shape {}, expected {}", l, before[i].first, shape_string(after[i].second),
           shape_string(before[i].second));
    }
  }
  // The derived tensors are re-derived only when what they derive from changed: an MLA
  // layer's wk_b is a new owned copy each time, and `quantize --kl-cost` replaces a layer
  // twice per tensor and window (most of them leave attn_kv_b as it is).
  const LayerWeights& now = weights_.layers[l];
  const bool same_derived =
      weights.wkv_b.data == now.wkv_b.data && weights.wkv_b.type == now.wkv_b.type &&
      weights.wk_b.data == now.wk_b.data && weights.wv_b.data == now.wv_b.data;
  weights_.layers[l] = weights;
  if (!same_derived) derive_layer(l);
  stored_experts_[l] = std::move(experts);
  experts_ = std::make_unique<moe::ResidentExpertProvider>(stored_experts_, experts_check_path_);
}

LoadMode choose_load_mode(const std::string& path, uint64_t size, const LoadOptions& o,
                          const AvailableMemory& avail) {
  switch (o.memory) {
    case LoadOptions::Memory::kMap: return LoadMode::kMap;
    case LoadOptions::Memory::kRead:
      // Refused here, before the allocation: past the limit the OOM killer would end the
      // process half-way through the read instead.
      check_memory_fits(read_memory_bytes(size), avail,
                        fmt::format("{}: reading the file into memory", path),
                        "map it instead (--mmap)");
      return LoadMode::kReadHugePages;
    case LoadOptions::Memory::kAuto: break;
  }
  // Small files gain nothing measurable; large ones must leave room for everything else.
  return size >= (uint64_t{64} << 20) && avail.known() && size <= avail.bytes / 2
             ? LoadMode::kReadHugePages
             : LoadMode::kMap;
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  if (std::filesystem::is_directory(path)) {
    HfLoader::load(*m, path);
  } else if (std::filesystem::exists(path)) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    // A size it cannot read (not a regular file) is the reader's to report: map, it will.
    const LoadMode mode = ec || options.memory == LoadOptions::Memory::kMap
                              ? LoadMode::kMap
                              : choose_load_mode(path, size, options, available_memory());
    GgufLoader::load(*m, path, mode);
  } else {
    fail("{}: no such file or directory", path);
  }
  m->experts_ = std::make_unique<moe::ResidentExpertProvider>(m->stored_experts_, m->experts_check_path_);
  // Embeddings may be padded beyond the tokenizer (Qwen pads to a multiple of 128).
  if (m->tokenizer_->n_vocab() > m->config_.n_vocab) {
    fail("{}: tokenizer has {} tokens, more than the model's vocabulary size {}", path,
         m->tokenizer_->n_vocab(), m->config_.n_vocab);
  }
  return m;
}

}  // namespace mcmoe::model

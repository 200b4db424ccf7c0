#include "model/model.h"
#include "model/loaders.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "format/gguf.h"
#include "format/safetensors.h"
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

void Model::replace_layer(int l, const LayerWeights& weights, std::vector<moe::ExpertWeights> experts) {
  if (l < 0 || l >= config_.n_layer) fail("replace_layer: layer {} out of range [0, {})", l, config_.n_layer);
  if (experts.size() != stored_experts_[l].size()) {
    fail("replace_layer: {} experts given for layer {}, the model has {}", experts.size(), l, stored_experts_[l].size());
  }
  auto same = [&](const TensorView& a, const TensorView& b, const char* what) {
    if (a.valid() != b.valid() || (a.valid() && a.shape != b.shape)) {
      fail("replace_layer: layer {} {} has shape {}, expected {}", l, what, shape_string(a.shape), shape_string(b.shape));
    }
  };
  const LayerWeights& old = weights_.layers[l];
  same(weights.wq, old.wq, "attn_q");
  same(weights.wk, old.wk, "attn_k");
  same(weights.wv, old.wv, "attn_v");
  same(weights.wo, old.wo, "attn_output");
  same(weights.router, old.router, "router");
  // An expert projection may change between dense and factored (mcmoe lowrank); the matrix
  // it stands for keeps its shape.
  auto same_proj = [&](const TensorView& a, const ops::LowRankWeights& a_lr, const TensorView& b,
                       const ops::LowRankWeights& b_lr, const char* what) {
    const std::vector<int64_t> sa = a_lr.valid() ? a_lr.shape() : a.shape, sb = b_lr.valid() ? b_lr.shape() : b.shape;
    if (sa != sb) fail("replace_layer: layer {} {} has shape {}, expected {}", l, what, shape_string(sa), shape_string(sb));
  };
  for (size_t e = 0; e < experts.size(); ++e) {
    const moe::ExpertWeights &n = experts[e], &o = stored_experts_[l][e];
    same_proj(n.gate, n.gate_lr, o.gate, o.gate_lr, "expert gate");
    same_proj(n.up, n.up_lr, o.up, o.up_lr, "expert up");
    same_proj(n.down, n.down_lr, o.down, o.down_lr, "expert down");
  }
  weights_.layers[l] = weights;
  stored_experts_[l] = std::move(experts);
  experts_ = std::make_unique<moe::ResidentExpertProvider>(stored_experts_);
}

namespace {

// MemAvailable from /proc/meminfo in bytes, 0 when unknown.
uint64_t available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace

LoadMode choose_load_mode(const std::string& path, const LoadOptions& o) {
  switch (o.memory) {
    case LoadOptions::Memory::kMap: return LoadMode::kMap;
    case LoadOptions::Memory::kRead: return LoadMode::kReadHugePages;
    case LoadOptions::Memory::kAuto: break;
  }
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) return LoadMode::kMap;
  // Small files gain nothing measurable; large ones must leave room for everything else.
  const uint64_t avail = available_memory();
  return size >= (uint64_t{64} << 20) && avail > 0 && size <= avail / 2 ? LoadMode::kReadHugePages : LoadMode::kMap;
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  if (std::filesystem::is_directory(path)) {
    HfLoader::load(*m, path);
  } else if (std::filesystem::exists(path)) {
    GgufLoader::load(*m, path, choose_load_mode(path, options));
  } else {
    fail("{}: no such file or directory", path);
  }
  m->experts_ = std::make_unique<moe::ResidentExpertProvider>(m->stored_experts_);
  // Embeddings may be padded beyond the tokenizer (Qwen pads to a multiple of 128).
  if (m->tokenizer_->n_vocab() > m->config_.n_vocab) {
    fail("{}: tokenizer has {} tokens, more than the model's vocabulary size {}", path,
         m->tokenizer_->n_vocab(), m->config_.n_vocab);
  }
  return m;
}

}  // namespace mcmoe::model

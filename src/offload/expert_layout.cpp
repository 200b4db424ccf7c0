#include "offload/expert_layout.h"

#include <algorithm>

#include "core/error.h"
#include "format/gguf.h"
#include "offload/file_reader.h"

namespace mcmoe::offload {

namespace {

uint64_t align_down(uint64_t x) { return x / FileReader::kAlign * FileReader::kAlign; }
uint64_t align_up(uint64_t x) { return (x + FileReader::kAlign - 1) / FileReader::kAlign * FileReader::kAlign; }
constexpr uint64_t kMergeGap = 64 * 1024;

// The expert's tensor v as its error messages name it.
std::string view_name(const moe::ExpertWeights& e, const TensorView* v) {
  const std::pair<const TensorView*, const char*> names[] = {
      {&e.gate, "ffn_gate"}, {&e.up, "ffn_up"}, {&e.down, "ffn_down"}, {&e.gate_b, "ffn_gate bias"},
      {&e.up_b, "ffn_up bias"}, {&e.down_b, "ffn_down bias"}};
  for (const auto& [view, name] : names) {
    if (view == v) return name;
  }
  return "a low-rank part";
}

}  // namespace

ExpertLayout layout_expert(const model::Model& m, const moe::ExpertWeights& e, int layer, int expert) {
  if (!m.is_gguf()) fail("{}: offloading reads experts from a GGUF file; convert the model first (mcmoe convert)", m.path());
  const format::GgufFile& f = *m.gguf();
  const uint8_t* base = f.base();
  const auto views = e.views();
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // (file offset, bytes) per view
  std::vector<size_t> order;                         // the views read from the file
  for (size_t j = 0; j < views.size(); ++j) {
    const TensorView* v = views[j];
    const auto* p = static_cast<const uint8_t*>(v->data);
    const bool in_file = p >= base && p + v->nbytes <= base + f.file_size();
    spans.emplace_back(in_file ? static_cast<uint64_t>(p - base) : 0, v->nbytes);
    if (in_file) {
      order.push_back(j);
      continue;
    }
    // A bias the file stores in another type was converted to f32 at load: a few KiB the
    // model owns already, so it stays resident rather than being read with the expert.
    const bool owned_bias = v->type == DType::F32 && v->shape.size() == 1;
    if (!owned_bias) {
      fail("{}: {} ({} {}) of expert {} of layer {} is not stored in the file (was the model transformed after loading?)",
           m.path(), view_name(e, v), dtype_name(v->type), shape_string(v->shape), expert, layer);
    }
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return spans[a].first < spans[b].first; });
  // Group the views into ranges of nearby tensors, then size each range independently of its
  // alignment.
  struct Group {
    uint64_t start, end;
    std::vector<size_t> views;
  };
  std::vector<Group> groups;
  for (size_t j : order) {
    const uint64_t start = spans[j].first, end = start + spans[j].second;
    if (groups.empty() || start > groups.back().end + kMergeGap) {
      groups.push_back({start, end, {}});
    }
    groups.back().end = std::max(groups.back().end, end);
    groups.back().views.push_back(j);
  }
  ExpertLayout lay;
  lay.view_offset.assign(spans.size(), ExpertLayout::kInPlace);
  for (const Group& g : groups) {
    ReadRange r;
    r.file_offset = align_down(g.start);
    r.read_bytes = align_up(g.end) - r.file_offset;
    r.needed = g.end - r.file_offset;
    r.buffer_offset = lay.buffer_bytes;
    for (size_t j : g.views) lay.view_offset[j] = r.buffer_offset + (spans[j].first - r.file_offset);
    lay.ranges.push_back(r);
    lay.buffer_bytes += align_up(g.end - g.start) + FileReader::kAlign;
  }
  return lay;
}

int expert_stride(const model::Model& m) {
  size_t most = 0;
  for (const auto& layer : m.stored_experts()) most = std::max(most, layer.size());
  return static_cast<int>(most);
}

std::vector<uint64_t> expert_cache_bytes(const model::Model& m) {
  const size_t stride = static_cast<size_t>(expert_stride(m));
  std::vector<uint64_t> out(m.stored_experts().size() * stride, 0);
  for (size_t l = 0; l < m.stored_experts().size(); ++l) {
    for (size_t e = 0; e < m.stored_experts()[l].size(); ++e) {
      const moe::ExpertWeights& w = m.stored_experts()[l][e];
      out[l * stride + e] = m.is_gguf() ? layout_expert(m, w, static_cast<int>(l), static_cast<int>(e)).buffer_bytes : w.nbytes();
    }
  }
  return out;
}

}  // namespace mcmoe::offload

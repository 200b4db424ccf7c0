#pragma once
// The seam between model code and where experts' bytes live. Quantization changes what an
// expert's bytes are, offloading changes where they live, pruning and merging change which
// experts a token asks for; the forward pass only ever calls this interface.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace mcmoe::moe {

// One SwiGLU expert: out = down(silu(gate(x)) * up(x)).
struct ExpertWeights {
  TensorView gate;  // [n_ff, n_embd]
  TensorView up;    // [n_ff, n_embd]
  TensorView down;  // [n_embd, n_ff]
  // Every tensor the expert's compute reads: exactly the bytes an offloading provider moves.
  // A representation that adds tensors (low-rank factors, sparse rows) lists them here.
  std::vector<const TensorView*> views() const { return {&gate, &up, &down}; }
  std::vector<TensorView*> views() { return {&gate, &up, &down}; }
  size_t nbytes() const {
    size_t n = 0;
    for (const TensorView* v : views()) n += v->nbytes;
    return n;
  }
};

class ExpertProvider {
 public:
  virtual ~ExpertProvider() = default;
  virtual int n_layers() const = 0;
  virtual int n_experts(int layer) const = 0;

  // The experts layer `layer` is about to run, in the order it will use them, with the
  // largest routing weight any token gives each. Returns how many of them, from the front,
  // may be fetched with get() before end_layer(layer): all of them for a resident provider;
  // fewer when a byte-budgeted cache cannot hold them all at once, in which case the caller
  // runs those, calls end_layer, and begins again with the rest. A caching provider starts
  // reads for them here; views returned by get() stay valid until end_layer(layer).
  virtual size_t begin_layer(int layer, std::span<const int> experts, std::span<const float> max_weight) {
    return experts.size();
  }
  virtual ExpertWeights get(int layer, int expert) = 0;
  virtual void end_layer(int layer) {}
  // The residual stream [n, n_embd] after layer `layer` has run: where a provider predicts
  // and prefetches the next layers' experts.
  virtual void after_layer(int layer, const float* x, int64_t n) {}
};

// Every expert is a view into memory that outlives the provider's users (a mapped file or
// owned buffers): nothing to load, nothing to evict.
class ResidentExpertProvider final : public ExpertProvider {
 public:
  explicit ResidentExpertProvider(std::vector<std::vector<ExpertWeights>> experts)
      : experts_(std::move(experts)) {}
  int n_layers() const override { return static_cast<int>(experts_.size()); }
  int n_experts(int layer) const override { return static_cast<int>(experts_[layer].size()); }
  ExpertWeights get(int layer, int expert) override { return experts_[layer][expert]; }

 private:
  std::vector<std::vector<ExpertWeights>> experts_;  // [n_layer][n_expert]
};

}  // namespace mcmoe::moe

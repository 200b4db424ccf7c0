#pragma once
// The seam between model code and where experts' bytes live. Quantization changes what an
// expert's bytes are, offloading changes where they live, pruning and merging change which
// experts a token asks for; the forward pass only ever calls this interface.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "ops/factored.h"

namespace mcmoe::moe {

// One gated MLP (a routed expert, a shared expert or a dense layer's MLP):
// out = down(act(gate(x) + gate_b, up(x) + up_b)) + down_b, act = silu(g)·u or gpt-oss's
// clamped SwiGLU (ModelConfig::activation). A projection is stored either dense or, after
// `mcmoe lowrank`, factored as L·R + sparse rows (ops/factored.h); the dense view of a
// factored projection is empty. Biases exist only where the family has them (gpt-oss).
struct ExpertWeights {
  TensorView gate;  // [n_ff, n_embd]
  TensorView up;    // [n_ff, n_embd]
  TensorView down;  // [n_embd, n_ff]
  ops::LowRankWeights gate_lr{}, up_lr{}, down_lr{};  // valid() only for factored projections
  TensorView gate_b, up_b;  // [n_ff] f32, when the family has expert biases
  TensorView down_b;        // [n_embd] f32

  bool factored() const { return gate_lr.valid() || up_lr.valid() || down_lr.valid(); }
  bool valid() const { return gate.valid() || gate_lr.valid(); }
  // Every tensor the expert's compute reads: exactly the bytes an offloading provider moves.
  std::vector<const TensorView*> views() const {
    std::vector<const TensorView*> v;
    for (const TensorView* t : {&gate, &up, &down, &gate_lr.left, &gate_lr.right, &gate_lr.sparse, &gate_lr.index,
                                &up_lr.left, &up_lr.right, &up_lr.sparse, &up_lr.index, &down_lr.left,
                                &down_lr.right, &down_lr.sparse, &down_lr.index, &gate_b, &up_b, &down_b}) {
      if (t->valid()) v.push_back(t);
    }
    return v;
  }
  std::vector<TensorView*> views() {
    std::vector<TensorView*> v;
    for (const TensorView* t : std::as_const(*this).views()) v.push_back(const_cast<TensorView*>(t));
    return v;
  }
  size_t nbytes() const {
    size_t n = 0;
    for (const TensorView* v : views()) n += v->nbytes;
    return n;
  }
  // Stored parameters (sparse row indices included).
  int64_t n_params() const {
    int64_t n = 0;
    for (const TensorView* v : views()) n += v->numel();
    return n;
  }
};

class ExpertProvider {
 public:
  virtual ~ExpertProvider() = default;
  virtual int n_layers() const = 0;
  virtual int n_experts(int layer) const = 0;

  // The experts layer `layer` is about to run, ascending, with the largest routing weight
  // any token gives each. Returns how many of them, from the front,
  // may be fetched with get() before end_layer(layer): all of them for a resident provider;
  // fewer when a byte-budgeted cache cannot hold them all at once, in which case the caller
  // runs those, calls end_layer, and begins again with the rest. A caching provider starts
  // reads for them here; views returned by get() stay valid until end_layer(layer).
  virtual size_t begin_layer(int layer, std::span<const int> experts, std::span<const float> max_weight) {
    return experts.size();
  }
  virtual ExpertWeights get(int layer, int expert) = 0;
  // Between begin_layer and end_layer: false while get(layer, expert) would wait for a read
  // still in flight, so the caller can run the experts already here first (get() may come
  // in any order). Once true it stays true until end_layer.
  virtual bool ready(int layer, int expert) const { return true; }
  virtual void end_layer(int layer) {}
  // The residual stream [n, n_embd] after layer `layer` has run: where a provider predicts
  // and prefetches the next layers' experts.
  virtual void after_layer(int layer, const float* x, int64_t n) {}
  // out[e] (n_experts(layer) entries) = 1 when expert e of the layer can be used without
  // waiting for a read it has not started (held, or already being read); cache-aware routing
  // prefers these. Every expert of a resident provider is.
  virtual void cached_mask(int layer, std::span<uint8_t> out) const {
    std::fill(out.begin(), out.end(), uint8_t{1});
  }
  // Layer `layer`'s router logits [n, router rows] (bias included) for the n rows it is about
  // to route: a predictor can learn from them.
  virtual void on_router_logits(int layer, const float* logits, int64_t n) {}
};

// Every expert is a view into memory that outlives the provider's users (a mapped file or
// owned buffers): nothing to load, nothing to evict.
// Fails (naming `what`, the expert's projection and the block) when a quantized scale field of
// the expert is NaN or Inf (quant/block_check.h).
void check_expert_scales(const ExpertWeights& w, std::string_view what);

class ResidentExpertProvider final : public ExpertProvider {
 public:
  // check_path non-empty: the experts' bytes were not read at load (a mapped file), so each
  // expert's scales are checked when it is first used (messages name check_path).
  explicit ResidentExpertProvider(std::vector<std::vector<ExpertWeights>> experts, std::string check_path = {});
  int n_layers() const override { return static_cast<int>(experts_.size()); }
  int n_experts(int layer) const override { return static_cast<int>(experts_[layer].size()); }
  ExpertWeights get(int layer, int expert) override {
    if (!check_path_.empty()) check_once(layer, expert);
    return experts_[layer][expert];
  }

 private:
  void check_once(int layer, int expert);
  std::vector<std::vector<ExpertWeights>> experts_;  // [n_layer][n_expert]
  std::string check_path_;
  std::vector<std::unique_ptr<std::atomic<bool>[]>> checked_;  // [n_layer][n_expert]
};

}  // namespace mcmoe::moe

#pragma once
// Speculative routing: after layer l, the routers of layers l+1..l+depth applied to the
// residual stream guess which experts those layers will pick (Eliseev & Mazur; the
// residual changes little from one layer to the next, so the guess is usually right).
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace mcmoe::offload {

class RoutePredictor {
 public:
  explicit RoutePredictor(const model::Model& m);
  // For token row x [n_embd] (the residual after layer `from_layer`): the top-m experts of
  // layer from_layer + ahead (ahead >= 1), best first, into out[m]; false (out untouched)
  // when that layer does not exist or has no router. Slots beyond the layer's expert count
  // get -1.
  // prob (optional, [m]) receives each guess's routing probability (softmax over the layer).
  bool predict(int from_layer, int ahead, const float* x, int m, int* out, float* prob = nullptr);

 private:
  const model::ModelWeights& w_;
  const model::ModelConfig& cfg_;
  std::vector<float> h_, row_logits_, logits_;  // logits_: per stored expert
  std::vector<int> order_;
  ThreadPool pool_{1};  // a router is n_expert dot products: not worth waking workers
};

}  // namespace mcmoe::offload

#pragma once
// Speculative routing: after layer l, the routers of layers l+1..l+depth applied to the
// residual stream guess which experts those layers will pick (Eliseev & Mazur; the
// residual changes little from one layer to the next, so the guess is usually right).
// Each guess follows the target layer's own routing rule (moe::route: router bias, softmax
// or sigmoid scores, selection bias, expert groups, top-k-then-softmax), so on the input the
// layer itself sees, its first k guesses are exactly the experts the layer picks.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "offload/router_fit.h"

namespace mcmoe::offload {

class RoutePredictor {
 public:
  explicit RoutePredictor(const model::Model& m);
  // For token row x [n_embd] (the residual after layer `from_layer`): the top-m experts of
  // layer from_layer + ahead (ahead >= 1) in the order its router would choose them, into
  // out[m]; false (out untouched) when that layer does not exist or is dense (no router).
  // Slots beyond the experts the router can choose get -1: a layer with fewer experts than
  // m, or experts in groups the grouped router leaves out.
  // prob (optional, [m]) receives each guess's share of the layer's routing scores: the
  // softmax probability for softmax and top-k-softmax routers, the sigmoid score over the
  // sum of all experts' scores for sigmoid routers (merged models: summed over the router
  // rows of the stored expert).
  bool predict(int from_layer, int ahead, const float* x, int m, int* out, float* prob = nullptr);

  // Refits the guesses from the stream (RouterFit): every predict() a fit covers queues its
  // input, observe() pairs it with the layer's true logits, and after the first `refit_every`
  // pairs the fitted map replaces the router there.
  //  - FitInput::kResidual: one layer ahead, a map from the normalised residual (the router's
  //    own input) to the logits, the router as its prior: (d + 1)² per token and layer, and a
  //    Cholesky solve of that size per refit.
  //  - FitInput::kLogits: one and two layers ahead, a map from the router's logits to the true
  //    ones, the identity as its prior: (E + 1)² per token and layer, independent of d (at
  //    d = 2048 and 128 experts, 250 times cheaper to update and 4,000 times to solve).
  enum class FitInput { kResidual, kLogits };
  void enable_fit(int refit_every, FitInput input = FitInput::kResidual);
  // "residual" or "logits" (the flags' spelling); fails naming the value otherwise.
  static FitInput fit_input_named(const std::string& name);
  // Layer `layer`'s router logits [n, router rows] (bias included) for the n rows it routed.
  void observe(int layer, const float* logits, int64_t n);

 private:
  const model::ModelWeights& w_;
  const model::ModelConfig& cfg_;
  std::vector<float> h_, logits_, scores_, expert_scores_;  // logits_, scores_: per router row
  std::vector<int> ranked_;                                  // router rows in the order of choice
  std::vector<float> ranked_weight_;                         // route()'s weights for them (unused)
  std::vector<uint8_t> taken_;                               // per stored expert: already guessed
  // [ahead - 1][layer] when enable_fit(); null for a dense layer (and for two ahead with
  // kResidual inputs)
  std::array<std::vector<std::unique_ptr<RouterFit>>, 2> fits_;
  FitInput fit_input_ = FitInput::kResidual;
  std::vector<float> fit_in_;  // the router's logits, the kLogits fits' input
  ThreadPool pool_{1};  // a router is n_expert dot products: not worth waking workers
};

}  // namespace mcmoe::offload

#pragma once
// A next-layer router refitted from the stream being decoded, for prefetch prediction.
//
// The predictor applies layer l+1's router to the residual after layer l; it misses when
// layer l+1's attention moves the residual. A linear map from that input to layer l+1's true
// router logits, fitted by ridge regression on the tokens seen so far (pulled toward the
// router itself, so that few tokens change little), recovers much of it: on mixtral-tiny
// next-layer top-2 recall went from 0.845 to 0.895 offline (bench/RESULTS.md §12). Fitted on
// other text the same map is worse than the plain router, so it is fitted online, from the
// text at hand, never shipped. It costs one (n_in + 1)² update per token and a Cholesky
// solve of that size every `refit_every` tokens: nothing at d = 256, a real cost at d = 4096.
#include <cstdint>
#include <vector>

namespace mcmoe::offload {

class RouterFit {
 public:
  // prior: [n_out][n_in + 1] the router's rows with its bias last (0 without one).
  // lambda_share: the ridge penalty as a share of the inputs' mean squared norm per feature.
  RouterFit(int n_in, int n_out, std::vector<float> prior, int refit_every,
            double lambda_share = 0.1);

  // One input row (the normalised residual the predictor used), queued until its token's
  // true logits arrive.
  void add_input(const float* x);
  // The true logits of the last n rows routed by the layer: paired with the n queued inputs
  // (any other count means they do not belong together, and the queue is dropped).
  void add_targets(const float* z, int64_t n);
  bool fitted() const { return fitted_; }
  // z [n_out] = W' [x; 1] with the fitted map (the prior before the first fit).
  void apply(const float* x, float* z) const;
  int64_t pairs() const { return pairs_; }

 private:
  void refit();
  int n_in_, n_out_, refit_every_;
  double lambda_share_;
  std::vector<double> a_;     // [n_in + 1]^2  sum of [x;1][x;1]^T
  std::vector<double> b_;     // [n_in + 1][n_out] sum of [x;1] z^T
  std::vector<float> prior_;  // [n_out][n_in + 1]
  std::vector<float> w_;      // [n_out][n_in + 1] the map apply() uses
  std::vector<float> queue_;  // inputs waiting for their logits, [rows][n_in]
  int64_t pairs_ = 0, since_fit_ = 0;
  bool fitted_ = false;
};

}  // namespace mcmoe::offload

// The online router refit (offload/router_fit.h): it recovers a known linear map from pairs,
// stays the prior until its first refit, drops inputs whose logits do not pair with them; and
// on mixtral-tiny over real text, one-layer-ahead guesses from the refitted routers agree
// with the true picks more often than the layers' own routers' guesses.
#include "offload/router_fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "offload/cache_sim.h"
#include "offload/trace.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::offload {
namespace {

TEST(RouterFit, RecoversAKnownLinearMap) {
  const int n_in = 6, n_out = 4;
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> truth(n_out * (n_in + 1));
  for (float& w : truth) w = g(rng);
  auto target = [&](const std::vector<float>& x, std::vector<float>& z) {
    for (int o = 0; o < n_out; ++o) {
      z[o] = truth[o * (n_in + 1) + n_in];
      for (int i = 0; i < n_in; ++i) z[o] += truth[o * (n_in + 1) + i] * x[i];
    }
  };
  // A prior of zeros and a tiny penalty: the data decide.
  RouterFit fit(n_in, n_out, std::vector<float>(truth.size(), 0.f), 50, 1e-9);
  std::vector<float> x(n_in), z(n_out), got(n_out);
  for (int t = 0; t < 49; ++t) {
    for (float& v : x) v = g(rng);
    target(x, z);
    fit.add_input(x.data());
    fit.add_targets(z.data(), 1);
  }
  EXPECT_FALSE(fit.fitted());
  fit.apply(x.data(), got.data());
  for (float v : got) EXPECT_EQ(v, 0.f);  // still the prior
  // Two rows at once (a batch) pair as well.
  std::vector<float> xs(2 * n_in), zs(2 * n_out);
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < n_in; ++i) xs[r * n_in + i] = g(rng);
    std::vector<float> xr(xs.begin() + r * n_in, xs.begin() + (r + 1) * n_in), zr(n_out);
    target(xr, zr);
    std::copy(zr.begin(), zr.end(), zs.begin() + r * n_out);
    fit.add_input(xr.data());
  }
  fit.add_targets(zs.data(), 2);
  EXPECT_EQ(fit.pairs(), 51);
  ASSERT_TRUE(fit.fitted());
  for (int t = 0; t < 10; ++t) {
    for (float& v : x) v = g(rng);
    target(x, z);
    fit.apply(x.data(), got.data());
    for (int o = 0; o < n_out; ++o) EXPECT_NEAR(got[o], z[o], 1e-3);
  }
}

TEST(RouterFit, UnpairedInputsAreDroppedAndBadShapesRefused) {
  RouterFit fit(2, 1, {0.f, 0.f, 0.f}, 1);
  const float x[2] = {1.f, 2.f}, z[2] = {1.f, 1.f};
  fit.add_input(x);
  fit.add_input(x);
  fit.add_input(x);
  fit.add_targets(z, 2);  // three inputs, two logits rows: not a pair
  EXPECT_EQ(fit.pairs(), 0);
  fit.add_targets(z, 1);  // the queue was dropped: nothing to pair with
  EXPECT_EQ(fit.pairs(), 0);
  EXPECT_THROW(RouterFit(2, 1, {0.f, 0.f}, 1), Error);          // prior of the wrong size
  EXPECT_THROW(RouterFit(0, 1, {0.f}, 1), Error);               // no inputs
  EXPECT_THROW(RouterFit(2, 1, {0.f, 0.f, 0.f}, 0), Error);     // never refits
  EXPECT_THROW(RouterFit(2, 1, {0.f, 0.f, 0.f}, 1, 0), Error);  // no penalty
}

// The first 40,000 characters of WikiText-2, tokenized by m.
std::vector<int32_t> wiki_ids(const model::Model& m, const std::string& shared) {
  std::ifstream in(shared + "/corpus/wikitext2-valid.txt");
  std::stringstream ss;
  ss << in.rdbuf();
  return m.tokenizer().encode(ss.str().substr(0, 40000));
}

// Both fits on real text: the full one (from the residual, one layer ahead) and the cheap one
// (from the router's logits, independent of the hidden size, one and two layers ahead, whose
// identity prior means no change before its first fit). Neither changes the routing.
TEST(RouterFit, RefittedGuessesBeatTheRoutersOnRealText) {
  const std::string shared = test::shared_dir();
  if (shared.empty()) GTEST_SKIP() << "needs ../shared/corpus";
  auto m = model::Model::load(std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf");
  const std::vector<int32_t> ids = wiki_ids(*m, shared);
  ASSERT_GT(ids.size(), 4096u);
  TraceOptions o;
  o.ctx = 512;
  o.depth = 2;
  o.m = 2;
  o.max_tokens = 4096;
  const RoutingTrace plain = record_trace(*m, ids, o);
  o.fit = 256;
  for (const auto input :
       {RoutePredictor::FitInput::kResidual, RoutePredictor::FitInput::kLogits}) {
    o.fit_input = input;
    const bool logits = input == RoutePredictor::FitInput::kLogits;
    const RoutingTrace fitted = record_trace(*m, ids, o);
    EXPECT_EQ(plain.picks, fitted.picks);
    // Until the first refit (256 pairs, within the first window) the guesses are the router's.
    const size_t before_fit = static_cast<size_t>(200) * plain.n_layer * plain.depth * plain.m;
    EXPECT_TRUE(std::equal(plain.predicted.begin(), plain.predicted.begin() + before_fit,
                           fitted.predicted.begin()));
    for (int ahead = 1; ahead <= 2; ++ahead) {
      const double before = prediction_quality(plain, ahead, 2).recall,
                   after = prediction_quality(fitted, ahead, 2).recall;
      if (ahead == 1 || logits) {
        EXPECT_GT(after, before + 0.01) << (logits ? "logits, " : "residual, ") << ahead
                                        << " ahead: recall " << before << " -> " << after;
      } else {
        EXPECT_EQ(after, before) << "the residual fit is one layer ahead only";
      }
    }
  }
  EXPECT_THROW(RoutePredictor::fit_input_named("hidden"), Error);
}

}  // namespace
}  // namespace mcmoe::offload

// Self-generated calibration text (api/self_generate.h): the counts it reports are the
// routing of the sequences it returns, the experts short of the minimum are exactly those
// reported, and steering lowers the shortfall.
#include "api/self_generate.h"

#include <gtest/gtest.h>

#include <functional>
#include <numeric>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "core/error.h"
#include "model/observer.h"
#include "model/session.h"

namespace mcmoe::api {
namespace {

class RoutingCounter final : public model::ForwardObserver {
 public:
  explicit RoutingCounter(const model::ModelConfig& c) : counts(static_cast<size_t>(c.n_layer)) {
    for (int l = 0; l < c.n_layer; ++l)
      counts[l].assign(static_cast<size_t>(c.is_moe(l) ? c.experts(l) : 0), 0);
  }
  std::vector<std::vector<int64_t>> counts;
  void on_routing(const model::RoutingEvent& e) override {
    for (int64_t i = 0; i < e.n_tokens * e.k; ++i) {
      if (e.topk_ids[i] >= 0) ++counts[e.layer][e.topk_ids[i]];
    }
  }
};

class SelfGenerate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::HfFixture f;
    f.experts = 8;
    f.top_k = 2;
    f.layers = 2;
    test::write_hf_fixture(dir_->path("m"), f);
    model_ = model::Model::load(dir_->path("m")).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static SelfGenerateOptions options(int64_t minimum, int candidates) {
    SelfGenerateOptions o;
    o.tokens = 400;
    o.seq = 64;
    o.min_expert_tokens = minimum;
    o.candidates = candidates;
    return o;
  }
  static int64_t shortfall(const SelfGenerateResult& r, int64_t minimum) {
    int64_t s = 0;
    for (const auto& layer : r.counts) {
      for (int64_t n : layer) s += std::max<int64_t>(0, minimum - n);
    }
    return s;
  }
  static test::TempDir* dir_;
  static model::Model* model_;
};
test::TempDir* SelfGenerate::dir_ = nullptr;
model::Model* SelfGenerate::model_ = nullptr;

TEST_F(SelfGenerate, CountsAreTheRoutingOfTheReturnedSequences) {
  // Steering tries candidates and rolls the cache back; a wrong rollback would change the
  // routing of every later token, so recount by running each sequence afresh.
  const SelfGenerateResult r = self_generate(*model_, options(60, 4));
  int64_t total = 0;
  for (const auto& s : r.sequences) total += static_cast<int64_t>(s.size());
  EXPECT_EQ(total, 400);
  EXPECT_GT(r.forwards, total);  // candidates were tried
  RoutingCounter recount(model_->config());
  model::Session s(*model_, {.n_ctx = 64, .n_threads = 2, .n_batch = 1, .observer = &recount});
  for (const auto& seq : r.sequences) {
    EXPECT_LE(seq.size(), 64u);
    EXPECT_EQ(seq.front(), model_->tokenizer().bos_id());
    s.reset();
    s.eval(seq, false);
  }
  EXPECT_EQ(recount.counts, r.counts);
  for (const auto& layer : r.counts) {
    if (!layer.empty()) EXPECT_EQ(std::accumulate(layer.begin(), layer.end(), int64_t{0}), 400 * 2);
  }
  EXPECT_FALSE(r.text.empty());
}

TEST_F(SelfGenerate, ReportsExactlyTheExpertsShortOfTheMinimum) {
  // 400 tokens · top-2 over 8 experts: 100 each if even; 150 is out of reach for some.
  const int64_t minimum = 150;
  const SelfGenerateResult r = self_generate(*model_, options(minimum, 4));
  std::vector<std::pair<int, int>> want, got;
  for (size_t l = 0; l < r.counts.size(); ++l) {
    for (size_t e = 0; e < r.counts[l].size(); ++e) {
      if (r.counts[l][e] < minimum) want.emplace_back(static_cast<int>(l), static_cast<int>(e));
    }
  }
  for (const ExpertRef& x : r.short_of_minimum) {
    got.emplace_back(x.layer, x.expert);
    EXPECT_EQ(x.tokens, r.counts[x.layer][x.expert]);
  }
  EXPECT_FALSE(want.empty());
  EXPECT_EQ(got, want);
  // Without a minimum nothing is short, and nothing is steered.
  const SelfGenerateResult plain = self_generate(*model_, options(0, 4));
  EXPECT_TRUE(plain.short_of_minimum.empty());
  EXPECT_EQ(plain.forwards, 400);
}

TEST_F(SelfGenerate, SteeringLowersTheShortfallAndIsDeterministic) {
  const int64_t minimum = 100;
  const SelfGenerateResult plain = self_generate(*model_, options(minimum, 1));
  const SelfGenerateResult steered = self_generate(*model_, options(minimum, 6));
  EXPECT_LT(shortfall(steered, minimum), shortfall(plain, minimum))
      << "plain " << shortfall(plain, minimum) << " steered " << shortfall(steered, minimum);
  const SelfGenerateResult again = self_generate(*model_, options(minimum, 6));
  EXPECT_EQ(again.sequences, steered.sequences);
}

TEST_F(SelfGenerate, RejectsBadOptions) {
  SelfGenerateOptions o = options(10, 4);
  o.tokens = 1;
  EXPECT_NE(test::error_of([&] { self_generate(*model_, o); }).find("need at least 2 tokens"),
            std::string::npos);
  o = options(10, 0);
  EXPECT_NE(test::error_of([&] { self_generate(*model_, o); }).find("--steer-candidates 0"),
            std::string::npos);
}

// --gen-seeds: each sequence starts with BOS and the next seed in turn; a seed longer than
// the sequence is cut to leave one generated token, and seed tokens count as text (and routing)
// like generated ones.
TEST_F(SelfGenerate, SequencesStartWithTheSeedsInTurn) {
  SelfGenerateOptions o = options(0, 1);
  o.seeds = {{5, 6, 7}, {9}, std::vector<int32_t>(100, 11)};
  const SelfGenerateResult r = self_generate(*model_, o);
  ASSERT_GE(r.sequences.size(), 4u);
  const int32_t bos = model_->tokenizer().bos_id();
  for (size_t i = 0; i < r.sequences.size(); ++i) {
    const std::vector<int32_t>& seq = r.sequences[i];
    const std::vector<int32_t>& seed = o.seeds[i % 3];
    const size_t n = std::min(seed.size(), static_cast<size_t>(o.seq - 2));
    ASSERT_GE(seq.size(), 1u) << i;  // the last may be cut short by the token count
    EXPECT_EQ(seq[0], bos);
    EXPECT_TRUE(std::equal(seed.begin(),
                           seed.begin() + static_cast<std::ptrdiff_t>(std::min(n, seq.size() - 1)),
                           seq.begin() + 1))
        << i;
  }
  int64_t total = 0;
  for (const auto& s : r.sequences) total += static_cast<int64_t>(s.size());
  EXPECT_EQ(total, 400);
  EXPECT_EQ(r.forwards, 400);  // seed tokens are forwarded one by one, like generated ones
  o.seeds = {{1 << 30}};
  EXPECT_THROW(self_generate(*model_, o), Error);
}

}  // namespace
}  // namespace mcmoe::api

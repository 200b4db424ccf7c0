// `quantize --format gguf --sample-rows`: candidates measured on sampled rows, the chosen
// types then quantized over every row in a second pass. The second pass must rebuild exactly
// the statistics of the first (the file equals an unsampled run's at the same types), the
// estimates must track the whole tensors' errors, and --kl-cost on sampled rows must measure
// every tensor and leave the model as loaded.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <map>

#include "compress/family_models.h"
#include "compress/quantize_gguf.h"

namespace mcmoe {
namespace {

class GgufSampleRows : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = dir_.path("m.gguf");
    api::synth_model(test::f16_mixtral_options(2, 4, 2), model_);
    text_path_ = dir_.path("text.txt");
    test::write_word_salad(text_path_, 3000);
    std::ifstream in(text_path_);
    text_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  compress::GgufQuantOptions options(double sample) const {
    compress::GgufQuantOptions o;
    o.sampling = {.samples = 3, .seq = 48};
    o.sample_rows = sample;
    return o;
  }
  compress::GgufQuantReport run(const compress::GgufQuantOptions& o, const std::string& out) {
    auto m = model::Model::load(model_);
    return compress::quantize_gguf(*m, text_, text_path_, o, out);
  }
  test::TempDir dir_;
  std::string model_, text_path_, text_;
};

TEST_F(GgufSampleRows, SecondPassWritesTheBytesOfAnUnsampledRunAtTheSameTypes) {
  // Every tensor's type fixed by pattern, so both runs choose the same: the files must match
  // tensor for tensor, which holds only if the second pass rebuilt each part's Hessian and
  // placed each expert's bytes where the first pass measured it.
  auto fixed = [&](double sample) {
    compress::GgufQuantOptions o = options(sample);
    o.types = {DType::Q8_0};
    o.tensor_types = {{"exps", DType::Q4_0}, {"attn_(q|k)", DType::Q5_0}};
    o.bits = 8.5;
    return o;
  };
  const std::string whole = dir_.path("whole.gguf"), sampled = dir_.path("sampled.gguf");
  run(fixed(1), whole);
  const compress::GgufQuantReport r = run(fixed(0.25), sampled);
  EXPECT_GT(r.finish_seconds, 0);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_NE(r.notes.back().find("estimates"), std::string::npos) << r.notes.back();
  const format::GgufFile a(whole), b(sampled);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  int compared = 0;
  for (const auto& t : a.tensors()) {
    const format::GgufTensorInfo* u = b.find_tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(u->type, t.type) << t.name;
    ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
    EXPECT_TRUE(test::same_tensor(a, b, t.name)) << t.name << " differs";
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST_F(GgufSampleRows, EstimatesTrackTheWholeTensorsErrors) {
  auto alloc = [&](double sample) {
    compress::GgufQuantOptions o = options(sample);
    o.types = {DType::Q4_0, DType::Q5_0, DType::Q8_0};
    o.bits = 6;
    return o;
  };
  const compress::GgufQuantReport whole = run(alloc(1), dir_.path("whole.gguf"));
  const std::string out = dir_.path("sampled.gguf");
  const compress::GgufQuantReport est = run(alloc(0.25), out);  // 64 of 128 rows
  ASSERT_EQ(whole.tensors.size(), est.tensors.size());
  std::map<DType, double> sum_whole, sum_est;
  for (size_t i = 0; i < whole.tensors.size(); ++i) {
    const auto& w = whole.tensors[i];
    const auto& e = est.tensors[i];
    ASSERT_EQ(w.name, e.name);
    ASSERT_EQ(w.candidates.size(), e.candidates.size());
    for (size_t j = 0; j < w.candidates.size(); ++j) {
      EXPECT_EQ(w.candidates[j].bytes, e.candidates[j].bytes) << w.name << ": the whole size";
      sum_whole[w.candidates[j].type] += w.candidates[j].error;
      sum_est[w.candidates[j].type] += e.candidates[j].error;
    }
    // Within one tensor the estimates keep the types' order, as the whole errors do.
    for (size_t j = 1; j < e.candidates.size(); ++j)
      EXPECT_GT(e.candidates[j - 1].error, e.candidates[j].error) << e.name;
  }
  for (const auto& [type, total] : sum_whole) {
    const double ratio = sum_est[type] / total;
    EXPECT_GT(ratio, 0.85) << dtype_name(type);
    EXPECT_LT(ratio, 1.15) << dtype_name(type);
  }
  EXPECT_LE(est.bits_per_weight(), 6.0);
  auto q = model::Model::load(out);
  for (float v : test::probe_logits(*q)) ASSERT_TRUE(std::isfinite(v));
}

TEST_F(GgufSampleRows, KlCostOnSampledRowsMeasuresEveryTensorAndRestoresTheModel) {
  auto m = model::Model::load(model_);
  const std::vector<float> before = test::probe_logits(*m);
  compress::GgufQuantOptions o = options(0.25);
  o.types = {DType::Q4_0, DType::Q8_0};
  o.bits = 6;
  o.kl_cost_windows = 2;
  const compress::GgufQuantReport r =
      compress::quantize_gguf(*m, text_, text_path_, o, dir_.path("kl.gguf"));
  const std::vector<float> after = test::probe_logits(*m);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]) << "logit " << i;
  int positive = 0;
  for (const compress::GgufTensorReport& t : r.tensors) {
    ASSERT_GE(t.kl, 0) << t.name << " not measured";
    EXPECT_TRUE(std::isfinite(t.cost)) << t.name;
    positive += t.kl > 0;
  }
  EXPECT_GE(positive, static_cast<int>(r.tensors.size()) * 3 / 4);
  // The reference was quantized whole: each tensor's KL is exactly an unsampled run's.
  o.sample_rows = 1;
  const compress::GgufQuantReport whole =
      compress::quantize_gguf(*m, text_, text_path_, o, dir_.path("kl-whole.gguf"));
  ASSERT_EQ(whole.tensors.size(), r.tensors.size());
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    EXPECT_EQ(whole.tensors[i].kl_type, r.tensors[i].kl_type) << r.tensors[i].name;
    EXPECT_DOUBLE_EQ(whole.tensors[i].kl, r.tensors[i].kl) << r.tensors[i].name;
  }
}

// One candidate type with --kl-cost: every tensor's choice is its whole reference, so the
// second pass quantizes nothing and the file is an unsampled run's.
TEST_F(GgufSampleRows, TensorsKeepingTheirWholeReferenceAreNotQuantizedAgain) {
  auto opts = [&](double sample) {
    compress::GgufQuantOptions o = options(sample);
    o.types = {DType::Q8_0};
    o.bits = 8.6;
    o.kl_cost_windows = 1;
    return o;
  };
  const std::string whole = dir_.path("ref-whole.gguf"), sampled = dir_.path("ref-sampled.gguf");
  run(opts(1), whole);
  run(opts(0.25), sampled);
  const format::GgufFile a(whole), b(sampled);
  for (const auto& t : a.tensors()) {
    const format::GgufTensorInfo* u = b.find_tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
    EXPECT_TRUE(test::same_tensor(a, b, t.name)) << t.name;
  }
}

TEST_F(GgufSampleRows, RefusedWithoutAnAllocation) {
  compress::GgufQuantOptions o = options(0.5);
  o.types = {DType::Q8_0};
  EXPECT_NE(test::error_of([&] { run(o, dir_.path("x.gguf")); }).find("--sample-rows measures"),
            std::string::npos);
  o.sample_rows = 0;
  o.bits = 8.5;
  EXPECT_NE(test::error_of([&] { run(o, dir_.path("x.gguf")); }).find("expected a share"),
            std::string::npos);
  const auto mq =
      test::run_cli("quantize -m " + test::quote(model_) + " --sample-rows 0.5 -o x.gguf");
  EXPECT_EQ(mq.exit_code, 1);
  EXPECT_NE(mq.err.find("--sample-rows applies to --format gguf only"), std::string::npos)
      << mq.err;
}

}  // namespace
}  // namespace mcmoe

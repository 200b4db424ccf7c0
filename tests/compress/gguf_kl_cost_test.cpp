// `quantize --format gguf --kl-cost`: the reference candidate is the one nearest the budget,
// costs keep each tensor's error ratios and are scaled into nats by the measured KL, and the
// measurement (one tensor at a time swapped into the model) covers every family's tensors
// and leaves the model exactly as loaded.
#include "compress/gguf_kl_cost.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "compress/family_models.h"
#include "compress/quantize_gguf.h"

namespace mcmoe {
namespace {

using compress::gguf::Candidate;
using compress::gguf::Item;
using compress::gguf::TensorKl;

Item item_with(std::vector<std::pair<DType, double>> types_and_errors, int64_t params = 1024) {
  Item it;
  it.params = params;
  for (const auto& [type, error] : types_and_errors) {
    Candidate c{.type = type, .error = error, .bytes = 0, .parts = {}};
    c.bytes = static_cast<uint64_t>(params) * dtype_traits(type).block_bytes /
              dtype_traits(type).block_size;
    it.candidates.push_back(c);
  }
  return it;
}

TEST(GgufKlCost, ReferenceIsTheQuantizedCandidateNearestTheBudget) {
  // q2_K 2.625, q3_K 3.4375, q4_K 4.5, q8_0 8.5 bits per weight; f16 never.
  const Item it = item_with(
      {{DType::Q2_K, 9}, {DType::Q3_K, 4}, {DType::Q4_K, 2}, {DType::Q8_0, 0.1}, {DType::F16, 0}});
  EXPECT_EQ(compress::gguf::kl_reference(it, 2.0), 0);
  EXPECT_EQ(compress::gguf::kl_reference(it, 3.2), 1);
  EXPECT_EQ(compress::gguf::kl_reference(it, 4.0), 2);
  EXPECT_EQ(compress::gguf::kl_reference(it, 16.0), 3);  // not f16: its error is 0
  // A candidate with no measured error cannot be a reference (nothing to scale by).
  EXPECT_EQ(compress::gguf::kl_reference(item_with({{DType::Q4_K, 0}, {DType::F16, 0}}), 4.5), -1);
}

TEST(GgufKlCost, CostsKeepErrorRatiosAndAreInNats) {
  const std::vector<Item> items = {
      item_with({{DType::Q2_K, 10}, {DType::Q4_K, 2}}),
      item_with({{DType::Q2_K, 1000}, {DType::Q4_K, 100}}),
      item_with({{DType::Q2_K, 3}, {DType::Q4_K, 1}}),
      item_with({{DType::Q2_K, 7}, {DType::Q4_K, 5}}),  // not measured
  };
  const std::vector<TensorKl> kl = {{0, 0.5}, {1, 0.02}, {0, 0.03}, {-1, 0}};
  const auto cost = compress::gguf::kl_scaled_costs(items, kl);
  ASSERT_EQ(cost.size(), 4u);
  EXPECT_DOUBLE_EQ(cost[0][0], 0.5);
  EXPECT_DOUBLE_EQ(cost[0][1], 0.1);
  EXPECT_DOUBLE_EQ(cost[1][1], 0.02);
  EXPECT_DOUBLE_EQ(cost[1][0], 0.2);
  EXPECT_DOUBLE_EQ(cost[2][0], 0.03);
  // Scales 0.05, 0.0002, 0.01: the unmeasured tensor takes the median, 0.01.
  EXPECT_DOUBLE_EQ(cost[3][0], 0.07);
  EXPECT_DOUBLE_EQ(cost[3][1], 0.05);
  // The tensor whose output error is largest is the cheapest once measured.
  EXPECT_LT(cost[1][0], cost[0][0]);
  EXPECT_THROW(compress::gguf::kl_scaled_costs(items, {{0, 0.5}}), Error);
}

TEST(GgufKlCost, MeasuresEveryFamilyAndLeavesTheModelAsLoaded) {
  test::TempDir dir;
  std::vector<test::FamilyFile> models = test::write_family_models(dir);
  models.push_back({"mixtral", dir.path("mixtral.gguf")});
  api::synth_model(test::f16_mixtral_options(2, 4, 2), models.back().path);
  const std::string text_path = dir.path("text.txt");
  test::write_word_salad(text_path, 3000);
  std::ifstream in(text_path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const test::FamilyFile& f : models) {
    SCOPED_TRACE(f.family);
    auto m = model::Model::load(f.path);
    const std::vector<float> before = test::probe_logits(*m);

    compress::GgufQuantOptions o;
    o.types = {DType::Q4_0, DType::Q8_0};
    o.bits = 6;
    o.sampling = {.samples = 3, .seq = 48};
    o.kl_cost_windows = 2;
    const std::string out = dir.path(f.family + "-kl.gguf");
    const compress::GgufQuantReport r = compress::quantize_gguf(*m, text, text_path, o, out);

    // Exactly the logits of the model as loaded: every swapped tensor was put back.
    const std::vector<float> after = test::probe_logits(*m);
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]) << "logit " << i;

    int measured = 0, positive = 0;
    double total = 0;
    for (const compress::GgufTensorReport& t : r.tensors) {
      total += t.cost;
      if (t.kl < 0) continue;
      ++measured;
      EXPECT_TRUE(std::isfinite(t.kl)) << t.name;
      EXPECT_TRUE(t.kl_type == DType::Q4_0 || t.kl_type == DType::Q8_0) << t.name;
      positive += t.kl > 0;
    }
    EXPECT_EQ(measured, static_cast<int>(r.tensors.size()));
    EXPECT_GE(positive, measured * 3 / 4) << "quantizing a tensor to 4 bits changes the output";
    EXPECT_NEAR(r.total_cost, total, 1e-12 + 1e-9 * total);
    EXPECT_LE(r.bits_per_weight(), 6.0);
    auto q = model::Model::load(out);
    EXPECT_EQ(q->gguf()->get_uint("mcmoe.quant.kl_cost_windows"), 2u);
    const std::vector<float> ql = test::probe_logits(*q);
    for (float v : ql) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(GgufKlCost, RefusedWhereThereIsNoAllocationOrNoText) {
  test::TempDir dir;
  const std::string path = dir.path("m.gguf");
  api::synth_model(test::f16_mixtral_options(1, 2, 1), path);
  const std::string text_path = dir.path("text.txt");
  test::write_word_salad(text_path, 500);
  const std::string base = "quantize --format gguf -m " + test::quote(path) + " -f " +
                           test::quote(text_path) + " --samples 2 --seq 32 --kl-cost 2 -o " +
                           test::quote(dir.path("out.gguf")) + " ";
  const auto no_budget = test::run_cli(base + "--types q8_0");
  EXPECT_EQ(no_budget.exit_code, 1);
  EXPECT_NE(no_budget.err.find("--kl-cost calibrates an allocation"), std::string::npos)
      << no_budget.err;
  const auto mq = test::run_cli("quantize -m " + test::quote(path) + " --kl-cost 2 -o x.gguf");
  EXPECT_EQ(mq.exit_code, 1);
  EXPECT_NE(mq.err.find("--kl-cost applies to --format gguf only"), std::string::npos) << mq.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path("out.gguf")));
}

}  // namespace
}  // namespace mcmoe

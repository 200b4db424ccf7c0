// Every supported family, on small random checkpoints: HF and converted GGUF agree (this
// pins the q/k row permutation and each family's switches), prefill equals step-by-step
// decode (KV cache), and chunked prefill equals one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/convert.h"
#include "api/generate.h"
#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "core/error.h"
#include "model/model.h"
#include "model/session.h"

namespace mcmoe {
namespace {

std::vector<int32_t> test_tokens(int n) {
  std::vector<int32_t> ids{1};
  for (int i = 1; i < n; ++i) ids.push_back(3 + (i * 7919) % 2000);
  return ids;
}

std::vector<float> all_logits(model::Model& m, const std::vector<int32_t>& ids, int n_batch = 512) {
  model::Session s(m, {.n_ctx = 256, .n_threads = 2, .n_batch = n_batch});
  const auto l = s.eval(ids, true);
  return std::vector<float>(l.begin(), l.end());
}

class Architecture : public ::testing::TestWithParam<std::string> {};

TEST_P(Architecture, HfAndConvertedGgufAgree) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {.model_type = GetParam()});
  auto hf = model::Model::load(dir.path("hf"));
  const auto ids = test_tokens(40);
  const auto ref = all_logits(*hf, ids);
  for (float x : ref) ASSERT_TRUE(std::isfinite(x));

  api::convert_hf_to_gguf(dir.path("hf"), dir.path("f16.gguf"), {.type = DType::F16});
  auto g16 = model::Model::load(dir.path("f16.gguf"));
  EXPECT_EQ(g16->config().rope.style,
            GetParam() == "mixtral" || GetParam() == "llama" ? model::RopeStyle::Interleaved : model::RopeStyle::Neox);
  // Same F16 weights, different but equivalent RoPE pairing: only f32 rounding differs.
  EXPECT_LT(test::relative_max_error(all_logits(*g16, ids), ref), 1e-4);

  api::convert_hf_to_gguf(dir.path("hf"), dir.path("q8.gguf"), {.type = DType::Q8_0});
  auto g8 = model::Model::load(dir.path("q8.gguf"));
  const auto q8 = all_logits(*g8, ids);
  // Random weights with deliberately peaked attention and routing amplify 8-bit noise (a
  // flipped expert choice moves a row's logits by ~10%), so the bound is on agreement of
  // the predicted token; a wrong layout (e.g. unpermuted q/k rows) agrees on ~1/2048.
  const int64_t V = hf->config().n_vocab;
  int agree = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const std::span<const float> a(q8.data() + t * V, V), b(ref.data() + t * V, V);
    agree += api::argmax(a) == api::argmax(b);
  }
  EXPECT_GE(agree, static_cast<int>(ids.size() * 8 / 10)) << "of " << ids.size();
  EXPECT_LT(test::relative_max_error(q8, ref), 0.3);
}

TEST_P(Architecture, PrefillEqualsIncrementalDecode) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {.model_type = GetParam(), .seed = 7});
  api::convert_hf_to_gguf(dir.path("hf"), dir.path("q8.gguf"), {.type = DType::Q8_0});
  for (const std::string& path : {dir.path("hf"), dir.path("q8.gguf")}) {
    auto m = model::Model::load(path);
    const auto ids = test_tokens(33);
    const auto batch = all_logits(*m, ids);
    const int64_t V = m->config().n_vocab;
    model::Session s(*m, {.n_ctx = 256, .n_threads = 2});
    std::vector<float> steps;
    for (int32_t t : ids) {
      const auto l = s.eval(std::span<const int32_t>(&t, 1), false);
      steps.insert(steps.end(), l.begin(), l.begin() + V);
    }
    // Float weights: only summation order differs (1e-4). Q8_0: the batched and the
    // single-row kernels may differ in the last bit of the f32 block sums, which can flip
    // a near-tied expert choice in this deliberately sensitive random model (1e-2).
    const double tol = m->is_gguf() ? 1e-2 : 1e-4;
    EXPECT_LT(test::relative_max_error(steps, batch), tol) << path;
    EXPECT_LT(test::relative_max_error(all_logits(*m, ids, 5), batch), tol) << path << " chunked";
  }
}

INSTANTIATE_TEST_SUITE_P(Families, Architecture,
                         ::testing::Values("mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "llama"));

TEST(Model, RejectsConfigThatDisagreesWithTensors) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  std::string cfg;
  {
    std::ifstream in(dir.path("hf") + "/config.json");
    cfg.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  const auto pos = cfg.find("\"hidden_size\": 64");
  ASSERT_NE(pos, std::string::npos);
  cfg.replace(pos, 17, "\"hidden_size\": 128");
  std::ofstream(dir.path("hf") + "/config.json") << cfg;
  try {
    model::Model::load(dir.path("hf"));
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2048, 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2048, 128]"), std::string::npos) << msg;
  }
}

TEST(Model, RejectsImplausibleCountsBeforeSizingTablesFromThem) {
  // Found by fuzzing (fuzz/regressions/gguf/expert-count-2e8-allocates-14gb): a corrupted
  // expert count sized the per-expert tables (14 GB) before any tensor was compared with it.
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  nlohmann::json cfg;
  std::ifstream(dir.path("hf") + "/config.json") >> cfg;
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, int>>{{"num_local_experts", 200'000'000},
                                                {"num_hidden_layers", 100'000},
                                                {"hidden_size", 1 << 20},
                                                {"num_hidden_layers", 1000}}) {
    nlohmann::json bad = cfg;
    bad[key] = value;
    if (key == "num_hidden_layers" && value == 1000)
      bad["num_local_experts"] = 4000;  // both plausible alone
    std::ofstream(dir.path("hf") + "/config.json") << bad.dump();
    try {
      model::Model::load(dir.path("hf"));
      ADD_FAILURE() << key;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(value)), std::string::npos) << msg;
      EXPECT_NE(msg.find("more than any model has"), std::string::npos) << msg;
    }
  }
  // No attention heads: refused by name (the head size derived from them was a division by
  // zero in OLMoE's and Granite's config readers).
  nlohmann::json bad = cfg;
  bad["num_attention_heads"] = 0;
  std::ofstream(dir.path("hf") + "/config.json") << bad.dump();
  EXPECT_THROW(model::Model::load(dir.path("hf")), Error);
}

TEST(Model, ReadIntoHugePagesEqualsMapped) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  api::convert_hf_to_gguf(dir.path("hf"), dir.path("q8.gguf"), {.type = DType::Q8_0});
  auto mapped = model::Model::load(dir.path("q8.gguf"), {.memory = model::LoadOptions::Memory::kMap});
  auto read = model::Model::load(dir.path("q8.gguf"), {.memory = model::LoadOptions::Memory::kRead});
  const auto ids = test_tokens(12);
  EXPECT_EQ(all_logits(*mapped, ids), all_logits(*read, ids));
}

}  // namespace
}  // namespace mcmoe

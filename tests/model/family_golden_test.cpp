// Golden tests per model family against the PyTorch reference (../shared/tools/
// moe_reference.py, Hugging Face's computation), on the random checkpoints in
// tests/data/families (tests/data/families/make_fixtures.sh), several shapes per family:
// the Hugging Face directory and its converted GGUF give the reference's logits at every
// position (1e-4 relative with F32 weights, 1e-3 with F16) with the same argmax, and a
// 16-token greedy continuation equal to the reference's. The prefill runs in one batch
// (multi-head latent attention then takes its naive form), the continuation one token at a
// time (the absorbed form), so both forms meet the reference.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/convert.h"
#include "api/generate.h"
#include "common/test_util.h"
#include "model/model.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;

fs::path fixtures() {
  return fs::path(MCMOE_SOURCE_DIR) / "tests/data/families";
}

// A Hugging Face directory: the case's config and weights beside the shared tokenizer.
void assemble(const std::string& name, const fs::path& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(fixtures() / name / f, dir / f);
  fs::copy_file(fixtures() / "tokenizer.model", dir / "tokenizer.model");
}

struct Reference {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> prompt_ids, new_ids;
  std::string prompt;
};

Reference load_reference(const std::string& name) {
  std::ifstream in(fixtures() / name / "reference.json");
  const auto j = nlohmann::json::parse(in);
  return {j["ids"].get<std::vector<int32_t>>(), j["logits"].get<std::vector<std::vector<float>>>(),
          j["prompt_ids"].get<std::vector<int32_t>>(), j["new_ids"].get<std::vector<int32_t>>(),
          j["prompt"].get<std::string>()};
}

void check_logits(model::Model& m, const Reference& ref, double tolerance,
                  const std::string& what) {
  model::Session s(m, {.n_ctx = 128, .n_threads = 2});
  const std::span<const float> logits = s.eval(ref.ids, true);
  const int64_t V = m.config().n_vocab;
  std::vector<float> want;
  for (const auto& row : ref.logits) want.insert(want.end(), row.begin(), row.end());
  ASSERT_EQ(logits.size(), want.size()) << what;
  const double err = test::relative_max_error(logits, want);
  EXPECT_LT(err, tolerance) << what;
  for (size_t t = 0; t < ref.ids.size(); ++t) {
    EXPECT_EQ(api::argmax(logits.subspan(t * V, V)),
              api::argmax(std::span<const float>(ref.logits[t])))
        << what << " position " << t;
  }
  std::printf("[family] %s: relative max error %.3g\n", what.c_str(), err);
}

void check_greedy(model::Model& m, const Reference& ref, const std::string& what) {
  std::vector<int32_t> ours{m.tokenizer().bos_id()};
  for (int32_t t : m.tokenizer().encode(ref.prompt)) ours.push_back(t);
  EXPECT_EQ(ours, ref.prompt_ids) << what << ": the tokenizer differs from sentencepiece";
  model::Session s(m, {.n_ctx = 128, .n_threads = 2});
  api::Sampler greedy({.temperature = 0});
  std::vector<int32_t> out;
  api::generate(s, ref.prompt_ids, 16, greedy, m.tokenizer().eos_id(), [&](int32_t t) {
    out.push_back(t);
    return true;
  });
  EXPECT_EQ(out, ref.new_ids) << what;
}

class FamilyGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyGolden, HfAndConvertedGgufMatchReference) {
  const std::string name = GetParam();
  const bool f16 = name.ends_with("_f16");
  const double tol = f16 ? 1e-3 : 1e-4;
  const Reference ref = load_reference(name);
  test::TempDir dir;
  assemble(name, dir.dir() / "hf");
  auto hf = model::Model::load(dir.path("hf"));
  check_logits(*hf, ref, tol, name + " (Hugging Face)");
  check_greedy(*hf, ref, name + " (Hugging Face)");
  api::convert_hf_to_gguf(dir.path("hf"), dir.path("m.gguf"),
                          {.type = f16 ? DType::F16 : DType::F32});
  auto gguf = model::Model::load(dir.path("m.gguf"));
  EXPECT_EQ(gguf->config().arch, hf->config().arch);
  check_logits(*gguf, ref, tol, name + " (GGUF)");
  check_greedy(*gguf, ref, name + " (GGUF)");
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyGolden,
                         ::testing::Values("qwen3moe_a", "qwen3moe_b", "olmoe_a", "olmoe_b",
                                           "deepseek_v2_a", "deepseek_v2_b", "deepseek_v3_a",
                                           "deepseek_v3_b", "glm4moe_a", "glm4moe_b", "gpt_oss_a",
                                           "gpt_oss_b", "granitemoe_a", "granitemoe_b",
                                           "qwen3moe_f16", "olmoe_f16", "deepseek_v3_f16",
                                           "glm4moe_f16", "gpt_oss_f16", "granitemoe_f16"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace mcmoe

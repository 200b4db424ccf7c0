// llama.cpp as a second, independent reference: GGUFs laid out as llama.cpp's own converter
// lays them out (tests/data/families/llama_cpp/make_fixtures.sh, via llama.cpp's gguf-py),
// with the logits and greedy ids llama.cpp computed on them. mcmoe must load those files and
// give logits within 1e-3 (relative to the largest) of llama.cpp's, the same argmax at every
// position and the same 16 greedy ids. (The other direction, mcmoe's GGUFs in llama.cpp,
// needs llama.cpp at run time: bench/llama_families.sh.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/generate.h"
#include "common/test_util.h"
#include "model/model.h"
#include "model/session.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;

class FamilyLlama : public ::testing::TestWithParam<std::string> {};

TEST_P(FamilyLlama, LlamaCppLayoutMatchesLlamaCpp) {
  const fs::path dir = fs::path(MCMOE_SOURCE_DIR) / "tests/data/families/llama_cpp" / GetParam();
  const auto j = nlohmann::json::parse(std::ifstream(dir / "llama.json"));
  const auto ids = j["ids"].get<std::vector<int32_t>>();
  const auto want = j["logits"].get<std::vector<std::vector<float>>>();
  auto m = model::Model::load((dir / "model.gguf").string());
  const int64_t V = m->config().n_vocab;
  ASSERT_EQ(V, j["n_vocab"].get<int64_t>());
  {
    model::Session s(*m, {.n_ctx = 128, .n_threads = 2});
    const std::span<const float> got = s.eval(ids, true);
    std::vector<float> flat;
    for (const auto& row : want) flat.insert(flat.end(), row.begin(), row.end());
    ASSERT_EQ(got.size(), flat.size());
    const double err = test::relative_max_error(got, flat);
    EXPECT_LT(err, 1e-3);
    for (size_t t = 0; t < ids.size(); ++t) {
      EXPECT_EQ(api::argmax(got.subspan(t * V, V)), api::argmax(std::span<const float>(want[t])))
          << "position " << t;
    }
    std::printf("[llama.cpp] %s: relative max error %.3g\n", GetParam().c_str(), err);
  }
  model::Session s(*m, {.n_ctx = 128, .n_threads = 2});
  api::Sampler greedy({.temperature = 0});
  std::vector<int32_t> out;
  api::generate(s, j["greedy"]["prompt_ids"].get<std::vector<int32_t>>(), 16, greedy, -1,
                [&](int32_t t) {
                  out.push_back(t);
                  return true;
                });
  EXPECT_EQ(out, j["greedy"]["ids"].get<std::vector<int32_t>>());
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyLlama,
                         ::testing::Values("deepseek2_v2", "deepseek2_v3", "olmoe", "granitemoe"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace mcmoe

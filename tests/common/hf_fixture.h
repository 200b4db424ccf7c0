#pragma once
// Builds small random Hugging Face checkpoints (config.json, model.safetensors in F16,
// tokenizer.model) so model tests need nothing outside the repository.
#include <cstdint>
#include <string>

namespace mcmoe::test {

struct HfFixture {
  std::string model_type = "mixtral";  // mixtral | qwen2_moe | qwen3_moe | olmoe | llama
  int layers = 2;
  int dim = 64;
  int ff = 64;
  int shared_ff = 64;  // qwen2_moe only
  int heads = 4;
  int kv_heads = 2;
  int experts = 4;
  int top_k = 2;
  uint64_t seed = 1;
};

// Writes the checkpoint into dir (created if needed).
void write_hf_fixture(const std::string& dir, const HfFixture& f);

}  // namespace mcmoe::test

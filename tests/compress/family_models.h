#pragma once
// Small synthetic models of the families whose layers are more than attention + routed
// experts, for the tests of the compression pipelines on every family, and what those tests
// read back from the files the pipelines write.
//   deepseek2: layer 0 dense, a shared expert, multi-head latent attention with a q LoRA;
//   gpt-oss:   expert and router biases, attention sinks, the clamped SwiGLU;
//   glm4moe:   layer 0 dense, a shared expert, sigmoid routing with a selection bias.
// Every matrix is F16 with rows a multiple of 128 wide, so every low-bit format applies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/test_util.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "model/model.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::test {

inline api::SynthOptions deepseek2_options() {
  return {.arch = "deepseek2",
          .layers = 3,
          .dim = 128,
          .ff = 128,
          .experts = 8,
          .top_k = 2,
          .shared_ff = 128,
          .dense_ff = 256,
          .dense_layers = 1,
          .q_lora = 128,
          .kv_lora = 128,
          .rope_dim = 32,
          .nope_dim = 64,
          .v_dim = 64,
          .type = DType::F16,
          .progress = nullptr,
          .tokenizer_from = "",
          .routing_from = ""};
}
inline api::SynthOptions gpt_oss_options() {
  return {.arch = "gpt-oss",
          .layers = 2,
          .dim = 128,
          .ff = 128,
          .experts = 8,
          .top_k = 2,
          .type = DType::F16,
          .progress = nullptr,
          .tokenizer_from = "",
          .routing_from = ""};
}
inline api::SynthOptions glm4moe_options() {
  return {.arch = "glm4moe",
          .layers = 3,
          .dim = 128,
          .ff = 128,
          .experts = 8,
          .top_k = 2,
          .shared_ff = 128,
          .dense_ff = 256,
          .dense_layers = 1,
          .type = DType::F16,
          .progress = nullptr,
          .tokenizer_from = "",
          .routing_from = ""};
}

struct FamilyFile {
  std::string family;  // the --arch name
  std::string path;
};

// Writes the three models into `dir` (deepseek2.gguf, gpt-oss.gguf, glm4moe.gguf).
inline std::vector<FamilyFile> write_family_models(const TempDir& dir) {
  std::vector<FamilyFile> out;
  for (const api::SynthOptions& o : {deepseek2_options(), gpt_oss_options(), glm4moe_options()}) {
    out.push_back({o.arch, dir.path(o.arch + ".gguf")});
    api::synth_model(o, out.back().path);
  }
  return out;
}

// A small F16 Mixtral (128 wide, rows a multiple of 128 so every low-bit type applies).
inline api::SynthOptions f16_mixtral_options(int layers, int experts, int top_k) {
  api::SynthOptions o;
  o.arch = "mixtral";
  o.layers = layers;
  o.dim = 128;
  o.ff = 128;
  o.experts = experts;
  o.top_k = top_k;
  o.type = DType::F16;
  return o;
}

// Logits at every position of a fixed 24-token sequence (no BOS), of the model as it is now:
// compares a model before and after a pipeline that swaps its tensors in and out.
inline std::vector<float> probe_logits(model::Model& m) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 24; ++i) ids.push_back((i * 37 + 5) % static_cast<int>(m.config().n_vocab));
  model::Session s(m, {.n_ctx = 64, .n_threads = 2});
  const std::span<const float> l = s.eval(ids, true);
  return {l.begin(), l.end()};
}

// Logits at every position of a fixed 40-token sequence.
inline std::vector<float> family_logits(const std::string& path) {
  auto m = model::Model::load(path);
  model::Session s(*m, {.n_ctx = 64, .n_threads = 2});
  std::vector<int32_t> ids{m->tokenizer().bos_id()};
  for (int i = 1; i < 40; ++i) ids.push_back((i * 37 + 5) % m->config().n_vocab);
  const std::span<const float> l = s.eval(ids, true);
  return {l.begin(), l.end()};
}

// The median over positions of max_i |got_i − want_i| / max |want| (logits [positions,
// n_vocab]). Top-k routing makes a small weight change flip a near-tied pick now and then,
// which moves that position's logits far; the median sees the typical position.
inline double median_position_error(std::span<const float> got, std::span<const float> want,
                                    int64_t n_vocab) {
  float scale = 0;
  for (float w : want) scale = std::max(scale, std::fabs(w));
  std::vector<double> per;
  for (size_t p = 0; p + n_vocab <= want.size(); p += n_vocab) {
    double e = 0;
    for (int64_t i = 0; i < n_vocab; ++i)
      e = std::max(e, double{std::fabs(got[p + i] - want[p + i])});
    per.push_back(e / scale);
  }
  std::nth_element(per.begin(), per.begin() + per.size() / 2, per.end());
  return per[per.size() / 2];
}

// The stored bytes of a tensor of a GGUF file; fails the test when it is missing.
inline std::vector<uint8_t> tensor_bytes(const format::GgufFile& f, const std::string& name) {
  const format::GgufTensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << f.path() << " has no tensor " << name;
  if (!t) return {};
  const auto* p = f.base() + f.data_offset() + t->offset;
  return {p, p + t->nbytes};
}

// Whether two files store a tensor with the same bytes (a bool, so a failure does not print
// the bytes).
inline bool same_tensor(const format::GgufFile& a, const format::GgufFile& b,
                        const std::string& name) {
  return tensor_bytes(a, name) == tensor_bytes(b, name);
}

// Every tensor of the model's dense layers and shared experts (names from the inventory).
inline std::vector<std::string> dense_and_shared_tensors(const model::Model& m) {
  std::vector<std::string> names;
  model::for_each_tensor(m.config(), m.weights(), m.stored_experts(),
                         [&](const model::TensorSlot& s) {
                           const bool dense_layer = s.layer >= 0 && !m.config().is_moe(s.layer);
                           if (dense_layer || s.role == model::TensorRole::SharedExpert)
                             names.push_back(s.name);
                         });
  return names;
}

}  // namespace mcmoe::test

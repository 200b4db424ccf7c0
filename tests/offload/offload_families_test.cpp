// The offloading cache on every family whose layers differ from Mixtral's: DeepSeek-V2
// (a dense first layer, a shared expert, MLA), DeepSeek-V3 routing (sigmoid scores, a
// selection bias, expert groups; q LoRA), gpt-oss (router bias, expert biases, sinks),
// GLM-4.5 (dense first layer, shared expert, sigmoid routing with a selection bias) and
// Granite (tied output head). Logits bit-identical to the all-resident model for several
// budgets and with prefetch on and off; everything but the routed experts copied into memory
// with the file's bytes, and the cache holding routed experts only; expert biases the loader
// converted to f32 staying in place; the prefetch predictor following each layer's routing
// rule; traces and cachesim over dense layers.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "api/synth.h"
#include "common/test_util.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/inventory.h"
#include "model/model.h"
#include "offload/cache_sim.h"
#include "offload/expert_layout.h"
#include "offload/offload_provider.h"
#include "offload/offload_test_util.h"
#include "offload/predictor.h"
#include "offload/trace.h"
#include "offload/trace_test_util.h"
#include "quant/quantize.h"

namespace mcmoe::offload {
namespace {

using namespace std::chrono_literals;

// 3 layers, dim 128, routed experts of ff 128, 8 experts, top-2, vocab 300, Q8_0; the
// family's own parts on top (MLA dimensions kept small).
api::SynthOptions family_options(const std::string& family) {
  api::SynthOptions o = test::synth_options(3, 128, 128, 8);
  o.seed = 11;
  if (family == "deepseek2" || family == "deepseek2-v3") {
    o.arch = "deepseek2";
    o.shared_ff = 128;
    o.dense_layers = 1;
    o.dense_ff = 256;
    o.kv_lora = 64;
    o.rope_dim = 32;
    o.nope_dim = 64;
    o.v_dim = 64;
    if (family == "deepseek2-v3") {
      o.v3_routing = true;  // sigmoid + selection bias, 8 groups (of two experts here) keep 4
      o.experts = 16;
      o.q_lora = 64;  // wq_a, q_a_norm, wq_b
    }
  } else if (family == "glm4moe") {
    o.arch = "glm4moe";
    o.shared_ff = 128;
    o.dense_layers = 1;
    o.dense_ff = 256;
  } else {
    o.arch = family;  // gpt-oss, granitemoe
  }
  return o;
}

// One file per family per process, in the offload tests' /dev/shm scratch directory.
const std::string& family_model(const std::string& family) {
  static std::map<std::string, std::string> paths;
  auto it = paths.find(family);
  if (it == paths.end()) {
    const std::string path = test::offload_scratch_path(family + ".gguf");
    api::synth_model(family_options(family), path);
    it = paths.emplace(family, path).first;
  }
  return it->second;
}

bool in_file(const model::Model& m, const TensorView& v) {
  const uint8_t* base = m.gguf()->base();
  const auto* p = static_cast<const uint8_t*>(v.data);
  return v.valid() && p >= base && p + v.nbytes <= base + m.gguf()->file_size();
}

// Runs `path` offloaded with `o`; the logits must equal `want` bit for bit, the cache hold
// routed experts of MoE layers only and stay within the budget after every step. Returns the
// provider's statistics.
OffloadStats expect_identical(const std::string& path, const std::vector<float>& want, const std::vector<int32_t>& tokens,
                              const OffloadOptions& o) {
  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(path, o, &p);
  const model::ModelConfig& c = m->config();
  int64_t checks = 0;
  const std::vector<float> got = test::run_logits(*m, tokens, [&] {
    ++checks;
    EXPECT_LE(p->cache_bytes(), o.budget);
    for (const auto& [l, e] : p->cached_experts()) {
      EXPECT_TRUE(c.is_moe(l) && e < c.experts(l)) << "the cache holds expert " << e << " of layer " << l
                                                   << ", which stores " << c.experts(l) << " routed experts";
    }
  });
  EXPECT_EQ(checks, static_cast<int64_t>(tokens.size() - test::kPrefill) + 1);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(test::same_bits(got, want)) << "max relative error " << test::relative_max_error(got, want);
  const OffloadStats s = p->stats();
  EXPECT_GT(s.accesses, 0);
  EXPECT_EQ(s.reads, s.accesses - s.hits + s.prefetches);
  EXPECT_LE(s.peak_cache_bytes, o.budget);
  EXPECT_EQ(s.fallbacks, 0);
  for (int l = 0; l < c.n_layer; ++l) {
    if (c.is_moe(l)) {
      EXPECT_GT(s.layer_accesses[l], 0) << "layer " << l;
    } else {
      EXPECT_EQ(s.layer_accesses[l], 0) << "dense layer " << l << " reached the cache";
    }
  }
  if (o.prefetch_depth == 0) {
    EXPECT_EQ(s.prefetches, 0);
  }
  return s;
}

class OffloadFamily : public ::testing::TestWithParam<std::string> {};

std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name) ch = ch == '-' ? '_' : ch;
  return name;
}

TEST_P(OffloadFamily, LogitsBitIdenticalToResident) {
  test::Watchdog dog("offloaded " + GetParam(), 180s);
  const std::string& path = family_model(GetParam());
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test::test_tokens(resident->config().n_vocab);
  const std::vector<float> want = test::run_logits(*resident, tokens);
  const uint64_t total = test::total_expert_bytes(*resident), one = test::one_expert_budget(*resident);
  ASSERT_LT(one, 2 * test::max_expert_bytes(*resident));  // holds exactly one expert
  const std::vector<std::pair<std::string, uint64_t>> budgets = {
      {"one expert", one}, {"25%", total / 4}, {"50%", total / 2}, {"100%", total}};
  int64_t prefetches = 0;
  int run = 0;
  for (const auto& [name, budget] : budgets) {
    for (int prefetch : {0, 1}) {
      const char* policy = run++ % 2 == 0 ? "lru" : "lfu";
      SCOPED_TRACE(fmt::format("{} {} budget {} prefetch {}", GetParam(), policy, name, prefetch));
      OffloadOptions o = test::offload_options(policy, budget, prefetch);
      o.prefetch_max_bytes = budget;  // so prefetch reads happen even at small budgets
      prefetches += expect_identical(path, want, tokens, o).prefetches;
    }
  }
  EXPECT_GT(prefetches, 0) << "the predictor never guessed an expert worth reading";
  // Per-layer pools (a dense layer's pool is empty) and a deeper prefetch past a dense layer.
  OffloadOptions o = test::offload_options("lru", total / 2, 2);
  o.per_layer = true;
  o.prefetch_m = 4;
  SCOPED_TRACE("per-layer 50%, prefetch 2 layers top-4");
  expect_identical(path, want, tokens, o);
}

INSTANTIATE_TEST_SUITE_P(Families, OffloadFamily, ::testing::Values("deepseek2", "deepseek2-v3", "gpt-oss", "glm4moe"),
                         test_name);

// Every tensor but the routed experts is copied into memory (and holds the file's bytes);
// the copy's size is the inventory's non-routed bytes in the file, and the routed experts
// stay in the file for the cache to read.
class OffloadResidency : public ::testing::TestWithParam<std::string> {};

TEST_P(OffloadResidency, EverythingButRoutedExpertsIsResident) {
  const std::string& path = family_model(GetParam());
  auto ref = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const model::ModelConfig& c = ref->config();
  std::map<const void*, size_t> file_tensors;  // distinct non-routed tensors in the file
  std::set<model::TensorRole> roles;
  std::vector<const TensorView*> ref_views;
  model::for_each_tensor(c, ref->weights(), ref->stored_experts(), [&](const model::TensorSlot& s) {
    if (s.role == model::TensorRole::RoutedExpert) return;
    ref_views.push_back(s.view);
    if (!in_file(*ref, *s.view)) return;
    file_tensors[s.view->data] = s.view->nbytes;
    roles.insert(s.role);
  });
  uint64_t want_bytes = 0;
  for (const auto& [data, bytes] : file_tensors) want_bytes += bytes;
  // The roles this family keeps in the file (vectors are f32 copies already).
  using R = model::TensorRole;
  std::set<R> want_roles = {R::Embedding, R::Attention, R::Router};
  if (!c.tie_embeddings) want_roles.insert(R::Output);
  if (c.n_ff_shared > 0) want_roles.insert(R::SharedExpert);
  if (c.has_dense_layers()) want_roles.insert(R::DenseMlp);
  EXPECT_EQ(roles, want_roles);

  OffloadingProvider* p = nullptr;
  auto m = test::load_offloaded(path, test::offload_options("lru", test::total_expert_bytes(*ref), 0), &p);
  const OffloadStats s = p->stats();
  EXPECT_EQ(s.resident_bytes, want_bytes);
  const std::vector<uint64_t> expert_bytes = expert_cache_bytes(*ref);
  EXPECT_EQ(s.expert_bytes_total, std::accumulate(expert_bytes.begin(), expert_bytes.end(), uint64_t{0}));
  size_t i = 0;
  model::for_each_tensor(c, m->weights(), m->stored_experts(), [&](const model::TensorSlot& t) {
    if (t.role == model::TensorRole::RoutedExpert) {
      if (t.view->valid()) {
        EXPECT_TRUE(in_file(*m, *t.view))
            << t.name << " left the file: the cache reads it from there";
      }
      return;
    }
    ASSERT_LT(i, ref_views.size());
    const TensorView& want = *ref_views[i++];
    EXPECT_FALSE(in_file(*m, *t.view)) << t.name << " (" << model::role_name(t.role) << ") is still read from the file";
    ASSERT_EQ(t.view->nbytes, want.nbytes) << t.name;
    if (t.view->valid()) {
      EXPECT_EQ(std::memcmp(t.view->data, want.data, want.nbytes), 0)
          << t.name << " holds other bytes";
    }
  });
  EXPECT_EQ(i, ref_views.size());
  EXPECT_FALSE(in_file(*m, m->weights().output)) << "the output head (tied: the embeddings) is still read from the file";
}

INSTANTIATE_TEST_SUITE_P(Families, OffloadResidency,
                         ::testing::Values("deepseek2", "deepseek2-v3", "gpt-oss", "glm4moe", "granitemoe"),
                         test_name);

// A gpt-oss file whose expert biases are F16: the loader converts them to f32 in memory the
// model owns, so the cache leaves them where they are and reads only the matrices.
TEST(OffloadFamilies, ExpertBiasesConvertedAtLoadStayInPlace) {
  test::Watchdog dog("offloaded gpt-oss with F16 biases", 120s);
  const std::string path = test::offload_scratch_path("gpt-oss-f16-bias.gguf");
  {
    const format::GgufFile src(family_model("gpt-oss"));
    format::GgufWriter w;
    for (const auto& [key, value] : src.metadata()) w.set(key, value);
    for (const format::GgufTensorInfo& t : src.tensors()) {
      const TensorView v = src.view(t);
      const bool expert_bias = t.name.find("_exps.bias") != std::string::npos;
      ASSERT_TRUE(!expert_bias || t.type == DType::F32) << t.name;
      w.add_tensor(t.name, expert_bias ? DType::F16 : t.type, t.shape, [v, expert_bias](uint8_t* dst, size_t n) {
        if (expert_bias) {
          quant::quantize_row(DType::F16, static_cast<const float*>(v.data), dst, v.numel());
        } else {
          std::memcpy(dst, v.data, n);
        }
      });
    }
    w.write(path);
  }
  auto resident = model::Model::load(path);
  const std::vector<int32_t> tokens = test::test_tokens(resident->config().n_vocab);
  const std::vector<float> want = test::run_logits(*resident, tokens);
  auto mapped = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  const moe::ExpertWeights& e = mapped->stored_experts()[0][0];
  ASSERT_TRUE(e.gate_b.valid() && e.up_b.valid() && e.down_b.valid());
  EXPECT_FALSE(in_file(*mapped, e.gate_b));
  const ExpertLayout lay = layout_expert(*mapped, e, 0, 0);
  const auto views = e.views();
  ASSERT_EQ(views.size(), 6u);
  for (size_t j = 0; j < views.size(); ++j) {
    EXPECT_EQ(lay.view_offset[j] == ExpertLayout::kInPlace, views[j]->shape.size() == 1) << "view " << j;
  }
  const uint64_t total = test::total_expert_bytes(*mapped);
  for (uint64_t budget : {test::one_expert_budget(*mapped), total / 2}) {
    SCOPED_TRACE(fmt::format("budget {}", budget));
    expect_identical(path, want, tokens, test::offload_options("lru", budget, 1));
  }
}

// Writes through a view the model owns (an f32 copy made at load): the tests below move a
// router's biases to make the predictor's choice certain.
float* owned_floats(const TensorView& v) { return static_cast<float*>(const_cast<void*>(v.data)); }

std::vector<float> random_row(std::mt19937& rng, int n) {
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = gauss(rng);
  return x;
}

TEST(OffloadFamilies, PredictorAddsTheRouterBias) {
  auto m = model::Model::load(family_model("gpt-oss"));
  const int d = m->config().n_embd;
  RoutePredictor predictor(*m);
  std::mt19937 rng(5);
  std::vector<int> out(3);
  std::vector<float> prob(3);
  int five_first = 0;
  for (int i = 0; i < 20; ++i) {
    const std::vector<float> x = random_row(rng, d);
    ASSERT_TRUE(predictor.predict(0, 1, x.data(), 3, out.data(), prob.data()));
    five_first += out[0] == 5;
  }
  ASSERT_LT(five_first, 20) << "expert 5 leads without the bias: the check below would prove nothing";
  owned_floats(m->weights().layers[1].router_bias)[5] += 50.f;
  for (int i = 0; i < 20; ++i) {
    const std::vector<float> x = random_row(rng, d);
    ASSERT_TRUE(predictor.predict(0, 1, x.data(), 3, out.data(), prob.data()));
    EXPECT_EQ(out[0], 5);
    EXPECT_GT(prob[0], 0.99f);  // the bias is part of the logits, so of the probability too
    EXPECT_TRUE(out[1] >= 0 && out[2] >= 0 && out[1] != 5 && out[2] != 5 && out[1] != out[2]);
  }
}

TEST(OffloadFamilies, PredictorUsesSelectionBiasGroupsAndSkipsDenseLayers) {
  auto m = model::Model::load(family_model("deepseek2-v3"));
  const model::ModelConfig& c = m->config();
  ASSERT_EQ(c.router.score, moe::ScoreFunc::Sigmoid);
  ASSERT_EQ(c.router.n_group, 8);
  ASSERT_EQ(c.router.topk_group, 4);
  ASSERT_FALSE(c.is_moe(0));
  const int d = c.n_embd;
  ASSERT_EQ(c.n_expert, 16);
  RoutePredictor predictor(*m);
  std::mt19937 rng(6);
  std::vector<int> out(16);
  std::vector<float> prob(16);
  // The residual before layer 0 guessing layer 0: dense, no router, no guess.
  std::vector<float> x = random_row(rng, d);
  out.assign(16, 42);
  EXPECT_FALSE(predictor.predict(-1, 1, x.data(), 2, out.data()));
  EXPECT_EQ(out[0], 42);
  // 8 groups of two experts, 4 kept: the router chooses among those 8 experts only, whole
  // groups of them; the other 8 are never guessed.
  for (int i = 0; i < 10; ++i) {
    x = random_row(rng, d);
    for (int ahead : {1, 2}) {
      ASSERT_TRUE(predictor.predict(0, ahead, x.data(), 16, out.data(), prob.data()));
      std::set<int> guessed;
      for (int j = 0; j < 8; ++j) {
        EXPECT_TRUE(out[j] >= 0 && out[j] < 16) << j;
        guessed.insert(out[j]);
      }
      EXPECT_EQ(guessed.size(), 8u);
      for (int e : guessed) EXPECT_TRUE(guessed.count(e ^ 1)) << "expert " << e << " guessed without its group";
      for (int j = 8; j < 16; ++j) EXPECT_EQ(out[j], -1) << "a guess from a group the router leaves out";
    }
  }
  // The selection bias decides the choice but not the score.
  owned_floats(m->weights().layers[2].choice_bias)[3] += 50.f;
  for (int i = 0; i < 10; ++i) {
    x = random_row(rng, d);
    ASSERT_TRUE(predictor.predict(1, 1, x.data(), 2, out.data(), prob.data()));
    EXPECT_EQ(out[0], 3);
    EXPECT_GT(prob[0], 0.f);
    EXPECT_LT(prob[0], 0.5f) << "the selection bias leaked into the guess's score";
  }
}

// Traces of a model with a dense first layer: that layer's rows hold no routing, it costs
// no cache bytes, the rest is traced and replayed as for any model.
TEST(OffloadFamilies, TraceAndCachesimOverDenseLayers) {
  auto m = model::Model::load(family_model("deepseek2"));
  std::mt19937 rng(8);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(static_cast<int32_t>(3 + rng() % 290));
  TraceOptions o;
  o.ctx = 20;
  o.depth = 2;
  o.m = 3;
  const RoutingTrace t = record_trace(*m, tokens, o);
  EXPECT_EQ(t.n_expert, 8);
  EXPECT_EQ(t.layer_experts, (std::vector<int>{0, 8, 8}));
  for (int e = 0; e < 8; ++e) EXPECT_EQ(t.expert_bytes[e], 0u);
  for (int e = 8; e < 24; ++e) EXPECT_GT(t.expert_bytes[e], 0u);
  for (int64_t i = 0; i < t.n_tokens(); ++i) {
    for (int16_t e : t.pick(i, 0)) EXPECT_EQ(e, -1);
    for (float p : t.prob(i, 0)) EXPECT_EQ(p, 0.f);
    for (int l = 1; l < 3; ++l) {
      const auto pick = t.pick(i, l);
      EXPECT_TRUE(pick[0] >= 0 && pick[1] >= 0 && pick[0] != pick[1]);
    }
    // After the dense layer the next layers' routers guess as usual.
    for (int a = 1; a <= 2; ++a) {
      for (int16_t g : t.prediction(i, 0, a)) EXPECT_GE(g, 0);
    }
  }
  test::TempDir dir;
  const std::string path = dir.path("ds.trace");
  write_trace(t, path);
  const RoutingTrace back = read_trace(path);
  test::expect_equal(back, t, 0);
  EXPECT_EQ(back.layer_experts, t.layer_experts);

  const uint64_t total = test::total_expert_bytes(*m);
  for (const char* policy : {"lru", "lfu", "belady"}) {
    for (int prefetch : {0, 1}) {
      SimOptions so;
      so.policy = policy;
      so.budget = total / 2;
      so.prefetch_depth = std::string(policy) == "belady" ? 0 : prefetch;
      const SimResult r = simulate(t, so);
      EXPECT_EQ(r.accesses, t.n_tokens() * 2 * 2) << policy;  // two MoE layers, top-2
      EXPECT_EQ(r.layer_hit_rate[0], 0.0);
      EXPECT_GT(r.hits, 0) << policy;
    }
  }
  const PredictionQuality q = prediction_quality(t, 1, 2);
  EXPECT_GT(q.recall, 0.0);
  EXPECT_LE(q.recall, 1.0);

  // A dense layer that claims a pick is refused, naming the line; a trace without
  // layer_experts (written before it was recorded) learns them from the expert bytes.
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_GT(lines.size(), 4u);
  auto write_lines = [&](const std::vector<std::string>& ls, const std::string& p) {
    std::ofstream out(p);
    for (const auto& l : ls) out << l << "\n";
  };
  std::vector<std::string> bad = lines;
  const size_t bar = bad[3].find('|');
  ASSERT_NE(bar, std::string::npos);
  ASSERT_EQ(bad[3].substr(bar, 8), "| -1 -1 ");
  bad[3].replace(bar, 8, "| 3 -1 ");
  write_lines(bad, dir.path("bad.trace"));
  try {
    read_trace(dir.path("bad.trace"));
    ADD_FAILURE() << "a pick in a dense layer was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(dir.path("bad.trace")), std::string::npos) << msg;
    EXPECT_NE(msg.find("line 4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("dense"), std::string::npos) << msg;
  }
  std::vector<std::string> old = lines;
  const size_t key = old[1].find("\"layer_experts\":[0,8,8],");
  ASSERT_NE(key, std::string::npos) << old[1];
  old[1].erase(key, std::string("\"layer_experts\":[0,8,8],").size());
  write_lines(old, dir.path("old.trace"));
  EXPECT_EQ(read_trace(dir.path("old.trace")).layer_experts, t.layer_experts);
}

// All layers dense: nothing to cache and no routing to trace, both refused by name.
TEST(OffloadFamilies, ModelWithoutRoutedExpertsIsRefused) {
  api::SynthOptions so = family_options("deepseek2");
  so.layers = 1;
  so.dense_layers = 1;
  const std::string path = test::offload_scratch_path("deepseek2-dense.gguf");
  api::synth_model(so, path);
  auto m = model::Model::load(path, {.memory = model::LoadOptions::Memory::kMap});
  ASSERT_FALSE(m->config().is_moe(0));
  try {
    OffloadingProvider p(*m, test::offload_options("lru", 1 << 20, 0));
    ADD_FAILURE() << "offloading accepted a model without routed experts";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos) << e.what();
  }
  TraceOptions o;
  o.m = 2;
  const std::vector<int32_t> tokens = {5, 6, 7};
  try {
    record_trace(*m, tokens, o);
    ADD_FAILURE() << "trace accepted a model without routed experts";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mcmoe::offload

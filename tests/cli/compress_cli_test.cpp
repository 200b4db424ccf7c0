// calibrate → quantize → run / ppl / inspect on random Hugging Face fixtures, and the
// pipeline's errors for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/hf_fixture.h"
#include "common/test_util.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;

std::string write_text(const test::TempDir& dir, int words) { return test::write_word_salad(dir.path("text.txt"), words); }

double ppl_of(const std::string& out) {
  const size_t at = out.find("ppl ");
  EXPECT_NE(at, std::string::npos) << out;
  return std::stod(out.substr(at + 4));
}

void expect_error(const test::CliResult& r, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << "missing '" << fragment << "' in: " << r.err;
}

class CompressCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::HfFixture f;
    f.dim = 128;
    f.ff = 256;
    f.experts = 8;
    f.layers = 2;
    test::write_hf_fixture(dir_->path("mixtral"), f);
    text_ = new std::string(write_text(*dir_, 6000));
    stats_ = new std::string(dir_->path("stats.json"));
    const auto r = run_cli("calibrate -m " + quote(dir_->path("mixtral")) + " -f " + quote(*text_) +
                           " --samples 6 --seq 96 -o " + quote(*stats_));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete text_;
    delete stats_;
  }
  static std::string model() { return dir_->path("mixtral"); }
  static test::TempDir* dir_;
  static std::string* text_;
  static std::string* stats_;
};
test::TempDir* CompressCli::dir_ = nullptr;
std::string* CompressCli::text_ = nullptr;
std::string* CompressCli::stats_ = nullptr;

TEST_F(CompressCli, QuantizedModelRunsWithFiniteDeterministicPerplexity) {
  const std::string out = dir_->path("pmq25.gguf");
  const auto q = run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2.5 -o " + quote(out));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("average 2.5000"), std::string::npos) << q.out;
  // Mixtral has attention, router and routed experts only: one line each in the role report.
  EXPECT_NE(q.out.find("attention      4 bits        4.2500 bits/weight"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("router         8 bits"), std::string::npos) << q.out;
  EXPECT_NE(q.out.find("routed expert  plan 2.5"), std::string::npos) << q.out;
  EXPECT_EQ(q.out.find("shared expert"), std::string::npos) << q.out;
  const std::string ppl_cmd = "ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 128 --max-tokens 1000";
  const auto a = run_cli(ppl_cmd), b = run_cli(ppl_cmd);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const double p = ppl_of(a.out);
  EXPECT_TRUE(std::isfinite(p) && p > 1) << a.out;
  const auto ins = run_cli("inspect " + quote(out));
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_NE(ins.out.find("expert bit-widths (layers x experts)"), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("true bits per weight"), std::string::npos) << ins.out;
  const auto run = run_cli("run -m " + quote(out) + " -p " + quote("the king") + " -n 8 --temp 0");
  EXPECT_EQ(run.exit_code, 0) << run.err;
}

TEST_F(CompressCli, KlBaseAndOdpReport) {
  const std::string out = dir_->path("pmq2.gguf");
  ASSERT_EQ(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2 --rtn -o " + quote(out)).exit_code, 0);
  const auto r = run_cli("ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 128 --max-tokens 1000 --odp --kl-base " +
                         quote(model()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("top-1 agreement"), std::string::npos) << r.out;
  // 2-bit RTN with ODP changes some top-k sets.
  EXPECT_NE(r.out.find("routing agreement with base"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("tokens with a changed top-k set in any layer 0.0000"), std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("odp: pruned"), std::string::npos) << r.err;
  // bench's byte counter sees the dropped picks (id -1) too.
  const auto b = run_cli("bench -m " + quote(out) + " --prompt-tokens 16 --gen-tokens 4 --reps 1 --no-bandwidth --odp");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("of expert activations pruned"), std::string::npos) << b.out;
  // The base model against itself: no divergence, full agreement.
  const auto self = run_cli("ppl -m " + quote(model()) + " -f " + quote(*text_) + " --ctx 128 --max-tokens 500 --json --kl-base " +
                            quote(model()));
  ASSERT_EQ(self.exit_code, 0) << self.err;
  EXPECT_NE(self.out.find("\"top1_agree\":1.0"), std::string::npos) << self.out;
  EXPECT_NE(self.out.find("\"kl_mean\":0.0"), std::string::npos) << self.out;
  const auto js = nlohmann::json::parse(self.out);
  ASSERT_TRUE(js.contains("routing_agree")) << self.out;
  ASSERT_EQ(js["routing_agree"].size(), 2u) << self.out;  // the fixture's two MoE layers
  for (const auto& l : js["routing_agree"]) EXPECT_EQ(l["agree"].get<double>(), 1.0) << self.out;
  EXPECT_EQ(js["routing_any_flip"].get<double>(), 0.0) << self.out;
}

// Issue 16's layer ablation: --q8-layers puts every matrix of a layer at 8 bits whatever
// the plan, and takes away that layer's share of the divergence.
TEST_F(CompressCli, Q8LayersAblatesOneLayersQuantization) {
  const std::string full = dir_->path("abl-full.gguf"), abl = dir_->path("abl-1.gguf");
  const std::string q =
      "quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2 --rtn -o ";
  ASSERT_EQ(run_cli(q + quote(full)).exit_code, 0);
  const auto r = run_cli(q + quote(abl) + " --q8-layers 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("note: layer 1 at 8 bits throughout (--q8-layers)"), std::string::npos)
      << r.err;
  // The role report still says what the flags asked for (layer 0's 4-bit attention).
  EXPECT_NE(r.out.find("attention      4 bits"), std::string::npos) << r.out;
  const auto ins = run_cli("inspect " + quote(abl));
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_NE(ins.out.find("layer   0: 2 2 2 2 2 2 2 2"), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("layer   1: q8_0 q8_0 q8_0 q8_0 q8_0 q8_0 q8_0 q8_0"), std::string::npos)
      << ins.out;
  auto kl = [&](const std::string& f) {
    const auto p = run_cli("ppl -m " + quote(f) + " -f " + quote(*text_) +
                           " --ctx 128 --max-tokens 600 --json --kl-base " + quote(model()));
    EXPECT_EQ(p.exit_code, 0) << p.err;
    return nlohmann::json::parse(p.out)["kl_mean"].get<double>();
  };
  const double kl_full = kl(full), kl_abl = kl(abl);
  EXPECT_GT(kl_full, 0);
  EXPECT_LT(kl_abl, kl_full);
  expect_error(run_cli(q + quote(dir_->path("abl-bad.gguf")) + " --q8-layers 2"),
               "--q8-layers 2: expected a layer in 0..1");
}

// Issue 16: calibration text the model writes itself, then GPTQ with affinity-weighted
// Hessians and the pooled prior, from those statistics (quantize re-reads the saved text).
TEST_F(CompressCli, SelfGeneratedCalibrationAndRobustHessians) {
  const std::string stats = dir_->path("self.json"), text = dir_->path("self.txt");
  const auto c = run_cli("calibrate -m " + quote(model()) +
                         " --self-generate 900 --samples 6 --seq 96 --min-expert-tokens 40 "
                         "--save-text " +
                         quote(text) + " -o " + quote(stats));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("routed tokens per expert"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("layer 1:"), std::string::npos) << c.out;
  // Either every expert reached the minimum or the short ones are listed.
  EXPECT_TRUE(c.out.find("every expert got at least 40 tokens") != std::string::npos ||
              c.out.find("experts got fewer than 40 tokens:") != std::string::npos)
      << c.out;
  ASSERT_TRUE(std::filesystem::exists(text));
  const auto js = nlohmann::json::parse(std::ifstream(stats));
  EXPECT_EQ(std::filesystem::path(js["text"].get<std::string>()).filename(), "self.txt");
  for (const std::string flags : {"--affinity-hessian", "--affinity-hessian --expert-prior 64"}) {
    const std::string out = dir_->path("robust.gguf");
    const auto q = run_cli("quantize -m " + quote(model()) + " --stats " + quote(stats) +
                           " --bits 2.5 " + flags + " -o " + quote(out));
    ASSERT_EQ(q.exit_code, 0) << flags << ": " << q.err;
    const auto p =
        run_cli("ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 128 --max-tokens 600");
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_TRUE(std::isfinite(ppl_of(p.out))) << flags << ": " << p.out;
  }
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(stats) +
                       " --bits 2.5 --rtn --affinity-hessian -o " + quote(dir_->path("x.gguf"))),
               "--rtn reads none");
  expect_error(run_cli("calibrate -m " + quote(model()) + " -o " + quote(dir_->path("x.json"))),
               "give a calibration text (-f TEXT), --self-generate N, or both");
  expect_error(
      run_cli("calibrate -m " + quote(model()) + " --self-generate 500 --samples 6 --seq 96 -o " +
              quote(dir_->path("x.json"))),
      "need 576 tokens of text; generate at least 633");
  expect_error(run_cli("calibrate -m " + quote(model()) + " -f " + quote(*text_) +
                       " --gen-temp 0.5 -o " + quote(dir_->path("x.json"))),
               "--gen-temp applies to --self-generate only");
  // --gen-seeds: every sequence of the saved text starts with one of the seed lines.
  const std::string seeds = dir_->path("seeds.txt"), seeded = dir_->path("seeded.txt");
  std::ofstream(seeds) << "the king\r\n\n  \nthe queen\n";  // a CRLF line too
  const auto g = run_cli(
      "calibrate -m " + quote(model()) + " --self-generate 700 --samples 6 --seq 96 --gen-seeds " +
      quote(seeds) + " --save-text " + quote(seeded) + " -o " + quote(dir_->path("seeded.json")));
  ASSERT_EQ(g.exit_code, 0) << g.err;
  std::stringstream saved;
  saved << std::ifstream(seeded).rdbuf();
  EXPECT_EQ(saved.str().rfind("the king", 0), 0u) << saved.str().substr(0, 200);
  EXPECT_NE(saved.str().find("\n\nthe queen"), std::string::npos) << saved.str().substr(0, 400);
  EXPECT_EQ(saved.str().find('\r'), std::string::npos);
  std::ofstream(seeds, std::ios::trunc) << "\n \n";
  expect_error(run_cli("calibrate -m " + quote(model()) +
                       " --self-generate 700 --samples 6 --seq 96 --gen-seeds " + quote(seeds) +
                       " -o " + quote(dir_->path("x.json"))),
               "no non-empty line to start a sequence from");
}

// ODP within a KL budget: odp-fit writes per-layer thresholds that ppl --odp reads.
TEST_F(CompressCli, OdpFitThresholds) {
  const std::string t = dir_->path("odp.json");
  const auto fit =
      run_cli("odp-fit -m " + quote(model()) + " -f " + quote(*text_) +
              " --samples 2 --seq 64 --quantiles 0.3,0.6 --kl-budget 10 -o " + quote(t));
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_NE(fit.out.find("predicted: KL increase"), std::string::npos) << fit.out;
  const auto js = nlohmann::json::parse(std::ifstream(t));
  ASSERT_EQ(js["layers"].size(), 2u);
  for (const auto& l : js["layers"])
    EXPECT_EQ(l["mu"].size(), 1u) << js.dump();  // top-2: one threshold
  const std::string ppl = "ppl -m " + quote(model()) + " -f " + quote(*text_) +
                          " --ctx 64 --max-tokens 300 --odp --odp-thresholds ";
  const auto r = run_cli(ppl + quote(t));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("odp: pruned"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("odp: pruned 0 of"), std::string::npos) << r.err;
  // The pruned share is of every layer's activations, also when ODP prunes in some only.
  auto picks = [](const std::string& err) {
    const size_t at = err.find(" of ", err.find("odp: pruned"));
    return at == std::string::npos ? std::string()
                                   : err.substr(at + 4, err.find(' ', at + 4) - at - 4);
  };
  const std::string odp = "ppl -m " + quote(model()) + " -f " + quote(*text_) +
                          " --ctx 64 --max-tokens 300 --odp --odp-mu 0.5";
  const auto all = run_cli(odp), one = run_cli(odp + " --odp-layers 1");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_FALSE(picks(all.err).empty()) << all.err;
  EXPECT_EQ(picks(one.err), picks(all.err)) << one.err;
  // A budget of 0 prunes nothing.
  ASSERT_EQ(run_cli("odp-fit -m " + quote(model()) + " -f " + quote(*text_) +
                    " --samples 1 --seq 64 --quantiles 0.5 --kl-budget 0 -o " + quote(t))
                .exit_code,
            0);
  const auto none = run_cli(ppl + quote(t));
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.err.find("odp: pruned 0 of"), std::string::npos) << none.err;
  // Bad files.
  std::ofstream(dir_->path("odp-bad.json"))
      << R"({"format": "mcmoe-odp-thresholds", "n_layer": 3, "k": 2, "layers": []})";
  expect_error(run_cli(ppl + quote(dir_->path("odp-bad.json"))),
               "thresholds for 3 layers and top-2, the model has 2 layers");
  std::ofstream(dir_->path("odp-bad.json"))
      << R"({"format": "mcmoe-odp-thresholds", "n_layer": 2, "k": 2, "layers": [{"layer": 1, "mu": [1.5]}]})";
  expect_error(run_cli(ppl + quote(dir_->path("odp-bad.json"))),
               "layer 1: threshold 1.5 is not a number in [0, 1]");
  expect_error(run_cli(ppl + quote(*stats_)), "not an mcmoe odp-fit thresholds file");
  expect_error(run_cli(ppl + quote(t) + " --odp-mu 0.3"), "give one");
  expect_error(run_cli("odp-fit -m " + quote(model()) + " -f " + quote(*text_) + " -o " + quote(t)),
               "--kl-budget X is required");
}

// --worst-case: statistics on a second text (narrower words than the fixture's) join the
// allocation; the plan meets the budget and says its regret on each domain; a file that is
// not statistics, or the gguf format, is refused naming it.
TEST_F(CompressCli, WorstCaseOverTwoCalibrationTexts) {
  const std::string other_text = dir_->path("other.txt"), other = dir_->path("other.json");
  {
    std::ofstream f(other_text);
    for (int i = 0; i < 900; ++i)
      f << (i % 3 ? "the wolf came into the forest" : "gold gold old woman") << ".\n";
  }
  ASSERT_EQ(run_cli("calibrate -m " + quote(model()) + " -f " + quote(other_text) +
                    " --samples 6 --seq 96 -o " + quote(other))
                .exit_code,
            0);
  const std::string out = dir_->path("worst.gguf");
  const auto q = run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) +
                         " --worst-case " + quote(other) + " --bits 2.5 --rtn -o " + quote(out));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.err.find("worst case over 2 calibration domains"), std::string::npos) << q.err;
  EXPECT_NE(q.out.find("average 2.5000"), std::string::npos) << q.out;
  const auto p =
      run_cli("ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 128 --max-tokens 600");
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_TRUE(std::isfinite(ppl_of(p.out))) << p.out;
  expect_error(
      run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --worst-case " +
              quote(other_text) + " --bits 2.5 --rtn -o " + quote(dir_->path("x.gguf"))),
      "other.txt");
  expect_error(
      run_cli("quantize -m " + quote(model()) + " --format gguf --stats " + quote(*stats_) +
              " --worst-case " + quote(other) + " --bits 4 -o " + quote(dir_->path("x.gguf"))),
      "--worst-case");
}

TEST_F(CompressCli, BadInputsGiveClearErrors) {
  const std::string out = dir_->path("bad.gguf");
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) +
                       " --bits 3.5 -o " + quote(out)),
               "within the candidate widths [2, 3]");
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2 --candidates 1,2,9 -o " + quote(out)),
               "--candidates");
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2 --alloc greedy -o " + quote(out)),
               "unknown method 'greedy'");
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) + " --bits 2 --shared-bits 5 -o " + quote(out)),
               "--shared-bits 5: expected 1, 2, 3, 4 or 8");
  for (const char* spec : {"0:3", "x=3", "0=3b", "0=3,0=2"}) {
    expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(*stats_) +
                         " --bits 2.5 --layer-bits " + spec + " -o " + quote(out)),
                 std::string(spec) == "0=3,0=2" ? "layer 0 given twice" : "expected LAYER=BITS");
  }
  expect_error(run_cli("calibrate -m " + quote(model()) + " -f " + quote(*text_) + " --samples 500 --seq 512 -o " + quote(out)),
               "calibration text has");
  // Statistics of another model (same shapes, other weights).
  test::HfFixture other;
  other.dim = 128;
  other.ff = 256;
  other.experts = 8;
  other.layers = 2;
  other.seed = 99;
  test::write_hf_fixture(dir_->path("other"), other);
  expect_error(run_cli("quantize -m " + quote(dir_->path("other")) + " --stats " + quote(*stats_) + " --bits 2 -o " + quote(out)),
               "measured on a different model");
  std::ofstream(dir_->path("junk.json")) << "{\"format\": \"something-else\"}";
  expect_error(run_cli("quantize -m " + quote(model()) + " --stats " + quote(dir_->path("junk.json")) + " --bits 2 -o " + quote(out)),
               "not an mcmoe calibration file");
  expect_error(run_cli("ppl -m " + quote(model()) + " -f " + quote(*text_) + " --odp"), "no calibrated thresholds");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace mcmoe

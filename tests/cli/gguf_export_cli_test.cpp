// `mcmoe quantize --format gguf` end to end on a random Hugging Face fixture: the file has
// llama.cpp's stacked layout with one ggml type per tensor, fits its budget, runs in mcmoe,
// can copy another file's types, refuses bad requests with a message, and (when llama.cpp's
// binaries are named by MCMOE_LLAMA_CPP_BIN) loads unchanged in llama.cpp.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "common/hf_fixture.h"
#include "common/test_util.h"
#include "compress/imatrix.h"
#include "format/gguf.h"

namespace mcmoe {
namespace {

namespace fs = std::filesystem;
using test::quote;
using test::run_cli;

class GgufExportCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    test::HfFixture f;
    f.dim = 256;  // rows of 256: the K-quants' super-blocks fit
    f.ff = 256;
    f.experts = 4;
    f.layers = 2;
    test::write_hf_fixture(dir_->path("mixtral"), f);
    text_ = new std::string(test::write_word_salad(dir_->path("text.txt"), 6000));
    // The file most tests read: three candidate types (each candidate of each tensor is
    // quantized and measured, so fewer types keep the suite quick).
    ref_ = new std::string(dir_->path("b45.gguf"));
    ref_run_ = new test::CliResult(
        run_cli(base_args() + "--bits 4.5 --types q3_K,q4_K,q6_K -o " + quote(*ref_)));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete text_;
    delete ref_;
    delete ref_run_;
  }
  static std::string base_args() {
    return "quantize -m " + quote(dir_->path("mixtral")) + " -f " + quote(*text_) +
           " --samples 2 --seq 64 --format gguf ";
  }
  static test::TempDir* dir_;
  static std::string* text_;
  static std::string* ref_;
  static test::CliResult* ref_run_;
};
test::TempDir* GgufExportCli::dir_ = nullptr;
std::string* GgufExportCli::text_ = nullptr;
std::string* GgufExportCli::ref_ = nullptr;
test::CliResult* GgufExportCli::ref_run_ = nullptr;

// Bits per weight the command printed for the quantized tensors.
double printed_bpw(const std::string& out) {
  const size_t at = out.find("quantized tensors: ");
  EXPECT_NE(at, std::string::npos) << out;
  return at == std::string::npos ? 0 : std::stod(out.substr(at + 19));
}

TEST_F(GgufExportCli, BitsBudgetWritesLlamaLayoutThatRuns) {
  const std::string& out = *ref_;
  const test::CliResult& r = *ref_run_;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(printed_bpw(r.out), 4.5);
  EXPECT_GT(printed_bpw(r.out), 4.3);  // the budget is used, not left idle
  const format::GgufFile g(out);
  const std::set<DType> candidates{DType::Q3_K, DType::Q4_K, DType::Q6_K};
  std::set<DType> used;
  for (const char* name :
       {"blk.0.ffn_gate_exps.weight", "blk.1.ffn_down_exps.weight", "blk.0.attn_q.weight",
        "blk.1.attn_output.weight", "token_embd.weight", "output.weight"}) {
    const format::GgufTensorInfo* t = g.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_TRUE(candidates.count(t->type)) << name << " is " << dtype_name(t->type);
    used.insert(t->type);
  }
  EXPECT_EQ(g.find_tensor("blk.0.ffn_gate.0.weight"), nullptr);  // stacked, not per expert
  EXPECT_EQ(g.find_tensor("blk.0.ffn_gate_exps.weight")->shape[0], 4);
  // Routers stay as stored (F16 in the fixture), as llama-quantize keeps them.
  EXPECT_EQ(g.find_tensor("blk.0.ffn_gate_inp.weight")->type, DType::F16);
  EXPECT_GE(used.size(), 2u) << "a 4.5-bit budget over q3_K, q4_K and q6_K mixes types";

  const auto ppl =
      run_cli("ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 64 --max-tokens 128");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
}

TEST_F(GgufExportCli, SampledRowsEstimateThenWriteEveryRow) {
  const std::string out = dir_->path("sampled.gguf");
  const auto r = run_cli(base_args() + "--bits 4.5 --types q3_K,q4_K,q6_K --sample-rows 0.25 -o " +
                         quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("measured on 25% of their rows"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("the chosen types over every row"), std::string::npos) << r.out;
  EXPECT_LE(printed_bpw(r.out), 4.5);
  const format::GgufFile g(out);
  EXPECT_EQ(g.find_tensor("blk.1.ffn_down_exps.weight")->nbytes,
            g.find_tensor("blk.1.ffn_down_exps.weight")->shape[0] * 256 *
                row_bytes(g.find_tensor("blk.1.ffn_down_exps.weight")->type, 256));
  const auto ppl =
      run_cli("ppl -m " + quote(out) + " -f " + quote(*text_) + " --ctx 64 --max-tokens 128");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
}

TEST_F(GgufExportCli, SizeBudgetIsAnUpperBoundOnTheFile) {
  ASSERT_EQ(ref_run_->exit_code, 0) << ref_run_->err;
  const uint64_t target = fs::file_size(*ref_) - 40000;
  const std::string out = dir_->path("sized.gguf");
  const auto r = run_cli(base_args() + "--types q3_K,q4_K,q6_K --size " + std::to_string(target) +
                         " -o " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(fs::file_size(out), target);
  EXPECT_GT(fs::file_size(out), target - 60000) << "the budget should be nearly used";
}

TEST_F(GgufExportCli, TypesFromCopiesEveryTensorsType) {
  ASSERT_EQ(ref_run_->exit_code, 0) << ref_run_->err;
  const std::string& ref = *ref_;
  const std::string out = dir_->path("same-types.gguf");
  const auto r = run_cli(base_args() + "--types-from " + quote(ref) + " -o " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const format::GgufFile a(ref), b(out);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& t : a.tensors()) {
    const format::GgufTensorInfo* u = b.find_tensor(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->type, t.type) << t.name;
    EXPECT_EQ(u->nbytes, t.nbytes) << t.name;
  }
  // The same tensor bytes; the header differs by the file's name (general.name) and its
  // alignment padding.
  EXPECT_NEAR(static_cast<double>(a.file_size()), static_cast<double>(b.file_size()), 64.0);
}

TEST_F(GgufExportCli, TensorTypeOverridesTakeTensorsOutOfTheAllocation) {
  const std::string out = dir_->path("override.gguf");
  const auto r = run_cli(
      base_args() + "--types q8_0 --tensor-type ffn_down_exps=q4_K,^output=q6_K -o " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const format::GgufFile g(out);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_down_exps.weight")->type, DType::Q4_K);
  EXPECT_EQ(g.find_tensor("blk.1.ffn_down_exps.weight")->type, DType::Q4_K);
  EXPECT_EQ(g.find_tensor("output.weight")->type, DType::Q6_K);
  EXPECT_EQ(g.find_tensor("blk.1.ffn_up_exps.weight")->type, DType::Q8_0);
  EXPECT_EQ(g.find_tensor("blk.0.attn_output.weight")->type, DType::Q8_0);
}

// Statistics cross over: the calibration's importance matrix is written in llama.cpp's format,
// and a file in that format drives the allocation without any text.
TEST_F(GgufExportCli, ImportanceMatrixIsWrittenAndRead) {
  const std::string imat = dir_->path("mcmoe.imatrix");
  const std::string out = dir_->path("with-save.gguf");
  const auto r = run_cli(base_args() + "--types q4_K,q8_0 --bits 6 --save-imatrix " + quote(imat) +
                         " -o " + quote(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const compress::ImportanceMatrix m = compress::read_imatrix(imat);
  ASSERT_TRUE(m.means.count("blk.0.attn_q.weight"));
  EXPECT_EQ(m.means.at("blk.0.attn_q.weight").size(), 256u);
  EXPECT_EQ(m.means.count("token_embd.weight"), 0u);  // looked up, not multiplied
  EXPECT_EQ(m.chunks, 2);
  // Stacked experts: one block of means per expert, or the entry is left out (with a note)
  // when an expert saw no token, as llama-imatrix does.
  if (m.means.count("blk.1.ffn_down_exps.weight")) {
    EXPECT_EQ(m.means.at("blk.1.ffn_down_exps.weight").size(), 4u * 256u);
  } else {
    EXPECT_NE(r.err.find("blk.1.ffn_down_exps.weight: left out"), std::string::npos) << r.err;
  }
  for (const auto& [name, v] : m.means)
    for (float x : v) ASSERT_GE(x, 0.f) << name;

  const std::string from = dir_->path("from-imatrix.gguf");
  const auto q = run_cli("quantize -m " + quote(dir_->path("mixtral")) +
                         " --format gguf --types q3_K,q4_K,q6_K --bits 4 --imatrix " + quote(imat) +
                         " -o " + quote(from));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_LE(printed_bpw(q.out), 4.0);
  EXPECT_GT(printed_bpw(q.out), 3.6);
  const auto bad =
      run_cli("quantize -m " + quote(dir_->path("mixtral")) + " --format gguf --bits 4 --imatrix " +
              quote(imat) + " -f " + quote(*text_) + " -o " + quote(from));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--imatrix replaces the calibration text"), std::string::npos) << bad.err;
}

// iq2_xxs rounded block by block (the default) or by GPTQ: both files run, say which in their
// metadata, and differ in the codes.
TEST_F(GgufExportCli, CodebookRoundingIsBlockOrGptq) {
  std::string files[2];
  const char* modes[2] = {"block", "gptq"};
  for (int i = 0; i < 2; ++i) {
    files[i] = dir_->path(std::string("iq2-") + modes[i] + ".gguf");
    const std::string flag = i == 0 ? "" : "--codebook-rounding gptq ";
    const auto r = run_cli(base_args() + "--types q8_0 " + flag +
                           "--tensor-type ffn_=iq2_xxs,attn=q8_0,token_embd=q8_0,output=q8_0 -o " +
                           quote(files[i]));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const format::GgufFile g(files[i]);
    EXPECT_EQ(g.get_string("mcmoe.quant.codebook_rounding"), modes[i]);
    EXPECT_EQ(g.find_tensor("blk.0.ffn_up_exps.weight")->type, DType::IQ2_XXS);
    const auto ppl = run_cli("ppl -m " + quote(files[i]) + " -f " + quote(*text_) +
                             " --ctx 64 --max-tokens 128");
    ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  }
  auto contents = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_NE(contents(files[0]), contents(files[1]));
  const auto bad = run_cli(base_args() + "--types q8_0 --codebook-rounding nearest -o " +
                           quote(dir_->path("bad-rounding.gguf")));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--codebook-rounding nearest: expected block or gptq"), std::string::npos)
      << bad.err;
}

TEST_F(GgufExportCli, BadRequestsAreRefusedWithAMessage) {
  struct Case {
    std::string args, fragment;
  };
  const std::string o = " -o " + quote(dir_->path("bad.gguf"));
  const Case cases[] = {
      {"", "candidates need a budget"},
      {"--bits 4 --types q4_K,q9_K", "unknown type 'q9_K'"},
      {"--bits 2 --types iq1_s", "does not write iq1_s"},
      {"--types q8_0 --size 1000", "--size 1000"},
      {"--types q8_0 --tensor-type " + quote("attn=q4_K,ffn_(=q8_0"), "not a regular expression"},
      {"--bits 4 --group 64", "--group applies to --format mq only"},
      {"--types-from " + quote(dir_->path("missing.gguf")), "missing.gguf"},
  };
  for (const Case& c : cases) {
    const auto r = run_cli(base_args() + c.args + o);
    EXPECT_EQ(r.exit_code, 1) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_->path("bad.gguf")));
  const auto mq = run_cli("quantize -m " + quote(dir_->path("mixtral")) + " --size 10M -o x.gguf");
  EXPECT_EQ(mq.exit_code, 1);
  EXPECT_NE(mq.err.find("--size applies to --format gguf only"), std::string::npos) << mq.err;
}

// The file must load unchanged in llama.cpp. Needs its binaries (MCMOE_LLAMA_CPP_BIN: the
// folder holding llama-cli); skipped otherwise, as in CI.
TEST_F(GgufExportCli, LoadsInLlamaCpp) {
  const char* bin = std::getenv("MCMOE_LLAMA_CPP_BIN");
  if (!bin || !fs::exists(fs::path(bin) / "llama-cli"))
    GTEST_SKIP() << "MCMOE_LLAMA_CPP_BIN not set";
  const std::string out = dir_->path("llama.gguf");
  ASSERT_EQ(run_cli(base_args() +
                    "--bits 4 --types "
                    "q2_K,q3_K,q4_K,q5_K,q6_K,q8_0,q4_0,q5_0,iq2_xxs,iq3_xxs,iq4_nl,iq4_xs -o " +
                    quote(out))
                .exit_code,
            0);
  const std::string cmd = quote((fs::path(bin) / "llama-cli").string()) + " -m " + quote(out) +
                          " -p hello -n 8 -no-cnv --temp 0 -t 2 > " +
                          quote(dir_->path("llama.out")) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::vector<uint8_t> log = test::read_bytes(dir_->path("llama.out"));
  EXPECT_EQ(rc, 0) << std::string(log.begin(), log.end());
  // llama-quantize reads mcmoe's importance matrix (written with a file at f16 to quantize).
  const std::string imat = dir_->path("for-llama.imatrix");
  const std::string f16 = dir_->path("f16.gguf");
  ASSERT_EQ(run_cli(base_args() + "--types f16 --save-imatrix " + quote(imat) + " -o " + quote(f16))
                .exit_code,
            0);
  const std::string q = quote((fs::path(bin) / "llama-quantize").string()) + " --imatrix " +
                        quote(imat) + " " + quote(f16) + " " + quote(dir_->path("llama-q2k.gguf")) +
                        " Q2_K 2 > " + quote(dir_->path("llama-quantize.out")) + " 2>&1";
  const int qrc = std::system(q.c_str());
  const std::vector<uint8_t> qlog = test::read_bytes(dir_->path("llama-quantize.out"));
  const std::string qtext(qlog.begin(), qlog.end());
  EXPECT_EQ(qrc, 0) << qtext;
  EXPECT_NE(qtext.find("loaded"), std::string::npos) << qtext;
}

}  // namespace
}  // namespace mcmoe

// The CLI end to end: malformed inputs give one clear line and exit code 1; synth, run,
// tokenize, inspect, convert and ppl work on self-made fixtures.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "common/hf_fixture.h"
#include "common/test_util.h"

namespace mcmoe {
namespace {

using test::quote;
using test::run_cli;
using test::expect_clean_error;

std::string synth_small(const test::TempDir& dir, const std::string& type = "q8_0") {
  const std::string path = dir.path("synth-" + type + ".gguf");
  const auto r = run_cli("synth --arch mixtral --layers 2 --dim 64 --ff 128 --experts 4 --top-k 2 --vocab 300 --type " +
                         type + " -o " + quote(path));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

TEST(Cli, SynthRunIsDeterministicAndGreedy) {
  test::TempDir dir;
  for (const std::string type : {"q8_0", "q4_0", "f16", "mxfp4"}) {
    const std::string path = synth_small(dir, type);
    const auto a = run_cli("run -m " + quote(path) + " -p 'hello world' -n 8 --temp 0 --json");
    const auto b = run_cli("run -m " + quote(path) + " -p 'hello world' -n 8 --temp 0 --json --threads 1");
    ASSERT_EQ(a.exit_code, 0) << a.err;
    EXPECT_NE(a.out.find("\"new_ids\""), std::string::npos);
    EXPECT_EQ(a.out, b.out) << type;
    const auto sampled1 = run_cli("run -m " + quote(path) + " -p 'hello' -n 8 --temp 1 --seed 5 --json");
    const auto sampled2 = run_cli("run -m " + quote(path) + " -p 'hello' -n 8 --temp 1 --seed 5 --json");
    EXPECT_EQ(sampled1.out, sampled2.out);
  }
}

// A context beyond the trained length is refused naming both numbers, unless asked for; the
// KV cache is allocated for the whole context up front and its size printed; --batch-size
// chunks the prefill without changing the output.
TEST(Cli, ContextLimitsAndPrintedCache) {
  test::TempDir dir;
  const std::string path = synth_small(dir);  // synth writes a trained length of 4096
  const std::string run =
      "run -m " + quote(path) + " -p 'hello world, once upon a time' -n 6 --temp 0 --json";
  expect_clean_error(run_cli(run + " --ctx 8192"),
                     {"context 8192", "trained length 4096", "--allow-long-context"});
  expect_clean_error(run_cli("ppl -m " + quote(path) + " -f " + quote(path) + " --ctx 5000"),
                     {"context 5000", "trained length 4096"});
  const auto long_ctx = run_cli(run + " --ctx 8192 --allow-long-context");
  ASSERT_EQ(long_ctx.exit_code, 0) << long_ctx.err;
  // 2 layers × (k + v) × 1 kv head of 64 values × 2 bytes (f16, the default) = 512 per token.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      long_ctx.err, m,
      std::regex("KV cache: ([0-9.]+) MiB for 8192 tokens \\(([0-9]+) bytes per token, f16\\)")))
      << long_ctx.err;
  EXPECT_EQ(std::stoi(m[2]), 512);
  EXPECT_NEAR(std::stod(m[1]), 8192.0 * 512 / (1 << 20), 0.05);
  const auto whole = run_cli(run + " --batch-size 512"), chunked = run_cli(run + " --batch-size 3");
  ASSERT_EQ(chunked.exit_code, 0) << chunked.err;
  EXPECT_EQ(whole.out, chunked.out);
  EXPECT_NE(chunked.err.find("for 3-token chunks"), std::string::npos) << chunked.err;
  expect_clean_error(run_cli(run + " --cache-type q4_0"),
                     {"--cache-type q4_0", "f32, f16 or q8_0"});
}

// One spelling for one concept: the calibration length is --seq in every command that samples
// calibration text; --ctx (a context window elsewhere) is refused there with a pointer.
TEST(Cli, CalibrationLengthIsSeqEverywhere) {
  test::TempDir dir;
  const std::string path = synth_small(dir, "f16");
  const std::string text = test::write_word_salad(dir.path("text.txt"), 2000);
  for (const std::string cmd :
       {"reduce --method prune --keep 0.5", "lowrank --rank 8 --sparse-rows 0"}) {
    const std::string base = cmd.substr(0, cmd.find(' ')) + " -m " + quote(path) + " -f " +
                             quote(text) + cmd.substr(cmd.find(' ')) + " --samples 2 -o " +
                             quote(dir.path("out.gguf"));
    expect_clean_error(run_cli(base + " --ctx 32"), {"--ctx", "calibration length is --seq"});
    const auto ok = run_cli(base + " --seq 32");
    EXPECT_EQ(ok.exit_code, 0) << cmd << ": " << ok.err;
  }
}

// bench --isa forces a kernel path (to compare them on one model); the path is printed.
TEST(Cli, BenchKernelPathCanBeForced) {
  test::TempDir dir;
  const std::string path = synth_small(dir, "mxfp4");
  const std::string bench =
      "bench -m " + quote(path) + " --prompt-tokens 8 --gen-tokens 2 --reps 1 --no-bandwidth";
  const auto r = run_cli(bench + " --isa scalar");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("kernels scalar"), std::string::npos) << r.out;
  expect_clean_error(run_cli(bench + " --isa sse9"), {"--isa", "'sse9'", "scalar, avx2, avx512"});
}

TEST(Cli, InspectListsTensorsAndTotals) {
  test::TempDir dir;
  const auto r = run_cli("inspect " + quote(synth_small(dir)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("blk.1.ffn_down_exps.weight"), std::string::npos);
  EXPECT_NE(r.out.find("experts 4, used per token 2"), std::string::npos);
  EXPECT_NE(r.out.find("total:"), std::string::npos);
}

TEST(Cli, HfConvertRunAndPpl) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  std::ofstream(dir.path("text.txt")) << std::string(200, 'a') + " the quick brown fox jumps over the lazy dog. " + std::string(3000, 'b');
  const auto conv = run_cli("convert " + quote(dir.path("hf")) + " -o " + quote(dir.path("m.gguf")) + " --type q8_0");
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  for (const std::string& m : {dir.path("hf"), dir.path("m.gguf")}) {
    const auto p = run_cli("ppl -m " + quote(m) + " -f " + quote(dir.path("text.txt")) + " --ctx 64");
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_EQ(p.out.rfind("ppl ", 0), 0u) << p.out;
  }
  const auto t = run_cli("tokenize -m " + quote(dir.path("m.gguf")) + " -p 'Hello world'");
  const auto t2 = run_cli("tokenize -m " + quote(dir.path("hf")) + " -p 'Hello world'");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_EQ(t.out, t2.out);
  const auto short_text = run_cli("ppl -m " + quote(dir.path("m.gguf")) + " -p x -f " + quote(dir.path("text.txt")));
  expect_clean_error(short_text, {"unknown flag -p"});
  std::ofstream(dir.path("short.txt")) << "tiny";
  expect_clean_error(run_cli("ppl -m " + quote(dir.path("m.gguf")) + " -f " + quote(dir.path("short.txt")) + " --ctx 512"),
                     {"tokens", "need more than 511"});
}

TEST(Cli, TruncatedSafetensors) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  const std::string st = dir.path("hf") + "/model.safetensors";
  std::filesystem::resize_file(st, std::filesystem::file_size(st) - 1000);
  expect_clean_error(run_cli("run -m " + quote(dir.path("hf")) + " -p hi -n 1"),
                     {"model.safetensors", "beyond the end", "truncated"});
}

TEST(Cli, SafetensorsHeaderNotJson) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  const std::string st = dir.path("hf") + "/model.safetensors";
  auto bytes = test::read_bytes(st);
  bytes[8] = '[';
  bytes[9] = '{';
  test::write_bytes(st, bytes);
  expect_clean_error(run_cli("run -m " + quote(dir.path("hf")) + " -p hi -n 1"), {"model.safetensors", "JSON"});
}

TEST(Cli, MalformedConfigJson) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  std::ofstream(dir.path("hf") + "/config.json") << "{\"model_type\": \"mixtral\", ";
  expect_clean_error(run_cli("inspect " + quote(dir.path("hf"))), {"config.json", "malformed JSON"});
}

TEST(Cli, ConfigHiddenSizeDisagreesWithTensors) {
  test::TempDir dir;
  test::write_hf_fixture(dir.path("hf"), {});
  std::ifstream in(dir.path("hf") + "/config.json");
  std::string cfg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  cfg.replace(cfg.find("\"hidden_size\": 64"), 17, "\"hidden_size\": 96");
  std::ofstream(dir.path("hf") + "/config.json") << cfg;
  expect_clean_error(run_cli("run -m " + quote(dir.path("hf")) + " -p hi -n 1"),
                     {"model.embed_tokens.weight", "[2048, 64]", "[2048, 96]"});
}

TEST(Cli, GgufCorruptedHeader) {
  test::TempDir dir;
  const std::string path = synth_small(dir);
  auto bytes = test::read_bytes(path);
  bytes[1] = 'X';
  test::write_bytes(path, bytes);
  expect_clean_error(run_cli("run -m " + quote(path) + " -p hi -n 1"), {path, "magic"});
  bytes = test::read_bytes(path);
  bytes[1] = 'G';
  const uint64_t huge = 1ull << 40;
  std::memcpy(bytes.data() + 16, &huge, 8);  // metadata count
  test::write_bytes(path, bytes);
  expect_clean_error(run_cli("inspect " + quote(path)), {path, "metadata count"});
}

TEST(Cli, GgufTensorOffsetsBeyondEnd) {
  test::TempDir dir;
  const std::string path = synth_small(dir);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  expect_clean_error(run_cli("run -m " + quote(path) + " -p hi -n 1"), {path, "beyond the end of the file"});
}

TEST(Cli, MissingFileAndBadFlags) {
  expect_clean_error(run_cli("run -m /nonexistent/model.gguf -p hi"), {"/nonexistent/model.gguf", "no such file"});
  expect_clean_error(run_cli("run -p hi"), {"-m"});
  test::TempDir dir;
  const std::string path = synth_small(dir);
  expect_clean_error(run_cli("run -m " + quote(path) + " -p hi -n abc"), {"-n", "abc"});
  expect_clean_error(run_cli("run -m " + quote(path) + " -p hi --top-p 2"), {"--top-p", "out of range"});
  expect_clean_error(run_cli("synth --layers 1 --dim 60 --ff 128 --type q8_0 -o " + quote(dir.path("x.gguf"))), {"--dim 60"});
  EXPECT_FALSE(std::filesystem::exists(dir.path("x.gguf")));
  EXPECT_EQ(run_cli("frobnicate").exit_code, 1);
}

}  // namespace
}  // namespace mcmoe

namespace mcmoe {
namespace {

// mcmoe chat reads messages line by line (piped here), streams each reply on its own line,
// and takes /clear and /exit.
TEST(ChatCli, PipedConversationWithClearAndExit) {
  const std::string model =
      test::quote(std::string(MCMOE_SOURCE_DIR) + "/models/mixtral-tiny-q4_0.gguf");
  const test::CliResult r = test::run_cli(
      "chat -m " + model + " --temp 0 -n 12",
      "Tell me about the king.\n\n/clear\nTell me about the king.\n/exit\nnever read\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t nl = r.out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  const std::string first = r.out.substr(0, nl);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(r.out, first + "\n" + first + "\n");  // after /clear the same question, the same reply
  EXPECT_NE(r.err.find("conversation cleared"), std::string::npos);
  EXPECT_NE(r.err.find("chat template: plain"), std::string::npos);
}

}  // namespace
}  // namespace mcmoe

namespace mcmoe {
namespace {

// `mcmoe COMMAND --help` prints the command's flag table (the one its parser uses) and exits
// 0, for every command; `mcmoe --help` names every command.
TEST(CliHelp, CommandsPrintTheirFlags) {
  struct Command {
    const char* name;
    bool model_flag;    // takes -m MODEL
    bool has_defaults;  // some flag has a default to show
  };
  const Command commands[] = {
      {"run", true, true},       {"chat", true, true},      {"serve", true, true},
      {"ppl", true, true},       {"bench", true, true},     {"template", true, true},
      {"tokenize", true, false}, {"inspect", false, false}, {"convert", false, true},
      {"synth", false, true},    {"dump", true, true},      {"calibrate", true, true},
      {"quantize", true, true},  {"reduce", true, true},    {"lowrank", true, true},
      {"trace", true, true},     {"cachesim", false, true},
  };
  const test::CliResult usage = test::run_cli("--help");
  EXPECT_EQ(usage.exit_code, 0);
  for (const Command& c : commands) {
    SCOPED_TRACE(c.name);
    EXPECT_NE(usage.out.find(std::string("\n  ") + c.name + " "), std::string::npos) << usage.out;
    const test::CliResult r = test::run_cli(std::string(c.name) + " --help");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(std::string("mcmoe ") + c.name + ": "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("-m MODEL") != std::string::npos, c.model_flag) << r.out;
    EXPECT_EQ(r.out.find("(default: ") != std::string::npos, c.has_defaults) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
  const test::CliResult run = test::run_cli("run -h");
  for (const char* line :
       {"--temp T", "(default: 0.8)", "--expert-cache SIZE|PCT", "--odp-protect F",
        "(default: 0.02)", "--cache-type f32|f16|q8_0", "(default: f16)", "--special"}) {
    EXPECT_NE(run.out.find(line), std::string::npos) << line;
  }
  const test::CliResult serve = test::run_cli("serve --help");
  EXPECT_NE(serve.out.find("--ctx-size T"), std::string::npos);
  EXPECT_NE(serve.out.find("(default: 127.0.0.1)"), std::string::npos);
  const test::CliResult ppl = test::run_cli("ppl --help");
  EXPECT_NE(ppl.out.find("--batch-size N"), std::string::npos);
  EXPECT_NE(ppl.out.find("(default: ctx)"), std::string::npos);
  // The shared calibration flags, with each command's defaults.
  const test::CliResult q = test::run_cli("quantize --help");
  for (const char* line : {"--bits B", "(default: 2.5)", "--seq N", "(default: the statistics')",
                           "--no-search", "--mmap"}) {
    EXPECT_NE(q.out.find(line), std::string::npos) << line;
  }
  const test::CliResult reduce = test::run_cli("reduce --help");
  EXPECT_NE(reduce.out.find("(default: 32)"), std::string::npos) << reduce.out;
  EXPECT_NE(reduce.out.find("--ctx N"), std::string::npos) << reduce.out;
  const test::CliResult cachesim = test::run_cli("cachesim --help");
  EXPECT_NE(cachesim.out.find("--seed-tokens N"), std::string::npos) << cachesim.out;
  // A flag the table does not know is still refused, naming it; --ctx, which the calibrating
  // commands list only to refuse it, points to --seq.
  test::expect_clean_error(test::run_cli("run -m x --no-such-flag"),
                           {"unknown flag --no-such-flag"});
  test::expect_clean_error(test::run_cli("lowrank -m x -f y -o z --rank 4 --ctx 64"),
                           {"the calibration length is --seq"});
}

}  // namespace
}  // namespace mcmoe

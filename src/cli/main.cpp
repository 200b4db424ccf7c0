// mcmoe: command-line front end. Parses flags, prints, shows progress; all model logic is
// in the library. Errors become "error: <message>" on stderr and exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"

namespace {

// One line per command: what it needs and what it does. Every flag, with its default and
// meaning, is in the command's table (CommandSpec), which `mcmoe COMMAND --help` prints.
constexpr const char* kUsage = R"(mcmoe — Mixture-of-Experts models, smaller and faster

usage: mcmoe COMMAND [flags]; `mcmoe COMMAND --help` lists its flags, defaults and meaning

inference:
  run       -m MODEL (-p TEXT | -f FILE)                generate text from a prompt
  chat      -m MODEL                                    interactive chat with the model's template
  serve     -m MODEL [--port 8080]                      OpenAI-compatible HTTP server
  ppl       -m MODEL -f TEXT [--kl-base MODEL]          perplexity, and KL divergence to a base
  bench     -m MODEL                                    prefill and decode speed, with the roofline
  tokenize  -m MODEL (-p TEXT | -f FILE)                token ids of a text
  template  -m MODEL (-p TEXT | --messages FILE.json)   a conversation in the chat template
  (run, chat, serve, ppl, bench: --expert-cache SIZE|PCT reads experts from the file into a
   byte-budgeted cache; --odp prunes low-weight experts online)
models:
  inspect   MODEL [--metadata]                          configuration, tensors, bits per weight
  convert   HF_DIR -o OUT.gguf [--type f16]             Hugging Face directory to GGUF
  convert   MODEL.gguf -o OUT.gguf                      to llama.cpp's layout (merges expanded)
  synth     [--preset NAME | --arch A ...] -o OUT.gguf  random weights in a family's shapes
  dump      -m MODEL (-p TEXT | --ids 1,2) --name NAME  a forward-pass intermediate as JSON
compression:
  calibrate -m MODEL -f TEXT -o STATS.json              routing statistics, quantization errors
            (or --self-generate N: the model writes expert-balanced calibration text itself)
  quantize  -m MODEL --stats STATS.json -o OUT.gguf     MC-MoE mixed-precision quantization
  reduce    -m MODEL -f TEXT --method M -o OUT.gguf     fewer experts: prune or merge
  lowrank   -m MODEL -f TEXT --rank R -o OUT.gguf       experts as low-rank factors + sparse rows
  odp-fit   -m MODEL -f TEXT --kl-budget X -o T.json    ODP thresholds per layer within a KL budget
expert offloading:
  trace     -m MODEL -f TEXT -o TRACE                   record routing over a text
  cachesim  TRACE [--budget 50%]                        replay a trace against cache policies

MODEL is a Hugging Face directory (config.json + *.safetensors + tokenizer) or a GGUF file.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  const std::string cmd = argv[1];
  const mcmoe::cli::Argv args(argv + 2, argv + argc);
  try {
    if (cmd == "run") return mcmoe::cli::cmd_run(args);
    if (cmd == "ppl") return mcmoe::cli::cmd_ppl(args);
    if (cmd == "inspect") return mcmoe::cli::cmd_inspect(args);
    if (cmd == "convert") return mcmoe::cli::cmd_convert(args);
    if (cmd == "synth") return mcmoe::cli::cmd_synth(args);
    if (cmd == "bench") return mcmoe::cli::cmd_bench(args);
    if (cmd == "tokenize") return mcmoe::cli::cmd_tokenize(args);
    if (cmd == "template") return mcmoe::cli::cmd_template(args);
    if (cmd == "dump") return mcmoe::cli::cmd_dump(args);
    if (cmd == "calibrate") return mcmoe::cli::cmd_calibrate(args);
    if (cmd == "quantize") return mcmoe::cli::cmd_quantize(args);
    if (cmd == "trace") return mcmoe::cli::cmd_trace(args);
    if (cmd == "cachesim") return mcmoe::cli::cmd_cachesim(args);
    if (cmd == "lowrank") return mcmoe::cli::cmd_lowrank(args);
    if (cmd == "reduce") return mcmoe::cli::cmd_reduce(args);
    if (cmd == "odp-fit") return mcmoe::cli::cmd_odp_fit(args);
    if (cmd == "serve") return mcmoe::cli::cmd_serve(args);
    if (cmd == "chat") return mcmoe::cli::cmd_chat(args);
    std::fprintf(stderr, "error: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 1;
  } catch (const mcmoe::cli::HelpShown&) {
    return 0;
  } catch (const mcmoe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

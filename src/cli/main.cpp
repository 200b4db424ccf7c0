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

constexpr const char* kUsage = R"(mcmoe — Mixture-of-Experts models, smaller and faster

usage: mcmoe <command> [flags]

commands:
  run       -m MODEL -p PROMPT [-n N] [--temp T --top-k K --top-p P --seed S] [--threads N] [--ctx N]
            [--cache-type f32|f16|q8_0 (default f16)] [--batch-size 512] [--allow-long-context]
            [--special (control tokens in the prompt, e.g. from `mcmoe template`, become their ids)]
  ppl       -m MODEL -f TEXT [--ctx 512] [--max-tokens N] [--threads N] [--kl-base MODEL [--kl-base-cache-type T]]
            [--odp] [--cache-type T] [--batch-size N (default: ctx)] [--allow-long-context]
  tokenize  -m MODEL (-p TEXT | -f FILE)
  template  -m MODEL (-p TEXT [--system TEXT] | --messages FILE.json) [--tools FILE.json] [--no-generation-prompt]
            (the model's chat template applied: GGUF tokenizer.chat_template, HF chat_template, else plain)
  inspect   MODEL
  convert   HF_DIR -o FILE.gguf [--type f16|bf16|f32|q8_0|q4_0]
  convert   MODEL.gguf -o FILE.gguf [--type ...]   (llama.cpp's layout; merged experts expanded)
  synth     --arch mixtral|qwen2moe|qwen3moe|olmoe|deepseek2|glm4moe|gpt-oss|granitemoe --layers L --dim D --ff F
            --experts E --top-k K --vocab V --type q8_0|q4_0|f16 -o FILE.gguf [--heads H --kv-heads H --head-dim D]
            [--shared-ff F --dense-ff F --dense-layers N --q-lora R --kv-lora R --rope-dim D --nope-dim D --v-dim D
             --v3-routing --yarn --rope-theta T --seed S] [--preset NAME: deepseek-v2-lite, deepseek-v3, qwen3-30b-a3b,
             gpt-oss-20b, glm-4.5-air, granite-3.0-1b-a400m, olmoe-1b-7b, mixtral-8x7b; flags given override it]
            [--tokenizer-from MODEL.gguf --routing-from TRACE --routing-noise 0.3]
  bench     -m MODEL [--threads N] [--prompt-tokens 512] [--gen-tokens 128] [--depth N] [--cache-type T] [--text FILE]
            [--batch-size 512]
  (run, ppl and bench also take --expert-cache SIZE|PCT [--cache-policy lfu|lru --prefetch D --fallback M
   --fallback-threshold W --stats ...]: experts read from the file into a byte-budgeted cache)
  dump      -m MODEL (-p TEXT | --ids 1,2,3) --name NAME[.LAYER] [-o FILE.json] [--greedy N]
  calibrate -m MODEL -f TEXT -o STATS.json [--samples 64 --seq 512 --candidates 1,2,3,4 --group 128]
  quantize  -m MODEL --stats STATS.json --bits 2.5 -o OUT.gguf [--alloc pmq|uniform|hessian|frequency|random]
            [--candidates 1,2,3 --global --rtn --act-order --group 128 --attn-bits 4 --router-bits 4
             --shared-bits 4 --embd-type f16|q8_0 --alpha 1 --beta 1.5 --gamma 1 -f TEXT --samples N --seq L]
  trace     -m MODEL -f TEXT -o TRACE [--ctx 512 --max-tokens N --depth 2 --top-m 4]
  cachesim  TRACE [--budget 50%|512MiB] [--policy lru|lfu|lfu-seeded|belady[+prefetch]]
            [--prefetch-depth 1 --prefetch-m 2 --per-layer --layers]
  lowrank   -m MODEL -f TEXT --rank R --sparse-rows S -o OUT.gguf [--type f16|q8_0|f32 --svd plain|whitened
             --samples 64 --seq 512]
  reduce    -m MODEL -f TEXT --method merge|prune|frequency|cluster --keep 0.75 -o OUT.gguf
            [--per-layer adaptive|uniform --samples 32 --seq 512]

  chat      -m MODEL [-n 512 --temp T --top-k K --top-p P --seed S --system TEXT --ctx N --threads N]
            [offloading and ODP flags as run]  interactive chat with the model's template; /clear, /exit
  serve     -m MODEL [--host 127.0.0.1 --port 8080 --parallel 4 --ctx-size T --queue N --api-key KEY --alias NAME
             --batch-size 512 --max-body 4MiB --threads N --cache-type f16] [offloading and ODP flags as run]
            OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/models, /health,
            /apply-template, /tokenize, /metrics, and a chat page at /

MODEL is a Hugging Face directory (config.json + *.safetensors + tokenizer) or a GGUF file.
`mcmoe COMMAND --help` lists a command's flags (run, chat, serve, ppl, bench, template and
tokenize with their defaults and meaning).
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

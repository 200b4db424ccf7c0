#include <cstdio>
#include <filesystem>
#include <fmt/format.h>

#include "api/convert.h"
#include "api/synth.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"

namespace mcmoe::cli {

namespace {
DType parse_type(const std::string& s, std::initializer_list<DType> allowed) {
  const auto t = dtype_from_name(s);
  std::string names;
  for (DType a : allowed) names += (names.empty() ? "" : ", ") + std::string(dtype_name(a));
  if (!t || std::find(allowed.begin(), allowed.end(), *t) == allowed.end()) fail("--type: '{}' not supported (expected one of {})", s, names);
  return *t;
}
}  // namespace

int cmd_convert(const Argv& argv) {
  static const CommandSpec spec{
      "convert",
      "a Hugging Face directory to GGUF, or a GGUF to llama.cpp's layout with merged experts "
      "expanded (mcmoe convert HF_DIR|MODEL.gguf -o OUT.gguf)",
      {{"-o", "OUT.gguf", "", "the output file"},
       {"--type", "f32|f16|bf16|q8_0|q4_0", "f16; a GGUF input keeps its types",
        "type of the weight matrices"}}};
  const Args a(argv, spec);
  if (a.positional().size() != 1) fail("convert: expected one HF_DIR or GGUF argument, found {}", a.positional().size());
  const std::string out = a.required("-o", "output file");
  api::ConvertOptions o;
  o.type = parse_type(a.str("--type", "f16"), {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0});
  // A GGUF input is re-exported in llama.cpp's layout (merged experts expanded), keeping
  // its types unless --type asks for one.
  const bool from_gguf = !std::filesystem::is_directory(a.positional()[0]);
  o.keep_types = from_gguf && !a.has("--type");
  Progress progress("convert");
  o.progress = [&](size_t done, size_t total) {
    progress.update(static_cast<int64_t>(done), static_cast<int64_t>(total));
  };
  if (from_gguf) {
    api::export_llama_gguf(a.positional()[0], out, o);
  } else {
    api::convert_hf_to_gguf(a.positional()[0], out, o);
  }
  progress.finish();
  std::printf("wrote %s (%s)\n", out.c_str(), o.keep_types ? "types kept" : std::string(dtype_name(o.type)).c_str());
  return 0;
}

int cmd_synth(const Argv& argv) {
  // Shape defaults are SynthOptions' (api/synth.h); a --preset replaces them.
  static const CommandSpec spec{
      "synth",
      "a random-weight model of a family's shapes, for tests and benchmarks (shape defaults "
      "as below, or a --preset's)",
      {{"-o", "OUT.gguf", "", "the output file"},
       {"--preset", "NAME", "",
        "a released model's shapes: deepseek-v2-lite, deepseek-v3, qwen3-30b-a3b, gpt-oss-20b, "
        "glm-4.5-air, granite-3.0-1b-a400m, olmoe-1b-7b, mixtral-8x7b (flags given override it)"},
       {"--arch", "ARCH", "mixtral",
        "mixtral, qwen2moe, qwen3moe, olmoe, deepseek2, glm4moe, gpt-oss or granitemoe"},
       {"--layers", "L", "2", "layers"},
       {"--dim", "D", "256", "hidden size"},
       {"--ff", "F", "512", "routed expert width"},
       {"--experts", "E", "8", "routed experts per layer"},
       {"--top-k", "K", "2", "experts per token"},
       {"--vocab", "V", "512", "vocabulary size"},
       {"--heads", "H", "dim / 64", "attention heads"},
       {"--kv-heads", "H", "heads / 4; MLA: heads", "key/value heads"},
       {"--head-dim", "D", "dim / heads", "head dimension"},
       {"--shared-ff", "F", "0", "shared expert width (qwen2moe, deepseek2, glm4moe; 0: none)"},
       {"--dense-layers", "N", "0", "leading dense layers (deepseek2, glm4moe)"},
       {"--dense-ff", "F", "4 x dim", "MLP width of the leading dense layers"},
       {"--q-lora", "R", "0", "MLA (deepseek2): query compression rank (0: none)"},
       {"--kv-lora", "R", "512", "MLA: key/value compression rank"},
       {"--rope-dim", "D", "64", "MLA: rotary dimensions per head"},
       {"--nope-dim", "D", "128", "MLA: non-rotary query/key dimensions per head"},
       {"--v-dim", "D", "128", "MLA: value dimensions per head"},
       {"--v3-routing", nullptr, "",
        "deepseek2: V3's sigmoid scores + bias, 8 groups keep 4, scale 2.5"},
       {"--yarn", nullptr, "", "deepseek2: DeepSeek's YaRN (factor 40 from 4096)"},
       {"--rope-theta", "T", "the family's usual base", "RoPE base"},
       {"--type", "f32|f16|bf16|q8_0|q4_0|mxfp4", "q8_0", "type of the weight matrices"},
       {"--seed", "S", "1", "weight seed"},
       {"--tokenizer-from", "MODEL.gguf", "",
        "this GGUF's vocabulary instead of a filler one (--vocab becomes its size)"},
       {"--routing-from", "TRACE", "",
        "route like the model of this `mcmoe trace` (needs --tokenizer-from; softmax-routed "
        "families)"},
       {"--routing-noise", "X", "0.3",
        "with --routing-from: noise each layer adds to the routing features"},
       {"--routing-layers", "stretch|cycle", "stretch",
        "with --routing-from, deeper than the trace: adjacent blocks of layers imitate one "
        "traced layer (stretch), or layer l imitates traced layer l mod its layers (cycle)"}}};
  const Args a(argv, spec);
  // A preset sets every shape of a released model; any flag given overrides it (e.g.
  // --layers 4 for a reduced-depth copy).
  api::SynthOptions o = a.has("--preset") ? api::synth_preset(a.str("--preset", "")) : api::SynthOptions{};
  auto int_flag = [&](const char* flag, int& field, long long min, long long max) {
    field = static_cast<int>(a.integer(flag, field, min, max));
  };
  o.arch = a.str("--arch", o.arch);
  int_flag("--layers", o.layers, 1, 4096);
  int_flag("--dim", o.dim, 1, 1 << 20);
  int_flag("--ff", o.ff, 1, 1 << 22);
  int_flag("--experts", o.experts, 1, 4096);
  int_flag("--top-k", o.top_k, 1, 4096);
  int_flag("--vocab", o.vocab, 1, 1 << 22);
  int_flag("--heads", o.heads, 0, 4096);
  int_flag("--kv-heads", o.kv_heads, 0, 4096);
  int_flag("--head-dim", o.head_dim, 0, 1 << 16);
  int_flag("--shared-ff", o.shared_ff, 0, 1 << 22);
  int_flag("--dense-ff", o.dense_ff, 0, 1 << 22);
  int_flag("--dense-layers", o.dense_layers, 0, 4096);
  int_flag("--q-lora", o.q_lora, 0, 1 << 16);
  int_flag("--kv-lora", o.kv_lora, 1, 1 << 16);
  int_flag("--rope-dim", o.rope_dim, 2, 1 << 16);
  int_flag("--nope-dim", o.nope_dim, 1, 1 << 16);
  int_flag("--v-dim", o.v_dim, 1, 1 << 16);
  o.rope_theta = static_cast<float>(a.number("--rope-theta", o.rope_theta, 0, 1e12));
  if (a.has("--v3-routing")) o.v3_routing = true;
  if (a.has("--yarn")) o.yarn = true;
  o.seed = static_cast<uint64_t>(a.integer("--seed", 1, 0, INT64_MAX));
  o.tokenizer_from = a.str("--tokenizer-from", "");
  o.routing_from = a.str("--routing-from", "");
  o.routing_noise = static_cast<float>(a.number("--routing-noise", 0.3, 0, 10));
  o.routing_layers = a.str("--routing-layers", "stretch");
  o.type = parse_type(a.str("--type", "q8_0"), {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::MXFP4});
  const std::string out = a.required("-o", "output file");
  Progress progress("synth");
  o.progress = [&](size_t done, size_t total) {
    progress.update(static_cast<int64_t>(done), static_cast<int64_t>(total));
  };
  api::synth_model(o, out);
  progress.finish();
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace mcmoe::cli

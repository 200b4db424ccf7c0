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
  const Args a(argv, {"-o", "--type"}, {});
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
  const Args a(argv, {"--arch", "--layers", "--dim", "--ff", "--experts", "--top-k", "--vocab", "--type", "-o", "--heads", "--kv-heads", "--seed", "--shared-ff", "--tokenizer-from", "--routing-from", "--routing-noise"}, {});
  api::SynthOptions o;
  o.arch = a.str("--arch", "mixtral");
  o.layers = static_cast<int>(a.integer("--layers", 2, 1, 4096));
  o.dim = static_cast<int>(a.integer("--dim", 256, 1, 1 << 20));
  o.ff = static_cast<int>(a.integer("--ff", 512, 1, 1 << 22));
  o.experts = static_cast<int>(a.integer("--experts", 8, 1, 4096));
  o.top_k = static_cast<int>(a.integer("--top-k", 2, 1, 4096));
  o.vocab = static_cast<int>(a.integer("--vocab", 512, 1, 1 << 22));
  o.heads = static_cast<int>(a.integer("--heads", 0, 0, 4096));
  o.kv_heads = static_cast<int>(a.integer("--kv-heads", 0, 0, 4096));
  o.shared_ff = static_cast<int>(a.integer("--shared-ff", 0, 0, 1 << 22));
  o.seed = static_cast<uint64_t>(a.integer("--seed", 1, 0, INT64_MAX));
  o.tokenizer_from = a.str("--tokenizer-from", "");
  o.routing_from = a.str("--routing-from", "");
  o.routing_noise = static_cast<float>(a.number("--routing-noise", 0.3, 0, 10));
  o.type = parse_type(a.str("--type", "q8_0"), {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0});
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

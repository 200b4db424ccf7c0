// mcmoe quantize: MC-MoE mixed-precision quantization of a model (compress/quantize_model.h),
// or with --format gguf a llama.cpp GGUF whose per-tensor ggml types come from an exact
// allocation over measured errors (compress/quantize_gguf.h).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "cli/commands.h"
#include "cli/common.h"
#include "compress/quantize_gguf.h"
#include "compress/quantize_model.h"
#include "core/error.h"

namespace mcmoe::cli {

namespace {

// Calibration windows --kl-cost measures by default (the value every §11 point was measured at).
constexpr int kDefaultKlCostWindows = 8;

std::vector<DType> parse_types(const std::string& list) {
  std::vector<DType> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    std::string lower = item;  // llama.cpp spells them q4_K, mcmoe q4_k: either is accepted
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    const auto t = dtype_from_name(lower);
    if (!t) fail("--types: unknown type '{}'", item);
    out.push_back(*t);
  }
  return out;
}

int quantize_to_gguf(const Args& a) {
  const std::string path = a.required("-m", "model path");
  const std::string out = a.required("-o", "output GGUF file");
  compress::GgufQuantOptions o;
  o.types_from = a.str("--types-from", "");
  if (a.has("--types")) o.types = parse_types(a.str("--types", ""));
  if (a.has("--size")) o.size = parse_bytes(a.str("--size", ""), "--size");
  if (a.has("--tensor-type")) {
    std::stringstream ss(a.str("--tensor-type", ""));
    for (std::string item; std::getline(ss, item, ',');) {
      const size_t eq = item.rfind('=');
      if (eq == std::string::npos || eq == 0) fail("--tensor-type '{}': expected REGEX=TYPE", item);
      o.tensor_types.emplace_back(item.substr(0, eq), parse_types(item.substr(eq + 1)).at(0));
    }
  }
  if (a.has("--bits")) o.bits = a.number("--bits", 4.0, 1.0, 32.0);
  if (!o.types_from.empty() && (a.has("--size") || a.has("--bits") || a.has("--types"))) {
    fail("--types-from fixes every tensor's type: it takes no --size, --bits or --types");
  }
  for (const char* f : {"--alloc",
                        "--candidates",
                        "--global",
                        "--no-top-two",
                        "--alpha",
                        "--beta",
                        "--gamma",
                        "--seed",
                        "--act-order",
                        "--no-search",
                        "--affinity-hessian",
                        "--expert-prior",
                        "--group",
                        "--attn-bits",
                        "--router-bits",
                        "--shared-bits",
                        "--embd-type",
                        "--q8-layers",
                        "--freq-floor",
                        "--worst-case",
                        "--layer-bits"}) {
    if (a.has(f)) fail("{} applies to --format mq only", f);
  }
  o.sample_rows = a.number("--sample-rows", 1.0, 0.0, 1.0);
  o.gptq = !a.has("--rtn");
  o.damp = a.number("--damp", 0.01, 0, 1);
  // Measured costs are the default wherever there is an allocation and calibration text: at
  // every preset point on both test models they gave 23-51% lower KL than the output-error
  // proxy (bench/RESULTS.md §11), for about a fifth more time. --kl-cost 0 turns them off.
  const bool allocates =
      (a.has("--size") || a.has("--bits")) && !a.has("--imatrix") && !a.has("--types-from");
  o.kl_cost_windows =
      static_cast<int>(a.integer("--kl-cost", allocates ? kDefaultKlCostWindows : 0, 0, 1 << 20));
  const std::string codebook = a.str("--codebook-rounding", "block");
  if (codebook != "block" && codebook != "gptq")
    fail("--codebook-rounding {}: expected block or gptq", codebook);
  o.codebook_gptq = codebook == "gptq";
  o.threads = threads_flag(a);
  o.imatrix = a.str("--imatrix", "");
  o.save_imatrix = a.str("--save-imatrix", "");
  std::string text_path = a.str("-f", "");
  if (!o.imatrix.empty()) {
    for (const char* f : {"-f", "--stats", "--save-imatrix", "--samples", "--seq"}) {
      if (a.has(f)) fail("--imatrix replaces the calibration text: it takes no {}", f);
    }
  }
  int samples = 64, seq = 512;
  auto m = load_model_verbose(path, load_options_flags(a));
  if (a.has("--stats")) {
    const std::string stats_path = a.str("--stats", "");
    const compress::CalibrationStats stats = compress::load_stats(stats_path);
    compress::check_stats_match(stats, *m, stats_path);
    if (text_path.empty()) text_path = stats.text;
    samples = stats.samples;
    seq = stats.seq;
  }
  if (text_path.empty() && o.imatrix.empty())
    fail(
        "--format gguf needs calibration text: -f TEXT (or --stats with its text), or --imatrix "
        "FILE");
  o.sampling.samples = static_cast<int>(a.integer("--samples", samples, 1, 1 << 20));
  o.sampling.seq = static_cast<int>(a.integer("--seq", seq, 2, 1 << 20));
  const std::string text = o.imatrix.empty() ? read_text_file(text_path) : std::string();
  Progress progress("quantize");
  o.progress = [&](int step, int steps, const std::string& what) {
    progress.update(step, steps, what);
  };
  const compress::GgufQuantReport r = compress::quantize_gguf(*m, text, text_path, o, out);
  progress.finish();
  for (const std::string& note : r.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  const bool kl_cost = o.kl_cost_windows > 0;
  std::printf("%-32s %10s %8s %8s %12s %12s %s  candidates (type: bits/weight, error)\n", "tensor",
              "params", "type", "bpw", "error", "energy",
              kl_cost ? "   KL alone at  cost (nats)" : "");
  for (const auto& t : r.tensors) {
    std::printf("%-32s %10lld %8s %8.4f %12.5g %12.5g  ", t.name.c_str(),
                static_cast<long long>(t.params), std::string(dtype_name(t.type)).c_str(),
                8.0 * t.bytes / t.params, t.error, t.energy);
    if (kl_cost) {
      if (t.kl >= 0)
        std::printf("%10.4g %-8s %10.4g  ", t.kl, std::string(dtype_name(t.kl_type)).c_str(),
                    t.cost);
      else
        std::printf("%10s %-8s %10.4g  ", "-", "", t.cost);
    }
    for (const auto& c : t.candidates)
      std::printf(" %s: %.3f, %.4g", std::string(dtype_name(c.type)).c_str(),
                  8.0 * c.bytes / t.params, c.error);
    std::printf("\n");
  }
  if (r.budget > 0) {
    std::printf("budget %.4f MiB for the quantized tensors, used %.4f MiB\n", r.budget / 1048576.0,
                r.allocated_bytes / 1048576.0);
  }
  std::printf("quantized tensors: %.4f bits/weight over %lld weights, summed output error %.6g\n",
              r.bits_per_weight(), static_cast<long long>(r.allocated_params), r.total_error);
  if (kl_cost)
    std::printf("predicted KL (the chosen types' KL-scaled costs, assumed to add): %.6g nats\n",
                r.total_cost);
  std::printf(
      "wrote %s: %llu bytes (%.2f MiB) in %.1f s (statistics, candidates and allocation %.1f s",
      out.c_str(), static_cast<unsigned long long>(r.file_bytes), r.file_bytes / 1048576.0,
      r.seconds, r.measure_seconds);
  if (o.sample_rows < 1) std::printf("; the chosen types over every row %.1f s", r.finish_seconds);
  std::printf("; quantizing and measuring matrices %.1f s)\n", r.quantize_seconds);
  return 0;
}

}  // namespace

int cmd_quantize(const Argv& argv) {
  static const CommandSpec spec{
      "quantize", "MC-MoE mixed-precision quantization: expert bit allocation, then GPTQ",
      with_groups(
          {kModelFlag,
           {"--stats", "STATS.json", "",
            "calibration statistics from `mcmoe calibrate` (optional with --format gguf)"},
           {"-o", "OUT.gguf", "", "the quantized model"},
           {"--format", "mq|gguf", "mq",
            "mq: mcmoe's per-expert formats; gguf: llama.cpp's layout and ggml's types, one type "
            "per tensor"},
           {"--bits", "B", "2.5",
            "target average bits per routed-expert weight (--format gguf: bits per weight of the "
            "quantized "
            "tensors, scales included)"},
           {"--size", "BYTES", "",
            "--format gguf: the whole file's size budget (K, M, G suffixes: powers of 1024)"},
           {"--types", "T,T,..", "q2_K,q3_K,q4_K,q5_K,q6_K,q8_0",
            "--format gguf: the candidate types of every tensor"},
           {"--tensor-type", "RE=T,..", "",
            "--format gguf: tensors whose names match the regex RE take type T (as "
            "llama-quantize's flag); the "
            "rest are allocated"},
           {"--imatrix", "FILE", "",
            "--format gguf: llama.cpp's importance matrix (llama-imatrix) instead of calibration "
            "text: "
            "round-to-nearest weighted by it, errors under a diagonal Hessian"},
           {"--save-imatrix", "FILE", "",
            "--format gguf: also write the calibration's importance matrix in llama.cpp's format "
            "(for "
            "llama-quantize --imatrix)"},
           {"--kl-cost", "N", "8 with --size or --bits and calibration text, else 0",
            "--format gguf: calibrate the allocation's costs by measurement: each tensor alone at "
            "the type nearest the budget, its KL to the unquantized model on N calibration "
            "windows (one forward pass per tensor and window); 0: the output errors alone"},
           {"--sample-rows", "F", "1",
            "--format gguf: measure each decoder matrix's candidates on a random share F of its "
            "rows (at least 64), then quantize only the chosen type in full, in a second pass: "
            "about n·F + 1 quantizations instead of n for n candidates (bench/RESULTS.md §11)"},
           {"--codebook-rounding", "block|gptq", "block",
            "--format gguf: iq2_xxs / iq3_xxs candidates rounded block by block (as ggml, weighted "
            "by diag(H)) or by GPTQ choosing each 8 weights' grid entries together"},
           {"--types-from", "FILE.gguf", "",
            "--format gguf: give every tensor the type it has in FILE (no allocation; compares "
            "rounding at equal "
            "types)"},
           {"--alloc", "METHOD", "pmq",
            "bit allocation over experts: pmq, uniform, hessian, frequency or random"},
           {"--candidates", "1,2,3", "2,3 (1,2,3 below 2 bits)", "expert bit-widths to allocate"},
           {"--global", nullptr, "",
            "one bit budget across all layers (weighted by parameters), not one per layer"},
           {"--no-top-two", nullptr, "",
            "drop the rule of at least one expert at each of the two widest widths per layer"},
           {"--alpha", "A", "1", "pmq / frequency: exponent of an expert's activation frequency"},
           {"--layer-bits", "L=B,...", "",
            "pmq / frequency / random: layer L's experts average B bits; the other MoE layers "
            "share the rest of --bits' budget"},
           {"--freq-floor", "F", "0",
            "pmq / frequency: an expert counts as used at least F times an even share of its "
            "layer's picks (0..1), so experts the calibration text rarely reached are not starved"},
           {"--worst-case", "S.json,..", "",
            "pmq / frequency / hessian: statistics of the same model on other text; the plan "
            "minimises its largest cost, over --stats and these, relative to each one's own "
            "best plan"},
           {"--beta", "B", "1.5", "pmq: exponent of its mean routing weight"},
           {"--gamma", "G", "1", "pmq: exponent of its reconstruction error"},
           {"--seed", "S", "1", "seed of the random allocation"},
           {"--rtn", nullptr, "", "round to nearest instead of GPTQ (no calibration text read)"},
           {"--act-order", nullptr, "", "GPTQ: quantize columns by decreasing Hessian diagonal"},
           {"--no-search", nullptr, "", "no least-squares clip search for each group's grid"},
           {"--damp", "X", "0.1 (--format gguf: 0.01)",
            "GPTQ dampening, a fraction of the Hessian's mean diagonal added to it: higher fits "
            "the calibration text less closely (bench/RESULTS.md §13)"},
           {"--affinity-hessian", nullptr, "",
            "GPTQ: weight each token in an expert's Hessian by the gate value it got (MoEQuant's "
            "AGQ)"},
           {"--expert-prior", "N", "0",
            "GPTQ: add the layer's pooled routed tokens, worth N tokens, to every expert's "
            "Hessian"},
           {"--group", "N", "128", "quantization group size: 32, 64 or 128"},
           {"--attn-bits", "N", "4", "width of the attention projections"},
           {"--router-bits", "N", "8",
            "width of the routers (0: kept as stored); below 8 bits they flip routing "
            "(bench/RESULTS.md §13)"},
           {"--shared-bits", "N", "--attn-bits", "width of shared experts and dense layers' MLPs"},
           {"--embd-type", "f16|q8_0|f32", "f16", "type of the token embeddings and output head"},
           {"--q8-layers", "L,...", "",
            "ablation: every matrix of these decoder layers at 8 bits, experts included (the KL "
            "a layer's quantization causes, bench/RESULTS.md §13)"},
           kThreadsFlag},
          {calibration_flag_table({.text = "the statistics' text",
                                   .samples = "the statistics'",
                                   .seq = "the statistics'"}),
           {kCalibrationCtxFlag},
           load_flag_table()})};
  const Args a(argv, spec);
  calibration_length_flag(a);  // refuses --ctx, the other commands' name for a context
  const std::string format = a.str("--format", "mq");
  if (format == "gguf") return quantize_to_gguf(a);
  if (format != "mq") fail("--format {}: expected mq or gguf", format);
  for (const char* f : {"--size", "--types", "--types-from", "--tensor-type", "--kl-cost",
                        "--codebook-rounding", "--sample-rows"}) {
    if (a.has(f)) fail("{} applies to --format gguf only", f);
  }
  const std::string path = a.required("-m", "model path");
  const std::string stats_path = a.required("--stats", "calibration statistics (from mcmoe calibrate)");
  const std::string out = a.required("-o", "output GGUF file");
  compress::QuantizeModelOptions o;
  o.alloc.method = compress::alloc_method_from_name(a.str("--alloc", "pmq"));
  o.alloc.avg_bits = a.number("--bits", 2.5, 0.5, 8);
  // {2,3} from 2 bits up: where the calibration misjudges an expert, a 1-bit one (sign x
  // mean |w|) costs more than PMQ's ranking gains; {2,3} beat {1,2,3} at 2.5 bits in every
  // (model, calibration text, evaluation text) pair of bench/RESULTS.md §13. Below 2 bits
  // the budget needs 1-bit experts.
  o.alloc.candidates = parse_int_list(
      a.str("--candidates", o.alloc.avg_bits >= 2 ? "2,3" : "1,2,3"), "--candidates");
  o.alloc.alpha = a.number("--alpha", 1.0, 0, 10);
  o.alloc.beta = a.number("--beta", 1.5, 0, 10);
  o.alloc.gamma = a.number("--gamma", 1.0, 0, 10);
  o.alloc.freq_floor = a.number("--freq-floor", 0.0, 0, 1);
  if (a.has("--layer-bits")) {
    std::stringstream ss(a.str("--layer-bits", ""));
    for (std::string item; std::getline(ss, item, ',');) {
      const size_t eq = item.find('=');
      int layer = -1;
      double bits = 0;
      try {
        if (eq == std::string::npos) throw std::invalid_argument(item);
        size_t used = 0;
        layer = std::stoi(item.substr(0, eq), &used);
        if (used != eq) throw std::invalid_argument(item);
        bits = std::stod(item.substr(eq + 1), &used);
        if (used != item.size() - eq - 1) throw std::invalid_argument(item);
      } catch (const std::exception&) {
        fail("--layer-bits '{}': expected LAYER=BITS, e.g. 0=3", item);
      }
      if (!o.alloc.layer_bits.emplace(layer, bits).second)
        fail("--layer-bits: layer {} given twice", layer);
    }
  }
  o.alloc.global = a.has("--global");
  o.alloc.require_top_two = !a.has("--no-top-two");
  o.alloc.seed = static_cast<uint64_t>(a.integer("--seed", 1, 0, INT64_MAX));
  o.gptq = !a.has("--rtn");
  o.act_order = a.has("--act-order");
  o.grid_search = !a.has("--no-search");
  o.damp = a.number("--damp", compress::QuantizeModelOptions{}.damp, 0, 1);
  o.affinity_hessian = a.has("--affinity-hessian");
  o.expert_prior = a.number("--expert-prior", 0, 0, 1e9);
  if ((o.affinity_hessian || o.expert_prior > 0) && !o.gptq)
    fail("--affinity-hessian and --expert-prior shape GPTQ's Hessians; --rtn reads none");
  o.group = a.integer("--group", 128, 32, 128);
  o.attn_bits = static_cast<int>(a.integer("--attn-bits", 4, 1, 8));
  o.router_bits = static_cast<int>(a.integer("--router-bits", 8, 0, 8));
  // Shared experts and dense MLPs run for every token, like attention: its width by default.
  o.shared_bits = static_cast<int>(a.integer("--shared-bits", o.attn_bits, 1, 8));
  const std::string embd = a.str("--embd-type", "f16");
  const auto embd_type = dtype_from_name(embd);
  if (!embd_type) fail("--embd-type: unknown type '{}' (expected f16, q8_0 or f32)", embd);
  o.embd_type = *embd_type;
  o.threads = threads_flag(a);
  if (a.has("--q8-layers")) o.q8_layers = parse_int_list(a.str("--q8-layers", ""), "--q8-layers");

  const compress::CalibrationStats stats = compress::load_stats(stats_path);
  const std::vector<std::string> domain_paths =
      a.has("--worst-case") ? split_list(a.str("--worst-case", ""), "--worst-case")
                            : std::vector<std::string>{};
  for (const std::string& p : domain_paths) o.other_domains.push_back(compress::load_stats(p));
  o.sampling.samples = static_cast<int>(a.integer("--samples", stats.samples, 1, 1 << 20));
  o.sampling.seq = static_cast<int>(a.integer("--seq", stats.seq, 2, 1 << 20));
  const std::string text_path = a.str("-f", stats.text);
  auto m = load_model_verbose(path, load_options_flags(a));
  compress::check_stats_match(stats, *m, stats_path);
  for (size_t d = 0; d < domain_paths.size(); ++d)
    compress::check_stats_match(o.other_domains[d], *m, domain_paths[d]);
  const std::string text = o.gptq ? read_text_file(text_path) : std::string();
  Progress progress("quantize");
  o.progress = [&](int layer, int n_layer, const std::string& what) {
    progress.update(layer, n_layer, layer < n_layer ? fmt::format("layer {} {}", layer, what) : what);
  };
  const compress::QuantizeReport r = compress::quantize_model(*m, stats, text, text_path, o, out);
  progress.finish();
  for (const std::string& note : r.plan.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::printf("plan (%s, target %.3g bits, average %.4f):\n", compress::alloc_method_name(o.alloc.method),
              o.alloc.avg_bits, r.plan.average());
  for (size_t l = 0; l < r.plan.bits.size(); ++l) {
    std::printf("  layer %2zu:", l);
    if (r.plan.bits[l].empty()) std::printf(" dense, no routed experts");
    for (int b : r.plan.bits[l]) std::printf(" %d", b);
    std::printf("\n");
  }
  std::printf("bits per role (scales and mins included):\n");
  for (const auto& [role, rr] : r.roles) {
    const std::string asked = role == model::TensorRole::RoutedExpert
                                  ? fmt::format("plan {:.4g}", r.plan.average())
                              : rr.bits > 0 ? fmt::format("{} bits", rr.bits)
                                            : std::string("as stored");
    std::printf("  %-14s %-11s %8.4f bits/weight  %lld weights\n", model::role_name(role),
                asked.c_str(), rr.bits_per_weight(), static_cast<long long>(rr.params));
  }
  std::printf("experts %.4f bits/weight, decoder linears %.4f bits/weight (scales and mins included)\n",
              r.expert_bits, r.linear_bits);
  std::printf("wrote %s: %.2f MiB in %.1f s (%.3f s per million quantized parameters)\n", out.c_str(),
              r.file_bytes / 1048576.0, r.seconds, r.seconds / (r.linear_params / 1e6));
  return 0;
}

}  // namespace mcmoe::cli

#include "cli/common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <variant>

#include "api/generate.h"
#include "cli/offload_flags.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::cli {

model::LoadOptions load_options_flags(const Args& a) {
  if (a.has("--mmap") && a.has("--no-mmap")) fail("--mmap and --no-mmap exclude each other");
  model::LoadOptions o;
  if (a.has("--mmap")) o.memory = model::LoadOptions::Memory::kMap;
  if (a.has("--no-mmap")) o.memory = model::LoadOptions::Memory::kRead;
  return o;
}

namespace {

// The library's status lines (api::OpenOptions::log) go to stderr.
void log_to_stderr(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace

std::unique_ptr<model::Model> load_model_verbose(const std::string& path, const model::LoadOptions& o) {
  return api::load_model(path, o, log_to_stderr);
}

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

int threads_flag(const Args& a) { return static_cast<int>(a.integer("--threads", default_threads(), 1, 1024)); }

std::string read_text_file(const std::string& path) {
  std::ifstream in = open_regular_file(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

DType cache_type_flag(const Args& a, const std::string& flag) {
  // f16 by default: its KL to an f32 cache is ~1e-6 nats on WikiText-2 at 4k context
  // (bench/RESULTS.md §8), and it halves the cache's bytes and decode attention's reads.
  const std::string name = a.str(flag, "f16");
  const auto t = dtype_from_name(name);
  if (!t || (*t != DType::F32 && *t != DType::F16 && *t != DType::Q8_0)) {
    fail("{} {}: expected f32, f16 or q8_0", flag, name);
  }
  return *t;
}

void calibration_length_flag(const Args& a) {
  if (a.has("--ctx")) {
    fail(
        "--ctx: the calibration length is --seq in calibrate, quantize, reduce and lowrank (--ctx "
        "is a context "
        "window in run, ppl and trace)");
  }
}

FlagTable calibration_flag_table(const CalibrationDefaults& d) {
  return {
      {"-f", "TEXT", d.text, "calibration text file"},
      {"--samples", "N", d.samples, "calibration windows, spread evenly over the text"},
      {"--seq", "N", d.seq, "tokens per calibration window (BOS included)"},
  };
}

FlagTable session_flag_table(const char* batch_default) {
  return {
      kThreadsFlag,
      {"--batch-size", "N", batch_default,
       "prefill chunk: tokens per forward pass (bounds the scratch memory)"},
      {"--cache-type", "f32|f16|q8_0", "f16", "KV cache element type"},
      {"--allow-long-context", nullptr, "", "allow a context beyond the model's trained length"},
  };
}

const FlagTable& sampling_flag_table() {
  static const FlagTable t = {
      {"--temp", "T", "0.8", "sampling temperature (0: greedy)"},
      {"--top-k", "K", "40", "sample among the K most likely tokens (0: all)"},
      {"--top-p", "P", "0.95", "nucleus sampling threshold"},
      {"--seed", "S", "0", "sampling seed"},
  };
  return t;
}

api::SamplerParams sampler_params(const Args& a) {
  api::SamplerParams sp;
  sp.temperature = static_cast<float>(a.number("--temp", 0.8, 0, 100));
  sp.top_k = static_cast<int>(a.integer("--top-k", 40, 0, 1 << 24));
  sp.top_p = static_cast<float>(a.number("--top-p", 0.95, 0, 1));
  sp.seed = static_cast<uint64_t>(a.integer("--seed", 0, 0, INT64_MAX));
  return sp;
}

const FlagTable& odp_flag_table() {
  static const FlagTable t = {
      {"--odp", nullptr, "", "online dynamic pruning of low-weight experts (MC-MoE)"},
      {"--odp-mu", "X", "the file's mcmoe.odp.mu", "a fixed pruning threshold"},
      {"--odp-thresholds", "FILE", "", "per-layer thresholds from mcmoe odp-fit (a KL budget)"},
      {"--odp-layers", "0,5,7", "all", "prune only in these layers"},
      {"--odp-protect", "F", "0.02", "share of prefill tokens protected from pruning"},
  };
  return t;
}

const FlagTable& load_flag_table() {
  static const FlagTable t = {
      {"--mmap", nullptr, "", "map the file (pages in on demand)"},
      {"--no-mmap", nullptr, "",
       "read the file into memory (default: read files of 64 MiB up to half of free memory, map "
       "the rest)"},
  };
  return t;
}

FlagTable with_groups(FlagTable own, std::initializer_list<FlagTable> groups) {
  for (const FlagTable& g : groups) own.insert(own.end(), g.begin(), g.end());
  return own;
}

model::SessionOptions session_options(const Args& a, int ctx, int default_batch) {
  model::SessionOptions so;
  so.n_ctx = ctx;
  so.n_threads = threads_flag(a);
  so.n_batch = static_cast<int>(a.integer("--batch-size", default_batch, 1, 1 << 20));
  so.cache_type = cache_type_flag(a);
  return so;
}

api::OpenOptions open_options(const Args& a, const std::string& path, int ctx, int default_batch) {
  api::OpenOptions o;
  o.path = path;
  o.load = load_options_flags(a);
  o.offload = offload_spec(a);
  o.odp = odp_spec(a);
  o.session = session_options(a, ctx, default_batch);
  o.allow_long_context = a.has("--allow-long-context");
  o.log = log_to_stderr;
  return o;
}

std::vector<int32_t> prompt_ids(const model::Model& m, const std::string& text) {
  return api::prompt_tokens(m.tokenizer(), text, false);
}

Progress::Progress(std::string label) : label_(std::move(label)), tty_(::isatty(2)) {}

void Progress::update(int64_t done, int64_t total, const std::string& extra) {
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  if (tty_) {
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r%s [%s%s] %lld/%lld %s", label_.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), extra.c_str());
    std::fflush(stderr);
    return;
  }
  const int decile = static_cast<int>(frac * 10);
  if (decile != last_decile_) {
    last_decile_ = decile;
    std::fprintf(stderr, "%s %lld/%lld %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), extra.c_str());
  }
}

void Progress::finish(const std::string& extra) {
  if (tty_) std::fprintf(stderr, "\n");
  if (!extra.empty()) std::fprintf(stderr, "%s %s\n", label_.c_str(), extra.c_str());
}

}  // namespace mcmoe::cli

namespace mcmoe::cli {

std::vector<std::string> split_list(const std::string& s, const std::string& flag) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) fail("{}: empty item in '{}'", flag, s);
    out.push_back(item);
  }
  if (out.empty() || s.ends_with(","))
    fail("{}: expected a comma-separated list, found '{}'", flag, s);
  return out;
}

std::vector<int> parse_int_list(const std::string& s, const std::string& flag) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      out.push_back(std::stoi(item, &pos));
      if (pos != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail("{}: '{}' is not a comma-separated list of integers", flag, s);
    }
  }
  if (out.empty()) fail("{}: empty list", flag);
  return out;
}

api::OdpSpec odp_spec(const Args& a) {
  api::OdpSpec o;
  const bool any = a.has("--odp-mu") || a.has("--odp-layers") || a.has("--odp-protect") ||
                   a.has("--odp-thresholds");
  if (!a.has("--odp")) {
    if (any) fail("--odp-mu / --odp-thresholds / --odp-layers / --odp-protect need --odp");
    return o;
  }
  o.on = true;
  if (a.has("--odp-mu")) o.mu = static_cast<float>(a.number("--odp-mu", 0.5, 0, 1));
  o.thresholds_file = a.str("--odp-thresholds", "");
  if (a.has("--odp-layers")) o.layers = parse_int_list(a.str("--odp-layers", ""), "--odp-layers");
  o.protect_fraction = a.number("--odp-protect", 0.02, 0, 1);
  return o;
}

void print_odp_summary(const moe::OdpCounters& c) {
  std::fprintf(stderr, "odp: pruned %lld of %lld expert activations (%.2f%%), %lld prefill tokens protected\n",
               static_cast<long long>(c.pruned), static_cast<long long>(c.picks), 100.0 * c.pruned_fraction(),
               static_cast<long long>(c.protected_tokens));
}

}  // namespace mcmoe::cli

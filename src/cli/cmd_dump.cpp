// Dumps one named intermediate of the forward pass as JSON, for comparison with a reference
// (e.g. moe_reference.py dump).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "model/observer.h"
#include "model/session.h"

namespace mcmoe::cli {

namespace {

class DumpObserver : public model::ForwardObserver {
 public:
  DumpObserver(std::string name, int layer) : name_(std::move(name)), layer_(layer) {}
  void on_tensor(std::string_view name, int layer, const float* data, int64_t rows, int64_t cols) override {
    if (name != name_ || layer != layer_) return;
    for (int64_t r = 0; r < rows; ++r) rows_.push_back(std::vector<float>(data + r * cols, data + (r + 1) * cols));
  }
  const std::vector<std::vector<float>>& rows() const { return rows_; }

 private:
  std::string name_;
  int layer_;
  std::vector<std::vector<float>> rows_;
};

}  // namespace

int cmd_dump(const Argv& argv) {
  static const CommandSpec spec{
      "dump",
      "one named intermediate of the forward pass as JSON, to compare with a reference",
      {kModelFlag,
       {"-p", "TEXT", "", "the prompt (or --ids)"},
       {"--ids", "1,2,3", "", "token ids instead of -p (no BOS added)"},
       {"--name", "NAME[.LAYER]", "",
        "required: attn_norm, q_a_norm, kv_a_norm, attn_ctx, attn_out, ffn_inp, ffn_norm, "
        "router_logits, dense_hidden, shared_hidden, moe_out, layer_out (NAME.LAYER), "
        "result_norm or logits"},
       {"-o", "FILE.json", "stdout", "where to write the JSON"},
       {"--greedy", "N", "0", "then decode N greedy tokens (their ids under \"greedy\")"},
       kThreadsFlag}};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  std::string name = a.required("--name", "intermediate name (e.g. router_logits.3 or logits)");
  int layer = -1;
  if (const auto dot = name.rfind('.'); dot != std::string::npos) {
    try {
      layer = std::stoi(name.substr(dot + 1));
    } catch (...) {
      fail("--name: expected NAME.LAYER such as router_logits.3, found '{}'", name);
    }
    name = name.substr(0, dot);
  }
  // The names model/observer.h documents; those of one family only (q_a_norm, kv_a_norm:
  // MLA; dense_hidden: dense layers; shared_hidden: shared experts) come out empty elsewhere.
  static const char* kNames[] = {"attn_norm", "q_a_norm", "kv_a_norm", "attn_ctx", "attn_out", "ffn_inp", "ffn_norm",
                                 "router_logits", "dense_hidden", "shared_hidden", "moe_out", "layer_out", "result_norm",
                                 "logits"};
  if (std::find(std::begin(kNames), std::end(kNames), name) == std::end(kNames)) {
    std::string known;
    for (const char* n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
    fail("--name: unknown intermediate '{}' (known: {}; per layer as NAME.LAYER but result_norm and logits)", name, known);
  }
  const int greedy = static_cast<int>(a.integer("--greedy", 0, 0, 1 << 16));
  auto m = load_model_verbose(path);
  if (layer >= m->config().n_layer) fail("--name: layer {} out of range [0, {})", layer, m->config().n_layer);
  std::vector<int32_t> ids;
  if (a.has("--ids")) {
    std::stringstream ss(a.str("--ids", ""));
    std::string item;
    while (std::getline(ss, item, ',')) {
      try {
        ids.push_back(std::stoi(item));
      } catch (...) {
        fail("--ids: '{}' is not a token id", item);
      }
    }
  } else {
    ids = prompt_ids(*m, a.required("-p", "prompt (or --ids)"));
  }
  DumpObserver obs(name, layer);
  model::SessionOptions so;
  so.n_threads = threads_flag(a);
  so.observer = &obs;
  so.n_batch = static_cast<int>(std::max<size_t>(1, ids.size()));
  so.n_ctx = static_cast<int>(ids.size()) + greedy + 1;
  model::Session session(*m, so);
  std::span<const float> logits = session.eval(ids, true);
  nlohmann::json j{{"name", name}, {"layer", layer}, {"ids", ids}, {"data", obs.rows()}};
  // --greedy N: then N greedy tokens after the ids, one at a time (llama_logits --greedy).
  if (greedy > 0) {
    const int64_t V = m->config().n_vocab;
    logits = logits.subspan(logits.size() - V);
    std::vector<int32_t> out;
    for (int i = 0; i < greedy; ++i) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      so.observer = nullptr;
      session.set_observer(nullptr);
      logits = session.eval(std::span<const int32_t>(&next, 1), false);
    }
    j["greedy"] = out;
  }
  if (a.has("-o")) {
    // Temp file, fsync, rename: a killed or failed dump never leaves half a JSON behind.
    write_file_atomically(a.str("-o", ""), j.dump());
  } else {
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace mcmoe::cli

#pragma once
// What a layer's matrices read during calibration: the Gram matrices of the forward pass's
// named intermediates (TensorSlot::input, model/observer.h) and every routed row per expert.
// Shared by `quantize` (MQ formats) and `quantize --format gguf`.
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compress/hessian.h"
#include "core/error.h"
#include "model/observer.h"

namespace mcmoe::compress {

class LayerInputs final : public model::ForwardObserver {
 public:
  explicit LayerInputs(int n_expert) : expert_rows(n_expert), expert_gates(n_expert) {}
  std::vector<std::vector<float>> expert_rows;  // [n_expert][rows * n_embd]
  std::vector<std::vector<float>>
      expert_gates;  // [n_expert][rows]: the routing weight each row got

  // The Gram matrix of the first `cols` columns of intermediate `name`, collected from the
  // next pass on; the reference stays valid for the object's lifetime.
  const HessianAccumulator& want(const std::string& name, int64_t cols) {
    return grams_.try_emplace({name, cols}, cols).first->second;
  }

  void on_tensor(std::string_view name, int, const float* data, int64_t rows,
                 int64_t cols) override {
    for (auto& [key, h] : grams_) {
      if (key.first != name) continue;
      if (h.cols() > cols)
        fail("internal: '{}' has {} columns; a matrix reads {}", key.first, cols, h.cols());
      if (h.cols() == cols) {
        h.add(data, rows);
        continue;
      }
      // A matrix that reads fewer columns than the intermediate has reads its leading ones:
      // MLA's kv_a_norm row is the normed latent c_kv (what kv_b reads), then the roped k_pe.
      lead_.resize(static_cast<size_t>(rows * h.cols()));
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(data + r * cols, h.cols(), lead_.data() + r * h.cols());
      h.add(lead_.data(), rows);
    }
  }
  void on_expert(const model::ExpertEvent& e) override {
    auto& r = expert_rows[e.expert];
    r.insert(r.end(), e.input, e.input + static_cast<int64_t>(e.token_rows.size()) * e.n_embd);
    auto& g = expert_gates[e.expert];
    g.insert(g.end(), e.weights, e.weights + e.token_rows.size());
  }

 private:
  std::map<std::pair<std::string, int64_t>, HessianAccumulator> grams_;
  std::vector<float> lead_;
};

}  // namespace mcmoe::compress

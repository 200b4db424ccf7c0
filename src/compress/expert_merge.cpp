#include "compress/expert_merge.h"

#include "compress/linear_assignment.h"
#include "core/error.h"
#include "ops/matmul.h"

namespace mcmoe::compress {

namespace {

DenseMatrix transposed(const DenseMatrix& m) {
  DenseMatrix t{m.cols, m.rows, std::vector<float>(m.data.size())};
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) t.data[c * m.rows + r] = m.data[r * m.cols + c];
  }
  return t;
}

// sim[a * n + b] += rows_ref[a] · rows_e[b] for two [n, cols] matrices.
void add_row_similarity(const DenseMatrix& rows_ref, const DenseMatrix& rows_e, std::vector<float>& scratch,
                        std::vector<double>& sim, ThreadPool& pool) {
  const int64_t n = rows_ref.rows;
  scratch.resize(static_cast<size_t>(n * n));
  // matmul computes y[t][o] = Σ_c w[o][c] · x[t][c]: with w = rows_e and x = rows_ref,
  // y[a][b] = rows_ref[a] · rows_e[b].
  ops::matmul(rows_e.view(), rows_ref.data.data(), n, scratch.data(), pool);
  for (size_t i = 0; i < scratch.size(); ++i) sim[i] += scratch[i];
}

void check_same_shape(const DenseExpert& a, const DenseExpert& b) {
  if (a.gate.rows != b.gate.rows || a.gate.cols != b.gate.cols || a.up.rows != b.up.rows ||
      a.up.cols != b.up.cols || a.down.rows != b.down.rows || a.down.cols != b.down.cols) {
    fail("merge: experts differ in shape (gate {}x{} vs {}x{})", a.gate.rows, a.gate.cols, b.gate.rows, b.gate.cols);
  }
  if (a.gate_b.size() != b.gate_b.size() || a.up_b.size() != b.up_b.size() ||
      a.down_b.size() != b.down_b.size()) {
    fail("merge: experts differ in their biases (gate/up/down bias sizes {}/{}/{} vs {}/{}/{})",
         a.gate_b.size(), a.up_b.size(), a.down_b.size(), b.gate_b.size(), b.up_b.size(),
         b.down_b.size());
  }
  if (a.act.kind != b.act.kind || a.act.alpha != b.act.alpha || a.act.limit != b.act.limit) {
    fail("merge: experts differ in their activation");
  }
}

// sim[a * n + b] += bias_ref[a] · bias_e[b]: the constant-input column of the affine rows.
void add_bias_similarity(const std::vector<float>& bias_ref, const std::vector<float>& bias_e,
                         std::vector<double>& sim) {
  const auto n = static_cast<int64_t>(bias_ref.size());
  for (int64_t a = 0; a < n; ++a) {
    for (int64_t b = 0; b < n; ++b) sim[a * n + b] += double{bias_ref[a]} * bias_e[b];
  }
}

}  // namespace

std::vector<int> align_neurons(const DenseExpert& ref, const DenseExpert& e, ThreadPool& pool) {
  check_same_shape(ref, e);
  const int64_t ff = ref.gate.rows;
  std::vector<double> sim(static_cast<size_t>(ff * ff), 0.0);
  std::vector<float> scratch;
  add_row_similarity(ref.gate, e.gate, scratch, sim, pool);
  add_row_similarity(ref.up, e.up, scratch, sim, pool);
  add_row_similarity(transposed(ref.down), transposed(e.down), scratch, sim, pool);
  add_bias_similarity(ref.gate_b, e.gate_b, sim);
  add_bias_similarity(ref.up_b, e.up_b, sim);
  for (double& s : sim) s = -s;  // the solver minimises
  return solve_linear_assignment(sim, static_cast<int>(ff));
}

DenseExpert permute_neurons(const DenseExpert& e, const std::vector<int>& perm) {
  const int64_t ff = e.gate.rows, d = e.gate.cols;
  if (static_cast<int64_t>(perm.size()) != ff) fail("merge: permutation of {} neurons for an expert of width {}", perm.size(), ff);
  DenseExpert out;
  out.gate = DenseMatrix{ff, d, std::vector<float>(e.gate.data.size())};
  out.up = DenseMatrix{ff, d, std::vector<float>(e.up.data.size())};
  out.down = DenseMatrix{e.down.rows, ff, std::vector<float>(e.down.data.size())};
  out.gate_b.resize(e.gate_b.size());
  out.up_b.resize(e.up_b.size());
  out.down_b = e.down_b;  // indexed by output, not by neuron
  out.act = e.act;
  for (int64_t a = 0; a < ff; ++a) {
    const int64_t src = perm[a];
    std::copy_n(e.gate.data.data() + src * d, d, out.gate.data.data() + a * d);
    std::copy_n(e.up.data.data() + src * d, d, out.up.data.data() + a * d);
    for (int64_t r = 0; r < e.down.rows; ++r) out.down.data[r * ff + a] = e.down.data[r * ff + src];
    if (!e.gate_b.empty()) out.gate_b[a] = e.gate_b[src];
    if (!e.up_b.empty()) out.up_b[a] = e.up_b[src];
  }
  return out;
}

DenseExpert average_experts(const std::vector<const DenseExpert*>& experts, const std::vector<double>& weights) {
  if (experts.empty() || experts.size() != weights.size()) {
    fail("merge: {} experts with {} weights", experts.size(), weights.size());
  }
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0)) fail("merge: negative or invalid weight {}", w);
    total += w;
  }
  std::vector<double> norm(weights.size(), 1.0 / static_cast<double>(weights.size()));
  if (total > 0) {
    for (size_t i = 0; i < weights.size(); ++i) norm[i] = weights[i] / total;
  }
  const DenseExpert& first = *experts[0];
  for (const DenseExpert* e : experts) check_same_shape(first, *e);
  DenseExpert out;
  out.gate = DenseMatrix{first.gate.rows, first.gate.cols, {}};
  out.up = DenseMatrix{first.up.rows, first.up.cols, {}};
  out.down = DenseMatrix{first.down.rows, first.down.cols, {}};
  out.act = first.act;
  // Σ_i norm_i · values(E_i), accumulated in double.
  auto average = [&](auto values) {
    std::vector<double> acc(values(first).size(), 0.0);
    for (size_t i = 0; i < experts.size(); ++i) {
      const std::vector<float>& src = values(*experts[i]);
      for (size_t j = 0; j < acc.size(); ++j) acc[j] += norm[i] * src[j];
    }
    return std::vector<float>(acc.begin(), acc.end());
  };
  using Values = const std::vector<float>&;
  out.gate.data = average([](const DenseExpert& e) -> Values { return e.gate.data; });
  out.up.data = average([](const DenseExpert& e) -> Values { return e.up.data; });
  out.down.data = average([](const DenseExpert& e) -> Values { return e.down.data; });
  out.gate_b = average([](const DenseExpert& e) -> Values { return e.gate_b; });
  out.up_b = average([](const DenseExpert& e) -> Values { return e.up_b; });
  out.down_b = average([](const DenseExpert& e) -> Values { return e.down_b; });
  return out;
}

DenseExpert merge_experts(const std::vector<DenseExpert>& members, const std::vector<double>& weights, int ref,
                          ThreadPool& pool) {
  if (ref < 0 || ref >= static_cast<int>(members.size())) fail("merge: reference {} of {} members", ref, members.size());
  std::vector<DenseExpert> aligned;
  aligned.reserve(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    if (static_cast<int>(i) == ref) {
      aligned.push_back(members[i]);
    } else {
      aligned.push_back(permute_neurons(members[i], align_neurons(members[ref], members[i], pool)));
    }
  }
  std::vector<const DenseExpert*> ptrs;
  for (const DenseExpert& e : aligned) ptrs.push_back(&e);
  return average_experts(ptrs, weights);
}

}  // namespace mcmoe::compress

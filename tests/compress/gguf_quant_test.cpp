// GPTQ on ggml's block grids (compress/quantizers.h: quantize_gptq_ggml) and the byte-budget
// allocation of `quantize --format gguf` (compress/quantize_gguf.h): GPTQ never loses to the
// grid's own rounding when H is diagonal and wins clearly on correlated inputs, for every type
// mcmoe writes; the solver agrees with brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/test_util.h"
#include "compress/gguf_candidates.h"
#include "compress/quantize_gguf.h"
#include "compress/quantizers.h"
#include "quant/ggml_encode.h"
#include "quant/quantize.h"
#include "quant_test_util.h"

namespace mcmoe::compress {
namespace {

constexpr DType kTypes[] = {DType::Q4_0,    DType::Q4_1,   DType::Q5_0,   DType::Q5_1,
                            DType::Q8_0,    DType::Q2_K,   DType::Q3_K,   DType::Q4_K,
                            DType::Q5_K,    DType::Q6_K,   DType::IQ4_NL, DType::IQ4_XS,
                            DType::IQ2_XXS, DType::IQ3_XXS};

std::vector<float> dequant(const std::vector<uint8_t>& bytes, DType type, int64_t rows,
                           int64_t cols) {
  return quant::dequantize_rows(type, bytes.data(), rows, cols);
}

// ggml's round-to-nearest fit of every row with importance = diag(H) / n.
std::vector<uint8_t> rtn(const std::vector<float>& w, int64_t rows, int64_t cols, DType type,
                         const std::vector<float>& importance) {
  const size_t rb = row_bytes(type, cols);
  std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    quant::quantize_row_ggml(type, w.data() + r * cols, bytes.data() + r * rb, cols,
                             importance.data());
  return bytes;
}

std::vector<float> diag_of(const std::vector<double>& h, int64_t cols) {
  std::vector<float> d(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) d[i] = static_cast<float>(h[i * cols + i]);
  return d;
}

class GgmlGptq : public testing::TestWithParam<DType> {};

// Each block fitted alone by quant::fit_block (the grid GPTQ fits; quantize_row_ggml's legacy
// types also weigh by the whole row's mean square, which GPTQ cannot know up front).
std::vector<uint8_t> fit_blocks(const std::vector<float>& w, int64_t rows, int64_t cols, DType type,
                                const std::vector<float>& importance) {
  const DTypeTraits& tr = dtype_traits(type);
  std::vector<uint8_t> bytes(row_bytes(type, cols) * static_cast<size_t>(rows));
  quant::IntBlock b;
  for (int64_t k = 0; k < rows * cols / tr.block_size; ++k) {
    const int64_t c0 = k * tr.block_size % cols;
    quant::fit_block(type, w.data() + k * tr.block_size, importance.data() + c0, &b);
    quant::encode_block(type, b, bytes.data() + k * tr.block_bytes);
  }
  return bytes;
}

// With H diagonal there is no error to feed back: GPTQ fits the same grids as fit_block (same
// weights) and then takes the nearest code (a vector codebook: the best 8 codes under the
// weights H_ii, which is exactly this error), which can only lower the error.
TEST_P(GgmlGptq, DiagonalHessianNeverLosesToRounding) {
  const DType type = GetParam();
  const int64_t rows = 16, cols = 512;
  const std::vector<float> w = test::normal_matrix(rows, cols, 7, 0.05f);
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = u(rng);
  const std::vector<float> imp = diag_of(h, cols);
  const GptqOptions o{.damp = 0.0};
  const std::vector<uint8_t> g =
      quantize_gptq_ggml(w.data(), rows, cols, gptq_factor(h, cols, 0.0, false), type, imp, o);
  ASSERT_EQ(g.size(), row_bytes(type, cols) * rows);
  const double e_gptq = output_error(w.data(), dequant(g, type, rows, cols).data(), rows, cols, h);
  const double e_fit =
      output_error(w.data(), dequant(fit_blocks(w, rows, cols, type, imp), type, rows, cols).data(),
                   rows, cols, h);
  EXPECT_LE(e_gptq, e_fit * (1 + 1e-6)) << dtype_name(type);
}

// Correlated inputs: error feedback must pay off clearly (GPTQ's point).
TEST_P(GgmlGptq, CorrelatedInputsBeatRounding) {
  const DType type = GetParam();
  const int64_t rows = 32, cols = 256;
  const std::vector<float> w = test::normal_matrix(rows, cols, 11, 0.05f);
  const std::vector<double> h =
      test::hessian_of(test::correlated_inputs(1024, cols, 5, 0.5f), cols);
  const std::vector<float> imp = diag_of(h, cols);
  const GptqOptions o{.damp = 0.01};
  const std::vector<uint8_t> g =
      quantize_gptq_ggml(w.data(), rows, cols, gptq_factor(h, cols, 0.01, false), type, imp, o);
  const double e_gptq = output_error(w.data(), dequant(g, type, rows, cols).data(), rows, cols, h);
  const double e_rtn = output_error(
      w.data(), dequant(rtn(w, rows, cols, type, imp), type, rows, cols).data(), rows, cols, h);
  std::printf("[gptq-ggml] %-7s output error: rtn %.4g, gptq %.4g (%.2fx lower)\n",
              std::string(dtype_name(type)).c_str(), e_rtn, e_gptq, e_rtn / e_gptq);
  EXPECT_LT(e_gptq, 0.9 * e_rtn) << dtype_name(type);
}

// Rows are independent: GPTQ on a subset of rows gives exactly those rows' bytes of the whole
// matrix's quantization. `quantize --format gguf --sample-rows` rests on this: a sampled row's
// error is its error in the whole tensor, so the scaled sum estimates the tensor's without bias.
TEST_P(GgmlGptq, SubsetOfRowsGivesThoseRowsBytes) {
  const DType type = GetParam();
  const int64_t rows = 48, cols = 256;
  const std::vector<float> w = test::normal_matrix(rows, cols, 21, 0.05f);
  const std::vector<double> h =
      test::hessian_of(test::correlated_inputs(1024, cols, 6, 0.5f), cols);
  const std::vector<float> imp = diag_of(h, cols);
  const GptqFactor f = gptq_factor(h, cols, 0.01, false);
  const GptqOptions o{.damp = 0.01};
  const std::vector<uint8_t> all = quantize_gptq_ggml(w.data(), rows, cols, f, type, imp, o);
  const std::vector<int64_t> pick = gguf::sample_rows(rows, 0.25, 7);  // at least 64: all 48
  ASSERT_EQ(pick.size(), 48u);
  const std::vector<int64_t> some = {0, 5, 6, 17, 30, 47};
  std::vector<float> sub;
  for (int64_t r : some) sub.insert(sub.end(), w.begin() + r * cols, w.begin() + (r + 1) * cols);
  const int64_t n = static_cast<int64_t>(some.size());
  const std::vector<uint8_t> part = quantize_gptq_ggml(sub.data(), n, cols, f, type, imp, o);
  const size_t rb = row_bytes(type, cols);
  ASSERT_EQ(part.size(), rb * some.size());
  for (size_t i = 0; i < some.size(); ++i) {
    EXPECT_TRUE(
        std::equal(part.begin() + i * rb, part.begin() + (i + 1) * rb, all.begin() + some[i] * rb))
        << dtype_name(type) << " row " << some[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlGptq, testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(GgmlGptqArgs, RefusesWhatItCannotDo) {
  const int64_t rows = 4, cols = 256;
  const std::vector<float> w = test::normal_matrix(rows, cols, 1);
  const std::vector<double> h = test::hessian_of(test::correlated_inputs(300, cols, 2), cols);
  const GptqFactor f = gptq_factor(h, cols, 0.01, false);
  const GptqOptions o{.damp = 0.01};
  EXPECT_NE(test::error_of([&] {
              quantize_gptq_ggml(w.data(), rows, cols, f, DType::IQ1_S, {}, o);
            }).find("does not write iq1_s"),
            std::string::npos);
  const std::vector<float> w2 = test::normal_matrix(rows, 128, 1);
  const std::vector<double> h2 = test::hessian_of(test::correlated_inputs(300, 128, 2), 128);
  EXPECT_NE(test::error_of([&] {
              quantize_gptq_ggml(w2.data(), rows, 128, gptq_factor(h2, 128, 0.01, false),
                                 DType::Q4_K, {}, o);
            }).find("whole q4_k blocks of 256"),
            std::string::npos);
  const GptqFactor fa = gptq_factor(h, cols, 0.01, true);
  EXPECT_NE(test::error_of([&] {
              quantize_gptq_ggml(w.data(), rows, cols, fa, DType::Q4_K, {},
                                 GptqOptions{.damp = 0.01, .act_order = true});
            }).find("act-order"),
            std::string::npos);
}

// Brute force over every assignment of a small instance.
TEST(ByteBudget, MatchesBruteForce) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 5), k = 1 + static_cast<int>(rng() % 4);
    std::vector<std::vector<double>> cost(n);
    std::vector<std::vector<uint64_t>> bytes(n);
    uint64_t lo = 0, hi = 0;
    for (int i = 0; i < n; ++i) {
      uint64_t mn = UINT64_MAX, mx = 0;
      for (int j = 0; j < k; ++j) {
        bytes[i].push_back(32 * (1 + rng() % 50));
        cost[i].push_back(std::ldexp(1.0, -static_cast<int>(bytes[i].back() / 32)) *
                          (1 + rng() % 100));
        mn = std::min(mn, bytes[i].back());
        mx = std::max(mx, bytes[i].back());
      }
      lo += mn;
      hi += mx;
    }
    const uint64_t budget = lo + rng() % (hi - lo + 1);
    const std::vector<int> got = solve_byte_budget(cost, bytes, budget);
    double got_cost = 0;
    uint64_t got_bytes = 0;
    for (int i = 0; i < n; ++i) {
      got_cost += cost[i][got[i]];
      got_bytes += bytes[i][got[i]];
    }
    EXPECT_LE(got_bytes, budget);
    double best = INFINITY;
    std::vector<int> pick(n, 0);
    for (;;) {
      double c = 0;
      uint64_t b = 0;
      for (int i = 0; i < n; ++i) {
        c += cost[i][pick[i]];
        b += bytes[i][pick[i]];
      }
      if (b <= budget) best = std::min(best, c);
      int i = 0;
      while (i < n && ++pick[i] == k) pick[i++] = 0;
      if (i == n) break;
    }
    // Sizes here are multiples of 32 and budgets under 65536 units, so no rounding loss.
    EXPECT_NEAR(got_cost, best, 1e-12 * best) << "trial " << trial;
  }
}

TEST(ByteBudget, TooSmallBudgetNamesTheNumbers) {
  const std::string e = test::error_of([] { solve_byte_budget({{1.0, 2.0}}, {{100, 50}}, 49); });
  EXPECT_NE(e.find("budget of 49 bytes"), std::string::npos) << e;
  EXPECT_NE(e.find("50 bytes"), std::string::npos) << e;
}

// A part without calibration rows is rounded block by block, its rows split over the pool's
// threads: the same bytes as one thread, and a value that is not finite is reported as an
// error (from the lowest failing row), not a crash in a worker thread.
TEST(GgufMeasurer, UncalibratedPartsOnThePoolKeepTheBytesAndReportBadValues) {
  test::TempDir dir;
  const int64_t rows = 40, cols = 256;
  const std::vector<float> w = test::normal_matrix(rows, cols, 21);
  GgufQuantOptions o;
  const auto measure = [&](int threads, const std::vector<float>& values) {
    gguf::Spill spill(dir.path("out.gguf"));
    ThreadPool pool(threads);
    gguf::Measurer m(o, spill, pool, 0.0);
    gguf::Item item;
    item.name = "blk.0.attn_q.weight", item.layer = 0, item.kind = model::TensorKind::AttnQ;
    item.params = rows * cols, item.cols = cols;
    for (DType t : {DType::Q4_K, DType::IQ2_XXS}) item.candidates.push_back({.type = t});
    m.add_part(item, DenseMatrix{rows, cols, values}, nullptr);
    const uint8_t* data = spill.data();
    return std::vector<uint8_t>(data, data + spill.size());
  };
  EXPECT_EQ(measure(2, w), measure(1, w));
  std::vector<float> bad = w;
  bad[33 * cols + 5] = NAN;
  bad[7 * cols + 100] = INFINITY;
  const std::string message = test::error_of([&] { measure(2, bad); });
  EXPECT_NE(message.find("not finite"), std::string::npos) << message;
  EXPECT_NE(message.find("value 100 of a block is inf"), std::string::npos) << message;
}

TEST(SampleRows, DistinctAscendingReproducibleAndNeverBelowTheFloor) {
  const std::vector<int64_t> a = gguf::sample_rows(1000, 0.1, 42);
  ASSERT_EQ(a.size(), 100u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end()) << "a row drawn twice";
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 1000);
  EXPECT_EQ(gguf::sample_rows(1000, 0.1, 42), a);
  EXPECT_NE(gguf::sample_rows(1000, 0.1, 43), a);
  EXPECT_EQ(gguf::sample_rows(1000, 0.01, 1).size(), static_cast<size_t>(gguf::kMinSampledRows));
  EXPECT_EQ(gguf::sample_rows(40, 0.01, 1).size(), 40u);  // fewer rows than the floor: all
  const std::vector<int64_t> all = gguf::sample_rows(300, 1.0, 5);
  ASSERT_EQ(all.size(), 300u);
  for (int64_t i = 0; i < 300; ++i) EXPECT_EQ(all[i], i);
  // Expert slices of one tensor draw different rows; the seed does not depend on the build.
  EXPECT_NE(gguf::part_seed("blk.0.ffn_up_exps.weight", 0),
            gguf::part_seed("blk.0.ffn_up_exps.weight", 1));
  EXPECT_EQ(gguf::part_seed("a", 0), gguf::part_seed("a", 0));
  // Every row is about equally likely over many seeds (each drawn with probability 0.1).
  std::vector<int> hits(1000, 0);
  for (uint64_t s = 0; s < 400; ++s)
    for (int64_t r : gguf::sample_rows(1000, 0.1, s)) ++hits[r];
  EXPECT_GT(*std::min_element(hits.begin(), hits.end()), 12);
  EXPECT_LT(*std::max_element(hits.begin(), hits.end()), 72);
}

}  // namespace
}  // namespace mcmoe::compress

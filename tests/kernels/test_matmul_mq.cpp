// mcmoe's grouped low-bit weights (MQ{1,2,3,4}_G{32,64,128}) through ops::matmul_batch on every
// ISA path this CPU runs, against two references: the exact product with the same int8
// activations the kernels see (tight), and matmul_reference, the f32 product of the
// dequantized weights (loose by exactly the activation rounding). Tolerances are explained
// at mq_reference and at each assertion.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "matmul_test_util.h"
#include "ops/matmul.h"
#include "quant/lowbit.h"

namespace mcmoe {
namespace {

using kernels::Isa;
using test::Case;
using test::Comparison;
using test::kTightNmse;
using test::param_name;

constexpr DType kMqTypes[] = {DType::MQ1_G32,  DType::MQ1_G64,  DType::MQ1_G128, DType::MQ2_G32,
                              DType::MQ2_G64,  DType::MQ2_G128, DType::MQ3_G32,  DType::MQ3_G64,
                              DType::MQ3_G128, DType::MQ4_G32,  DType::MQ4_G64,  DType::MQ4_G128};

// The exact product of the packed weights with the reference-quantized activations: integer
// dots per 32-weight sub-block, then dx · (scale · Σ q·a + min · Σa) in double. The kernels
// do the same in f32 (per lane: one rounding for the scale product, one for dx, one for the
// min term, then a sum over at most a few hundred terms), so 1e-5 (≈ 170 f32 ulps) of the
// sum of the magnitudes of those terms bounds their error and still catches one wrong code.
void mq_reference(const TensorView& w, const float* x, int64_t n_tokens, int64_t ldx,
                  std::vector<double>* ref, std::vector<double>* bound) {
  const int64_t rows = w.rows(), cols = w.cols();
  const quant::GroupedQuant gq =
      quant::unpack_mq(w.type, static_cast<const uint8_t*>(w.data), rows, cols);
  const kernels::ActRowLayout l = kernels::act_row_layout(cols);
  std::vector<uint8_t> acts(l.bytes * static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    kernels::quantize_acts_ref(x + t * ldx, cols, acts.data() + t * l.bytes,
                               kernels::ActLayout::kNatural);
  }
  ref->assign(static_cast<size_t>(n_tokens * rows), 0.0);
  bound->assign(ref->size(), 1e-30);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < n_tokens; ++t) {
      const uint8_t* row = acts.data() + t * l.bytes;
      const auto* qa = reinterpret_cast<const int8_t*>(row);
      const auto* dx = reinterpret_cast<const float*>(row + l.d_off);
      double y = 0, mag = 0;
      for (int64_t b = 0; b < cols / 32; ++b) {
        int64_t dot = 0, dot_abs = 0, sum = 0, sum_abs = 0;
        for (int64_t j = 0; j < 32; ++j) {
          const int64_t q = gq.q[r * cols + b * 32 + j], a = qa[b * 32 + j];
          dot += q * a;
          dot_abs += q * std::abs(a);
          sum += a;
          sum_abs += std::abs(a);
        }
        const size_t gi = static_cast<size_t>(r * gq.groups_per_row() + b * 32 / gq.group);
        const double s = gq.scale[gi], m = gq.min[gi], d = dx[b];
        y += d * (s * static_cast<double>(dot) + m * static_cast<double>(sum));
        mag += std::fabs(d) * (std::fabs(s) * static_cast<double>(dot_abs) +
                               std::fabs(m) * static_cast<double>(sum_abs));
      }
      (*ref)[t * rows + r] = y;
      (*bound)[t * rows + r] += 1e-5 * mag;
    }
  }
}

// One product with padded strides (test::run_padded), checked against both references.
void check_case(Isa isa, DType type, const Case& c, ThreadPool& pool, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << param_name(isa, type) << " rows=" << c.rows
                                  << " cols=" << c.cols << " n_tokens=" << c.n_tokens);
  const test::OwnedWeight w = test::make_weight(type, c.rows, c.cols, seed);
  const test::PaddedProduct p = test::run_padded(isa, w.view, c.n_tokens, pool, seed + 1);
  std::vector<double> ref, bound;
  mq_reference(w.view, p.x.data(), c.n_tokens, p.ldx, &ref, &bound);
  const Comparison tight = test::compare(ref, bound, p.y.data(), c.n_tokens, c.rows, p.ldy);
  EXPECT_LE(tight.worst, 1.0) << "an element is outside its bound";
  EXPECT_LT(tight.nmse, kTightNmse);
  test::check_against_f32(w.view, p, bound);
}

class MatmulMqTest : public testing::TestWithParam<std::tuple<Isa, DType>> {};

TEST_P(MatmulMqTest, ShapesAndTokenCounts) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  uint32_t seed = 1;
  // Rows: partial 4-row tiles and several 16-row thread chunks; cols: 1 to 11 blocks.
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 128}, {7, 256}, {33, 384}, {256, 1408}}) {
    for (int64_t n_tokens : {1, 3, 17}) check_case(isa, type, {rows, cols, n_tokens}, pool, ++seed);
  }
}

TEST_P(MatmulMqTest, WideRowsAndPrefill) {
  const auto [isa, type] = GetParam();
  if (!kernels::isa_supported(isa)) GTEST_SKIP() << kernels::isa_name(isa) << " not on this CPU";
  ThreadPool pool(2);
  // 4352 columns = 34 blocks: more than one prefill column chunk (32 blocks) when there are
  // more than 4 tokens; 67 tokens: two token blocks of the prefill loop.
  check_case(isa, type, {64, 4352, 1}, pool, 100);
  check_case(isa, type, {21, 4352, 9}, pool, 101);
  check_case(isa, type, {37, 1024, 67}, pool, 102);
}

INSTANTIATE_TEST_SUITE_P(Matmul, MatmulMqTest,
                         testing::Combine(testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512),
                                          testing::ValuesIn(kMqTypes)),
                         [](const testing::TestParamInfo<MatmulMqTest::ParamType>& info) {
                           return param_name(std::get<0>(info.param), std::get<1>(info.param));
                         });

TEST(MatmulMqErrors, ColsNotAMultipleOf128) {
  const test::OwnedWeight w = test::make_weight(DType::MQ2_G32, 4, 256, 1);
  TensorView ragged = w.view;  // 96 columns: whole groups of 32 but not a block of 128
  ragged.shape = {4, 96};
  std::vector<float> x(96, 1.f), y(4);
  ThreadPool pool(1);
  std::string msg;
  try {
    ops::matmul(ragged, x.data(), 1, y.data(), pool);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("mq2_g32"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cols 96 must be a positive multiple of 128"), std::string::npos) << msg;
}

}  // namespace
}  // namespace mcmoe

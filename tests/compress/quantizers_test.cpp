// Round-to-nearest and GPTQ (compress/quantizers.h): grids, error bounds, GPTQ against RTN
// on correlated inputs and against a plain unblocked double-precision GPTQ, act-order,
// dead inputs and argument checks.
#include "compress/quantizers.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/fp16.h"
#include "quant_test_util.h"

namespace mcmoe::compress {
namespace {

float f16_round(float x) {
  return fp16_to_f32(f32_to_fp16(x));
}

double rtn_error(const std::vector<float>& w, int64_t rows, int64_t cols,
                 const std::vector<double>& h, const QuantSpec& s) {
  return output_error(w.data(), quantize_rtn(w.data(), rows, cols, s), h);
}

size_t same_codes(const GroupedQuant& a, const GroupedQuant& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.q.size(); ++i) n += a.q[i] == b.q[i];
  return n;
}

TEST(Rtn, ErrorWithinHalfStep) {
  const int64_t rows = 8, cols = 256;
  std::vector<float> w = test::normal_matrix(rows, cols, 1, 0.02f);
  for (int64_t c = 0; c < 64; ++c) w[c] += 5.f;  // a group far from 0: min's f16 rounding matters
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t group : {32, 128}) {
      const GroupedQuant q = quantize_rtn(w.data(), rows, cols, {.bits = bits, .group = group});
      ASSERT_EQ(q.scale.size(), static_cast<size_t>(rows * cols / group));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t gi = r * (cols / group) + c / group;
          EXPECT_EQ(q.scale[gi], f16_round(q.scale[gi]));
          EXPECT_EQ(q.min[gi], f16_round(q.min[gi]));
          EXPECT_LT(q.q[r * cols + c], 1 << bits);
          // The float arithmetic of (w − min) / scale and scale · q + min adds a few ulps.
          const float tol = 0.5f * q.scale[gi] + 1e-6f * std::fabs(w[r * cols + c]);
          EXPECT_LE(std::fabs(q.value(r, c) - w[r * cols + c]), tol)
              << bits << " " << group << " " << r << "," << c;
        }
      }
    }
  }
}

TEST(Rtn, OneBitIsSignTimesMeanAbs) {
  const int64_t rows = 3, cols = 64;
  const std::vector<float> w = test::normal_matrix(rows, cols, 2);
  const GroupedQuant q = quantize_rtn(w.data(), rows, cols, {.bits = 1, .group = 32});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < 2; ++g) {
      double mean = 0;
      for (int64_t i = 0; i < 32; ++i) mean += std::fabs(w[r * cols + g * 32 + i]) / 32;
      const float s = f16_round(static_cast<float>(mean));
      EXPECT_EQ(q.scale[r * 2 + g], 2 * s);
      EXPECT_EQ(q.min[r * 2 + g], -s);
      for (int64_t i = 0; i < 32; ++i) {
        const int64_t c = g * 32 + i;
        EXPECT_EQ(q.q[r * cols + c], w[r * cols + c] >= 0 ? 1 : 0);
        EXPECT_EQ(q.value(r, c), w[r * cols + c] >= 0 ? s : -s);
      }
    }
  }
}

TEST(Rtn, SymmetricGridsFollowGgml) {
  const int64_t rows = 4, cols = 64;
  const std::vector<float> w = test::normal_matrix(rows, cols, 3);
  const GroupedQuant q8 =
      quantize_rtn(w.data(), rows, cols, {.bits = 8, .group = 32, .symmetric = true});
  const GroupedQuant q4 =
      quantize_rtn(w.data(), rows, cols, {.bits = 4, .group = 32, .symmetric = true});
  for (int64_t gi = 0; gi < rows * 2; ++gi) {
    float amax = 0, vmax = 0;
    for (int64_t i = 0; i < 32; ++i) {
      const float v = w[gi * 32 + i];  // groups are consecutive in memory
      if (std::fabs(v) > amax) {
        amax = std::fabs(v);
        vmax = v;
      }
    }
    // Q8_0: d = max|w| / 127, codes q + 128; Q4_0: d = v / -8 for the signed extreme v.
    EXPECT_EQ(q8.scale[gi], f16_round(amax / 127.f));
    EXPECT_EQ(q8.min[gi], -128 * q8.scale[gi]);
    EXPECT_EQ(q4.scale[gi], f16_round(vmax / -8.f));
    EXPECT_EQ(q4.min[gi], -8 * q4.scale[gi]);
    for (int64_t i = 0; i < 32; ++i) {
      const int64_t r = gi / 2, c = (gi % 2) * 32 + i;
      EXPECT_LE(std::fabs(q8.value(r, c) - w[gi * 32 + i]), 0.5f * q8.scale[gi] * (1 + 1e-5f));
      if (w[gi * 32 + i] == vmax) {
        EXPECT_EQ(q4.q[r * cols + c], 0);  // the extreme takes code 0 (-8)
      }
    }
  }
}

TEST(Rtn, DegenerateGroupsStayFinite) {
  const int64_t cols = 32;
  for (int bits : {1, 2, 4, 8}) {
    for (bool sym : {false, true}) {
      for (float v : {0.f, 0.3f, -7.f, 1e-9f}) {
        const std::vector<float> w(cols, v);
        const GroupedQuant q =
            quantize_rtn(w.data(), 1, cols, {.bits = bits, .group = 32, .symmetric = sym});
        for (int64_t c = 0; c < cols; ++c) {
          ASSERT_TRUE(std::isfinite(q.value(0, c))) << bits << " " << sym << " " << v;
          // A constant group decodes to itself up to f16 rounding (1-bit: mean |w| = |v|).
          EXPECT_NEAR(q.value(0, c), v, std::fabs(v) * 1e-3f + 1e-7f)
              << bits << " " << sym << " " << v;
        }
      }
    }
  }
}

TEST(Rtn, RejectsBadArguments) {
  const std::vector<float> w(4 * 64, 1.f);
  const auto err = [&](const QuantSpec& s) {
    return test::error_of([&] { quantize_rtn(w.data(), 4, 64, s); });
  };
  EXPECT_EQ(err({.bits = 4, .group = 32}), "");
  EXPECT_NE(err({.bits = 5}).find("bits 5 not supported"), std::string::npos);
  EXPECT_NE(err({.bits = 4, .group = 48}).find("group 48 does not divide the row width 64"),
            std::string::npos);
  EXPECT_NE(err({.bits = 4, .group = 0}).find("group 0"), std::string::npos);
  std::vector<float> bad = w;
  bad[70] = std::numeric_limits<float>::infinity();
  EXPECT_NE(test::error_of([&] {
              quantize_rtn(bad.data(), 4, 64, {.bits = 4, .group = 32});
            }).find("weight [1, 6]"),
            std::string::npos);
  bad[70] = 1e6f;  // beyond f16: the group's scale cannot be stored
  EXPECT_NE(test::error_of([&] {
              quantize_rtn(bad.data(), 4, 64, {.bits = 4, .group = 32});
            }).find("row 1 group 0 needs scale"),
            std::string::npos);
}

// GPTQ as ALGORITHMS.md §5 states it, unblocked, in double: each column is quantized with its
// group's grid (computed by quantize_rtn from the current weights when the group starts), and
// its error is pushed onto every later column at once. U comes from inverting H and factoring
// the inverse, not from the library's reversed factorisation.
GroupedQuant naive_gptq(std::vector<float> w32, int64_t rows, int64_t cols, std::vector<double> h,
                        const QuantSpec& s, double damp) {
  const int64_t n = cols;
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (h[j * n + j] == 0) {
      h[j * n + j] = 1;
      for (int64_t r = 0; r < rows; ++r) w32[r * n + j] = 0;
    }
    mean += h[j * n + j] / n;
  }
  for (int64_t j = 0; j < n; ++j) h[j * n + j] += damp * mean;
  const auto cholesky = [n](const std::vector<double>& a) {  // lower L, A = L Lᵀ
    std::vector<double> l(n * n, 0.0);
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = j; i < n; ++i) {
        double v = a[i * n + j];
        for (int64_t k = 0; k < j; ++k) v -= l[i * n + k] * l[j * n + k];
        l[i * n + j] = i == j ? std::sqrt(v) : v / l[j * n + j];
      }
    }
    return l;
  };
  const std::vector<double> l = cholesky(h);
  std::vector<double> linv(n * n, 0.0);  // forward substitution, column by column
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = c; i < n; ++i) {
      double v = i == c ? 1.0 : 0.0;
      for (int64_t k = c; k < i; ++k) v -= l[i * n + k] * linv[k * n + c];
      linv[i * n + c] = v / l[i * n + i];
    }
  }
  std::vector<double> hinv(n * n, 0.0);  // H⁻¹ = L⁻ᵀ L⁻¹
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t k = std::max(i, j); k < n; ++k)
        hinv[i * n + j] += linv[k * n + i] * linv[k * n + j];
    }
  }
  const std::vector<double> lu = cholesky(hinv);  // U = Luᵀ
  const auto u = [&](int64_t i, int64_t j) { return lu[j * n + i]; };

  GroupedQuant out = quantize_rtn(w32.data(), rows, cols, s);  // shape and storage only
  std::vector<double> w(w32.begin(), w32.end());
  const int64_t gpr = cols / s.group;
  const float maxq = static_cast<float>((1 << s.bits) - 1);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t gi = r * gpr + j / s.group;
      if (j % s.group == 0) {
        std::vector<float> grp(w.begin() + r * n + j, w.begin() + r * n + j + s.group);
        const GroupedQuant g = quantize_rtn(grp.data(), 1, s.group, s);
        out.scale[gi] = g.scale[0];
        out.min[gi] = g.min[0];
      }
      const float x = static_cast<float>(w[r * n + j]);
      const float sc = out.scale[gi], mn = out.min[gi];
      int q = s.bits == 1 ? x >= 0
              : sc == 0   ? 0
                          : static_cast<int>(std::clamp((x - mn) / sc, 0.f, maxq) + 0.5f);
      out.q[r * n + j] = static_cast<uint8_t>(q);
      const double e = (w[r * n + j] - out.value(r, j)) / u(j, j);
      for (int64_t k = j + 1; k < n; ++k) w[r * n + k] -= e * u(j, k);
    }
  }
  return out;
}

struct Layer {
  int64_t rows, cols;
  std::vector<float> w;
  std::vector<double> h;
};

Layer correlated_layer(int64_t rows, int64_t cols, uint32_t seed, float spread = 0.f,
                       const std::vector<int64_t>& dead = {}) {
  return {rows, cols, test::normal_matrix(rows, cols, seed),
          test::hessian_of(test::correlated_inputs(4 * cols, cols, seed + 10, spread, dead), cols)};
}

TEST(Gptq, BeatsRtnOnCorrelatedInputs) {
  const Layer l = correlated_layer(64, 256, 7);  // X: 1024 rows
  for (int bits : {2, 3, 4}) {
    for (int64_t group : {32, 128}) {
      const QuantSpec s{.bits = bits, .group = group};
      const double rtn = rtn_error(l.w, l.rows, l.cols, l.h, s);
      const double gptq = output_error(
          l.w.data(), quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s}), l.h);
      EXPECT_LT(gptq, 0.7 * rtn) << bits << " bits, group " << group << ": gptq " << gptq << " rtn "
                                 << rtn;
    }
  }
}

TEST(Gptq, MatchesUnblockedDoubleReference) {
  const Layer l = correlated_layer(16, 128, 8, 0.5f, {5});
  for (const QuantSpec s : {QuantSpec{.bits = 3, .group = 32}, QuantSpec{.bits = 1, .group = 64},
                            QuantSpec{.bits = 4, .group = 32, .symmetric = true}}) {
    const GroupedQuant ref = naive_gptq(l.w, l.rows, l.cols, l.h, s, 0.01);
    // block 48 with group 32 exercises the rounding of blocks to whole groups.
    const GroupedQuant got =
        quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s, .block = 48});
    // Float vs double arithmetic may move a weight across a rounding boundary, after which
    // the two runs quantize slightly different weights; that stays rare.
    EXPECT_GE(same_codes(got, ref), got.q.size() * 99 / 100) << s.bits;
    const double e_ref = output_error(l.w.data(), ref, l.h),
                 e_got = output_error(l.w.data(), got, l.h);
    EXPECT_NEAR(e_got, e_ref, 0.01 * e_ref) << s.bits;
  }
}

TEST(Gptq, IdentityHessianEqualsRtn) {
  const int64_t rows = 8, cols = 256;
  const std::vector<float> w = test::normal_matrix(rows, cols, 9);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0;
  for (const QuantSpec s : {QuantSpec{.bits = 1, .group = 128}, QuantSpec{.bits = 2, .group = 32},
                            QuantSpec{.bits = 3, .group = 128}, QuantSpec{.bits = 4, .group = 64},
                            QuantSpec{.bits = 8, .group = 32, .symmetric = true}}) {
    const GroupedQuant rtn = quantize_rtn(w.data(), rows, cols, s);
    for (bool act_order : {false, true}) {
      // U is diagonal: no column's error reaches another, so GPTQ is RTN exactly.
      const GroupedQuant g =
          quantize_gptq(w.data(), rows, cols, h, {.spec = s, .act_order = act_order});
      EXPECT_EQ(g.q, rtn.q) << s.bits;
      EXPECT_EQ(g.scale, rtn.scale) << s.bits;
      EXPECT_EQ(g.min, rtn.min) << s.bits;
    }
  }
}

TEST(Gptq, ActOrderKeepsNaturalGroups) {
  const Layer l = correlated_layer(32, 256, 10, 1.f);
  for (int bits : {2, 3, 4}) {
    const QuantSpec s{.bits = bits, .group = 32};
    const GroupedQuant plain = quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s});
    const GroupedQuant act =
        quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s, .act_order = true});
    // Static groups: every grid is RTN's grid for the same natural column range of W.
    const GroupedQuant rtn = quantize_rtn(l.w.data(), l.rows, l.cols, s);
    EXPECT_EQ(act.scale, rtn.scale);
    EXPECT_EQ(act.min, rtn.min);
    const double e_plain = output_error(l.w.data(), plain, l.h),
                 e_act = output_error(l.w.data(), act, l.h);
    EXPECT_LT(e_act, 1.25 * e_plain) << bits << " bits: act " << e_act << " plain " << e_plain;
    EXPECT_LT(e_act, 0.7 * rtn_error(l.w, l.rows, l.cols, l.h, s)) << bits;
  }
}

TEST(Gptq, DeadInputsStayFinite) {
  const std::vector<int64_t> dead{0, 1, 2, 40, 127};
  const Layer l = correlated_layer(16, 128, 12, 0.f, dead);
  for (int64_t c : dead) ASSERT_EQ(l.h[c * l.cols + c], 0.0);
  for (bool act_order : {false, true}) {
    const QuantSpec s{.bits = 2, .group = 32};
    const GroupedQuant q =
        quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s, .act_order = act_order});
    for (int64_t r = 0; r < l.rows; ++r) {
      for (int64_t c = 0; c < l.cols; ++c)
        ASSERT_TRUE(std::isfinite(q.value(r, c))) << r << "," << c;
    }
    const double e = output_error(l.w.data(), q, l.h);
    EXPECT_TRUE(std::isfinite(e));
    EXPECT_LT(e, rtn_error(l.w, l.rows, l.cols, l.h, s)) << act_order;
  }
}

TEST(Gptq, ThreadPoolAndBlockSizeKeepTheResult) {
  const Layer l = correlated_layer(80, 256, 13);
  const QuantSpec s{.bits = 3, .group = 64};
  const GroupedQuant base = quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s});
  ThreadPool pool(2);
  // Rows are independent, and each row's arithmetic does not depend on its chunk.
  const GroupedQuant pooled =
      quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s, .pool = &pool});
  EXPECT_EQ(same_codes(pooled, base), base.q.size());
  // Another block split changes only float summation order.
  for (int64_t block : {1, 64, 100, 256}) {
    const GroupedQuant b =
        quantize_gptq(l.w.data(), l.rows, l.cols, l.h, {.spec = s, .block = block});
    EXPECT_GE(same_codes(b, base), base.q.size() * 99 / 100) << block;
  }
}

// With a pool, row chunks' products run on its threads but are summed in row order: the
// same bits for any thread count, and for row counts that do not fill the last chunk or wave.
TEST(OutputError, ThreadPoolKeepsTheBits) {
  for (int64_t rows : {40, 64, 130, 200}) {
    const Layer l = correlated_layer(rows, 96, 17);
    const GroupedQuant q = quantize_rtn(l.w.data(), l.rows, l.cols, {.bits = 2, .group = 32});
    const double base = output_error(l.w.data(), q, l.h);
    EXPECT_GT(base, 0.0);
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      const double pooled = output_error(l.w.data(), q, l.h, &pool);
      EXPECT_EQ(std::memcmp(&pooled, &base, sizeof base), 0)
          << rows << " rows, " << threads << " threads: " << pooled << " vs " << base;
    }
  }
}

TEST(Gptq, SharedFactorGivesTheSameResult) {
  const Layer l = correlated_layer(16, 128, 14);
  const GptqOptions o{.spec = {.bits = 4, .group = 32}};
  const GptqFactor f = gptq_factor(l.h, l.cols, o.damp, o.act_order);
  const GroupedQuant a = quantize_gptq(l.w.data(), l.rows, l.cols, f, o);
  const GroupedQuant b = quantize_gptq(l.w.data(), l.rows, l.cols, l.h, o);
  EXPECT_EQ(a.q, b.q);
  const GptqOptions other{.spec = o.spec, .act_order = true};
  EXPECT_NE(test::error_of([&] {
              quantize_gptq(l.w.data(), l.rows, l.cols, f, other);
            }).find("act_order"),
            std::string::npos);
}

TEST(Gptq, RejectsBadArguments) {
  const Layer l = correlated_layer(4, 64, 15);
  const auto err = [&](const GptqOptions& o, int64_t cols = 64, std::span<const double> h = {}) {
    const std::span<const double> hh = h.empty() ? std::span<const double>(l.h) : h;
    return test::error_of([&] { quantize_gptq(l.w.data(), l.rows, cols, hh, o); });
  };
  EXPECT_EQ(err({.spec = {.bits = 4, .group = 32}}), "");
  EXPECT_NE(err({.spec = {.bits = 5, .group = 32}}).find("bits 5 not supported"),
            std::string::npos);
  EXPECT_NE(
      err({.spec = {.bits = 4, .group = 24}}).find("group 24 does not divide the row width 64"),
      std::string::npos);
  const std::vector<double> small(32 * 32, 0.0);
  EXPECT_NE(err({.spec = {.bits = 4, .group = 32}}, 64, small)
                .find("Hessian has 1024 values; expected cols² = 64²"),
            std::string::npos);
  EXPECT_NE(err({.spec = {.bits = 4, .group = 32}, .block = 0}).find("block must be positive"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              output_error(l.w.data(), quantize_rtn(l.w.data(), 4, 64, {.bits = 2, .group = 32}),
                           small);
            }).find("output_error: the Hessian has 1024 values"),
            std::string::npos);
}

TEST(Gptq, OutputErrorIsTheTrace) {
  const Layer l = correlated_layer(5, 32, 16);
  const GroupedQuant q = quantize_rtn(l.w.data(), l.rows, l.cols, {.bits = 2, .group = 32});
  std::vector<float> deq(l.w.size());
  dequantize(q, deq.data());
  double want = 0;
  for (int64_t r = 0; r < l.rows; ++r) {
    for (int64_t i = 0; i < l.cols; ++i) {
      for (int64_t j = 0; j < l.cols; ++j) {
        want += (double{l.w[r * l.cols + i]} - deq[r * l.cols + i]) * l.h[i * l.cols + j] *
                (double{l.w[r * l.cols + j]} - deq[r * l.cols + j]);
      }
    }
  }
  EXPECT_NEAR(output_error(l.w.data(), q, l.h), want, 1e-9 * want);
}

}  // namespace
}  // namespace mcmoe::compress

#pragma once
// Shared helpers for the kernel and matmul tests: random weights stored in any format, and
// the references the fast paths are compared with.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/fp16.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "ops/matmul.h"
#include "quant/quantize.h"

namespace mcmoe::test {

// A weight matrix that owns its bytes.
struct OwnedWeight {
  std::vector<uint8_t> bytes;
  TensorView view;
};

inline OwnedWeight make_weight(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  OwnedWeight w;
  const size_t rb = row_bytes(type, cols);
  w.bytes.resize(rb * static_cast<size_t>(rows) + 1);  // +1: data need not be row-aligned
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    quant::quantize_row(type, row.data(), w.bytes.data() + r * rb, cols);
  }
  w.view.type = type;
  w.view.shape = {rows, cols};
  w.view.data = w.bytes.data();
  w.view.nbytes = rb * static_cast<size_t>(rows);
  return w;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Output of one fast matmul next to its reference, with the tolerance each element gets.
struct Comparison {
  double nmse = 0;   // Σ (y - ref)² / Σ ref²
  double worst = 0;  // max over elements of |y - ref| / bound
};

inline Comparison compare(const std::vector<double>& ref, const std::vector<double>& bound,
                          const float* y, int64_t n_tokens, int64_t rows, int64_t ldy) {
  Comparison c;
  double num = 0, den = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const size_t i = static_cast<size_t>(t * rows + r);
      const double e = static_cast<double>(y[t * ldy + r]) - ref[i];
      num += e * e;
      den += ref[i] * ref[i];
      const double rel = std::isfinite(e) ? std::fabs(e) / bound[i] : 1e30;
      if (rel > c.worst) c.worst = rel;
    }
  }
  c.nmse = den > 0 ? num / den : num;
  return c;
}

// Float weights: the exact product in double, and a per-element bound for f32 accumulation
// in any order: |error| <= cols · 2^-24 · Σ_c |w_c x_c| (the classic γ_n bound), plus an
// absolute floor for rows that are all zero.
inline void float_reference(const TensorView& w, const float* x, int64_t n_tokens, int64_t ldx,
                            std::vector<double>* ref, std::vector<double>* bound) {
  const int64_t rows = w.rows(), cols = w.cols();
  ref->assign(static_cast<size_t>(n_tokens * rows), 0.0);
  bound->assign(ref->size(), 0.0);
  std::vector<float> wr(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(w.type, w.row(r), wr.data(), cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0, a = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const double p = static_cast<double>(wr[c]) * x[t * ldx + c];
        s += p;
        a += std::fabs(p);
      }
      (*ref)[t * rows + r] = s;
      (*bound)[t * rows + r] = static_cast<double>(cols) * 0x1p-24 * a + 1e-30;
    }
  }
}

// Q8_0 / Q4_0 weights against the same quantized activations the kernels see (the
// reference quantizer, natural layout; the SIMD quantizers are tested bit-identical to it):
// exact integer block dots, scales multiplied in double. The kernels work in f32 and remove
// the code offset K (128 or 8) as a separate per-block term, so their error is a few f32
// roundings of terms as large as dw·dx·Σ(|qw| + K)|qx|; the bound is 1e-5 of that sum
// (about 100 f32 ulps), tight enough that one wrong block or code shows.
inline void quant_reference(const TensorView& w, const float* x, int64_t n_tokens, int64_t ldx,
                            std::vector<double>* ref, std::vector<double>* bound) {
  const int64_t rows = w.rows(), cols = w.cols(), nb = cols / 32;
  const kernels::ActRowLayout l = kernels::act_row_layout(cols);
  std::vector<uint8_t> acts(l.bytes * static_cast<size_t>(n_tokens) + 64);
  uint8_t* base = acts.data() + (64 - reinterpret_cast<uintptr_t>(acts.data()) % 64) % 64;
  for (int64_t t = 0; t < n_tokens; ++t) {
    kernels::quantize_acts_ref(x + t * ldx, cols, base + t * l.bytes, kernels::ActLayout::kNatural);
  }
  const bool q8 = w.type == DType::Q8_0;
  const double offset = q8 ? 128 : 8;
  ref->assign(static_cast<size_t>(n_tokens * rows), 0.0);
  bound->assign(ref->size(), 0.0);
  int qw[32];
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* wr = w.row(r);
    for (int64_t b = 0; b < nb; ++b) {
      uint16_t dh;
      const uint8_t* blk = wr + b * (q8 ? 34 : 18);
      std::memcpy(&dh, blk, 2);
      const double dw = fp16_to_f32(dh);
      for (int j = 0; j < 32; ++j) {
        if (q8) {
          qw[j] = static_cast<int8_t>(blk[2 + j]);
        } else {
          qw[j] = (j < 16 ? (blk[2 + j] & 0x0f) : (blk[2 + j - 16] >> 4)) - 8;
        }
      }
      for (int64_t t = 0; t < n_tokens; ++t) {
        const uint8_t* row = base + t * l.bytes;
        const auto* qx = reinterpret_cast<const int8_t*>(row) + b * 32;
        const double dx = reinterpret_cast<const float*>(row + l.d_off)[b];
        int64_t dot = 0, mag = 0;
        for (int j = 0; j < 32; ++j) {
          dot += qw[j] * qx[j];
          mag += (std::abs(qw[j]) + static_cast<int64_t>(offset)) * std::abs(qx[j]);
        }
        (*ref)[t * rows + r] += dw * dx * static_cast<double>(dot);
        (*bound)[t * rows + r] += 1e-5 * std::fabs(dw * dx) * static_cast<double>(mag);
      }
    }
  }
  for (double& b : *bound) b += 1e-30;
}

// Q8_0 / Q4_0 against the f32 product of the same (dequantized) weights: rounding an
// activation to its block's int8 grid moves it by at most half a step d/2, so
//   |y_quantized - y_f32| <= Σ_b (d_b / 2) · Σ_{c in b} |W[r, c]|
// exactly, before the f32 roundings that `tight` (quant_reference's bound) already covers.
inline void act_quant_bound(const TensorView& w, const float* x, int64_t n_tokens, int64_t ldx,
                            const std::vector<double>& tight, std::vector<double>* bound) {
  const int64_t rows = w.rows(), cols = w.cols(), nb = cols / 32;
  const kernels::ActRowLayout l = kernels::act_row_layout(cols);
  std::vector<uint8_t> act(l.bytes);
  std::vector<float> wr(static_cast<size_t>(cols));
  std::vector<double> half_step(static_cast<size_t>(n_tokens * nb));
  for (int64_t t = 0; t < n_tokens; ++t) {
    kernels::quantize_acts_ref(x + t * ldx, cols, act.data(), kernels::ActLayout::kNatural);
    const auto* d = reinterpret_cast<const float*>(act.data() + l.d_off);
    for (int64_t b = 0; b < nb; ++b) half_step[t * nb + b] = 0.5 * d[b];
  }
  bound->assign(tight.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(w.type, w.row(r), wr.data(), cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += half_step[t * nb + c / 32] * std::fabs(wr[c]);
      (*bound)[t * rows + r] = s * (1 + 1e-6) + tight[t * rows + r];
    }
  }
}

// Normalised squared error allowed against a path's own tight reference: 1e-10, i.e. an RMS
// error of 1e-5 of the output's RMS. f32 accumulation of random data lands near 1e-14; a
// single dropped or doubled element (or one wrong code) of a 4096-long row gives ~1e-4.
inline constexpr double kTightNmse = 1e-10;

// "avx512_q4_0": test names and traces.
inline std::string param_name(kernels::Isa isa, DType t) {
  return std::string(kernels::isa_name(isa)) + "_" + std::string(dtype_name(t));
}

struct Case {
  int64_t rows, cols, n_tokens;
};

// One product through ops::matmul_batch on a forced ISA path, with padded strides
// (ldx > cols, ldy > rows) so that a stride mix-up shows; the padding of y must stay as it was.
struct PaddedProduct {
  std::vector<float> x, y;  // [n_tokens, ldx] random, [n_tokens, ldy]
  int64_t n_tokens = 0, ldx = 0, ldy = 0;
};

inline PaddedProduct run_padded(kernels::Isa isa, const TensorView& w, int64_t n_tokens,
                                ThreadPool& pool, uint32_t seed) {
  constexpr float kSentinel = 12345.f;
  PaddedProduct p;
  p.n_tokens = n_tokens;
  p.ldx = w.cols() + 3;
  p.ldy = w.rows() + 5;
  p.x = random_floats(static_cast<size_t>(n_tokens * p.ldx), seed);
  p.y.assign(static_cast<size_t>(n_tokens * p.ldy), kSentinel);
  {
    kernels::ScopedIsa force(isa);
    const ops::MatmulJob job{
        .w = &w, .x = p.x.data(), .y = p.y.data(), .n_tokens = n_tokens, .ldx = p.ldx, .ldy = p.ldy};
    ops::matmul_batch(std::span<const ops::MatmulJob>(&job, 1), pool);
  }
  int64_t overwritten = 0;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = w.rows(); r < p.ldy; ++r) overwritten += p.y[t * p.ldy + r] != kSentinel;
  }
  EXPECT_EQ(overwritten, 0) << "elements of y's padding written";
  return p;
}

// A quantized-activation product against the f32 product of the same weights
// (matmul_reference). Every element is held to the exact rounding bound of act_quant_bound
// (on top of `bound`, the tight bound of the int8 reference). Activations rounded to int8 per
// block of 32 give a relative RMS error of about max|x| / (127 · √12 · rms(x)) ≈ 0.5% for
// Gaussian data, NMSE ≈ 2.5e-5: allow a normalised RMS error of 1e-2 (NMSE 1e-4), checked
// only with 64 or more outputs (one output can be near zero by chance).
inline void check_against_f32(const TensorView& w, const PaddedProduct& p,
                              const std::vector<double>& bound) {
  std::vector<float> y_ref(static_cast<size_t>(p.n_tokens * w.rows()));
  const ops::MatmulJob job{
      .w = &w, .x = p.x.data(), .y = y_ref.data(), .n_tokens = p.n_tokens, .ldx = p.ldx};
  ops::matmul_reference(job);
  std::vector<double> ref64(y_ref.begin(), y_ref.end()), loose_bound;
  act_quant_bound(w, p.x.data(), p.n_tokens, p.ldx, bound, &loose_bound);
  const Comparison loose = compare(ref64, loose_bound, p.y.data(), p.n_tokens, w.rows(), p.ldy);
  EXPECT_LE(loose.worst, 1.0) << "an element is further from the f32 result than rounding allows";
  if (w.rows() * p.n_tokens >= 64) {
    EXPECT_LT(loose.nmse, 1e-4);
  }
}

inline std::vector<kernels::Isa> supported_isas() {
  std::vector<kernels::Isa> v;
  for (kernels::Isa isa : {kernels::Isa::kScalar, kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (kernels::isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

}  // namespace mcmoe::test

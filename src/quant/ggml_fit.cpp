// Fitting ggml blocks (fit_block, quantize_row_ggml): what llama.cpp's quantizers optimise, a
// weighted squared error per block, with scales searched around the min/max fit and refitted
// by least squares (ggml_encode.h). Packing is ggml_encode.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/fit_grid.h"
#include "quant/ggml_encode.h"
#include "quant/ggml_encode_iq.h"
#include "quant/ggml_layout.h"
#include "quant/iq_grids.h"
#include "quant/quantize.h"

namespace mcmoe::quant {

namespace {

// ---- fitting ----

// The per-element weights fit_weighted minimises Σ w (x - value)² under. With importance: ggml's
// (quantize_row_*_impl with quant_weights). Without: ggml's default path's, with one change:
// where ggml weights by x² (Q3_K, Q6_K, IQ4_NL, IQ4_XS) or |x| (Q2_K), which leaves small values
// almost unweighted, the block's mean square (RMS for Q2_K) is added, as ggml's own Q4_K / Q5_K
// default (RMS + |x|) does. Measured on tests/data/ggml_encode: with x² alone the plain error
// was up to 8% above ggml's (Q3_K); with the floor both the plain error and ggml's x²-weighted
// error are below ggml's for every type. sigma2_row: the legacy types' mean square over the
// whole row (ggml computes it per row), or < 0 to use the block's.
void ggml_weights(DType type, const Layout& l, const float* x, const float* imp, double sigma2_row,
                  float* w) {
  double sum_x2 = 0;
  for (int e = 0; e < l.n; ++e) sum_x2 += static_cast<double>(x[e]) * x[e];
  const bool legacy = type == DType::Q4_0 || type == DType::Q4_1 || type == DType::Q5_0 ||
                      type == DType::Q5_1 || type == DType::Q8_0;
  if (imp) {
    // Importance times an RMS-like magnitude; the mean square's factor differs per type in
    // ggml (1 for Q2_K and the legacy types, 2 for the others); Q6_K uses the importance alone.
    double sigma2 = (type == DType::Q2_K || legacy ? 1.0 : 2.0) * sum_x2 / l.n;
    if (legacy && sigma2_row >= 0) sigma2 = sigma2_row;
    for (int e = 0; e < l.n; ++e) {
      w[e] = type == DType::Q6_K ? imp[e]
                                 : imp[e] * static_cast<float>(std::sqrt(sigma2 + x[e] * x[e]));
    }
  } else if (legacy) {
    std::fill(w, w + l.n, 1.f);  // ggml's reference rounding optimises nothing: plain error
  } else if (type == DType::Q2_K) {
    const auto rms = static_cast<float>(std::sqrt(sum_x2 / l.n));
    for (int e = 0; e < l.n; ++e) w[e] = rms + std::fabs(x[e]);
  } else if (type == DType::Q4_K || type == DType::Q5_K) {
    for (int g = 0; g < l.n; g += 32) {  // RMS of the 32 plus |x|
      double s = 0;
      for (int e = g; e < g + 32; ++e) s += static_cast<double>(x[e]) * x[e];
      const float av = static_cast<float>(std::sqrt(s / 32));
      for (int e = g; e < g + 32; ++e) w[e] = av + std::fabs(x[e]);
    }
  } else {  // Q3_K, Q6_K, IQ4_NL, IQ4_XS
    const auto mean_sq = static_cast<float>(sum_x2 / l.n);
    for (int e = 0; e < l.n; ++e) w[e] = mean_sq + x[e] * x[e];
  }
  // A floor, so that elements of zero weight (zeros under x² weights) still prefer an exact
  // zero among otherwise equal fits.
  const float w_max = *std::max_element(w, w + l.n);
  const float floor = w_max > 0.f ? w_max * 1e-6f : 1.f;
  for (int e = 0; e < l.n; ++e) w[e] += floor;
}

using fit::clamp_round;

// A type's codes for the fitter (fit_grid.h): a table, or the integers from the lowest code
// fit_block uses.
struct Codes {
  fit::Grid grid;
  explicit Codes(const Layout& l) : grid(fit::grid_of(l)) {}
  int count() const { return grid.values ? grid.count : grid.hi - grid.lo + 1; }
  int value(int i) const { return grid.values ? grid.values[i] : grid.lo + i; }
};

// A group's continuous fit: value ≈ s · q − m (m ≥ 0, and 0 for types without a min).
struct GroupFit {
  float s = 0.f, m = 0.f;
  double err = std::numeric_limits<double>::infinity();
};

// Keeps the least-squares fit f (fit_grid.h) in `best` if its error is lower.
void keep_better(const fit::LeastSquares& f, GroupFit* best) {
  if (f.err < best->err) *best = {static_cast<float>(f.s), static_cast<float>(-f.o), f.err};
}

// Searches the inverse scale that maps the group's extreme to near either end of the code range
// (±1 code in steps of 0.05 — for IQ4's table ± one mean step), refits s (and the min) by least
// squares for each, then alternates codes and least squares while the error falls.
GroupFit fit_group(const Codes& c, bool with_min, const float* x, const float* w, int n,
                   bool free_offset = false) {
  float lo = x[0], hi = x[0], amax = 0.f, max = 0.f;
  for (int e = 0; e < n; ++e) {
    lo = std::min(lo, x[e]), hi = std::max(hi, x[e]);
    if (std::fabs(x[e]) > amax) amax = std::fabs(x[e]), max = x[e];
  }
  GroupFit best;
  if (with_min && !free_offset) lo = std::min(lo, 0.f);
  if (amax == 0.f || (with_min && hi == lo)) return {0.f, with_min ? -lo : 0.f, 0.0};
  int q[32];
  const float step =
      c.grid.values ? static_cast<float>(c.grid.hi - c.grid.lo) / (c.count() - 1) : 1.f;
  const int ends[2] = {c.value(0), c.value(c.count() - 1)};
  for (int end : ends) {
    if (end == 0) continue;  // (with a min, codes start at 0)
    constexpr int kSteps = 41;  // k = -20..20
    float inv[kSteps];
    for (int k = -20; k <= 20; ++k) {
      const float target = static_cast<float>(end) + step * 0.05f * k;
      inv[k + 20] = with_min ? target / (hi - lo) : target / max;
    }
    fit::LeastSquares fits[kSteps];
    fit::least_squares_candidates(
        c.grid, {.x = x, .w = w, .n = n, .with_min = with_min, .free_offset = free_offset}, inv,
        kSteps, with_min ? lo : 0.f, fits);
    for (const fit::LeastSquares& f : fits) keep_better(f, &best);
  }
  for (int iter = 0; iter < 8 && best.s != 0.f; ++iter) {
    const double before = best.err;
    fit::nearest_divided(c.grid, x, n, best.m, best.s, q);
    keep_better(fit::least_squares(
                    {.x = x, .w = w, .n = n, .with_min = with_min, .free_offset = free_offset}, q),
                &best);
    if (!(best.err < before)) break;
  }
  if (!std::isfinite(best.err)) best = {0.f, 0.f, 0.0};
  return best;
}

// f16 value k steps from v along the f16 number line (finite values only).
float f16_step(float v, int k) {
  const uint16_t h = f32_to_fp16(v);
  int i = (h & 0x8000) ? -(h & 0x7fff) : (h & 0x7fff);
  i = std::clamp(i + k, -0x7bff, 0x7bff);
  return fp16_to_f32(static_cast<uint16_t>(i < 0 ? 0x8000 | -i : i));
}

// A block's integer plan: super-scales (f16 values) and per-group scale and min.
struct Plan {
  float d = 0.f, dmin = 0.f;
  int ls[16] = {}, lm[16] = {};
};

struct Fitter {
  const Layout& l;
  Codes codes;
  const float* x;
  const float* w;
  GroupFit fit[16];

  double group_err(const Plan& p, int j, int8_t* q = nullptr) const {
    const float dl = p.d * static_cast<float>(p.ls[j]);
    const float ml = p.dmin * static_cast<float>(p.lm[j]);
    return fit::group_error(codes.grid, x + j * l.group, w + j * l.group, l.group, dl, ml, q);
  }
  double error(const Plan& p) const {
    float dl[16], ml[16];
    for (int j = 0; j < l.groups(); ++j) {
      dl[j] = p.d * static_cast<float>(p.ls[j]);
      ml[j] = p.dmin * static_cast<float>(p.lm[j]);
    }
    return fit::groups_error(codes.grid, x, w, l.group, l.groups(), dl, ml);
  }
  void set_d(Plan* p, float d) const {
    p->d = d;
    for (int j = 0; j < l.groups(); ++j) {
      p->ls[j] = d != 0.f ? clamp_round(fit[j].s / d, l.scale_lo, l.scale_hi)
                          : std::clamp(0, l.scale_lo, l.scale_hi);
    }
  }
  void set_dmin(Plan* p, float dmin) const {
    p->dmin = dmin;
    for (int j = 0; j < l.groups(); ++j) {
      p->lm[j] = dmin != 0.f ? clamp_round(fit[j].m / dmin, 0, l.min_hi) : 0;
    }
  }
  // Tries super-scale candidates v / t for t within ±10% (at least ±1) of each nonzero end of
  // [lo, hi], v the largest group value, each rounded to f16 (and its neighbours), keeping the
  // best by the block's true error.
  void search(Plan* p, double* err, bool for_min) const {
    float v = 0.f;
    for (int j = 0; j < l.groups(); ++j) {
      const float fj = for_min ? fit[j].m : fit[j].s;
      if (std::fabs(fj) > std::fabs(v)) v = fj;
    }
    if (v == 0.f) return;
    const int ends[2] = {for_min ? 0 : l.scale_lo, for_min ? l.min_hi : l.scale_hi};
    for (int end : ends) {
      if (end == 0) continue;
      const float r = std::max(1.f, 0.1f * std::fabs(static_cast<float>(end)));
      for (int k = -10; k <= 10; ++k) {
        // Rounded to f16; one that underflows becomes the smallest subnormal of its sign.
        float c = f16_step(v / (static_cast<float>(end) + r * 0.1f * k), 0);
        if (c == 0.f) c = std::copysign(f16_step(0.f, 1), v * static_cast<float>(end));
        Plan t = *p;
        for_min ? set_dmin(&t, c) : set_d(&t, c);
        const double e = error(t);
        if (e < *err) *err = e, *p = t;
      }
    }
  }
  // Per group, the best scale and min within ±1 of the current ones.
  double refine_groups(Plan* p) const {
    double total = 0;
    for (int j = 0; j < l.groups(); ++j) {
      double best = group_err(*p, j);
      const int s0 = p->ls[j], m0 = p->lm[j];
      for (int ds = -1; ds <= 1; ++ds) {
        for (int dm = -1; dm <= 1; ++dm) {
          const int s = s0 + ds, m = m0 + dm;
          if (s < l.scale_lo || s > l.scale_hi || m < 0 || m > l.min_hi) continue;
          Plan t = *p;
          t.ls[j] = s, t.lm[j] = m;
          const double e = group_err(t, j);
          if (e < best) best = e, p->ls[j] = s, p->lm[j] = m;
        }
      }
      total += best;
    }
    return total;
  }
  // Least-squares d (and dmin) for the current integers, tried with f16 neighbours.
  void refit_super(Plan* p, double* err) const {
    int8_t q[256];
    double saa = 0, sab = 0, sbb = 0, sxa = 0, sxb = 0;
    for (int j = 0; j < l.groups(); ++j) {
      group_err(*p, j, q + j * l.group);
      for (int i = 0; i < l.group; ++i) {
        const int e = j * l.group + i;
        const double a = static_cast<double>(p->ls[j]) * q[i + j * l.group], b = -p->lm[j];
        saa += w[e] * a * a, sab += w[e] * a * b, sbb += w[e] * b * b;
        sxa += w[e] * x[e] * a, sxb += w[e] * x[e] * b;
      }
    }
    double d = p->d, dmin = p->dmin;
    const double det = saa * sbb - sab * sab;
    if (l.min_hi > 0 && det > 0) {
      d = (sxa * sbb - sxb * sab) / det, dmin = (saa * sxb - sab * sxa) / det;
    } else if (saa > 0) {
      d = (sxa - dmin * sab) / saa;
    }
    if (!std::isfinite(d) || !std::isfinite(dmin) || std::fabs(d) > 65504 ||
        std::fabs(dmin) > 65504)
      return;
    for (int kd = -1; kd <= 1; ++kd) {
      for (int km = -1; km <= 1; ++km) {
        if (l.min_hi == 0 && km != 0) continue;
        Plan t = *p;
        t.d = f16_step(static_cast<float>(d), kd);
        t.dmin = l.min_hi > 0 ? f16_step(static_cast<float>(dmin), km) : 0.f;
        const double e = error(t);
        if (e < *err) *err = e, *p = t;
      }
    }
  }
};

void fit_weighted(const Layout& l, const float* x, const float* w, IntBlock* out) {
  Fitter f{l, Codes(l), x, w, {}};
  for (int j = 0; j < l.groups(); ++j) {
    f.fit[j] = fit_group(f.codes, l.min_hi > 0, x + j * l.group, w + j * l.group, l.group,
                         l.free_offset());
  }
  Plan p;
  if (l.free_offset()) {
    // Q4_1 / Q5_1: scale and min fixed at 1; d and dmin = -m from the group's continuous fit,
    // each rounded to f16 and tried with its neighbours, then refitted below.
    p.ls[0] = 1, p.lm[0] = 1;
    double err = std::numeric_limits<double>::infinity();
    Plan best = p;
    for (int kd = -2; kd <= 2; ++kd) {
      for (int km = -2; km <= 2; ++km) {
        Plan t = p;
        t.d = f16_step(f.fit[0].s, kd);
        t.dmin = f16_step(f.fit[0].m, km);
        const double e = f.error(t);
        if (e < err) err = e, best = t;
      }
    }
    // The fit above keeps the best continuous fit only; several code assignments lead to
    // nearly equal fits, so each start of two scans is refined by alternating nearest codes
    // and least squares, and judged by the true error with f16 d and dmin. Starts: the range
    // [lo, hi] mapped to the top code ± 1 in steps of 0.05 with lo the block's minimum; then
    // as ggml's make_qkx3_quants, ± 0.9 with lo moved to the offset of the best continuous fit
    // so far (which reaches fits that clip the extremes).
    float lo = x[0], hi = x[0];
    for (int e = 0; e < l.n; ++e) lo = std::min(lo, x[e]), hi = std::max(hi, x[e]);
    const float top = static_cast<float>(l.codes.hi);
    for (int scan = 0; scan < 2 && hi > lo; ++scan) {
      float origin = lo;
      double best_cont = std::numeric_limits<double>::infinity();
      const int k_max = scan == 0 ? 20 : 18;
      for (int k = -k_max; k <= k_max && hi > origin; ++k) {
        const float inv = (top + 0.05f * static_cast<float>(k)) / (hi - origin);
        int q[32];
        int8_t q8[32];
        fit::nearest_scaled(f.codes.grid, x, l.n, inv, origin, q);
        double prev = std::numeric_limits<double>::infinity();
        for (int iter = 0; iter < 6; ++iter) {
          GroupFit g;
          keep_better(fit::least_squares(
                          {.x = x, .w = w, .n = l.n, .with_min = true, .free_offset = true}, q),
                      &g);
          if (!std::isfinite(g.err) || !std::isfinite(g.s) || !std::isfinite(g.m)) break;
          if (iter == 0 && scan == 1 && g.err < best_cont) best_cont = g.err, origin = -g.m;
          Plan t = p;
          t.d = f16_step(g.s, 0);
          t.dmin = f16_step(g.m, 0);
          const double e = f.group_err(t, 0, q8);
          if (e < err) err = e, best = t;
          if (!(e < prev)) break;
          prev = e;
          for (int i = 0; i < l.n; ++i) q[i] = q8[i];
        }
      }
    }
    p = best;
    for (int round = 0; round < 3; ++round) {
      const double before = err;
      f.refit_super(&p, &err);
      if (!(err < before)) break;
    }
  } else {
    if (l.min_hi > 0) {
      float m_max = 0.f;
      for (int j = 0; j < l.groups(); ++j) m_max = std::max(m_max, f.fit[j].m);
      f.set_dmin(&p, m_max > 0.f ? f16_step(m_max / l.min_hi, 0) : 0.f);
    }
    f.set_d(&p, 0.f);
    double err = f.error(p);
    if (l.single_scale()) {
      for (int k = -2; k <= 2; ++k) {
        Plan t = p;
        f.set_d(&t, f16_step(f.fit[0].s, k));
        const double e = f.error(t);
        if (e < err) err = e, p = t;
      }
    } else {
      f.search(&p, &err, false);
      if (l.min_hi > 0) {
        f.search(&p, &err, true);
        f.search(&p, &err, false);
      }
    }
    for (int round = 0; round < 3; ++round) {
      const double before = err;
      if (!l.single_scale()) err = std::min(err, f.refine_groups(&p));
      f.refit_super(&p, &err);
      if (!(err < before)) break;
    }
  }
  // The plan to an IntBlock, codes chosen for the final scales.
  *out = IntBlock{};
  out->n = l.n;
  out->d = p.d;
  out->dmin = p.dmin;
  for (int j = 0; j < l.groups(); ++j) {
    f.group_err(p, j, out->q + j * l.group);
    for (int s = j * l.group / 16; s < (j + 1) * l.group / 16; ++s) {
      out->scale[s] = static_cast<int16_t>(p.ls[j]);
      out->min[s] = static_cast<int16_t>(p.lm[j]);
    }
  }
}

void check_inputs(DType type, int n, const float* x, const float* importance) {
  for (int e = 0; e < n; ++e) {
    if (!std::isfinite(x[e]))
      fail("quantize {}: value {} of a block is {}, not finite", dtype_name(type), e, x[e]);
    if (importance && !(importance[e] >= 0.f && std::isfinite(importance[e]))) {
      fail("quantize {}: importance {} of a block is {}, expected finite and >= 0",
           dtype_name(type), e, importance[e]);
    }
  }
}

void fit_checked(DType type, const Layout& l, const float* x, const float* importance,
                 double sigma2_row, IntBlock* out) {
  check_inputs(type, l.n, x, importance);
  float w[256];
  ggml_weights(type, l, x, importance, sigma2_row, w);
  fit_weighted(l, x, w, out);
}

}  // namespace

void fit_block(DType type, const float* x, const float* importance, IntBlock* out) {
  if (ggml_iq::handles(type)) {
    check_inputs(type, 256, x, importance);
    return ggml_iq::fit(type, x, importance, out);
  }
  fit_checked(type, layout_or_fail(type, "fit_block"), x, importance, -1.0, out);
}

void quantize_row_ggml(DType type, const float* src, void* dst, int64_t n,
                       const float* importance) {
  if (!can_encode(type)) layout_or_fail(type, "quantize_row_ggml");
  const size_t bytes = dtype_traits(type).block_bytes;
  const int64_t block = dtype_traits(type).block_size;
  if (n % block != 0) {
    fail("quantize_row_ggml: {} elements not a multiple of the {} block size {}", n,
         dtype_name(type), block);
  }
  auto* out = static_cast<uint8_t*>(dst);
  IntBlock b;
  if (is_vector_codebook(type)) {
    for (int64_t k = 0; k < n / block; ++k) {
      fit_block(type, src + k * block, importance ? importance + k * block : nullptr, &b);
      encode_block(type, b, out + k * bytes);
    }
    return;
  }
  const Layout& l = *layout_of(type);
  // ggml weights the legacy types' importance by the row's mean square, not the block's.
  double sigma2_row = 0;
  for (int64_t i = 0; i < n; ++i) sigma2_row += static_cast<double>(src[i]) * src[i];
  sigma2_row = n > 0 ? sigma2_row / static_cast<double>(n) : 0.0;
  for (int64_t k = 0; k < n / l.n; ++k) {
    fit_checked(type, l, src + k * l.n, importance ? importance + k * l.n : nullptr, sigma2_row,
                &b);
    encode_block(type, b, out + k * bytes);
  }
}

}  // namespace mcmoe::quant

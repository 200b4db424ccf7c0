#include "compress/quantizers.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/ggml_encode.h"

namespace mcmoe::compress {

namespace {

// Rows per chunk in ThreadPool::parallel_for (each chunk runs the whole GPTQ sweep on its
// rows; the grain only keeps chunks from being tiny).
constexpr int64_t kRowGrain = 16;
// Columns per GPTQ sub-block: error feedback inside a sub-block is a scalar loop, between
// sub-blocks of one block it is an sgemm, so the scalar work is rows · cols · 16 / 2 flops.
constexpr int64_t kSubBlock = 16;

float f16_nearest(double x) {
  return fp16_to_f32(f32_to_fp16(static_cast<float>(x)));
}

// The largest f16 value <= x (-inf below the f16 range).
float f16_down(double x) {
  uint16_t h = f32_to_fp16(static_cast<float>(x));
  if (static_cast<double>(fp16_to_f32(h)) <= x) return fp16_to_f32(h);
  if (h == 0x0000) {
    h = 0x8001;  // +0 → the negative subnormal nearest 0
  } else if (h & 0x8000) {
    ++h;  // negative: one step away from 0
  } else {
    --h;  // positive (or +inf → 65504): one step toward 0
  }
  return fp16_to_f32(h);
}

float f16_up(double x) {
  return -f16_down(-x);
}

struct GroupParams {
  float scale = 0, min = 0;
  float inv = 0;  // 1 / scale, or 0 when scale is 0 (every weight then takes code 0)
};

// One group's grid (the table in quantizers.h). Never throws: values beyond the f16 range give
// an infinite scale or min, which check_params reports after any parallel section.
GroupParams group_params(const float* w, int64_t g, const QuantSpec& s) {
  GroupParams p;
  if (s.bits == 1) {
    double sum = 0;
    for (int64_t i = 0; i < g; ++i) sum += std::fabs(w[i]);
    const float m = f16_nearest(sum / static_cast<double>(g));
    p.scale = 2 * m;  // exact: doubling an f16 value stays an f16 value
    p.min = -m;
    return p;
  }
  if (!s.symmetric) {
    float lo = w[0], hi = w[0];
    for (int64_t i = 1; i < g; ++i) {
      lo = std::min(lo, w[i]);
      hi = std::max(hi, w[i]);
    }
    // Directed rounding keeps [min, min + maxq·scale] ⊇ [lo, hi], so no weight's error exceeds
    // scale / 2; rounding min to nearest could leave lo outside by |lo| · 2^-11, unbounded by
    // the scale when a group's values sit far from 0. Cost: scale grows by ≤ 1 f16 ulp.
    p.min = f16_down(lo);
    p.scale = f16_up((static_cast<double>(hi) - p.min) / ((1 << s.bits) - 1));
  } else if (s.bits == 8) {
    float amax = 0;
    for (int64_t i = 0; i < g; ++i) amax = std::max(amax, std::fabs(w[i]));
    p.scale = f16_nearest(amax / 127.0);
    p.min = -128 * p.scale;  // a power-of-two multiple of an f16 value is exact
  } else {
    float amax = 0, vmax = 0;
    for (int64_t i = 0; i < g; ++i) {
      if (std::fabs(w[i]) > amax) {
        amax = std::fabs(w[i]);
        vmax = w[i];
      }
    }
    const int half = 1 << (s.bits - 1);
    p.scale = f16_nearest(vmax / static_cast<double>(-half));
    p.min = static_cast<float>(-half) * p.scale;
  }
  p.inv = p.scale != 0 ? 1.f / p.scale : 0.f;
  return p;
}

// Squared error of a group on grid p.
double grid_error(const float* w, int64_t g, const GroupParams& p, float maxq) {
  double e = 0;
  for (int64_t i = 0; i < g; ++i) {
    const float x = std::clamp((w[i] - p.min) * p.inv, 0.f, maxq);
    const float d = w[i] - (p.scale * static_cast<float>(static_cast<int>(x + 0.5f)) + p.min);
    e += std::fabs(double{w[i]}) * d * d;
  }
  return e;
}

// QuantSpec::search for an asymmetric grid: clip ranges shrunk toward the centre, each
// refitted by least squares (w ≈ scale · q + min over the group's codes q), f16-rounded;
// the min/max grid is the first candidate, so the result is never worse than it.
GroupParams searched_params(const float* w, int64_t g, const QuantSpec& s) {
  GroupParams best = group_params(w, g, s);
  if (best.scale == 0) return best;
  const float maxq = static_cast<float>((1 << s.bits) - 1);
  double best_err = grid_error(w, g, best, maxq);
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < g; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const double centre = 0.5 * (double{lo} + hi), half = 0.5 * (double{hi} - lo);
  for (int step = 0; step <= 25; ++step) {
    const double f = 1.0 - 0.02 * step;
    GroupParams p;
    p.min = static_cast<float>(centre - f * half);
    p.scale = static_cast<float>(2 * f * half / maxq);
    p.inv = 1.f / p.scale;
    // Least-squares refit of (scale, min) to the codes this range assigns.
    double s1 = 0, sq = 0, sqq = 0, sw = 0, sqw = 0;
    for (int64_t i = 0; i < g; ++i) {
      const float x = std::clamp((w[i] - p.min) * p.inv, 0.f, maxq);
      const double q = static_cast<int>(x + 0.5f), a = std::fabs(double{w[i]});
      s1 += a;
      sq += a * q;
      sqq += a * q * q;
      sw += a * w[i];
      sqw += a * q * w[i];
    }
    // No refit (a group with one distinct non-zero value, say): skip the candidate rather
    // than keep its unrounded clip range, which f16 cannot store.
    const double det = s1 * sqq - sq * sq;
    if (!(det > 0)) continue;
    const double scale = (s1 * sqw - sq * sw) / det;
    if (!(scale > 0)) continue;
    p.scale = f16_nearest(scale);
    p.min = f16_nearest((sw - scale * sq) / s1);
    if (!(p.scale > 0) || !std::isfinite(p.scale) || !std::isfinite(p.min)) continue;
    p.inv = 1.f / p.scale;
    const double err = grid_error(w, g, p, maxq);
    if (err < best_err) {
      best_err = err;
      best = p;
    }
  }
  return best;
}

GroupParams choose_params(const float* w, int64_t g, const QuantSpec& s) {
  return s.search && !s.symmetric && s.bits >= 2 && s.bits <= 4 ? searched_params(w, g, s) : group_params(w, g, s);
}

// The code of w on p's grid. Symmetric grids use the same formula: with min = −2^(b−1)·d,
// (w − min) / d = w / d + 2^(b−1). Clamping first keeps the result ≥ 0, so +0.5 and
// truncation round to nearest (halves up, as ggml's Q4_0 does).
inline int encode(float w, const GroupParams& p, int bits, float maxq) {
  if (bits == 1) return w >= 0.f ? 1 : 0;
  const float x = std::clamp((w - p.min) * p.inv, 0.f, maxq);
  return static_cast<int>(x + 0.5f);
}

// Exactly GroupedQuant::value's arithmetic, so GPTQ's error is the error the model sees.
inline float decode(int q, const GroupParams& p) {
  return p.scale * static_cast<float>(q) + p.min;
}

void validate(const char* who, int64_t rows, int64_t cols, const QuantSpec& s) {
  if (rows <= 0 || cols <= 0) fail("{}: shape [{}, {}] is empty", who, rows, cols);
  if (s.bits != 1 && s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8) {
    fail("{}: bits {} not supported (1, 2, 3, 4 or 8)", who, s.bits);
  }
  if (s.group <= 0 || cols % s.group != 0) {
    fail("{}: group {} does not divide the row width {}", who, s.group, cols);
  }
}

void check_finite(const char* who, const float* w, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) fail("{}: weight [{}, {}] is {}", who, i / cols, i % cols, w[i]);
  }
}

GroupedQuant make_output(int64_t rows, int64_t cols, const QuantSpec& s) {
  GroupedQuant out;
  out.bits = s.bits;
  out.group = s.group;
  out.rows = rows;
  out.cols = cols;
  out.q.assign(static_cast<size_t>(rows * cols), 0);
  out.scale.assign(static_cast<size_t>(rows * (cols / s.group)), 0.f);
  out.min.assign(out.scale.size(), 0.f);
  return out;
}

void check_params(const char* who, const GroupedQuant& q) {
  for (size_t i = 0; i < q.scale.size(); ++i) {
    if (!std::isfinite(q.scale[i]) || !std::isfinite(q.min[i])) {
      fail("{}: row {} group {} needs scale {} / min {}, outside the f16 range", who,
           static_cast<int64_t>(i) / q.groups_per_row(),
           static_cast<int64_t>(i) % q.groups_per_row(), q.scale[i], q.min[i]);
    }
  }
}

// OpenBLAS threads are switched off while pool threads call sgemm concurrently (the two would
// oversubscribe the cores), and restored afterwards so the O(cols³) factorisations of the next
// matrix still use them. Compression runs alone, so nothing else sees the change.
class BlasSingleThreaded {
 public:
  BlasSingleThreaded() : prev_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~BlasSingleThreaded() { openblas_set_num_threads(prev_); }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int prev_;
};

// The grid GPTQ's column sweep rounds onto. Every span() consecutive columns of a row share
// one fitted set of parameters:
//   void fit(int64_t row, int64_t span_index, const float* w)  the span's weights, natural order
//   float round(int64_t row, int64_t col, const float* w)      stores *w's code, returns its value
// (w points into the row as the sweep has updated it so far, in processing order: a vector
// codebook reads the next 7 weights too, which happen to be in natural order there as it
// refuses act-order).
// Rows are independent: fit and round for different rows may run on different threads.

// MCMOE's grouped grids (QuantSpec) into a GroupedQuant.
class GroupGrid {
 public:
  GroupGrid(const QuantSpec& s, GroupedQuant& out)
      : s_(s),
        out_(out),
        gpr_(out.groups_per_row()),
        maxq_(static_cast<float>((1 << s.bits) - 1)),
        params_(static_cast<size_t>(out.rows * gpr_)) {}
  int64_t span() const { return s_.group; }
  void fit(int64_t r, int64_t gi, const float* w) {
    GroupParams& p = params_[r * gpr_ + gi];
    p = choose_params(w, s_.group, s_);
    out_.scale[r * gpr_ + gi] = p.scale;
    out_.min[r * gpr_ + gi] = p.min;
  }
  float round(int64_t r, int64_t c, const float* w) {
    const GroupParams& p = params_[r * gpr_ + c / s_.group];
    const int q = encode(*w, p, s_.bits, maxq_);
    out_.q[r * out_.cols + c] = static_cast<uint8_t>(q);
    return decode(q, p);
  }

 private:
  const QuantSpec& s_;
  GroupedQuant& out_;
  int64_t gpr_;
  float maxq_;
  std::vector<GroupParams> params_;
};

// Blocks of one of ggml's formats (quant/ggml_encode.h), one row of them per matrix row: a
// block's d, scales and mins come from quant::fit_block, weighted by the importance of its
// columns. The grids below add how a weight's code is chosen on them.
class GgmlBlocks {
 public:
  GgmlBlocks(DType type, int64_t rows, int64_t cols, std::span<const float> importance)
      : type_(type),
        block_(dtype_traits(type).block_size),
        bpr_(cols / block_),
        importance_(importance),
        blocks_(static_cast<size_t>(rows * bpr_)) {}
  int64_t span() const { return block_; }
  void fit(int64_t r, int64_t b, const float* w) {
    quant::fit_block(type_, w, importance_.empty() ? nullptr : importance_.data() + b * block_,
                     &blocks_[r * bpr_ + b]);
  }
  // The packed rows, row_bytes(type, cols) each.
  std::vector<uint8_t> pack() const {
    const size_t bb = dtype_traits(type_).block_bytes;
    std::vector<uint8_t> bytes(blocks_.size() * bb);
    for (size_t i = 0; i < blocks_.size(); ++i)
      quant::encode_block(type_, blocks_[i], bytes.data() + i * bb);
    return bytes;
  }

 protected:
  quant::IntBlock& block_of(int64_t r, int64_t c) { return blocks_[r * bpr_ + c / block_]; }
  DType type_;
  int64_t block_, bpr_;

 private:
  std::span<const float> importance_;
  std::vector<quant::IntBlock> blocks_;
};

// Per-element codes: the nearest the type allows on the block's grid, decoded with ggml's
// arithmetic ((d · scale) · q − dmin · min).
class GgmlGrid : public GgmlBlocks {
 public:
  GgmlGrid(DType type, int64_t rows, int64_t cols, std::span<const float> importance)
      : GgmlBlocks(type, rows, cols, importance), codes_(quant::code_set(type)) {}
  float round(int64_t r, int64_t c, const float* w) {
    quant::IntBlock& b = block_of(r, c);
    const int e = static_cast<int>(c % block_);
    const float dl = b.d * static_cast<float>(b.scale[e / 16]);
    const float ml = b.dmin * static_cast<float>(b.min[e / 16]);
    const int q = nearest_code((*w + ml) / dl, dl != 0.f);
    b.q[e] = static_cast<int8_t>(q);
    return dl * static_cast<float>(q) - ml;
  }

 private:
  // The allowed code nearest t = (w + ml) / dl: |w − (dl·q − ml)| = |dl|·|t − q| for either
  // sign of dl. A zero sub-block scale decodes every code to −ml: any code will do.
  int nearest_code(float t, bool valid) const {
    if (!valid || !std::isfinite(t))
      return codes_.values ? codes_.values[codes_.count / 2] : std::clamp(0, codes_.lo, codes_.hi);
    if (!codes_.values)
      return static_cast<int>(std::lround(std::clamp(t, float(codes_.lo), float(codes_.hi))));
    const int8_t* v = codes_.values;
    const int8_t* hi =
        std::lower_bound(v, v + codes_.count, t, [](int8_t a, float x) { return a < x; });
    if (hi == v) return v[0];
    if (hi == v + codes_.count) return v[codes_.count - 1];
    return t - hi[-1] <= hi[0] - t ? hi[-1] : hi[0];
  }
  quant::CodeSet codes_;
};

// A vector codebook (IQ2_XXS, IQ3_XXS). A block's d and 32-weight scales are fitted as
// GgmlGrid's are, from the weights as the feedback has left them when its first column comes
// up; then as the sweep reaches each 8 weights their codes are chosen together
// (round_codebook_group) for their current values, which carry the feedback of every column
// before them, weighted by 1 / U_ii², the cost GPTQ charges a column's error. The other 7
// columns take the codes chosen for them; their own feedback then flows on to later columns
// as usual. (GPTVQ's scheme on ggml's grid.)
class CodebookGrid : public GgmlBlocks {
 public:
  CodebookGrid(DType type, int64_t rows, int64_t cols, std::span<const float> importance,
               const GptqFactor& f)
      : GgmlBlocks(type, rows, cols, importance), weight_(static_cast<size_t>(cols)) {
    for (int64_t c = 0; c < cols; ++c) {
      const double u = f.u[c * cols + c];
      weight_[c] = static_cast<float>(1.0 / (u * u));
    }
  }
  float round(int64_t r, int64_t c, const float* w) {
    quant::IntBlock& b = block_of(r, c);
    const int e = static_cast<int>(c % block_);
    if (e % 8 == 0) quant::round_codebook_group(type_, w, weight_.data() + c, &b, e);
    return b.d * static_cast<float>(b.scale[e / 16]) * static_cast<float>(b.q[e]);
  }

 private:
  std::vector<float> weight_;
};

// GPTQ over rows [r0, r1) (rows are independent given the factor). Works on a copy of the
// rows in processing order. Without act-order a span's grid is fitted when its first column
// comes up, from the weights as the error feedback so far has left them (GPTQ's rule); with
// act-order every grid comes from the original W up front ("static groups").
template <class Grid>
void gptq_rows(const float* w, int64_t r0, int64_t r1, int64_t cols, const GptqFactor& f,
               const GptqOptions& o, Grid& grid) {
  const int64_t n = r1 - r0, g = grid.span(), gpr = cols / g;
  const bool static_groups = f.act_order;
  const float* u = f.u.data();

  // A span's grid must see all error feedback from the columns before it. Pending updates
  // exist only for columns after the current sub-block (from this block's sub-blocks) and
  // after the current block (from this block), so each span must start a sub-block and lie
  // within one block: sub-blocks divide g, and blocks are whole spans. With static groups
  // any split works. Splits change only float rounding, never the algorithm.
  int64_t sub = kSubBlock, block = o.block;
  if (!static_groups) {
    sub = std::gcd(g, kSubBlock);
    block = g <= block ? block / g * g : g;
  }

  std::vector<float> wk(static_cast<size_t>(n * cols));  // [n, cols] in processing order
  for (int64_t r = 0; r < n; ++r) {
    const float* src = w + (r0 + r) * cols;
    for (int64_t i = 0; i < cols; ++i) {
      const int64_t c = f.perm[i];
      wk[r * cols + i] = f.dead[c] ? 0.f : src[c];  // a dead input's weight never matters
    }
  }
  if (static_groups) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < cols; ++c) row[c] = f.dead[c] ? 0.f : w[(r0 + r) * cols + c];
      for (int64_t gi = 0; gi < gpr; ++gi) grid.fit(r0 + r, gi, row.data() + gi * g);
    }
  }
  std::vector<float> inv_diag(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) inv_diag[i] = 1.f / u[i * cols + i];
  std::vector<float> err(static_cast<size_t>(n * block));  // [n, block]: (w − q) / U_ii

  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols);
    for (int64_t k1 = i1; k1 < i2; k1 += sub) {
      const int64_t k2 = std::min(k1 + sub, i2);
      for (int64_t r = 0; r < n; ++r) {
        float* wr = wk.data() + r * cols;
        float* er = err.data() + r * block;
        for (int64_t i = k1; i < k2; ++i) {
          if (!static_groups && i % g == 0) grid.fit(r0 + r, i / g, wr + i);
          const float e = (wr[i] - grid.round(r0 + r, f.perm[i], wr + i)) * inv_diag[i];
          const float* ui = u + i * cols;
          for (int64_t j = i + 1; j < k2; ++j) wr[j] -= e * ui[j];
          er[i - i1] = e;
        }
      }
      if (k2 < i2) {  // this sub-block's feedback to the rest of the block
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                    static_cast<int>(i2 - k2), static_cast<int>(k2 - k1), -1.f,
                    err.data() + (k1 - i1), static_cast<int>(block), u + k1 * cols + k2,
                    static_cast<int>(cols), 1.f, wk.data() + k2, static_cast<int>(cols));
      }
    }
    if (i2 < cols) {  // the block's lazy batch update of every later column
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                  static_cast<int>(cols - i2), static_cast<int>(i2 - i1), -1.f, err.data(),
                  static_cast<int>(block), u + i1 * cols + i2, static_cast<int>(cols), 1.f,
                  wk.data() + i2, static_cast<int>(cols));
    }
  }
}

// Runs gptq_rows over all rows, split across o.pool when it has threads.
template <class Grid>
void gptq_sweep(const float* w, int64_t rows, int64_t cols, const GptqFactor& factor,
                const GptqOptions& o, Grid& grid) {
  if (o.pool != nullptr && o.pool->size() > 1 && rows > kRowGrain) {
    BlasSingleThreaded single;
    o.pool->parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
      gptq_rows(w, r0, r1, cols, factor, o, grid);
    });
  } else {
    gptq_rows(w, 0, rows, cols, factor, o, grid);
  }
}

void check_factor(const char* who, int64_t cols, const GptqFactor& factor, const GptqOptions& o) {
  if (factor.cols != cols)
    fail("{}: the factor is for {} columns, the matrix has {}", who, factor.cols, cols);
  if (factor.damp != o.damp || factor.act_order != o.act_order) {
    fail(
        "{}: the factor was made with damp {} act_order {}, the options ask for damp {} act_order "
        "{}",
        who, factor.damp, factor.act_order, o.damp, o.act_order);
  }
  if (o.block <= 0) fail("{}: block must be positive, got {}", who, o.block);
}

}  // namespace

GroupedQuant quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  validate("quantize_rtn", rows, cols, spec);
  check_finite("quantize_rtn", w, rows, cols);
  GroupedQuant out = make_output(rows, cols, spec);
  const int64_t g = spec.group, gpr = cols / g;
  const float maxq = static_cast<float>((1 << spec.bits) - 1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t gi = 0; gi < gpr; ++gi) {
      const float* wg = w + r * cols + gi * g;
      const GroupParams p = choose_params(wg, g, spec);
      out.scale[r * gpr + gi] = p.scale;
      out.min[r * gpr + gi] = p.min;
      uint8_t* qg = out.q.data() + r * cols + gi * g;
      for (int64_t i = 0; i < g; ++i)
        qg[i] = static_cast<uint8_t>(encode(wg[i], p, spec.bits, maxq));
    }
  }
  check_params("quantize_rtn", out);
  return out;
}

GroupedQuant quantize_gptq(const float* w, int64_t rows, int64_t cols,
                           std::span<const double> hessian, const GptqOptions& o) {
  validate("quantize_gptq", rows, cols, o.spec);  // before the O(cols³) factorisation
  return quantize_gptq(w, rows, cols, gptq_factor(hessian, cols, o.damp, o.act_order), o);
}

GroupedQuant quantize_gptq(const float* w, int64_t rows, int64_t cols, const GptqFactor& factor,
                           const GptqOptions& o) {
  validate("quantize_gptq", rows, cols, o.spec);
  check_factor("quantize_gptq", cols, factor, o);
  check_finite("quantize_gptq", w, rows, cols);
  GroupedQuant out = make_output(rows, cols, o.spec);
  GroupGrid grid(o.spec, out);
  gptq_sweep(w, rows, cols, factor, o, grid);
  check_params("quantize_gptq", out);
  return out;
}

std::vector<uint8_t> quantize_gptq_ggml(const float* w, int64_t rows, int64_t cols,
                                        const GptqFactor& factor, DType type,
                                        std::span<const float> importance, const GptqOptions& o) {
  const char* who = "quantize_gptq_ggml";
  if (!quant::can_encode(type)) fail("{}: mcmoe does not write {} blocks", who, dtype_name(type));
  const int64_t block = dtype_traits(type).block_size;
  if (rows <= 0 || cols <= 0 || cols % block != 0) {
    fail("{}: shape [{}, {}]: rows must fill whole {} blocks of {}", who, rows, cols,
         dtype_name(type), block);
  }
  if (o.act_order)
    fail("{}: act-order is not supported (a block's grid needs its columns in order)", who);
  if (!importance.empty() && static_cast<int64_t>(importance.size()) != cols)
    fail("{}: {} importance values for {} columns", who, importance.size(), cols);
  check_factor(who, cols, factor, o);
  check_finite(who, w, rows, cols);
  if (quant::is_vector_codebook(type)) {
    CodebookGrid grid(type, rows, cols, importance, factor);
    gptq_sweep(w, rows, cols, factor, o, grid);
    return grid.pack();
  }
  GgmlGrid grid(type, rows, cols, importance);
  gptq_sweep(w, rows, cols, factor, o, grid);
  return grid.pack();
}

void dequantize(const GroupedQuant& q, float* out) {
  const int64_t gpr = q.groups_per_row();
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int64_t gi = r * gpr + c / q.group;
      out[r * q.cols + c] = q.scale[gi] * static_cast<float>(q.q[r * q.cols + c]) + q.min[gi];
    }
  }
}

namespace {

// trace((W − Q) H (W − Q)ᵀ) with Q's values from q_at(row, col).
template <class Q>
double trace_error(const float* w, int64_t rows, int64_t cols, std::span<const double> hessian,
                   ThreadPool* pool, Q q_at) {
  if (static_cast<int64_t>(hessian.size()) != cols * cols) {
    fail("output_error: the Hessian has {} values; expected cols² = {}² = {}", hessian.size(), cols,
         cols * cols);
  }
  // Chunks of rows keep the double copies small: D = W − Q, then Σ D ∘ (D H). With a pool,
  // each thread forms one chunk's D H at a time (OpenBLAS is single-threaded after the
  // calibration's forward passes, kernels/gemm_blas.cpp); the products are then summed in row
  // order, as without one, so the result does not depend on the thread count.
  constexpr int64_t kRows = 64;
  const int workers = pool != nullptr && rows > kRows ? pool->size() : 1;
  const size_t chunk = static_cast<size_t>(std::min(rows, kRows) * cols);
  std::vector<double> d(chunk * workers), dh(d.size());
  const auto product = [&](int64_t r0, int worker) {
    double* dw = d.data() + chunk * worker;
    const int64_t k = std::min(kRows, rows - r0);
    for (int64_t r = 0; r < k; ++r) {
      for (int64_t c = 0; c < cols; ++c)
        dw[r * cols + c] = double{w[(r0 + r) * cols + c]} - q_at(r0 + r, c);
    }
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, static_cast<int>(k), static_cast<int>(cols),
                1.0, hessian.data(), static_cast<int>(cols), dw, static_cast<int>(cols), 0.0,
                dh.data() + chunk * worker, static_cast<int>(cols));
  };
  double total = 0;
  for (int64_t wave = 0; wave < rows; wave += kRows * workers) {
    if (workers > 1) {
      BlasSingleThreaded single;
      pool->run([&](int worker) {
        const int64_t r0 = wave + kRows * worker;
        if (r0 < rows) product(r0, worker);
      });
    } else {
      product(wave, 0);
    }
    const int64_t n = std::min(rows - wave, kRows * workers) * cols;  // in row order
    for (int64_t i = 0; i < n; ++i) total += d[i] * dh[i];
  }
  return total;
}

}  // namespace

double output_error(const float* w, const GroupedQuant& q, std::span<const double> hessian,
                    ThreadPool* pool) {
  return trace_error(w, q.rows, q.cols, hessian, pool,
                     [&](int64_t r, int64_t c) { return double{q.value(r, c)}; });
}

double output_error(const float* w, const float* q, int64_t rows, int64_t cols,
                    std::span<const double> hessian, ThreadPool* pool) {
  return trace_error(w, rows, cols, hessian, pool,
                     [&](int64_t r, int64_t c) { return double{q[r * cols + c]}; });
}

}  // namespace mcmoe::compress

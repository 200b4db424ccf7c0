#include "quant/ggml_encode_iq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/iq_grids.h"

namespace mcmoe::quant::ggml_iq {

namespace {

constexpr int kN = 256, kGroup = 32, kGroups = kN / kGroup, kEntries = 256;
constexpr int kParityGroups = kN / 8;  // 8 weights share 7 stored sign bits

struct Codebook {
  int dim;           // weights per grid entry: 8 (IQ2_XXS) or 4 (IQ3_XXS)
  float unit;        // IntBlock d = stored f16 · unit (a power of two: exact)
  double sigma_mul;  // ggml's σ² for the importance weights: sigma_mul · the block's mean square
  int max_mag;       // the largest magnitude of the grid
  size_t bytes;      // block bytes
  int mag(int index, int j) const {
    const uint64_t e = dim == 8 ? iq_grids::kIQ2XXS[index] : iq_grids::kIQ3XXS[index];
    return static_cast<int>((e >> (8 * j)) & 0xff);
  }
  int per_parity() const { return 8 / dim; }  // grid entries per 8 weights
};

const Codebook& codebook(DType type) {
  static const Codebook kIQ2{8, 0.125f, 1.0, 43, 66};
  static const Codebook kIQ3{4, 0.25f, 2.0, 62, 98};
  return type == DType::IQ2_XXS ? kIQ2 : kIQ3;
}

// ---- encode ----

// The grid entry whose magnitudes are |q[0 .. dim)|, or -1. (A linear scan: 256 entries.)
int grid_index(const Codebook& cb, const int8_t* q) {
  for (int i = 0; i < kEntries; ++i) {
    int j = 0;
    while (j < cb.dim && cb.mag(i, j) == std::abs(q[j])) ++j;
    if (j == cb.dim) return i;
  }
  return -1;
}

std::string values_of(const int8_t* q, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(q[i]);
  return s;
}

void check_scalars(DType type, const Codebook& cb, const IntBlock& b) {
  if (b.n != kN) fail("encode_block: {} n = {}, expected {}", dtype_name(type), b.n, kN);
  const float back = fp16_to_f32(f32_to_fp16(b.d / cb.unit)) * cb.unit;
  if (!std::isfinite(b.d) || std::memcmp(&back, &b.d, 4) != 0) {
    fail("encode_block: {} d = {} is not a finite f16 value times {}", dtype_name(type), b.d,
         cb.unit);
  }
  if (b.dmin != 0.f)
    fail("encode_block: {} dmin = {}, expected 0 (the type has no min)", dtype_name(type), b.dmin);
  for (int s = 0; s < kN / 16; ++s) {
    if (b.min[s] != 0) {
      fail("encode_block: {} min[{}] = {}, expected 0 (the type has no min)", dtype_name(type), s,
           b.min[s]);
    }
    if (b.scale[s] < 1 || b.scale[s] > 31 || b.scale[s] % 2 == 0) {
      fail("encode_block: {} scale[{}] = {} is not an odd value in [1, 31] (2 l + 1, l < 16)",
           dtype_name(type), s, b.scale[s]);
    }
    if (s % 2 == 1 && b.scale[s] != b.scale[s - 1]) {
      fail("encode_block: {} scale[{}] = {} differs from scale[{}] = {} (one per 32 elements)",
           dtype_name(type), s, b.scale[s], s - 1, b.scale[s - 1]);
    }
  }
}

// ---- fit ----

// ggml's weights (quantize_row_iq{2,3}_xxs_impl with quant_weights): importance ·
// sqrt(σ² + x²). Without importance the same with a uniform importance: ggml has no default
// for IQ2_XXS and weights IQ3_XXS by x² alone, which leaves small values unweighted; on
// tests/data/ggml_encode the uniform importance gave a plain error 0.60x ggml's x² fit for
// IQ3_XXS (the block's mean square + x², as ggml_weights uses for Q3_K / IQ4: 0.72x) and
// 0.93x for IQ2_XXS against ggml run with a uniform importance (mean square + x²: 1.02x).
void weights(const Codebook& cb, const float* x, const float* imp, float* w) {
  double sum_x2 = 0;
  for (int e = 0; e < kN; ++e) sum_x2 += static_cast<double>(x[e]) * x[e];
  const double sigma2 = cb.sigma_mul * sum_x2 / kN;
  for (int e = 0; e < kN; ++e)
    w[e] = (imp ? imp[e] : 1.f) * static_cast<float>(std::sqrt(sigma2 + x[e] * x[e]));
  const float w_max = *std::max_element(w, w + kN);
  const float floor = w_max > 0.f ? w_max * 1e-6f : 1.f;
  for (int e = 0; e < kN; ++e) w[e] += floor;
}

// The grid entries (and the one sign flip, if needed) chosen for 8 weights.
struct Choice {
  int idx[2] = {0, 0};
  int flip = -1;  // which of the (1 or 2) entries takes the flip parity demands; -1 none
};

// Grid entry g against `dim` weights xs (weights ws): A = Σ w |x| m and B = Σ w m², so that
// at scale S with x's signs the error is Σ w x² − 2 S A + S² B; and C = min w |x| m with its
// position `at`, where a sign flip the parity forces costs least (4 S C more).
struct EntrySums {
  double a = 0, b = 0, c = std::numeric_limits<double>::infinity();
  int at = 0;
};
EntrySums entry_sums(const Codebook& cb, int g, const float* xs, const float* ws) {
  EntrySums e;
  for (int i = 0; i < cb.dim; ++i) {
    const double m = cb.mag(g, i), wxm = ws[i] * std::fabs(xs[i]) * m;
    e.a += wxm, e.b += ws[i] * m * m;
    if (wxm < e.c) e.c = wxm, e.at = i;
  }
  return e;
}

// One parity group's choice from each sub-vector's best entry with x's signs (e_*) and with
// one sign flipped (f_*, read only when `odd`: x has an odd count of negatives, so one
// sub-vector must take the flip). Returns the error less Σ w x².
double choose_parity(int per, bool odd, const double* e_best, const int* e_idx,
                     const double* f_best, const int* f_idx, Choice* ch) {
  *ch = Choice{{e_idx[0], e_idx[1]}, -1};
  if (!odd) return per == 1 ? e_best[0] : e_best[0] + e_best[1];
  if (per == 1) {
    *ch = Choice{{f_idx[0], 0}, 0};
    return f_best[0];
  }
  const double flip0 = f_best[0] + e_best[1], flip1 = e_best[0] + f_best[1];
  *ch = flip0 <= flip1 ? Choice{{f_idx[0], e_idx[1]}, 0} : Choice{{e_idx[0], f_idx[1]}, 1};
  return std::min(flip0, flip1);
}

// The codes of the 8 weights x for `ch`: each entry's magnitudes with x's signs, the one at
// `flip_at` of the flipped sub-vector (if ch.flip >= 0) taking the other sign.
void write_group(const Codebook& cb, const float* x, const Choice& ch, int flip_at, int8_t* q) {
  for (int v = 0; v < cb.per_parity(); ++v) {
    for (int i = 0; i < cb.dim; ++i) {
      const int m = cb.mag(ch.idx[v], i);
      const bool neg = (x[v * cb.dim + i] < 0.f) != (ch.flip == v && i == flip_at);
      q[v * cb.dim + i] = static_cast<int8_t>(neg ? -m : m);
    }
  }
}

// The entries g that minimise S (S b_g − 2 a_g) for some S ≥ 0: that is, maximise a − (S / 2) b,
// so they lie on the upper convex hull of the points (b, a), from the least b to the greatest
// a. A sub-vector's hull holds a few of the 256 entries; searching it alone is exact.
// An entry and its b, sorted together: comparisons read no other array. std::sort takes the
// same steps on these as on bare indices compared through b[], so ties keep the same order.
struct ByB {
  double b;
  uint8_t entry;
};

// `order`: the entries by ascending b.
void hull(const double* a, const double* b, const ByB* order, std::vector<uint8_t>* out) {
  int h[kEntries];  // the hull so far, entries by ascending b
  int n = 0;
  for (int k = 0; k < kEntries; ++k) {
    const int i = order[k].entry;
    if (n > 0 && b[h[n - 1]] == b[i]) {  // the same b: keep the greater a
      if (a[i] <= a[h[n - 1]]) continue;
      --n;
    }
    while (n >= 2) {
      const int o = h[n - 2], p = h[n - 1];
      if ((b[p] - b[o]) * (a[i] - a[o]) - (a[p] - a[o]) * (b[i] - b[o]) < 0) break;
      --n;  // p is on or under the chord o → i
    }
    h[n++] = i;
  }
  int top = 0;
  for (int k = 1; k < n; ++k)
    if (a[h[k]] > a[h[top]]) top = k;
  out->assign(h, h + top + 1);
}

// Exact nearest search. For a sub-vector of `dim` weights and grid entry g with magnitudes m,
// at scale S > 0 with signs following x: Σ w (|x| − S m)² = Σ w x² − 2 S A_g + S² B_g, with
// A_g = Σ w |x| m and B_g = Σ w m². Where x's signs have odd parity one weight must take the
// other sign, which costs 4 S w |x| m more: the least of these, 4 S C_g, C_g = min w |x| m.
// The tables and their hulls make each trial scale a few multiply-adds per sub-vector.
class Fitter {
 public:
  Fitter(const Codebook& cb, const float* x, const float* w) : cb_(cb), x_(x) {
    const int subs = kN / cb.dim;
    a_.resize(static_cast<size_t>(subs) * kEntries);
    b_.resize(a_.size()), c_.resize(a_.size()), flip_at_.resize(a_.size());
    hull_[0].resize(subs), hull_[1].resize(subs);
    double a_flip[kEntries];
    for (int s = 0; s < subs; ++s) {
      const float* xs = x + s * cb.dim;
      const float* ws = w + s * cb.dim;
      for (int g = 0; g < kEntries; ++g) {
        const EntrySums e = entry_sums(cb, g, xs, ws);
        const size_t k = static_cast<size_t>(s) * kEntries + g;
        a_[k] = e.a, b_[k] = e.b, c_[k] = e.c, flip_at_[k] = static_cast<uint8_t>(e.at);
        a_flip[g] = e.a - 2 * e.c;
      }
      const size_t base = static_cast<size_t>(s) * kEntries;
      const double* b = b_.data() + base;
      ByB order[kEntries];
      for (int g = 0; g < kEntries; ++g) order[g] = {b[g], static_cast<uint8_t>(g)};
      std::sort(order, order + kEntries, [](const ByB& i, const ByB& j) { return i.b < j.b; });
      hull(a_.data() + base, b, order, &hull_[0][s]);
      hull(a_flip, b, order, &hull_[1][s]);
    }
    for (int k = 0; k < kParityGroups; ++k) {
      int neg = 0;
      for (int i = 0; i < 8; ++i) neg += x[8 * k + i] < 0.f;
      odd_[k] = neg % 2 == 1;
    }
    for (int j = 0; j < kGroups; ++j) {
      double s = 0;
      for (int e = kGroup * j; e < kGroup * (j + 1); ++e)
        s += w[e] * static_cast<double>(x[e]) * x[e];
      wx2_[j] = s;
    }
  }

  // The best entries for parity group k at scale S; returns the error less Σ w x².
  double best8(int k, double scale, Choice* ch) const {
    const int per = cb_.per_parity();
    double e_best[2], f_best[2];
    int e_idx[2] = {0, 0}, f_idx[2] = {0, 0};
    for (int v = 0; v < per; ++v) {
      const size_t base = static_cast<size_t>(k * per + v) * kEntries;
      e_best[v] = f_best[v] = std::numeric_limits<double>::infinity();
      for (const uint8_t g : hull_[0][k * per + v]) {
        const double e = scale * (scale * b_[base + g] - 2 * a_[base + g]);
        if (e < e_best[v]) e_best[v] = e, e_idx[v] = g;
      }
      if (!odd_[k]) continue;
      for (const uint8_t g : hull_[1][k * per + v]) {
        const double f = scale * (scale * b_[base + g] - 2 * (a_[base + g] - 2 * c_[base + g]));
        if (f < f_best[v]) f_best[v] = f, f_idx[v] = g;
      }
    }
    return choose_parity(per, odd_[k], e_best, e_idx, f_best, f_idx, ch);
  }

  // Σ w (x − S · q)² of 32-group j with the best codes at scale S; writes them to q if given.
  double group_err(int j, float scale, int8_t* q = nullptr) const {
    double err = wx2_[j];
    for (int k = 4 * j; k < 4 * j + 4; ++k) {
      Choice ch;
      err += best8(k, scale, &ch);
      if (q) write_codes(k, ch, q + 8 * (k - 4 * j));
    }
    return std::max(err, 0.0);
  }

  // The continuous scale of 32-group j: S = |x|max / t for t over half to 1.3 times the grid's
  // largest magnitude, each choice of entries refitted by least squares, then alternated.
  double fit_scale(int j) const {
    float amax = 0.f;
    for (int e = kGroup * j; e < kGroup * (j + 1); ++e) amax = std::max(amax, std::fabs(x_[e]));
    if (amax == 0.f) return 0.0;
    double best_s = 0, best_e = wx2_[j];
    const auto refit = [&](double scale) {
      double sa = 0, sb = 0;
      for (int k = 4 * j; k < 4 * j + 4; ++k) {
        Choice ch;
        best8(k, scale, &ch);
        for (int v = 0; v < cb_.per_parity(); ++v) {
          const size_t at = static_cast<size_t>(k * cb_.per_parity() + v) * kEntries + ch.idx[v];
          sa += a_[at] - (ch.flip == v ? 2 * c_[at] : 0.0), sb += b_[at];
        }
      }
      if (sa <= 0 || sb <= 0) return;
      const double err = wx2_[j] - sa * sa / sb;
      if (err < best_e) best_e = err, best_s = sa / sb;
    };
    for (int k = 0; k <= 32; ++k) refit(amax / (cb_.max_mag * (0.5 + 0.025 * k)));
    for (int iter = 0; iter < 4 && best_s > 0; ++iter) {
      const double before = best_e;
      refit(best_s);
      if (!(best_e < before)) break;
    }
    return best_s;
  }

 private:
  void write_codes(int k, const Choice& ch, int8_t* q) const {
    const int flip_at =
        ch.flip < 0 ? -1
                    : flip_at_[static_cast<size_t>(k * cb_.per_parity() + ch.flip) * kEntries +
                               ch.idx[ch.flip]];
    write_group(cb_, x_ + 8 * k, ch, flip_at, q);
  }

  const Codebook& cb_;
  const float* x_;
  std::vector<double> a_, b_, c_;
  std::vector<uint8_t> flip_at_;
  std::vector<std::vector<uint8_t>> hull_[2];  // per sub-vector: signs as x's / one flipped
  bool odd_[kParityGroups] = {};
  double wx2_[kGroups] = {};
};

// d rounded to the stored f16 (times unit); a positive d that underflows becomes the smallest
// subnormal. k steps along the f16 line first.
float stored_d(const Codebook& cb, double d, int k = 0) {
  int h = f32_to_fp16(static_cast<float>(d / cb.unit)) & 0x7fff;
  h = std::clamp(h + k, 1, 0x7bff);
  return fp16_to_f32(static_cast<uint16_t>(h)) * cb.unit;
}

struct Plan {
  float d = 0.f;
  int l[kGroups] = {};
  double err = std::numeric_limits<double>::infinity();
};

// Per group the best of the levels l next to s_j / d (scale 2 l + 1); fills p's levels and err.
void choose_levels(const Fitter& f, const double* s, Plan* p) {
  p->err = 0;
  for (int j = 0; j < kGroups; ++j) {
    const int l0 = std::clamp(static_cast<int>(std::lround((s[j] / p->d - 1) / 2)), 0, 15);
    double best = std::numeric_limits<double>::infinity();
    for (int l = std::max(0, l0 - 1); l <= std::min(15, l0 + 1); ++l) {
      const double e = f.group_err(j, p->d * static_cast<float>(2 * l + 1));
      if (e < best) best = e, p->l[j] = l;
    }
    p->err += best;
  }
}

}  // namespace

bool handles(DType type) {
  return type == DType::IQ2_XXS || type == DType::IQ3_XXS;
}

void encode(DType type, const IntBlock& b, uint8_t* p) {
  const Codebook& cb = codebook(type);
  check_scalars(type, cb, b);
  std::memset(p, 0, cb.bytes);
  const uint16_t h = f32_to_fp16(b.d / cb.unit);
  std::memcpy(p, &h, 2);
  for (int ib = 0; ib < kGroups; ++ib) {
    auto aux = static_cast<uint32_t>((b.scale[2 * ib] - 1) / 2) << 28;
    for (int k = 0; k < 4; ++k) {
      const int e0 = kGroup * ib + 8 * k;
      uint32_t signs = 0;
      for (int j = 0; j < 8; ++j) signs |= static_cast<uint32_t>(b.q[e0 + j] < 0) << j;
      if (__builtin_popcount(signs) % 2 != 0) {
        fail(
            "encode_block: {} q[{}..{}] = ({}) has {} negative values: the format stores 7 "
            "signs per 8 weights and implies the eighth by an even count",
            dtype_name(type), e0, e0 + 7, values_of(b.q + e0, 8), __builtin_popcount(signs));
      }
      aux |= (signs & 127) << (7 * k);
      for (int v = 0; v < cb.per_parity(); ++v) {
        const int e = e0 + v * cb.dim;
        const int idx = grid_index(cb, b.q + e);
        if (idx < 0) {
          fail("encode_block: {} q[{}..{}] = ({}) is not ± an entry of the type's grid",
               dtype_name(type), e, e + cb.dim - 1, values_of(b.q + e, cb.dim));
        }
        p[2 + 8 * ib + (cb.dim == 8 ? k : 2 * k + v)] = static_cast<uint8_t>(idx);
      }
    }
    std::memcpy(p + (cb.dim == 8 ? 2 + 8 * ib + 4 : 66 + 4 * ib), &aux, 4);
  }
}

// ggml's method (quantize_row_iq{2,3}_xxs_impl): per 32 weights a continuous scale searched
// over trial inverses, entries chosen per trial and the scale refitted by least squares; then
// d from the largest scale, the 4-bit scales rounded to it. Here the entry search is exact
// over all 256 entries, through each sub-vector's hull, with the sign parity (ggml: a neighbour
// list, with the flip fixed before the search), d is searched over f16 values by the block's error
// with each group's level chosen among its neighbours, and d is refitted by least squares while the
// error falls.
void fit(DType type, const float* x, const float* importance, IntBlock* out) {
  const Codebook& cb = codebook(type);
  float w[kN];
  weights(cb, x, importance, w);
  const Fitter f(cb, x, w);
  double s[kGroups], s_max = 0;
  for (int j = 0; j < kGroups; ++j) s_max = std::max(s_max, s[j] = f.fit_scale(j));
  Plan best;
  best.d = 0.f;
  best.err = 0;
  for (int j = 0; j < kGroups; ++j) best.err += f.group_err(j, 0.f);
  if (s_max > 0) {
    for (int k = -15; k <= 10; ++k) {
      Plan t;
      t.d = stored_d(cb, s_max / (31 * (1 + 0.02 * k)));
      choose_levels(f, s, &t);
      if (t.err < best.err) best = t;
    }
  }
  for (int round = 0; round < 3 && best.d > 0.f; ++round) {
    // Least squares d for the current levels and codes, then its f16 neighbours.
    double num = 0, den = 0;
    int8_t q[kGroup];
    for (int j = 0; j < kGroups; ++j) {
      const int sc = 2 * best.l[j] + 1;
      f.group_err(j, best.d * static_cast<float>(sc), q);
      for (int i = 0; i < kGroup; ++i) {
        const int e = kGroup * j + i;
        const double a = static_cast<double>(sc) * q[i];
        num += w[e] * x[e] * a, den += w[e] * a * a;
      }
    }
    if (!(num > 0 && den > 0)) break;
    const double before = best.err;
    for (int j = 0; j < kGroups; ++j) s[j] = best.d * (2 * best.l[j] + 1);
    for (int k = -1; k <= 1; ++k) {
      Plan t;
      t.d = stored_d(cb, num / den, k);
      choose_levels(f, s, &t);
      if (t.err < best.err) best = t;
    }
    if (!(best.err < before)) break;
  }
  *out = IntBlock{};
  out->n = kN;
  out->d = best.d;
  for (int j = 0; j < kGroups; ++j) {
    out->scale[2 * j] = out->scale[2 * j + 1] = static_cast<int16_t>(2 * best.l[j] + 1);
    f.group_err(j, best.d * static_cast<float>(2 * best.l[j] + 1), out->q + kGroup * j);
  }
}

void round_group8(DType type, const float* x, const float* w, IntBlock* b, int e0) {
  const Codebook& cb = codebook(type);
  if (e0 < 0 || e0 + 8 > kN || e0 % 8 != 0)
    fail("round_group8: {} weights {}..{} are not one parity group of a block", dtype_name(type),
         e0, e0 + 7);
  const double scale = static_cast<double>(b->d) * b->scale[e0 / 16];
  if (!(scale > 0)) return;  // every code decodes to 0: keep the fitted ones
  // Per sub-vector the best entry with x's signs (e) and with one sign flipped (f): the
  // Fitter's algebra, here over all 256 entries at the one given scale.
  const int per = cb.per_parity();
  double e_best[2], f_best[2];
  int e_idx[2] = {0, 0}, f_idx[2] = {0, 0}, f_at[2] = {0, 0};
  for (int v = 0; v < per; ++v) {
    e_best[v] = f_best[v] = std::numeric_limits<double>::infinity();
    for (int g = 0; g < kEntries; ++g) {
      const EntrySums s = entry_sums(cb, g, x + v * cb.dim, w + v * cb.dim);
      const double e = scale * (scale * s.b - 2 * s.a);
      const double f = scale * (scale * s.b - 2 * (s.a - 2 * s.c));
      if (e < e_best[v]) e_best[v] = e, e_idx[v] = g;
      if (f < f_best[v]) f_best[v] = f, f_idx[v] = g, f_at[v] = s.at;
    }
  }
  int neg = 0;
  for (int i = 0; i < 8; ++i) neg += x[i] < 0.f;
  Choice ch;
  choose_parity(per, neg % 2 == 1, e_best, e_idx, f_best, f_idx, &ch);
  write_group(cb, x, ch, ch.flip < 0 ? -1 : f_at[ch.flip], b->q + e0);
}

}  // namespace mcmoe::quant::ggml_iq

// The Highway kernels of fit_grid.h, compiled once per instruction set (foreach_target) and
// picked at run time: quant/ is built for baseline x86-64, where the scalar references run a
// libm call per rounding and a branchy search per element. Every operation mirrors the
// reference's f32 arithmetic (this file is built with -ffp-contract=off, so no multiply-add
// is fused); the f64 sums are left to a scalar loop in element order, which keeps the result
// bit-identical and costs little beside the vector work.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/fit_grid_highway.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <algorithm>
#include <cstdint>

#include "quant/fit_grid.h"

HWY_BEFORE_NAMESPACE();
namespace mcmoe::quant::fit {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int kMaxTable = 16;

// A call's grid as vectors: the integer range, or the table padded to whole vectors.
struct VGrid {
  explicit VGrid(const Grid& grid) : g(grid), table(grid.values != nullptr) {
    if (table) {
      for (int k = 0; k < kMaxTable + 16; ++k) tv[k] = g.values[std::min(k, g.count - 1)];
      lo = 0.f, hi = static_cast<float>(g.count - 1);
    } else {
      lo = static_cast<float>(g.lo), hi = static_cast<float>(g.hi);
    }
  }
  const Grid& g;
  bool table;
  float lo = 0.f, hi = 0.f;  // the lowest and highest code (integers) or index (tables)
  HWY_ALIGN float tv[kMaxTable + 16];  // filled for tables only
};

// Table values at the (integral, in-range) float indices idx.
template <class D, class V = hn::Vec<D>>
V lookup(D d, const VGrid& v, V idx) {
  const hn::RebindToSigned<D> di;
  const size_t n_lanes = hn::Lanes(d);
  V out = hn::Zero(d);
  for (size_t c = 0; c < static_cast<size_t>(kMaxTable) && c <= v.hi; c += n_lanes) {
    const V base = hn::Set(d, static_cast<float>(c));
    const V local = hn::Min(hn::Max(hn::Sub(idx, base), hn::Zero(d)),
                            hn::Set(d, static_cast<float>(n_lanes - 1)));
    const V chunk = hn::LoadU(d, v.tv + c);
    const V got = hn::TableLookupLanes(chunk, hn::IndicesFromVec(d, hn::ConvertTo(di, local)));
    out = hn::IfThenElse(hn::Ge(idx, base), got, out);
  }
  return out;
}

// The position (integer code or table index) nearest t, as the reference's nearest_index.
template <class D, class V = hn::Vec<D>>
V nearest_position(D d, const VGrid& v, V t) {
  if (!v.table) {
    const V lo = hn::Set(d, v.lo), hi = hn::Set(d, v.hi);
    return hn::IfThenElse(hn::Gt(t, lo), hn::IfThenElse(hn::Ge(t, hi), hi, hn::Round(t)), lo);
  }
  const int count = v.g.count;
  const V one = hn::Set(d, 1.f);
  // Between the ends, a = #{k in 1..count-2 : value k <= t} brackets t by (a, a + 1).
  V a = hn::Zero(d);
  for (int k = 1; k <= count - 2; ++k) {
    a = hn::Add(a, hn::IfThenElseZero(hn::Le(hn::Set(d, v.tv[k]), t), one));
  }
  const V b = hn::Add(a, one);
  const V inner =
      hn::IfThenElse(hn::Lt(hn::Sub(t, lookup(d, v, a)), hn::Sub(lookup(d, v, b), t)), a, b);
  const V last = hn::Set(d, v.hi);
  const V upper = hn::IfThenElse(hn::Ge(t, hn::Set(d, v.tv[count - 1])), last, inner);
  return hn::IfThenElseZero(hn::Gt(t, hn::Set(d, v.tv[0])), upper);
}

template <class D, class V = hn::Vec<D>>
V value_at(D d, const VGrid& v, V pos) {
  return v.table ? lookup(d, v, pos) : pos;
}

// |x − (dl · code − ml)| in f32.
VF decode_error(VF x, VF dl, VF ml, VF code) {
  return hn::Abs(hn::Sub(x, hn::Sub(hn::Mul(dl, code), ml)));
}

// The best codes (as floats) of one vector of x for dl != 0: the reference's best_code per
// lane.
VF best_codes(DF d, const VGrid& v, VF x, VF dl, VF ml) {
  const VF one = hn::Set(d, 1.f);
  const VF p0 = nearest_position(d, v, hn::Div(hn::Add(x, ml), dl));
  const VF pm = hn::Sub(p0, one), pp = hn::Add(p0, one);
  const VF c0 = value_at(d, v, p0);
  const VF cm = value_at(d, v, hn::Max(pm, hn::Set(d, v.lo)));
  const VF cp = value_at(d, v, hn::Min(pp, hn::Set(d, v.hi)));
  VF best = c0, best_err = decode_error(x, dl, ml, c0);
  const VF em = decode_error(x, dl, ml, cm);
  const auto take_m = hn::And(hn::Ge(pm, hn::Set(d, v.lo)), hn::Lt(em, best_err));
  best = hn::IfThenElse(take_m, cm, best);
  best_err = hn::IfThenElse(take_m, em, best_err);
  const VF ep = decode_error(x, dl, ml, cp);
  const auto take_p = hn::And(hn::Le(pp, hn::Set(d, v.hi)), hn::Lt(ep, best_err));
  return hn::IfThenElse(take_p, cp, best);
}

// The f32 residuals x − (dl · q − ml) of n elements under their best codes (n a multiple of
// the vector length), and the codes when q is not null.
void residuals(const VGrid& v, const float* x, int n, float dl, float ml, float* diff, int8_t* q) {
  const DF d;
  const int n_lanes = static_cast<int>(hn::Lanes(d));
  const VF vdl = hn::Set(d, dl), vml = hn::Set(d, ml);
  // With dl = 0 every code decodes to −ml: the reference takes the code nearest 0.
  const bool zero_scale = dl == 0.f;
  const VF zero_code = hn::Set(d, zero_scale ? static_cast<float>(nearest_code(v.g, 0.f)) : 0.f);
  HWY_ALIGN float codes[hn::MaxLanes(d)];
  for (int e = 0; e < n; e += n_lanes) {
    const VF xv = hn::LoadU(d, x + e);
    const VF c = zero_scale ? zero_code : best_codes(d, v, xv, vdl, vml);
    hn::StoreU(hn::Sub(xv, hn::Sub(hn::Mul(vdl, c), vml)), d, diff + e);
    if (q) {
      hn::Store(c, d, codes);
      for (int i = 0; i < n_lanes; ++i) q[e + i] = static_cast<int8_t>(codes[i]);
    }
  }
}

bool fits(const Grid& g, int n) {
  const DF d;
  return n % static_cast<int>(hn::Lanes(d)) == 0 && (!g.values || g.count <= kMaxTable);
}

double GroupErrorImpl(const Grid& g, const float* x, const float* w, int n, float dl, float ml,
                      int8_t* q) {
  if (!fits(g, n) || n > 256) return reference::group_error(g, x, w, n, dl, ml, q);
  const VGrid v(g);
  float diff[256];
  residuals(v, x, n, dl, ml, diff, q);
  double err = 0;
  for (int e = 0; e < n; ++e) {
    const double de = diff[e];
    err += w[e] * de * de;
  }
  return err;
}

double GroupsErrorImpl(const Grid& g, const float* x, const float* w, int group, int groups,
                       const float* dl, const float* ml) {
  constexpr int kMaxGroups = 16;
  if (!fits(g, group) || groups > kMaxGroups || group * groups > 256)
    return reference::groups_error(g, x, w, group, groups, dl, ml);
  const VGrid v(g);
  float diff[256];
  for (int j = 0; j < groups; ++j) {
    residuals(v, x + j * group, group, dl[j], ml[j], diff + j * group, nullptr);
  }
  // Each group's sum in element order, the groups interleaved so their additions overlap.
  double acc[kMaxGroups] = {};
  for (int e = 0; e < group; ++e) {
    for (int j = 0; j < groups; ++j) {
      const int i = j * group + e;
      const double de = diff[i];
      acc[j] += w[i] * de * de;
    }
  }
  double err = 0;
  for (int j = 0; j < groups; ++j) err += acc[j];
  return err;
}

// q[e] = the code nearest t_e, t computed per vector by `t_of`.
template <class TOf>
void nearest_codes(const Grid& g, const float* x, int n, int* q, TOf t_of) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const int n_lanes = static_cast<int>(hn::Lanes(d));
  const VGrid v(g);
  for (int e = 0; e < n; e += n_lanes) {
    const VF code = value_at(d, v, nearest_position(d, v, t_of(d, hn::LoadU(d, x + e))));
    hn::StoreU(hn::ConvertTo(di, code), di, q + e);
  }
}

void NearestScaledImpl(const Grid& g, const float* x, int n, float inv, float origin, int* q) {
  if (!fits(g, n)) return reference::nearest_scaled(g, x, n, inv, origin, q);
  nearest_codes(g, x, n, q, [&](DF d, VF xv) {
    return hn::Mul(hn::Set(d, inv), hn::Sub(xv, hn::Set(d, origin)));
  });
}

void NearestDividedImpl(const Grid& g, const float* x, int n, float m, float s, int* q) {
  if (!fits(g, n)) return reference::nearest_divided(g, x, n, m, s, q);
  nearest_codes(g, x, n, q,
                [&](DF d, VF xv) { return hn::Div(hn::Add(xv, hn::Set(d, m)), hn::Set(d, s)); });
}

// The reference's least_squares_candidates with the candidates in lanes: each lane sums its
// own candidate's terms in element order, so every sum is the reference's, while the lanes
// and the blocks of lanes give the additions independent chains to overlap.
void LeastSquaresCandidatesImpl(const Grid& g, const LeastSquaresGroup& grp, const float* inv,
                                int cands, float origin, LeastSquares* out) {
#if HWY_TARGET == HWY_SCALAR
  return reference::least_squares_candidates(g, grp, inv, cands, origin, out);  // no halves
#else
  // Codes are found in full f32 vectors, summed in their two f64 halves.
  const DF df;
  const hn::Half<DF> dh;
  const hn::Repartition<double, DF> dd;
  using VD = hn::Vec<decltype(dd)>;
  constexpr int kMaxCands = 64, kMaxN = 32;
  const int lanes = static_cast<int>(hn::Lanes(df)), half = lanes / 2;
  const int padded = (cands + lanes - 1) / lanes * lanes;
  const int n = grp.n;
  if (padded > kMaxCands || n > kMaxN || (g.values && g.count > kMaxTable)) {
    return reference::least_squares_candidates(g, grp, inv, cands, origin, out);
  }
  const float* x = grp.x;
  const float* w = grp.w;
  const VGrid v(g);
  HWY_ALIGN float inv_p[kMaxCands];
  for (int k = 0; k < padded; ++k) inv_p[k] = inv[std::min(k, cands - 1)];
  // Candidate-free sums, as the reference accumulates them.
  double sw = 0, swx = 0;
  for (int e = 0; e < n; ++e) sw += w[e], swx += w[e] * x[e];
  HWY_ALIGN double q[kMaxN * kMaxCands];
  HWY_ALIGN double swq[kMaxCands] = {}, swq2[kMaxCands] = {}, swxq[kMaxCands] = {};
  const auto add_to = [&](double* acc, VD term) {
    hn::Store(hn::Add(hn::Load(dd, acc), term), dd, acc);
  };
  for (int e = 0; e < n; ++e) {
    const VF xe = hn::Set(df, x[e] - origin), we = hn::Set(df, w[e]);
    const VD wd = hn::Set(dd, static_cast<double>(w[e]));
    const VD wx = hn::Set(dd, static_cast<double>(w[e]) * x[e]);
    for (int k = 0; k < padded; k += lanes) {
      const VF code =
          value_at(df, v, nearest_position(df, v, hn::Mul(hn::Load(df, inv_p + k), xe)));
      const VF wq = hn::Mul(we, code);
      for (int h = 0; h < 2; ++h) {
        const int kh = k + h * half;
        const VD qd = hn::PromoteTo(dd, h ? hn::UpperHalf(dh, code) : hn::LowerHalf(dh, code));
        const VD wqd = hn::PromoteTo(dd, h ? hn::UpperHalf(dh, wq) : hn::LowerHalf(dh, wq));
        hn::Store(qd, dd, q + e * padded + kh);
        add_to(swq + kh, wqd);
        add_to(swq2 + kh, hn::Mul(hn::Mul(wd, qd), qd));
        add_to(swxq + kh, hn::Mul(wx, qd));
      }
    }
  }
  const int lanes_d = half;
  // The solution per lane: s = Σwxq / Σwq², or with a min the 2×2 solve where it qualifies.
  HWY_ALIGN double s[kMaxCands], o[kMaxCands], err[kMaxCands] = {};
  const VD zero = hn::Zero(dd), vsw = hn::Set(dd, sw), vswx = hn::Set(dd, swx);
  for (int k = 0; k < padded; k += lanes_d) {
    const VD a = hn::Load(dd, swq + k), a2 = hn::Load(dd, swq2 + k), axq = hn::Load(dd, swxq + k);
    VD sk = hn::Div(axq, a2), ok = zero;
    if (grp.with_min) {
      const VD det = hn::Sub(hn::Mul(vsw, a2), hn::Mul(a, a));
      const VD s2 = hn::Div(hn::Sub(hn::Mul(vsw, axq), hn::Mul(vswx, a)), det);
      const VD o2 = hn::Div(hn::Sub(hn::Mul(a2, vswx), hn::Mul(a, axq)), det);
      const auto take =
          grp.free_offset ? hn::Gt(det, zero) : hn::And(hn::Gt(det, zero), hn::Le(o2, zero));
      sk = hn::IfThenElse(take, s2, sk);
      ok = hn::IfThenElse(take, o2, ok);
    }
    hn::Store(sk, dd, s + k);
    hn::Store(ok, dd, o + k);
  }
  for (int e = 0; e < n; ++e) {
    const VD xd = hn::Set(dd, static_cast<double>(x[e]));
    const VD wd = hn::Set(dd, static_cast<double>(w[e]));
    for (int k = 0; k < padded; k += lanes_d) {
      const VD qd = hn::Load(dd, q + e * padded + k);
      const VD diff = hn::Sub(xd, hn::Add(hn::Mul(hn::Load(dd, s + k), qd), hn::Load(dd, o + k)));
      add_to(err + k, hn::Mul(hn::Mul(wd, diff), diff));
    }
  }
  for (int k = 0; k < cands; ++k) {
    out[k] = swq2[k] <= 0 ? LeastSquares{} : LeastSquares{s[k], o[k], err[k]};
  }
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace mcmoe::quant::fit
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mcmoe::quant::fit {

HWY_EXPORT(GroupErrorImpl);
HWY_EXPORT(GroupsErrorImpl);
HWY_EXPORT(NearestScaledImpl);
HWY_EXPORT(NearestDividedImpl);
HWY_EXPORT(LeastSquaresCandidatesImpl);

double group_error(const Grid& g, const float* x, const float* w, int n, float dl, float ml,
                   int8_t* q) {
  return HWY_DYNAMIC_DISPATCH(GroupErrorImpl)(g, x, w, n, dl, ml, q);
}
double groups_error(const Grid& g, const float* x, const float* w, int group, int groups,
                    const float* dl, const float* ml) {
  return HWY_DYNAMIC_DISPATCH(GroupsErrorImpl)(g, x, w, group, groups, dl, ml);
}
void nearest_scaled(const Grid& g, const float* x, int n, float inv, float origin, int* q) {
  HWY_DYNAMIC_DISPATCH(NearestScaledImpl)(g, x, n, inv, origin, q);
}
void nearest_divided(const Grid& g, const float* x, int n, float m, float s, int* q) {
  HWY_DYNAMIC_DISPATCH(NearestDividedImpl)(g, x, n, m, s, q);
}

void least_squares_candidates(const Grid& g, const LeastSquaresGroup& grp, const float* inv,
                              int cands, float origin, LeastSquares* out) {
  HWY_DYNAMIC_DISPATCH(LeastSquaresCandidatesImpl)(g, grp, inv, cands, origin, out);
}

}  // namespace mcmoe::quant::fit
#endif

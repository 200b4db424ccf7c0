// The scalar references of fit_grid.h (moved from ggml_fit.cpp, unchanged), and the pieces the
// kernels share with them: clamp_round, nearest_code, least_squares, grid_of. The dispatched
// entry points are in fit_grid_highway.cpp.
#include "quant/fit_grid.h"

#include <cmath>
#include <initializer_list>
#include <vector>

namespace mcmoe::quant::fit {

int clamp_round(float t, int lo, int hi) {
  if (!(t > static_cast<float>(lo))) return lo;  // NaN too
  if (t >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::nearbyint(t));
}

namespace {

// Position of the code nearest to t: an index into the table, or the integer code itself.
int nearest_index(const Grid& g, float t) {
  if (!g.values) return clamp_round(t, g.lo, g.hi);
  int a = 0, b = g.count - 1;  // binary search for the bracketing pair
  if (!(t > g.values[a])) return a;
  if (t >= g.values[b]) return b;
  while (b - a > 1) {
    const int mid = (a + b) / 2;
    (t < g.values[mid] ? b : a) = mid;
  }
  return t - g.values[a] < g.values[b] - t ? a : b;
}

bool valid_index(const Grid& g, int i) {
  return g.values ? i >= 0 && i < g.count : i >= g.lo && i <= g.hi;
}
int value_at(const Grid& g, int i) {
  return g.values ? g.values[i] : i;
}

// The code whose decoded value (dl · q − ml in f32, as dequantize_kquant_row) is nearest x.
int best_code(const Grid& g, float x, float dl, float ml) {
  if (dl == 0.f) return nearest_code(g, 0.f);
  const int i0 = nearest_index(g, (x + ml) / dl);
  int best = i0;
  float best_err = std::fabs(x - (dl * static_cast<float>(value_at(g, i0)) - ml));
  for (int i : {i0 - 1, i0 + 1}) {
    if (!valid_index(g, i)) continue;
    const float err = std::fabs(x - (dl * static_cast<float>(value_at(g, i)) - ml));
    if (err < best_err) best_err = err, best = i;
  }
  return value_at(g, best);
}

}  // namespace

Grid grid_of(const Layout& l) {
  return {l.codes.values, l.codes.count, l.codes.values ? l.codes.lo : l.fit_lo, l.codes.hi};
}

int nearest_code(const Grid& g, float t) {
  return value_at(g, nearest_index(g, t));
}

LeastSquares least_squares(const LeastSquaresGroup& grp, const int* q) {
  const float* x = grp.x;
  const float* w = grp.w;
  double sw = 0, swq = 0, swq2 = 0, swx = 0, swxq = 0;
  for (int e = 0; e < grp.n; ++e) {
    sw += w[e], swq += w[e] * q[e], swq2 += static_cast<double>(w[e]) * q[e] * q[e];
    swx += w[e] * x[e], swxq += static_cast<double>(w[e]) * x[e] * q[e];
  }
  if (swq2 <= 0) return {};
  double s = swxq / swq2, o = 0;
  const double det = sw * swq2 - swq * swq;
  if (grp.with_min && det > 0) {
    const double s2 = (sw * swxq - swx * swq) / det, o2 = (swq2 * swx - swq * swxq) / det;
    if (o2 <= 0 || grp.free_offset) s = s2, o = o2;
  }
  double err = 0;
  for (int e = 0; e < grp.n; ++e) {
    const double diff = x[e] - (s * q[e] + o);
    err += w[e] * diff * diff;
  }
  return {s, o, err};
}

namespace reference {

double group_error(const Grid& g, const float* x, const float* w, int n, float dl, float ml,
                   int8_t* q) {
  double err = 0;
  for (int e = 0; e < n; ++e) {
    const int code = best_code(g, x[e], dl, ml);
    if (q) q[e] = static_cast<int8_t>(code);
    const double diff = x[e] - (dl * static_cast<float>(code) - ml);
    err += w[e] * diff * diff;
  }
  return err;
}

double groups_error(const Grid& g, const float* x, const float* w, int group, int groups,
                    const float* dl, const float* ml) {
  double err = 0;
  for (int j = 0; j < groups; ++j) {
    err += reference::group_error(g, x + j * group, w + j * group, group, dl[j], ml[j]);
  }
  return err;
}

void nearest_scaled(const Grid& g, const float* x, int n, float inv, float origin, int* q) {
  for (int e = 0; e < n; ++e) q[e] = nearest_code(g, inv * (x[e] - origin));
}

void nearest_divided(const Grid& g, const float* x, int n, float m, float s, int* q) {
  for (int e = 0; e < n; ++e) q[e] = nearest_code(g, (x[e] + m) / s);
}

void least_squares_candidates(const Grid& g, const LeastSquaresGroup& grp, const float* inv,
                              int cands, float origin, LeastSquares* out) {
  std::vector<int> q(grp.n);
  for (int k = 0; k < cands; ++k) {
    reference::nearest_scaled(g, grp.x, grp.n, inv[k], origin, q.data());
    out[k] = least_squares(grp, q.data());
  }
}

}  // namespace reference

}  // namespace mcmoe::quant::fit

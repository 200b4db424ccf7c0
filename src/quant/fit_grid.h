#pragma once
// Inside quant/: the inner loops of ggml_fit.cpp's scale search, where quantize --format gguf
// spends ~90% of its time (a perf profile of a 30B-shaped layer: bench/RESULTS.md §11). For a
// trial scale, every element's best code and the weighted squared error it leaves.
//
// Each has a scalar reference (fit_grid.cpp) and a Highway kernel (fit_grid_highway.cpp, one
// per instruction set, picked at run time) that returns the same bits: the same f32
// operations per element, round-half-even as nearbyint, no fused multiply-adds, and the f64
// error summed in element order. The fitter's choices compare these errors, so a kernel that
// differed in the last bit could pick another scale; tests/quant/fit_grid_test.cpp checks
// equality on every instruction set the build dispatches to.
#include <cmath>
#include <cstdint>

#include "quant/ggml_layout.h"

namespace mcmoe::quant::fit {

// A type's codes as the fitter uses them: the integers lo..hi (values null), or the sorted
// table values[0..count) (IQ4_NL / IQ4_XS, count <= 16; lo / hi then the table's ends).
struct Grid {
  const int8_t* values = nullptr;
  int count = 0;
  int lo = 0, hi = 0;
};

// A layout's codes as the fitter uses them: its table, or the integers from fit_lo up.
Grid grid_of(const Layout& l);

// Σ_e w[e] · (x[e] − (dl · q_e − ml))² over n elements, q_e the code whose decoded value is
// nearest x[e]: the code nearest t = (x + ml) / dl, or its neighbour when that decodes nearer
// in f32; with dl = 0 the code nearest 0. Writes the codes to q unless null.
double group_error(const Grid& g, const float* x, const float* w, int n, float dl, float ml,
                   int8_t* q = nullptr);
// Σ_j group_error(x + j·group, w + j·group, group, dl[j], ml[j]) over `groups` groups, in j
// order: a whole block's error under one plan.
double groups_error(const Grid& g, const float* x, const float* w, int group, int groups,
                    const float* dl, const float* ml);
// q[e] = the code nearest inv · (x[e] − origin).
void nearest_scaled(const Grid& g, const float* x, int n, float inv, float origin, int* q);
// q[e] = the code nearest (x[e] + m) / s.
void nearest_divided(const Grid& g, const float* x, int n, float m, float s, int* q);

// nearbyint(t) clamped to [lo, hi]; NaN gives lo.
int clamp_round(float t, int lo, int hi);

// A group to fit by weighted least squares: x ≈ s · q + o over codes q, with o fixed at 0
// without a min; with one, o is kept <= 0 (the format subtracts its min) unless free_offset
// (Q4_1 / Q5_1's offset takes either sign).
struct LeastSquaresGroup {
  const float* x = nullptr;
  const float* w = nullptr;
  int n = 0;
  bool with_min = false, free_offset = false;
};
// A fit and its weighted squared error; err = +inf where there is none (Σ w q² = 0).
struct LeastSquares {
  double s = 0, o = 0;
  double err = HUGE_VAL;
};
// The fit over the given codes.
LeastSquares least_squares(const LeastSquaresGroup& grp, const int* q);
// For each of `cands` inverse scales inv[k]: the fit over the codes nearest_scaled gives,
// i.e. least_squares(grp, q_k) with q_k[e] the code nearest inv[k] · (x[e] − origin).
void least_squares_candidates(const Grid& g, const LeastSquaresGroup& grp, const float* inv,
                              int cands, float origin, LeastSquares* out);

// The code nearest t: ties between two table values go to the upper one, between integers to
// the even one (nearbyint); NaN gives the lowest code.
int nearest_code(const Grid& g, float t);

// The scalar references the kernels above must equal bit for bit.
namespace reference {
double group_error(const Grid& g, const float* x, const float* w, int n, float dl, float ml,
                   int8_t* q = nullptr);
double groups_error(const Grid& g, const float* x, const float* w, int group, int groups,
                    const float* dl, const float* ml);
void nearest_scaled(const Grid& g, const float* x, int n, float inv, float origin, int* q);
void nearest_divided(const Grid& g, const float* x, int n, float m, float s, int* q);
void least_squares_candidates(const Grid& g, const LeastSquaresGroup& grp, const float* inv,
                              int cands, float origin, LeastSquares* out);
}  // namespace reference

}  // namespace mcmoe::quant::fit

#pragma once
// Small row-wise ops of the forward pass. All activations are f32.
#include <cstdint>

namespace mcmoe::ops {

// y = x / sqrt(mean(x²) + eps) * weight, over rows of n elements. y may alias x.
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);

// In place: g[i] = silu(g[i]) * u[i].
void silu_mul(float* g, const float* u, int64_t n);

// In place: g[i] = gpt-oss's clamped SwiGLU of gate g and up u:
// (clamp(u, −limit, limit) + 1) · x · sigmoid(alpha · x), x = min(g, limit).
void swiglu_oai(float* g, const float* u, int64_t n, float alpha, float limit);

// x[i] = exp(x[i] − shift) in place (0 where x[i] = −inf); returns Σ x[i] (SIMD exp).
float exp_shift_sum(float* x, int64_t n, float shift);
// x[i] *= a.
void scale_in_place(float* x, float a, int64_t n);
// max x[i] (−inf for n = 0), SIMD.
float max_value(const float* x, int64_t n);

// n values (a multiple of 32) of ggml Q8_0 blocks (f16 scale, 32 int8 codes) to f32 (SIMD).
void q8_0_to_f32(const void* blocks, float* out, int64_t n);

// In place softmax of n logits; returns nothing, computed in f32 with max subtraction.
void softmax(float* x, int64_t n);

// y += a * x
void axpy(float a, const float* x, float* y, int64_t n);

float dot(const float* a, const float* b, int64_t n);
// Slow reference for dot (double accumulation), for tests.
float dot_reference(const float* a, const float* b, int64_t n);

}  // namespace mcmoe::ops

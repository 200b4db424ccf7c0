// f32 dot and axpy for attention and the MoE weighted sum, with Highway's runtime
// dispatch: ops/ is compiled for baseline x86-64, so without this these loops would run on
// SSE2 even on AVX-512 machines (they were ~17% of a 512-token prefill).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/vec_highway.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/fp16.h"

#include "ops/elementwise.h"

HWY_BEFORE_NAMESPACE();
namespace mcmoe::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

float DotImpl(const float* a, const float* b, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AxpyImpl(float alpha, const float* x, float* y, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto va = hn::Set(d, alpha);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += alpha * x[i];
}

float ExpShiftSumImpl(float* x, int64_t n, float shift) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vs = hn::Set(d, shift);
  auto sum = hn::Zero(d);
  int64_t i = 0;
  // hn::Exp gives 0 below its range, so masked (−inf) entries come out 0.
  for (; i + N <= n; i += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vs));
    hn::StoreU(e, d, x + i);
    sum = hn::Add(sum, e);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, sum));
  for (; i < n; ++i) s += x[i] = std::exp(x[i] - shift);
  return s;
}

float MaxImpl(const float* x, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto m = hn::Set(d, -HUGE_VALF);
  int64_t i = 0;
  for (; i + N <= n; i += N) m = hn::Max(m, hn::LoadU(d, x + i));
  float r = hn::GetLane(hn::MaxOfLanes(d, m));
  for (; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

void ScaleImpl(float* x, float a, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(va, hn::LoadU(d, x + i)), d, x + i);
  for (; i < n; ++i) x[i] *= a;
}

void Q8ToF32Impl(const uint8_t* blocks, float* out, int64_t n) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const hn::Rebind<int32_t, decltype(d)> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = blocks + b * 34;  // ggml block_q8_0: f16 d, int8 qs[32]
    uint16_t h;
    std::memcpy(&h, blk, 2);
    const float scale = fp16_to_f32(h);
    const auto* q = reinterpret_cast<const int8_t*>(blk + 2);
    float* o = out + b * 32;
    int64_t i = 0;
    if (N <= 32 && 32 % N == 0) {
      const auto vs = hn::Set(d, scale);
      for (; i < 32; i += N) hn::StoreU(hn::Mul(vs, hn::ConvertTo(d, hn::PromoteTo(d32, hn::LoadU(d8, q + i)))), d, o + i);
    }
    for (; i < 32; ++i) o[i] = scale * q[i];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace mcmoe::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mcmoe::ops {

HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ExpShiftSumImpl);
HWY_EXPORT(ScaleImpl);
HWY_EXPORT(MaxImpl);
HWY_EXPORT(Q8ToF32Impl);

float dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }
void axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n); }
float exp_shift_sum(float* x, int64_t n, float shift) { return HWY_DYNAMIC_DISPATCH(ExpShiftSumImpl)(x, n, shift); }
void scale_in_place(float* x, float a, int64_t n) { HWY_DYNAMIC_DISPATCH(ScaleImpl)(x, a, n); }
float max_value(const float* x, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(MaxImpl)(x, n);
}
void q8_0_to_f32(const void* blocks, float* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(Q8ToF32Impl)(static_cast<const uint8_t*>(blocks), out, n);
}

float dot_reference(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

}  // namespace mcmoe::ops
#endif

// Highway-dispatched: ops/ is compiled for baseline x86-64, like vec_highway.cpp.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/attention_rows.cpp"
#include "ops/attention_rows.h"

#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace mcmoe::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE VF load_row(DF d, const float* p) {
  return hn::LoadU(d, p);
}
HWY_INLINE VF load_row(DF d, const uint16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> d16;
  return hn::PromoteTo(d, hn::LoadU(d16, reinterpret_cast<const hwy::float16_t*>(p)));
}
HWY_INLINE float scalar(float x) {
  return x;
}

// Cached rows of one head are a few hundred bytes spaced a whole cache row apart, a stride
// the hardware prefetchers follow poorly: decode attention ran at 3-7 GB/s, stalled on each
// row's first load. Rows this far ahead are requested explicitly.
constexpr int64_t kPrefetchRows = 8;
template <class T>
HWY_INLINE void prefetch_row(const T* row, int64_t n) {
  const auto* bytes = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64)
    __builtin_prefetch(bytes + b);
}
HWY_INLINE float scalar(uint16_t x) {
  return fp16_to_f32(x);
}

// Calls f(std::integral_constant<int, R>{}, r) on row groups: R = 4 from row r = 0 on, then
// one group of the 1-3 rows left, so every row count runs on register-resident accumulators.
template <class F>
HWY_INLINE void for_row_groups(int64_t n_rows, F&& f) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) f(std::integral_constant<int, 4>{}, r);
  switch (n_rows - r) {
    case 3:
      f(std::integral_constant<int, 3>{}, r);
      break;
    case 2:
      f(std::integral_constant<int, 2>{}, r);
      break;
    case 1:
      f(std::integral_constant<int, 1>{}, r);
      break;
    default:
      break;
  }
}

// R rows at once: each key row is loaded once for all of them.
template <int R, class T>
void QkRowsR(const float* q, int64_t q_ld, const T* k, int64_t k_ld, int64_t nb, int64_t dim,
             float scale, float* s, int64_t s_ld) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t j = 0; j < nb; ++j) {
    const T* kj = k + j * k_ld;
    if (j + kPrefetchRows < nb) prefetch_row(kj + kPrefetchRows * k_ld, dim);
    VF acc[R];
    for (int r = 0; r < R; ++r) acc[r] = hn::Zero(d);
    int64_t i = 0;
    for (; i + N <= dim; i += N) {
      const VF kv = load_row(d, kj + i);
      for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(hn::LoadU(d, q + r * q_ld + i), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      float v = hn::GetLane(hn::SumOfLanes(d, acc[r]));
      for (int64_t t = i; t < dim; ++t) v += q[r * q_ld + t] * scalar(kj[t]);
      s[r * s_ld + j] = v * scale;
    }
  }
}

template <class T>
void QkRows(const float* q, int64_t n_rows, int64_t q_ld, const T* k, int64_t k_ld, int64_t nb,
            int64_t dim, float scale, float* s, int64_t s_ld) {
  for_row_groups(n_rows, [&](auto R, int64_t r) {
    QkRowsR<decltype(R)::value>(q + r * q_ld, q_ld, k, k_ld, nb, dim, scale, s + r * s_ld, s_ld);
  });
}

// R rows × two vectors of outputs at once, over every key: each value row is loaded once per
// pair of vectors for all rows (the block stays in L2 between the passes over dv).
template <int R, class T>
void PvRowsR(const float* p, int64_t p_ld, const T* v, int64_t v_ld, int64_t nb, int64_t dv,
             float* o, int64_t o_ld) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + 2 * N <= dv; i += 2 * N) {
    VF a0[R], a1[R];
    for (int r = 0; r < R; ++r) {
      a0[r] = hn::LoadU(d, o + r * o_ld + i);
      a1[r] = hn::LoadU(d, o + r * o_ld + i + N);
    }
    for (int64_t j = 0; j < nb; ++j) {
      // The first pass over the block brings whole rows in; the later ones find them in L2.
      if (i == 0 && j + kPrefetchRows < nb) prefetch_row(v + (j + kPrefetchRows) * v_ld, dv);
      const VF v0 = load_row(d, v + j * v_ld + i), v1 = load_row(d, v + j * v_ld + i + N);
      for (int r = 0; r < R; ++r) {
        const VF pr = hn::Set(d, p[r * p_ld + j]);
        a0[r] = hn::MulAdd(pr, v0, a0[r]);
        a1[r] = hn::MulAdd(pr, v1, a1[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      hn::StoreU(a0[r], d, o + r * o_ld + i);
      hn::StoreU(a1[r], d, o + r * o_ld + i + N);
    }
  }
  for (; i < dv; ++i) {
    for (int r = 0; r < R; ++r) {
      float acc = o[r * o_ld + i];
      for (int64_t j = 0; j < nb; ++j) acc += p[r * p_ld + j] * scalar(v[j * v_ld + i]);
      o[r * o_ld + i] = acc;
    }
  }
}

template <class T>
void PvRows(const float* p, int64_t n_rows, int64_t p_ld, const T* v, int64_t v_ld, int64_t nb,
            int64_t dv, float* o, int64_t o_ld) {
  for_row_groups(n_rows, [&](auto R, int64_t r) {
    PvRowsR<decltype(R)::value>(p + r * p_ld, p_ld, v, v_ld, nb, dv, o + r * o_ld, o_ld);
  });
}

// ggml q8_0 rows (blocks of an f16 scale and 32 int8 codes), `ld` bytes apart. Each block's
// codes are widened in registers and its scale applied once per block and row.
constexpr int64_t kQ8Block = 32, kQ8Bytes = 34;
HWY_INLINE float q8_scale(const uint8_t* block) {
  uint16_t h;
  std::memcpy(&h, block, 2);
  return fp16_to_f32(h);
}
HWY_INLINE VF load_codes(DF d, const uint8_t* codes) {
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  return hn::ConvertTo(d,
                       hn::PromoteTo(d32, hn::LoadU(d8, reinterpret_cast<const int8_t*>(codes))));
}

template <int R>
void QkRowsQ8R(const float* q, int64_t q_ld, const uint8_t* k, int64_t k_ld, int64_t nb,
               int64_t dim, float scale, float* s, int64_t s_ld) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t j = 0; j < nb; ++j) {
    const uint8_t* kj = k + j * k_ld;
    if (j + kPrefetchRows < nb) prefetch_row(kj + kPrefetchRows * k_ld, dim / kQ8Block * kQ8Bytes);
    VF acc[R];
    for (int r = 0; r < R; ++r) acc[r] = hn::Zero(d);
    for (int64_t b = 0; b < dim / kQ8Block; ++b) {
      const uint8_t* blk = kj + b * kQ8Bytes;
      VF part[R];
      for (int r = 0; r < R; ++r) part[r] = hn::Zero(d);
      for (int64_t i = 0; i < kQ8Block; i += N) {
        const VF kv = load_codes(d, blk + 2 + i);
        for (int r = 0; r < R; ++r)
          part[r] = hn::MulAdd(hn::LoadU(d, q + r * q_ld + b * kQ8Block + i), kv, part[r]);
      }
      const VF vs = hn::Set(d, q8_scale(blk));
      for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(vs, part[r], acc[r]);
    }
    for (int r = 0; r < R; ++r) s[r * s_ld + j] = hn::GetLane(hn::SumOfLanes(d, acc[r])) * scale;
  }
}

template <int R>
void PvRowsQ8R(const float* p, int64_t p_ld, const uint8_t* v, int64_t v_ld, int64_t nb, int64_t dv,
               float* o, int64_t o_ld) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t b = 0; b < dv / kQ8Block; ++b) {
    for (int64_t i = 0; i < kQ8Block; i += N) {  // one vector of a block's values at a time
      VF a[R];
      for (int r = 0; r < R; ++r) a[r] = hn::LoadU(d, o + r * o_ld + b * kQ8Block + i);
      for (int64_t j = 0; j < nb; ++j) {
        const uint8_t* blk = v + j * v_ld + b * kQ8Bytes;
        if (b == 0 && i == 0 && j + kPrefetchRows < nb)
          prefetch_row(v + (j + kPrefetchRows) * v_ld, dv / kQ8Block * kQ8Bytes);
        const VF codes = load_codes(d, blk + 2 + i);
        const float sc = q8_scale(blk);
        for (int r = 0; r < R; ++r)
          a[r] = hn::MulAdd(hn::Set(d, p[r * p_ld + j] * sc), codes, a[r]);
      }
      for (int r = 0; r < R; ++r) hn::StoreU(a[r], d, o + r * o_ld + b * kQ8Block + i);
    }
  }
}

void QkRowsQ8(const float* q, int64_t n_rows, int64_t q_ld, const uint8_t* k, int64_t k_ld,
              int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  for_row_groups(n_rows, [&](auto R, int64_t r) {
    QkRowsQ8R<decltype(R)::value>(q + r * q_ld, q_ld, k, k_ld, nb, dim, scale, s + r * s_ld, s_ld);
  });
}

void PvRowsQ8(const float* p, int64_t n_rows, int64_t p_ld, const uint8_t* v, int64_t v_ld,
              int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  for_row_groups(n_rows, [&](auto R, int64_t r) {
    PvRowsQ8R<decltype(R)::value>(p + r * p_ld, p_ld, v, v_ld, nb, dv, o + r * o_ld, o_ld);
  });
}

void QkRowsF32(const float* q, int64_t n_rows, int64_t q_ld, const float* k, int64_t k_ld,
               int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  QkRows(q, n_rows, q_ld, k, k_ld, nb, dim, scale, s, s_ld);
}
void QkRowsF16(const float* q, int64_t n_rows, int64_t q_ld, const uint16_t* k, int64_t k_ld,
               int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  QkRows(q, n_rows, q_ld, k, k_ld, nb, dim, scale, s, s_ld);
}
void PvRowsF32(const float* p, int64_t n_rows, int64_t p_ld, const float* v, int64_t v_ld,
               int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  PvRows(p, n_rows, p_ld, v, v_ld, nb, dv, o, o_ld);
}
void PvRowsF16(const float* p, int64_t n_rows, int64_t p_ld, const uint16_t* v, int64_t v_ld,
               int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  PvRows(p, n_rows, p_ld, v, v_ld, nb, dv, o, o_ld);
}

}  // namespace HWY_NAMESPACE
}  // namespace mcmoe::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace mcmoe::ops {

HWY_EXPORT(QkRowsF32);
HWY_EXPORT(QkRowsF16);
HWY_EXPORT(PvRowsF32);
HWY_EXPORT(PvRowsF16);
HWY_EXPORT(QkRowsQ8);
HWY_EXPORT(PvRowsQ8);

void qk_rows_f32(const float* q, int64_t n_rows, int64_t q_ld, const float* k, int64_t k_ld,
                 int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  HWY_DYNAMIC_DISPATCH(QkRowsF32)(q, n_rows, q_ld, k, k_ld, nb, dim, scale, s, s_ld);
}
void qk_rows_f16(const float* q, int64_t n_rows, int64_t q_ld, const uint16_t* k, int64_t k_ld,
                 int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  HWY_DYNAMIC_DISPATCH(QkRowsF16)(q, n_rows, q_ld, k, k_ld, nb, dim, scale, s, s_ld);
}
void pv_rows_f32(const float* p, int64_t n_rows, int64_t p_ld, const float* v, int64_t v_ld,
                 int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  HWY_DYNAMIC_DISPATCH(PvRowsF32)(p, n_rows, p_ld, v, v_ld, nb, dv, o, o_ld);
}
void pv_rows_f16(const float* p, int64_t n_rows, int64_t p_ld, const uint16_t* v, int64_t v_ld,
                 int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  HWY_DYNAMIC_DISPATCH(PvRowsF16)(p, n_rows, p_ld, v, v_ld, nb, dv, o, o_ld);
}

void qk_rows_q8_0(const float* q, int64_t n_rows, int64_t q_ld, const void* k, int64_t k_ld_bytes,
                  int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  HWY_DYNAMIC_DISPATCH(QkRowsQ8)
  (q, n_rows, q_ld, static_cast<const uint8_t*>(k), k_ld_bytes, nb, dim, scale, s, s_ld);
}
void pv_rows_q8_0(const float* p, int64_t n_rows, int64_t p_ld, const void* v, int64_t v_ld_bytes,
                  int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  HWY_DYNAMIC_DISPATCH(PvRowsQ8)
  (p, n_rows, p_ld, static_cast<const uint8_t*>(v), v_ld_bytes, nb, dv, o, o_ld);
}

void qk_rows(DType type, const float* q, int64_t n_rows, int64_t q_ld, const void* k,
             size_t k_ld_bytes, int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  const auto ld = static_cast<int64_t>(k_ld_bytes);
  switch (type) {
    case DType::F32:
      return qk_rows_f32(q, n_rows, q_ld, static_cast<const float*>(k), ld / 4, nb, dim, scale, s,
                         s_ld);
    case DType::F16:
      return qk_rows_f16(q, n_rows, q_ld, static_cast<const uint16_t*>(k), ld / 2, nb, dim, scale,
                         s, s_ld);
    case DType::Q8_0:
      return qk_rows_q8_0(q, n_rows, q_ld, k, ld, nb, dim, scale, s, s_ld);
    default:
      fail("attention: no row kernel for cache type {}", dtype_name(type));
  }
}

void pv_rows(DType type, const float* p, int64_t n_rows, int64_t p_ld, const void* v,
             size_t v_ld_bytes, int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  const auto ld = static_cast<int64_t>(v_ld_bytes);
  switch (type) {
    case DType::F32:
      return pv_rows_f32(p, n_rows, p_ld, static_cast<const float*>(v), ld / 4, nb, dv, o, o_ld);
    case DType::F16:
      return pv_rows_f16(p, n_rows, p_ld, static_cast<const uint16_t*>(v), ld / 2, nb, dv, o, o_ld);
    case DType::Q8_0:
      return pv_rows_q8_0(p, n_rows, p_ld, v, ld, nb, dv, o, o_ld);
    default:
      fail("attention: no row kernel for cache type {}", dtype_name(type));
  }
}

void qk_rows_reference(const float* q, int64_t n_rows, int64_t q_ld, const float* k, int64_t k_ld,
                       int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld) {
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t j = 0; j < nb; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < dim; ++i)
        acc += static_cast<double>(q[r * q_ld + i]) * k[j * k_ld + i];
      s[r * s_ld + j] = static_cast<float>(acc * scale);
    }
  }
}

void pv_rows_reference(const float* p, int64_t n_rows, int64_t p_ld, const float* v, int64_t v_ld,
                       int64_t nb, int64_t dv, float* o, int64_t o_ld) {
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t i = 0; i < dv; ++i) {
      double acc = o[r * o_ld + i];
      for (int64_t j = 0; j < nb; ++j)
        acc += static_cast<double>(p[r * p_ld + j]) * v[j * v_ld + i];
      o[r * o_ld + i] = static_cast<float>(acc);
    }
  }
}

}  // namespace mcmoe::ops
#endif

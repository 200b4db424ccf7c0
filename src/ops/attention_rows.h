#pragma once
// The products of attention for a few query rows (decode: the query heads of one key/value
// head), reading cached key and value rows where they lie. sgemm packs each key block before
// multiplying, which for 1-16 rows costs more than the product and kept decode attention at
// a fraction of the read bandwidth; these stream every cached row once, in f32, f16 or q8_0
// (narrow rows are widened in registers, not through a scratch copy).
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace mcmoe::ops {

// s[r * s_ld + j] = scale · q_r · k_j for rows r < n_rows (q + r * q_ld) and keys j < nb
// (k + j * k_ld), dot products of `dim` values.
void qk_rows_f32(const float* q, int64_t n_rows, int64_t q_ld, const float* k, int64_t k_ld,
                 int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld);
void qk_rows_f16(const float* q, int64_t n_rows, int64_t q_ld, const uint16_t* k, int64_t k_ld,
                 int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld);

// o[r * o_ld + i] += Σ_j p[r * p_ld + j] · v[j * v_ld + i] for rows r < n_rows, keys j < nb
// and i < dv.
void pv_rows_f32(const float* p, int64_t n_rows, int64_t p_ld, const float* v, int64_t v_ld,
                 int64_t nb, int64_t dv, float* o, int64_t o_ld);
void pv_rows_f16(const float* p, int64_t n_rows, int64_t p_ld, const uint16_t* v, int64_t v_ld,
                 int64_t nb, int64_t dv, float* o, int64_t o_ld);

// q8_0 rows (ggml's blocks of 32: an f16 scale and 32 int8 codes), `ld_bytes` apart; dim and
// dv are multiples of 32.
void qk_rows_q8_0(const float* q, int64_t n_rows, int64_t q_ld, const void* k, int64_t k_ld_bytes,
                  int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld);
void pv_rows_q8_0(const float* p, int64_t n_rows, int64_t p_ld, const void* v, int64_t v_ld_bytes,
                  int64_t nb, int64_t dv, float* o, int64_t o_ld);

// Either product over rows stored in `type` (f32, f16 or q8_0), `ld_bytes` apart, starting
// at the first row's first value (for q8_0, a block boundary): the typed kernels above.
void qk_rows(DType type, const float* q, int64_t n_rows, int64_t q_ld, const void* k,
             size_t k_ld_bytes, int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld);
void pv_rows(DType type, const float* p, int64_t n_rows, int64_t p_ld, const void* v,
             size_t v_ld_bytes, int64_t nb, int64_t dv, float* o, int64_t o_ld);

// Plain loops in double: the references the kernels are tested against.
void qk_rows_reference(const float* q, int64_t n_rows, int64_t q_ld, const float* k, int64_t k_ld,
                       int64_t nb, int64_t dim, float scale, float* s, int64_t s_ld);
void pv_rows_reference(const float* p, int64_t n_rows, int64_t p_ld, const float* v, int64_t v_ld,
                       int64_t nb, int64_t dv, float* o, int64_t o_ld);

}  // namespace mcmoe::ops

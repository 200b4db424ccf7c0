#pragma once
// Internal: the functions each ISA's translation units define (each file compiled with that
// ISA's flags, see CMakeLists.txt). dispatch.cpp gathers them into KernelSet tables and
// only hands out a table after checking the CPU can run it.
#include "kernels/kernels.h"

namespace mcmoe::kernels {

#define MCMOE_KERNEL_FUNCTIONS                                 \
  void quantize_acts(const float* x, int64_t cols, void* dst); \
  void gemm_q8_0(const GemmArgs& a);                           \
  void gemm_q4_0(const GemmArgs& a);                           \
  void gemm_mq(const GemmArgs& a);                             \
  void gemm_kq(const GemmArgs& a);                             \
  void gemm_iq(const GemmArgs& a);                             \
  void gemm_f32(const GemmArgs& a);                            \
  void gemm_f16(const GemmArgs& a);                            \
  void gemm_bf16(const GemmArgs& a);                           \
  void f32_to_f32(const void* src, float* dst, int64_t n);     \
  void f16_to_f32(const void* src, float* dst, int64_t n);     \
  void bf16_to_f32(const void* src, float* dst, int64_t n);

namespace scalar {  // dot_scalar.cpp, quant_acts.cpp, mq_scalar.cpp, kq_scalar.cpp (gemm_iq too)
MCMOE_KERNEL_FUNCTIONS
}  // namespace scalar
namespace avx2 {  // dot_f_avx2.cpp, dot_q_avx2.cpp, mq_avx2.cpp, kq_avx2.cpp, iq_avx2.cpp
MCMOE_KERNEL_FUNCTIONS
}  // namespace avx2
namespace avx512 {  // dot_f_avx512.cpp, dot_q_avx512.cpp, mq_avx512.cpp, kq_avx512.cpp, iq_avx512.cpp
MCMOE_KERNEL_FUNCTIONS
}  // namespace avx512

#undef MCMOE_KERNEL_FUNCTIONS

}  // namespace mcmoe::kernels

#pragma once
// Shared by the ISA files of mcmoe's grouped low-bit kernels (mq_*.cpp): one GemmFn per ISA
// serves all twelve MQ types, picking the template instance for the weight's bits and group.
#include "core/dtype.h"
#include "kernels/kernels.h"

namespace mcmoe::kernels {

// K::run<bits, group>(const GemmArgs&) is the ISA's kernel; ops/ only sends MQ types here.
template <typename K>
inline void run_mq(const GemmArgs& a) {
  static constexpr GemmFn kTable[4][3] = {
      {K::template run<1, 32>, K::template run<1, 64>, K::template run<1, 128>},
      {K::template run<2, 32>, K::template run<2, 64>, K::template run<2, 128>},
      {K::template run<3, 32>, K::template run<3, 64>, K::template run<3, 128>},
      {K::template run<4, 32>, K::template run<4, 64>, K::template run<4, 128>},
  };
  int bits = 0;
  int64_t group = 0;
  mq_params(a.type, &bits, &group);
  kTable[bits - 1][group == 32 ? 0 : group == 64 ? 1 : 2](a);
}

}  // namespace mcmoe::kernels

// One libFuzzer harness per target (fuzz/CMakeLists.txt compiles this file once per target
// with MCMOE_FUZZ_TARGET set). An exception other than mcmoe::Error is a finding: abort, so
// that libFuzzer saves the input.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <typeinfo>

#include "targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mcmoe::fuzz::prepare_target(MCMOE_FUZZ_TARGET);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    mcmoe::fuzz::run_target(MCMOE_FUZZ_TARGET, {data, size});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: %s escaped instead of mcmoe::Error: %s\n", typeid(e).name(),
                 e.what());
    std::abort();
  }
  return 0;
}

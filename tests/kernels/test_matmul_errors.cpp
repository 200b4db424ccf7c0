// Bad shapes and arguments are reported as mcmoe::Error naming the offending values.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "matmul_test_util.h"
#include "ops/matmul.h"

namespace mcmoe {
namespace {

// Runs one job and returns the error message ("" if none was thrown).
std::string error_of(const ops::MatmulJob& job) {
  ThreadPool pool(1);
  try {
    ops::matmul_batch(std::span<const ops::MatmulJob>(&job, 1), pool);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MatmulErrors, RejectsBadShapesAndArguments) {
  const test::OwnedWeight w = test::make_weight(DType::Q8_0, 4, 64, 1);
  std::vector<float> x(4 * 128, 1.f), y(4 * 16, 0.f);
  const ops::MatmulJob good{.w = &w.view, .x = x.data(), .y = y.data(), .n_tokens = 2};
  EXPECT_EQ(error_of(good), "");

  ops::MatmulJob j = good;
  j.w = nullptr;
  EXPECT_NE(error_of(j).find("weight is null"), std::string::npos);

  TensorView three_d = w.view;
  three_d.shape = {2, 2, 64};
  j = good;
  j.w = &three_d;
  EXPECT_NE(error_of(j).find("2-D"), std::string::npos);
  EXPECT_NE(error_of(j).find("[2, 2, 64]"), std::string::npos);

  TensorView one_d = w.view;
  one_d.shape = {256};
  j.w = &one_d;
  EXPECT_NE(error_of(j).find("[256]"), std::string::npos);

  TensorView ragged = w.view;  // 48 columns is not a whole number of Q8_0 blocks
  ragged.shape = {4, 48};
  j.w = &ragged;
  const std::string ragged_msg = error_of(j);
  EXPECT_NE(ragged_msg.find("cols 48"), std::string::npos) << ragged_msg;
  EXPECT_NE(ragged_msg.find("32"), std::string::npos) << ragged_msg;

  TensorView short_view = w.view;
  short_view.nbytes -= 1;
  j.w = &short_view;
  EXPECT_NE(error_of(j).find("bytes"), std::string::npos);

  TensorView no_data = w.view;
  no_data.data = nullptr;
  j.w = &no_data;
  EXPECT_NE(error_of(j).find("no data"), std::string::npos);

  j = good;
  j.x = nullptr;
  EXPECT_NE(error_of(j).find("x is null"), std::string::npos);
  j = good;
  j.y = nullptr;
  EXPECT_NE(error_of(j).find("y is null"), std::string::npos);
  j = good;
  j.ldx = 63;
  EXPECT_NE(error_of(j).find("ldx 63 is less than cols 64"), std::string::npos);
  j = good;
  j.ldy = 3;
  EXPECT_NE(error_of(j).find("ldy 3 is less than rows 4"), std::string::npos);
  j = good;
  j.n_tokens = -1;
  EXPECT_NE(error_of(j).find("n_tokens -1"), std::string::npos);

  // The failing job is named by its index in the batch, and nothing is computed.
  ThreadPool pool(2);
  std::vector<float> y0(8, 5.f);
  ops::MatmulJob bad = good;
  bad.ldy = 1;
  const ops::MatmulJob batch[] = {{.w = &w.view, .x = x.data(), .y = y0.data(), .n_tokens = 2},
                                  bad};
  try {
    ops::matmul_batch(batch, pool);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("job 1"), std::string::npos) << e.what();
  }
  for (float v : y0) EXPECT_EQ(v, 5.f);
}

TEST(MatmulErrors, ForcingAnUnsupportedPathFails) {
  for (kernels::Isa isa : {kernels::Isa::kAvx2, kernels::Isa::kAvx512}) {
    if (kernels::isa_supported(isa)) continue;
    EXPECT_THROW(kernels::set_isa_override(isa), Error);
  }
  EXPECT_NO_THROW(kernels::set_isa_override(kernels::Isa::kScalar));
  EXPECT_EQ(kernels::active_kernels().isa, kernels::Isa::kScalar);
  kernels::set_isa_override(std::nullopt);
  EXPECT_EQ(kernels::active_kernels().isa, kernels::best_isa());
}

}  // namespace
}  // namespace mcmoe

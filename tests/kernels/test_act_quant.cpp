// The activation quantizer: known values for the reference, and every SIMD version equal to
// the reference bit for bit (same codes, same f32 scales), in the layout its kernels read.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/dispatch.h"
#include "kernels/kernels.h"
#include "matmul_test_util.h"

namespace mcmoe {
namespace {

using kernels::ActLayout;
using kernels::ActRowLayout;

struct AlignedRow {
  explicit AlignedRow(size_t n) : storage(n + 64, 0xAB) {
    data = storage.data() + (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  }
  std::vector<uint8_t> storage;
  uint8_t* data;
};

TEST(KernelActQuant, LayoutSizesAndAlignment) {
  for (int64_t cols : {32, 96, 512, 544, 4096}) {
    const ActRowLayout l = kernels::act_row_layout(cols);
    EXPECT_EQ(l.nb, cols / 32);
    EXPECT_EQ(l.nbp % kernels::kActChunk, 0);
    EXPECT_GE(l.nbp, l.nb);
    EXPECT_EQ(l.bytes % 64, 0u);
    EXPECT_EQ(l.d_off % 64, 0u);
    EXPECT_EQ(l.sd_off % 64, 0u);
    EXPECT_EQ(l.dx4_off % 64, 0u);
    EXPECT_EQ(l.nq4_off % 64, 0u);
  }
}

TEST(KernelActQuant, ReferenceKnownValues) {
  // One block with max |x| = 127: d = 1 exactly, codes are x rounded half away from zero.
  std::vector<float> x(32, 0.f);
  const float in[] = {127.f, -127.f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -1.51f, 3.f, 0.f};
  const int expect[] = {127, -127, 3, -3, 1, -1, 1, -2, 3, 0};
  std::memcpy(x.data(), in, sizeof(in));
  x[31] = 100.25f;  // element of the high half: rounds to 100
  const ActRowLayout l = kernels::act_row_layout(32);
  AlignedRow row(l.bytes);
  kernels::quantize_acts_ref(x.data(), 32, row.data, ActLayout::kNatural);
  const auto* q = reinterpret_cast<const int8_t*>(row.data);
  for (size_t j = 0; j < std::size(in); ++j) EXPECT_EQ(q[j], expect[j]) << "j=" << j;
  EXPECT_EQ(q[31], 100);
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += q[j];
  EXPECT_EQ(reinterpret_cast<const float*>(row.data + l.d_off)[0], 1.f);
  EXPECT_EQ(reinterpret_cast<const float*>(row.data + l.sd_off)[0], static_cast<float>(sum));
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(reinterpret_cast<const float*>(row.data + l.dx4_off)[k], 1.f);
    EXPECT_EQ(reinterpret_cast<const int32_t*>(row.data + l.nq4_off)[k], -sum);
  }
  // Padding blocks 1..15 are zero everywhere.
  for (int64_t i = 32; i < l.nbp * 32; ++i) EXPECT_EQ(q[i], 0) << i;
  EXPECT_EQ(reinterpret_cast<const float*>(row.data + l.d_off)[5], 0.f);

  // An all-zero block has scale 0 and codes 0 (no division by zero).
  std::vector<float> zeros(32, 0.f);
  kernels::quantize_acts_ref(zeros.data(), 32, row.data, ActLayout::kNatural);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q[j], 0);
  EXPECT_EQ(reinterpret_cast<const float*>(row.data + l.d_off)[0], 0.f);
}

TEST(KernelActQuant, InterleavedLayoutPlacesHalves) {
  // Block b's element j (j < 16) goes to group b/4 at (b%4)*16 + j, element 16+j 64 later.
  const int64_t cols = 32 * 6;  // one full group of 4 and one partial
  std::vector<float> x(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) x[i] = static_cast<float>((i % 32) - 16 + (i / 32));
  const ActRowLayout l = kernels::act_row_layout(cols);
  AlignedRow nat(l.bytes), il(l.bytes);
  kernels::quantize_acts_ref(x.data(), cols, nat.data, ActLayout::kNatural);
  kernels::quantize_acts_ref(x.data(), cols, il.data, ActLayout::kInterleave4);
  const auto* qn = reinterpret_cast<const int8_t*>(nat.data);
  const auto* qi = reinterpret_cast<const int8_t*>(il.data);
  for (int64_t b = 0; b < l.nb; ++b) {
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(qi[(b / 4) * 128 + (b % 4) * 16 + j], qn[b * 32 + j]);
      EXPECT_EQ(qi[(b / 4) * 128 + 64 + (b % 4) * 16 + j], qn[b * 32 + 16 + j]);
    }
  }
  // Scales are laid out identically.
  EXPECT_EQ(std::memcmp(nat.data + l.d_off, il.data + l.d_off, l.bytes - l.d_off), 0);
}

TEST(KernelActQuant, SimdMatchesReferenceBitForBit) {
  for (kernels::Isa isa : test::supported_isas()) {
    const kernels::KernelSet& ks = kernels::kernels_for(isa);
    for (int64_t cols : {32, 64, 96, 128, 160, 544, 4096}) {
      SCOPED_TRACE(testing::Message() << kernels::isa_name(isa) << " cols=" << cols);
      std::vector<float> x =
          test::random_floats(static_cast<size_t>(cols), static_cast<uint32_t>(cols), 3.f);
      // Exact ties after scaling: block 0 gets max 127 so d = 1 and x = k + 0.5 tie.
      for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) + 0.5f;
      x[0] = 127.f;
      if (cols >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.f);  // an all-zero block
      const ActRowLayout l = kernels::act_row_layout(cols);
      AlignedRow ref(l.bytes), got(l.bytes);
      kernels::quantize_acts_ref(x.data(), cols, ref.data, ks.act_layout);
      ks.quantize_acts(x.data(), cols, got.data);  // got starts as 0xAB garbage
      EXPECT_EQ(std::memcmp(ref.data, got.data, l.bytes), 0);
    }
  }
}

}  // namespace
}  // namespace mcmoe

// The flash-style attention (sgemm blocks, online softmax, key splits during decode)
// against the double-precision one-(token, head)-at-a-time reference, over the attention
// kinds the families use: MHA, GQA, MQA (MLA's absorbed form), value heads narrower than key
// heads, strided rows, sinks, sliding windows, prefill and decode at long context.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "ops/attention_rows.h"
#include "ops/kv_rows.h"

namespace mcmoe::ops {
namespace {

struct Case {
  const char* name;
  int n_head, n_head_kv, head_dim, head_dim_v;
  int64_t n_tokens, pos0, window;
  bool sinks;
  int64_t k_pad = 0;  // extra values between cache rows (strided, as MLA's latent rows)
  float scale = 0.f;
};

class AttentionCases : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionCases, FlashMatchesReference) {
  const Case c = GetParam();
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.f, 1.f);
  const int64_t ctx = c.pos0 + c.n_tokens;
  const int64_t k_stride = c.n_head_kv * c.head_dim + c.k_pad,
                v_stride = c.n_head_kv * c.head_dim_v + c.k_pad;
  std::vector<float> q(c.n_tokens * c.n_head * c.head_dim), k(ctx * k_stride), v(ctx * v_stride),
      sinks(c.n_head);
  // Large enough logits that a wrong mask, scale or softmax shows.
  for (auto& x : q) x = 1.5f * nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (auto& x : sinks) x = 2.f * nd(rng);
  AttentionParams p;
  p.q = q.data();
  p.k = k.data();
  p.k_stride = k_stride;
  p.v = v.data();
  p.v_stride = v_stride;
  p.n_tokens = c.n_tokens;
  p.pos0 = c.pos0;
  p.n_head = c.n_head;
  p.n_head_kv = c.n_head_kv;
  p.head_dim = c.head_dim;
  p.head_dim_v = c.head_dim_v;
  p.scale = c.scale;
  p.window = c.window;
  p.sinks = c.sinks ? sinks.data() : nullptr;
  std::vector<float> want(c.n_tokens * c.n_head * c.head_dim_v), got(want.size(), NAN),
      with_probs(want.size(), NAN);
  p.out = want.data();
  attention_reference(p);
  ThreadPool pool(2);
  p.out = got.data();
  attention(p, pool);
  // The probability-writing path (ODP) computes the same output.
  std::vector<float> probs(c.n_head * c.n_tokens * ctx);
  p.out = with_probs.data();
  p.probs_out = probs.data();
  attention(p, pool);
  double err = 0, err_probs = 0, mx = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << i;
    err = std::max(err, std::fabs(double{got[i]} - want[i]));
    err_probs = std::max(err_probs, std::fabs(double{with_probs[i]} - want[i]));
    mx = std::max(mx, std::fabs(double{want[i]}));
  }
  // f32 sums over up to a few thousand keys: ~1e-6 relative to the largest output.
  EXPECT_LT(err / mx, 2e-5) << c.name;
  EXPECT_LT(err_probs / mx, 2e-5) << c.name;
  // Each probability row sums to 1 minus what the sink took, and is 0 where masked.
  for (int h = 0; h < c.n_head; ++h) {
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      double sum = 0;
      const int64_t pos = c.pos0 + t;
      for (int64_t j = 0; j < ctx; ++j) {
        const float pr = probs[(h * c.n_tokens + t) * ctx + j];
        const bool visible = j <= pos && (c.window == 0 || pos - j < c.window);
        if (!visible) {
          ASSERT_EQ(pr, 0.f) << c.name << " head " << h << " token " << t << " key " << j;
        }
        sum += pr;
      }
      if (c.sinks) {
        EXPECT_LT(sum, 1.0 + 1e-5);
      } else {
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

// An f16 or q8_0 cache: the fast path widens blocks of cached rows, the reference the whole
// cache; both must compute the same attention over the stored values.
TEST(Attention, NarrowCacheTypesMatchReference) {
  for (const DType type : {DType::F16, DType::Q8_0}) {
    // GQA rows (prefill through sgemm, decode and a few tokens through the row kernels), or
    // MLA's latent row shared by keys and values.
    for (const int64_t n_gqa : {int64_t{0}, int64_t{40}, int64_t{1}, int64_t{3}}) {
      const bool latent = n_gqa == 0;
      const int n_head = latent ? 16 : 8, n_head_kv = latent ? 1 : 2, hd = latent ? 96 : 64,
                dv = latent ? 64 : 64;
      const int64_t pos0 = 700, n = latent ? 1 : n_gqa, ctx = pos0 + n;
      const int64_t k_width = n_head_kv * hd, v_width = n_head_kv * dv;
      std::mt19937 rng(5);
      std::normal_distribution<float> nd(0.f, 1.f);
      std::vector<float> q(n * n_head * hd), k(ctx * k_width), v(ctx * v_width);
      for (auto& x : q) x = nd(rng);
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      std::vector<uint8_t> kc(ctx * row_bytes(type, k_width)), vc(ctx * row_bytes(type, v_width));
      for (int64_t j = 0; j < ctx; ++j) {
        kv_row_from_f32(type, k.data() + j * k_width, k_width,
                        kc.data() + j * row_bytes(type, k_width));
        kv_row_from_f32(type, v.data() + j * v_width, v_width,
                        vc.data() + j * row_bytes(type, v_width));
      }
      AttentionParams p;
      p.q = q.data();
      p.k = kc.data();
      p.v = latent ? kc.data() : vc.data();
      p.v_stride = latent ? k_width : 0;
      p.kv_type = type;
      p.n_tokens = n;
      p.pos0 = pos0;
      p.n_head = n_head;
      p.n_head_kv = n_head_kv;
      p.head_dim = hd;
      p.head_dim_v = dv;
      std::vector<float> want(n * n_head * dv), got(want.size());
      p.out = want.data();
      attention_reference(p);
      ThreadPool pool(2);
      p.out = got.data();
      attention(p, pool);
      double err = 0, mx = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        err = std::max(err, std::fabs(double{got[i]} - want[i]));
        mx = std::max(mx, std::fabs(double{want[i]}));
      }
      EXPECT_LT(err / mx, 2e-5) << dtype_name(type) << (latent ? " latent" : " gqa") << " n " << n;
    }
  }
}

// The bound: the tiled prefill equals the reference to 1e-5 relative at lengths 1 to
// 8,192, on both sides of every block edge (query blocks of 64 tokens × 4 heads, key blocks
// of 256). Long prefills are checked on sampled query rows, each against the reference for
// that one token (same keys, same position), so the double-precision reference stays cheap.
TEST(Attention, TiledPrefillMatchesReferenceAtEveryLength) {
  const int n_head = 8, n_head_kv = 2, hd = 32;
  ThreadPool pool(2);
  for (const int64_t n :
       {1, 2, 63, 64, 65, 255, 256, 257, 511, 513, 1000, 2048, 4095, 4097, 8192}) {
    std::mt19937 rng(static_cast<unsigned>(n));
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> q(n * n_head * hd), k(n * n_head_kv * hd), v(k.size());
    for (auto& x : q) x = 1.5f * nd(rng);
    for (auto& x : k) x = nd(rng);
    for (auto& x : v) x = nd(rng);
    AttentionParams p;
    p.q = q.data();
    p.k = k.data();
    p.v = v.data();
    p.n_tokens = n;
    p.n_head = n_head;
    p.n_head_kv = n_head_kv;
    p.head_dim = hd;
    std::vector<float> got(n * n_head * hd, NAN);
    p.out = got.data();
    attention(p, pool);
    std::vector<int64_t> rows;
    if (n <= 300) {
      for (int64_t t = 0; t < n; ++t) rows.push_back(t);
    } else {
      for (int64_t edge = 64; edge < n; edge += 64) {  // both sides of every query block edge
        rows.push_back(edge - 1);
        rows.push_back(edge);
      }
      for (int64_t t : {int64_t{0}, int64_t{1}, n - 2, n - 1}) rows.push_back(t);
    }
    double err = 0, mx = 0;
    std::vector<float> want(n_head * hd);
    for (const int64_t t : rows) {
      AttentionParams one = p;
      one.q = q.data() + t * n_head * hd;
      one.n_tokens = 1;
      one.pos0 = t;
      one.out = want.data();
      attention_reference(one);
      for (int i = 0; i < n_head * hd; ++i) {
        const float g = got[t * n_head * hd + i];
        ASSERT_TRUE(std::isfinite(g)) << "length " << n << " token " << t;
        err = std::max(err, std::fabs(double{g} - want[i]));
        mx = std::max(mx, std::fabs(double{want[i]}));
      }
    }
    EXPECT_LT(err / mx, 1e-5) << "length " << n;
  }
}

// The row kernels (decode's products) against their double-precision references, for every
// row count the dispatch splits into, a dimension with a tail past the vector width, and
// f16 / q8_0 rows against the reference on the same stored values.
TEST(AttentionRows, KernelsMatchReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (const DType type : {DType::F32, DType::F16, DType::Q8_0}) {
    for (const int64_t dim : {int64_t{64}, int64_t{72}, int64_t{128}}) {
      if (type == DType::Q8_0 && dim % 32 != 0) continue;
      for (const int64_t n_rows : {1, 2, 3, 4, 5, 7, 9}) {
        const int64_t nb = 37, ld = dim + 32;  // rows further apart than they are wide
        std::vector<float> q(n_rows * dim), kv(nb * ld), p(n_rows * nb);
        for (auto& x : q) x = nd(rng);
        for (auto& x : kv) x = nd(rng);
        for (auto& x : p) x = std::fabs(nd(rng));
        // The stored rows, and their values widened back for the reference.
        const size_t row = row_bytes(type, ld);
        std::vector<uint8_t> stored(nb * row);
        std::vector<float> widened(kv.size());
        for (int64_t j = 0; j < nb; ++j) {
          kv_row_from_f32(type, kv.data() + j * ld, ld, stored.data() + j * row);
          kv_rows_to_f32(type, stored.data() + j * row, row, 1, ld, widened.data() + j * ld, ld);
        }
        std::vector<float> s(n_rows * nb), s_ref(s.size()), o(n_rows * dim, 0.5f), o_ref(o);
        if (type == DType::F32) {
          qk_rows_f32(q.data(), n_rows, dim, kv.data(), ld, nb, dim, 0.3f, s.data(), nb);
          pv_rows_f32(p.data(), n_rows, nb, kv.data(), ld, nb, dim, o.data(), dim);
        } else if (type == DType::F16) {
          const auto* rows = reinterpret_cast<const uint16_t*>(stored.data());
          qk_rows_f16(q.data(), n_rows, dim, rows, ld, nb, dim, 0.3f, s.data(), nb);
          pv_rows_f16(p.data(), n_rows, nb, rows, ld, nb, dim, o.data(), dim);
        } else {
          qk_rows_q8_0(q.data(), n_rows, dim, stored.data(), static_cast<int64_t>(row), nb, dim,
                       0.3f, s.data(), nb);
          pv_rows_q8_0(p.data(), n_rows, nb, stored.data(), static_cast<int64_t>(row), nb, dim,
                       o.data(), dim);
        }
        qk_rows_reference(q.data(), n_rows, dim, widened.data(), ld, nb, dim, 0.3f, s_ref.data(),
                          nb);
        pv_rows_reference(p.data(), n_rows, nb, widened.data(), ld, nb, dim, o_ref.data(), dim);
        for (size_t i = 0; i < s.size(); ++i)
          ASSERT_NEAR(s[i], s_ref[i], 1e-5 * (1 + std::fabs(s_ref[i])) * std::sqrt(dim))
              << dtype_name(type) << " dim " << dim << " rows " << n_rows << " score " << i;
        for (size_t i = 0; i < o.size(); ++i)
          ASSERT_NEAR(o[i], o_ref[i], 1e-5 * (1 + std::fabs(o_ref[i])) * std::sqrt(nb))
              << dtype_name(type) << " dim " << dim << " rows " << n_rows << " output " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, AttentionCases,
    ::testing::Values(Case{"mha_prefill", 4, 4, 32, 32, 77, 0, 0, false},
                      Case{"gqa_prefill_after_cache", 8, 2, 64, 64, 150, 90, 0, false},
                      Case{"gqa_decode_long", 8, 2, 64, 64, 1, 2999, 0, false},
                      Case{"mqa_latent_decode", 16, 1, 72, 64, 1, 1500, 0, false, 8, 0.05f},
                      Case{"mqa_latent_prefill", 16, 1, 72, 64, 40, 300, 0, false, 8, 0.05f},
                      Case{"mla_naive_shapes", 4, 4, 24, 16, 33, 10, 0, false},
                      Case{"sinks_window_prefill", 8, 2, 16, 16, 200, 0, 7, true},
                      Case{"sinks_window_decode", 8, 2, 16, 16, 1, 900, 128, true},
                      Case{"window_crosses_blocks", 4, 1, 16, 16, 300, 400, 300, false},
                      Case{"sinks_full", 6, 3, 16, 16, 20, 5, 0, true, 0, 0.7f},
                      Case{"few_heads_prefill_long", 2, 2, 32, 32, 10, 1000, 0, false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mcmoe::ops

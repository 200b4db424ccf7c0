#include "ops/attention.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "core/aligned_scratch.h"
#include "ops/attention_rows.h"
#include "ops/elementwise.h"
#include "ops/kv_rows.h"

namespace mcmoe::ops {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Strides with defaults filled in.
struct Layout {
  int64_t q_stride, q_head, k_stride, k_head, v_stride, v_head, out_stride;
  int dv, group;
  float scale;
};

Layout resolve(const AttentionParams& p) {
  Layout d;
  d.dv = p.head_dim_v > 0 ? p.head_dim_v : p.head_dim;
  d.q_head = p.q_head_stride > 0 ? p.q_head_stride : p.head_dim;
  d.q_stride = p.q_stride > 0 ? p.q_stride : p.n_head * d.q_head;
  d.k_head = p.k_head_stride > 0 ? p.k_head_stride : p.head_dim;
  d.k_stride = p.k_stride > 0 ? p.k_stride : p.n_head_kv * d.k_head;
  d.v_head = p.v_head_stride > 0 ? p.v_head_stride : d.dv;
  d.v_stride = p.v_stride > 0 ? p.v_stride : p.n_head_kv * d.v_head;
  d.out_stride = p.out_stride > 0 ? p.out_stride : static_cast<int64_t>(p.n_head) * d.dv;
  d.group = p.n_head / p.n_head_kv;
  d.scale = p.scale != 0.f ? p.scale : 1.f / std::sqrt(static_cast<float>(p.head_dim));
  return d;
}

// The first key a query at position pos sees.
int64_t first_key(int64_t pos, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
}

// One (token, head) at a time in f32, writing probabilities: ODP's token importance needs
// them, and it runs on prefill batches only.
void attention_with_probs(const AttentionParams& p, const Layout& d, ThreadPool& pool) {
  const int64_t ctx = p.pos0 + p.n_tokens;
  pool.parallel_for(p.n_tokens * p.n_head, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(ctx));
    for (int64_t w = begin; w < end; ++w) {
      const int64_t t = w / p.n_head;
      const int h = static_cast<int>(w % p.n_head), kvh = h / d.group;
      const float* q = p.q + t * d.q_stride + h * d.q_head;
      const int64_t pos = p.pos0 + t, lo = first_key(pos, p.window);
      float mx = p.sinks ? p.sinks[h] : kNegInf;
      for (int64_t j = lo; j <= pos; ++j) {
        scores[j] =
            dot(q, static_cast<const float*>(p.k) + j * d.k_stride + kvh * d.k_head, p.head_dim) *
            d.scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = p.sinks ? std::exp(p.sinks[h] - mx) : 0.0;
      for (int64_t j = lo; j <= pos; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      float* out = p.out + t * d.out_stride + static_cast<int64_t>(h) * d.dv;
      std::fill_n(out, d.dv, 0.f);
      for (int64_t j = lo; j <= pos; ++j)
        axpy(scores[j] * inv, static_cast<const float*>(p.v) + j * d.v_stride + kvh * d.v_head, out,
             d.dv);
      float* row = p.probs_out + (static_cast<int64_t>(h) * p.n_tokens + t) * ctx;
      for (int64_t j = 0; j < ctx; ++j) row[j] = j >= lo && j <= pos ? scores[j] * inv : 0.f;
    }
  });
}

// Key block size of the flash path and the target number of query rows per block. A row
// block is (key/value head, consecutive query tokens) with every query head of the group:
// those rows read the same keys and values, so the 4 heads of a GQA group share each key
// block (and its f16 / q8_0 widening) instead of reading it 4 times, and sgemm's packing of
// a key block is spread over 256 rows. A 256 × 256 score tile is 256 KiB; a 256-key block of
// 576-wide MLA latents 576 KiB: together about one L2.
constexpr int64_t kKeyBlock = 256;
constexpr int64_t kRowTarget = 256;
constexpr int64_t kMaxQueryTokens = 128;  // with one head per group (MHA): causal waste bound
// Up to this many rows per block, the products stream the cached rows (attention_rows.h)
// instead of going through sgemm.
constexpr int64_t kRowKernelMax = 16;

// Running softmax state of a block of query rows: max m, sum l and the unnormalised output
// O [rows, dv].
struct RowState {
  float* m;
  float* l;
  float* o;
};

// f32 rows of one key/value head at positions [j0, j0 + nb): where they start and how far
// apart. An f32 cache is read in place; f16 / q8_0 rows are widened into `scratch`, only the
// head's own values when they start on a block boundary, else whole rows.
struct Rows {
  const float* p;
  int64_t ld;
};
Rows cached_rows(const void* base, DType type, int64_t stride, int64_t head_off, int64_t width,
                 int64_t j0, int64_t nb, float* scratch) {
  if (type == DType::F32) return {static_cast<const float*>(base) + j0 * stride + head_off, stride};
  const auto* rows = static_cast<const uint8_t*>(base) + j0 * row_bytes(type, stride);
  const int64_t block = dtype_traits(type).block_size;
  if (head_off % block == 0 && width % block == 0) {
    kv_rows_to_f32(type, rows + row_bytes(type, head_off), row_bytes(type, stride), nb, width,
                   scratch, width);
    return {scratch, width};
  }
  kv_rows_to_f32(type, rows, row_bytes(type, stride), nb, stride, scratch, stride);
  return {scratch + head_off, stride};
}

// The scores s [rows r_lo..r_hi, nb] of keys [j0, j0 + nb) become exp(score − new max) under
// the causal and window masks; each row's running max, sum and output scale follow.
void softmax_block(const AttentionParams& p, const Layout& d, const int64_t* row_pos, int64_t r_lo,
                   int64_t r_hi, int64_t j0, int64_t nb, RowState st, float* s) {
  for (int64_t r = r_lo; r < r_hi; ++r) {
    float* sr = s + (r - r_lo) * nb;
    const int64_t hi = row_pos[r] - j0;                       // keys past hi are in the future
    const int64_t lo = first_key(row_pos[r], p.window) - j0;  // keys before lo left the window
    for (int64_t j = std::max<int64_t>(0, hi + 1); j < nb; ++j) sr[j] = kNegInf;
    for (int64_t j = 0; j < std::min(lo, nb); ++j) sr[j] = kNegInf;
    const float bm = max_value(sr, nb);
    float* o = st.o + r * d.dv;
    if (bm == kNegInf) {  // nothing visible to this row in this block
      std::fill_n(sr, nb, 0.f);
      continue;
    }
    const float m_new = std::max(st.m[r], bm);
    const float corr = st.m[r] == kNegInf ? 0.f : std::exp(st.m[r] - m_new);
    const float sum = exp_shift_sum(sr, nb, m_new);
    st.l[r] = st.l[r] * corr + sum;
    if (corr != 1.f) scale_in_place(o, corr, d.dv);
    st.m[r] = m_new;
  }
}

// Rows r = 0..n_rows-1 at q_base + r * q_ld, row r at position row_pos[r] (ascending in
// blocks of equal positions), against keys [k_begin, k_end) of key/value head kvh, in
// blocks; updates the running state.
void flash_rows(const AttentionParams& p, const Layout& d, int kvh, int64_t n_rows,
                const float* q_base, int64_t q_ld, const int64_t* row_pos, int64_t k_begin,
                int64_t k_end, RowState st, float* s, float* k_scratch, float* v_scratch) {
  const int64_t min_pos = row_pos[0], max_pos = row_pos[n_rows - 1];
  k_end = std::min(k_end, max_pos + 1);                       // causal: later keys never seen
  k_begin = std::max(k_begin, first_key(min_pos, p.window));  // window: older keys never seen
  for (int64_t j0 = k_begin; j0 < k_end; j0 += kKeyBlock) {
    const int64_t nb = std::min(kKeyBlock, k_end - j0);
    const int64_t k_off = kvh * d.k_head, v_off = kvh * d.v_head;
    // Rows that see no key of this block at all (a window's far side, or the causal edge of
    // a many-token block) are left out of both products: [r_lo, r_hi).
    int64_t r_lo = 0, r_hi = n_rows;
    while (r_lo < r_hi && row_pos[r_lo] < j0) ++r_lo;  // every key of the block is in its future
    while (r_hi > r_lo && first_key(row_pos[r_hi - 1], p.window) >= j0 + nb) --r_hi;
    if (r_lo == r_hi) continue;
    const int64_t rows = r_hi - r_lo;
    // Values inside the keys' rows (MLA's latent: keys [c | k_pe], values c) reuse them.
    const bool shared = p.v == p.k && d.v_stride == d.k_stride && v_off >= k_off &&
                        v_off + d.dv <= k_off + p.head_dim;
    const bool few_rows = rows <= kRowKernelMax;
    const float* q_rows = q_base + r_lo * q_ld;
    // Few rows (decode): the row kernels stream the cached rows in place, widening f16 and
    // q8_0 in registers (q8_0 needs each head's rows to start on a block boundary).
    const bool blocks_aligned =
        p.kv_type != DType::Q8_0 ||
        (k_off % 32 == 0 && v_off % 32 == 0 && p.head_dim % 32 == 0 && d.dv % 32 == 0);
    if (few_rows && blocks_aligned) {
      const auto* k =
          static_cast<const uint8_t*>(p.k) + row_bytes(p.kv_type, j0 * d.k_stride + k_off);
      const auto* v =
          static_cast<const uint8_t*>(p.v) + row_bytes(p.kv_type, j0 * d.v_stride + v_off);
      qk_rows(p.kv_type, q_rows, rows, q_ld, k, row_bytes(p.kv_type, d.k_stride), nb, p.head_dim,
              d.scale, s, nb);
      softmax_block(p, d, row_pos, r_lo, r_hi, j0, nb, st, s);
      pv_rows(p.kv_type, s, rows, nb, v, row_bytes(p.kv_type, d.v_stride), nb, d.dv,
              st.o + r_lo * d.dv, d.dv);
      continue;
    }
    const Rows kr = cached_rows(p.k, p.kv_type, d.k_stride, k_off, p.head_dim, j0, nb, k_scratch);
    const Rows vr = shared
                        ? Rows{kr.p + (v_off - k_off), kr.ld}
                        : cached_rows(p.v, p.kv_type, d.v_stride, v_off, d.dv, j0, nb, v_scratch);
    // S = scale · Q Kᵀ for this block.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                static_cast<int>(nb), p.head_dim, d.scale, q_rows, static_cast<int>(q_ld), kr.p,
                static_cast<int>(kr.ld), 0.f, s, static_cast<int>(nb));
    softmax_block(p, d, row_pos, r_lo, r_hi, j0, nb, st, s);
    // O += P · V for this block.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), d.dv,
                static_cast<int>(nb), 1.f, s, static_cast<int>(nb), vr.p, static_cast<int>(vr.ld),
                1.f, st.o + r_lo * d.dv, d.dv);
  }
}

// out = O / l, with head h's sink joining the denominator.
void finish_row(const AttentionParams& p, int h, float m, float l, const float* o, float* out,
                int dv) {
  if (p.sinks) {
    const float m_new = std::max(m, p.sinks[h]);
    const float corr = m == kNegInf ? 0.f : std::exp(m - m_new);
    l = l * corr + std::exp(p.sinks[h] - m_new);
    const float inv = corr / l;
    for (int i = 0; i < dv; ++i) out[i] = o[i] * inv;
    return;
  }
  const float inv = l > 0 ? 1.f / l : 0.f;
  for (int i = 0; i < dv; ++i) out[i] = o[i] * inv;
}

float* thread_scratch(size_t floats) {
  thread_local AlignedScratch scratch;
  return static_cast<float*>(scratch.get(floats * sizeof(float)));
}

// The row blocks: (key/value head, `tokens` consecutive query tokens); row r of a block is
// token t0 + r / group, query head kvh · group + r % group.
struct RowBlocks {
  int64_t tokens;    // query tokens per block
  int64_t per_head;  // blocks per key/value head
  int64_t count;
  int64_t max_rows;
};

RowBlocks row_blocks(const AttentionParams& p, const Layout& d) {
  RowBlocks b;
  b.tokens = std::clamp<int64_t>(kRowTarget / d.group, 1, kMaxQueryTokens);
  b.tokens = std::min(b.tokens, p.n_tokens);
  b.per_head = (p.n_tokens + b.tokens - 1) / b.tokens;
  b.count = b.per_head * p.n_head_kv;
  b.max_rows = b.tokens * d.group;
  return b;
}

void attention_flash(const AttentionParams& p, const Layout& d, ThreadPool& pool) {
  static std::once_flag single_threaded;
  std::call_once(single_threaded, [] { openblas_set_num_threads(1); });
  const int dv = d.dv, group = d.group;
  const RowBlocks blocks = row_blocks(p, d);
  const int64_t ctx = p.pos0 + p.n_tokens, max_rows = blocks.max_rows;
  // Few row blocks (decode): the keys are split across threads so none idles, and the
  // partial softmaxes are merged at the end.
  int64_t splits = 1;
  if (blocks.count < 2 * pool.size() && ctx >= 2 * kKeyBlock) {
    splits =
        std::min<int64_t>((2 * pool.size() + blocks.count - 1) / blocks.count, ctx / kKeyBlock);
  }
  // Partial states of every (row block, split): m, l [max_rows] and O [max_rows, dv].
  const int64_t state_floats = max_rows * (2 + dv);
  // Kept between calls (decode runs this once per layer and token).
  thread_local AlignedScratch partial_scratch;
  float* partial =
      splits > 1 ? static_cast<float*>(partial_scratch.get(
                       static_cast<size_t>(blocks.count * splits * state_floats) * sizeof(float)))
                 : nullptr;
  // Widened key and value blocks (f16 / q8_0 caches): at most whole rows of kKeyBlock keys.
  const int64_t widen = p.kv_type == DType::F32 ? 0 : kKeyBlock * (d.k_stride + d.v_stride);
  // Query rows of a block, gathered when they are not one strided matrix in place.
  const bool gather_q = group > 1 && blocks.tokens > 1;
  const int64_t q_pack = gather_q ? max_rows * p.head_dim : 0;
  // Items are taken from a shared counter, latest query blocks first: under the causal mask
  // they see the most keys, and a static split would leave one thread the heavy end.
  const int64_t n_items = blocks.count * splits;
  std::atomic<int64_t> next{0};
  pool.run([&](int) {
    float* work =
        thread_scratch(static_cast<size_t>(max_rows * kKeyBlock + state_floats + widen + q_pack));
    float* k_scratch = work + max_rows * kKeyBlock + state_floats;
    float* v_scratch = k_scratch + kKeyBlock * d.k_stride;
    float* q_rows = k_scratch + widen;
    std::vector<int64_t> row_pos(static_cast<size_t>(max_rows));
    for (int64_t i = next.fetch_add(1); i < n_items; i = next.fetch_add(1)) {
      // i → (query block from the last, key/value head, split).
      const int64_t split = i % splits, rb = i / splits;
      const int64_t qb = blocks.per_head - 1 - rb / p.n_head_kv;
      const int kvh = static_cast<int>(rb % p.n_head_kv), h0 = kvh * group;
      const int64_t item = (kvh * blocks.per_head + qb) * splits + split;  // partial's slot
      const int64_t t0 = qb * blocks.tokens, n_tok = std::min(blocks.tokens, p.n_tokens - t0);
      const int64_t n_rows = n_tok * group;
      const float* q_base = p.q + t0 * d.q_stride + h0 * d.q_head;
      int64_t q_ld = group > 1 ? d.q_head : d.q_stride;
      if (gather_q) {
        for (int64_t r = 0; r < n_rows; ++r) {
          std::copy_n(q_base + (r / group) * d.q_stride + (r % group) * d.q_head, p.head_dim,
                      q_rows + r * p.head_dim);
        }
        q_base = q_rows;
        q_ld = p.head_dim;
      }
      for (int64_t r = 0; r < n_rows; ++r) row_pos[r] = p.pos0 + t0 + r / group;
      float* state = splits > 1 ? partial + item * state_floats : work + max_rows * kKeyBlock;
      RowState st{state, state + max_rows, state + 2 * max_rows};
      std::fill_n(st.m, n_rows, kNegInf);
      std::fill_n(st.l, n_rows, 0.f);
      std::fill_n(st.o, n_rows * dv, 0.f);
      const int64_t per_split = (ctx + splits - 1) / splits;
      const int64_t k_begin = split * per_split, k_end = std::min(ctx, k_begin + per_split);
      flash_rows(p, d, kvh, n_rows, q_base, q_ld, row_pos.data(), k_begin, k_end, st, work,
                 k_scratch, v_scratch);
      if (splits > 1) continue;
      for (int64_t r = 0; r < n_rows; ++r) {
        const int h = h0 + static_cast<int>(r % group);
        const int64_t t = t0 + r / group;
        finish_row(p, h, st.m[r], st.l[r], st.o + r * dv,
                   p.out + t * d.out_stride + static_cast<int64_t>(h) * dv, dv);
      }
    }
  });
  if (splits == 1) return;
  // Merge the splits of each row block: rescale every partial to the common maximum.
  pool.parallel_for(blocks.count, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> o(static_cast<size_t>(dv));
    for (int64_t rb = begin; rb < end; ++rb) {
      const int kvh = static_cast<int>(rb / blocks.per_head);
      const int64_t t0 = (rb % blocks.per_head) * blocks.tokens;
      const int64_t n_rows = std::min(blocks.tokens, p.n_tokens - t0) * group;
      for (int64_t r = 0; r < n_rows; ++r) {
        float m = kNegInf;
        for (int64_t sp = 0; sp < splits; ++sp)
          m = std::max(m, partial[(rb * splits + sp) * state_floats + r]);
        float l = 0;
        std::fill(o.begin(), o.end(), 0.f);
        for (int64_t sp = 0; sp < splits; ++sp) {
          const float* state = partial + (rb * splits + sp) * state_floats;
          if (state[r] == kNegInf) continue;
          const float c = std::exp(state[r] - m);
          l += c * state[max_rows + r];
          axpy(c, state + 2 * max_rows + r * dv, o.data(), dv);
        }
        const int h = kvh * group + static_cast<int>(r % group);
        const int64_t t = t0 + r / group;
        finish_row(p, h, m, l, o.data(), p.out + t * d.out_stride + static_cast<int64_t>(h) * dv,
                   dv);
      }
    }
  });
}

// The whole visible cache in f32 (the slow paths' view of an f16 / q8_0 cache).
struct WidenedCache {
  std::vector<float> k, v;
  AttentionParams p;
};
WidenedCache widen_cache(const AttentionParams& p) {
  const Layout d = resolve(p);
  const int64_t ctx = p.pos0 + p.n_tokens;
  // Every value attention reads, as one run from the start: the last head's last row ends it
  // (rows may be position-major or head-major; a run of whole rows is whole blocks).
  const int64_t k_span = (p.n_head_kv - 1) * d.k_head + (ctx - 1) * d.k_stride + p.head_dim,
                v_span = (p.n_head_kv - 1) * d.v_head + (ctx - 1) * d.v_stride + d.dv;
  const int64_t block = dtype_traits(p.kv_type).block_size;
  const int64_t k_n = (k_span + block - 1) / block * block,
                v_n = (v_span + block - 1) / block * block;
  WidenedCache w;
  w.k.resize(static_cast<size_t>(k_n));
  w.v.resize(static_cast<size_t>(v_n));
  kv_rows_to_f32(p.kv_type, p.k, row_bytes(p.kv_type, k_n), 1, k_n, w.k.data(), k_n);
  kv_rows_to_f32(p.kv_type, p.v, row_bytes(p.kv_type, v_n), 1, v_n, w.v.data(), v_n);
  w.p = p;
  w.p.k = w.k.data();
  w.p.v = w.v.data();
  w.p.k_stride = d.k_stride;
  w.p.k_head_stride = d.k_head;
  w.p.v_stride = d.v_stride;
  w.p.v_head_stride = d.v_head;
  w.p.kv_type = DType::F32;
  return w;
}

}  // namespace

void attention(const AttentionParams& p, ThreadPool& pool) {
  if (p.probs_out && p.kv_type != DType::F32) {
    const WidenedCache w = widen_cache(p);
    return attention(w.p, pool);
  }
  const Layout d = resolve(p);
  if (p.probs_out) return attention_with_probs(p, d, pool);
  attention_flash(p, d, pool);
}

void attention_reference(const AttentionParams& p_in) {
  if (p_in.kv_type != DType::F32) {
    const WidenedCache w = widen_cache(p_in);
    return attention_reference(w.p);
  }
  const AttentionParams& p = p_in;
  const Layout d = resolve(p);
  const int64_t ctx = p.pos0 + p.n_tokens;
  std::vector<double> scores(static_cast<size_t>(ctx)), out(static_cast<size_t>(d.dv));
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    for (int h = 0; h < p.n_head; ++h) {
      const int kvh = h / d.group;
      const float* q = p.q + t * d.q_stride + h * d.q_head;
      const int64_t pos = p.pos0 + t, lo = first_key(pos, p.window);
      double mx = p.sinks ? p.sinks[h] : -INFINITY;
      for (int64_t j = lo; j <= pos; ++j) {
        const float* k = static_cast<const float*>(p.k) + j * d.k_stride + kvh * d.k_head;
        double s = 0;
        for (int i = 0; i < p.head_dim; ++i) s += static_cast<double>(q[i]) * k[i];
        scores[j] = s * d.scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = p.sinks ? std::exp(p.sinks[h] - mx) : 0.0;
      for (int64_t j = lo; j <= pos; ++j) sum += scores[j] = std::exp(scores[j] - mx);
      std::fill(out.begin(), out.end(), 0.0);
      for (int64_t j = lo; j <= pos; ++j) {
        const float* v = static_cast<const float*>(p.v) + j * d.v_stride + kvh * d.v_head;
        for (int i = 0; i < d.dv; ++i) out[i] += scores[j] / sum * v[i];
      }
      float* o = p.out + t * d.out_stride + static_cast<int64_t>(h) * d.dv;
      for (int i = 0; i < d.dv; ++i) o[i] = static_cast<float>(out[i]);
    }
  }
}

}  // namespace mcmoe::ops

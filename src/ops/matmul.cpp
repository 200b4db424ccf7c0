// Linear layers: validate once, quantize activations once per distinct input, then split the
// rows of all jobs across the pool in a single parallel region and run the kernels chosen at
// start-up (kernels/dispatch.h).
#include "ops/matmul.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/aligned_scratch.h"
#include "core/error.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_blas.h"
#include "quant/quantize.h"

namespace mcmoe::ops {

namespace {

using kernels::GemmArgs;
using kernels::KernelSet;
using kernels::WFormat;

// Thread boundaries fall on multiples of 16 rows: a whole number of 4-row kernel tiles, and
// 64 bytes of f32 output, so two threads never write the same cache line of y.
constexpr int64_t kRowAlign = 16;
// Below this much work (cost units, see plan_cost) a hand-off to the pool costs more than it
// saves; the caller runs everything itself. Measured on the dev machine (2 threads, warm
// pool): a matvec with 72 KB of Q4_0 weight takes 2.1 us on one thread and 3.5 us on two, one
// with 288 KB 6.8 us and 5.5 us; the two lines cross near 150 KB.
constexpr int64_t kMinParallelCost = 128 * 1024;
// Work chunks per thread for dynamic balancing: enough to even out unequal thread speeds,
// few enough that chunk boundaries (a tile prefetch that goes unused) stay cheap.
constexpr int64_t kChunksPerThread = 8;
// Quantize activations on the pool only when there are many (prefill); decode quantizes a
// few KB on the calling thread.
constexpr int64_t kMinParallelQuantElems = 256 * 1024;

struct JobPlan {
  const MatmulJob* job;
  WFormat format;
  int64_t rows, cols, ldy;
  const void* x;      // f32 rows or prepared act rows
  size_t x_stride;    // bytes
  size_t act_offset;  // quantized formats: where in the scratch buffer the act rows go
  bool owns_act;      // false: shares the act rows of an earlier job with the same input
  bool blas;          // float weights with many tokens: OpenBLAS
  int64_t row_cost;   // work per weight row (plan_cost)
  int64_t cost_begin, cost_end;
};

// Cost of one weight row: its bytes (what decode waits for) plus a compute term that grows
// with tokens. 1/4 byte per multiply-add is about the ratio of one core's memory bandwidth
// (~25 GB/s) to its int8 multiply-add rate (~100 G/s), so a batch mixing decode-sized and
// prefill-sized jobs is still split evenly in time.
int64_t plan_cost(size_t row_bytes, int64_t cols, int64_t n_tokens) {
  return static_cast<int64_t>(row_bytes) + cols * n_tokens / 4;
}

// Activation scratch of the calling thread, reused across calls.
uint8_t* act_scratch(size_t bytes) {
  thread_local AlignedScratch scratch;
  return static_cast<uint8_t*>(scratch.get(bytes));
}

void validate(const MatmulJob& job, size_t index) {
  if (job.w == nullptr) fail("matmul job {}: weight is null", index);
  const TensorView& w = *job.w;
  if (w.shape.size() != 2) {
    fail("matmul job {}: weight must be 2-D [rows, cols], got shape {}", index,
         shape_string(w.shape));
  }
  if (!w.valid()) fail("matmul job {}: weight {} has no data", index, shape_string(w.shape));
  WFormat f;
  if (!kernels::wformat_of(w.type, &f)) {
    fail("matmul job {}: weight type {} has no kernel", index, dtype_name(w.type));
  }
  const int64_t rows = w.rows(), cols = w.cols();
  const int64_t block = dtype_traits(w.type).block_size;
  if (rows < 0 || cols <= 0 || cols % block != 0) {
    fail("matmul job {}: weight {} of type {}: cols {} must be a positive multiple of {}", index,
         shape_string(w.shape), dtype_name(w.type), cols, block);
  }
  const size_t need = static_cast<size_t>(rows) * row_bytes(w.type, cols);
  if (w.nbytes < need) {
    fail("matmul job {}: weight {} of type {} needs {} bytes, view has {}", index,
         shape_string(w.shape), dtype_name(w.type), need, w.nbytes);
  }
  if (job.n_tokens < 0) fail("matmul job {}: n_tokens {} is negative", index, job.n_tokens);
  if (job.x == nullptr) fail("matmul job {}: x is null", index);
  if (job.y == nullptr) fail("matmul job {}: y is null", index);
  if (job.ldx != 0 && job.ldx < cols) {
    fail("matmul job {}: ldx {} is less than cols {}", index, job.ldx, cols);
  }
  if (job.ldy != 0 && job.ldy < rows) {
    fail("matmul job {}: ldy {} is less than rows {}", index, job.ldy, rows);
  }
}

// First (job, row) at cost position p; rows rounded to kRowAlign. Every thread maps its two
// boundaries through this one function, so neighbouring ranges meet exactly.
struct Pos {
  size_t job;
  int64_t row;
};
Pos locate(const std::vector<JobPlan>& plans, int64_t p) {
  for (size_t j = 0; j < plans.size(); ++j) {
    const JobPlan& pl = plans[j];
    if (p < pl.cost_end) {
      int64_t row = (p - pl.cost_begin + pl.row_cost / 2) / pl.row_cost;
      row = (row + kRowAlign / 2) / kRowAlign * kRowAlign;
      return {j, row < pl.rows ? row : pl.rows};
    }
  }
  return {plans.size(), 0};
}

void run_rows(const KernelSet& ks, const JobPlan& pl, int64_t r0, int64_t r1) {
  if (r0 >= r1) return;
  const GemmArgs args{.w = static_cast<const uint8_t*>(pl.job->w->data),
                      .w_stride = pl.job->w->row_stride(),
                      .cols = pl.cols,
                      .x = pl.x,
                      .x_stride = pl.x_stride,
                      .n_tokens = pl.job->n_tokens,
                      .y = pl.job->y,
                      .ldy = pl.ldy,
                      .row_begin = r0,
                      .row_end = r1,
                      .type = pl.job->w->type};
  if (pl.blas) {
    kernels::gemm_blas(ks, pl.format, args);
  } else {
    ks.gemm[static_cast<int>(pl.format)](args);
  }
}

struct QuantizeTask {
  const KernelSet* ks;
  const float* x;
  int64_t ldx, cols;
  uint8_t* dst;
  size_t stride;
  void run(int64_t t0, int64_t t1) const {
    for (int64_t t = t0; t < t1; ++t) ks->quantize_acts(x + t * ldx, cols, dst + t * stride);
  }
};

// Threads claim chunks of the cost range from a shared counter instead of taking one fixed
// share each: the two cores of a VM do not stream memory at equal speed, and with fixed
// shares the faster thread idled ~18% of decode time waiting for the slower one.
struct RowTask {
  const KernelSet* ks;
  const std::vector<JobPlan>* plans;
  int64_t total_cost;
  int n_threads;
  int64_t n_chunks;
  std::atomic<int64_t>* next_chunk;
  void run_chunk(int64_t c) const {
    const Pos begin = locate(*plans, total_cost * c / n_chunks);
    const Pos end = locate(*plans, total_cost * (c + 1) / n_chunks);
    for (size_t j = begin.job; j < plans->size() && j <= end.job; ++j) {
      const JobPlan& pl = (*plans)[j];
      run_rows(*ks, pl, j == begin.job ? begin.row : 0, j == end.job ? end.row : pl.rows);
    }
  }
  void run(int thread) const {
    if (thread >= n_threads) return;
    for (int64_t c = next_chunk->fetch_add(1, std::memory_order_relaxed); c < n_chunks;
         c = next_chunk->fetch_add(1, std::memory_order_relaxed)) {
      run_chunk(c);
    }
  }
};

}  // namespace

void matmul_reference(const MatmulJob& job) {
  validate(job, 0);
  const TensorView& w = *job.w;
  const int64_t rows = w.rows(), cols = w.cols();
  const int64_t ldx = job.ldx ? job.ldx : cols, ldy = job.ldy ? job.ldy : rows;
  std::vector<float> wrow(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    quant::dequantize_row(w.type, w.row(r), wrow.data(), cols);
    for (int64_t t = 0; t < job.n_tokens; ++t) {
      double acc = 0;
      const float* x = job.x + t * ldx;
      for (int64_t c = 0; c < cols; ++c) acc += static_cast<double>(wrow[c]) * x[c];
      job.y[t * ldy + r] = static_cast<float>(acc);
    }
  }
}

void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool& pool) {
  for (size_t i = 0; i < jobs.size(); ++i) validate(jobs[i], i);
  const KernelSet& ks = kernels::active_kernels();

  // Plan: formats, strides, costs, and where each job's activations will be.
  thread_local std::vector<JobPlan> plans;
  plans.clear();
  size_t act_bytes = 0;
  int64_t total_cost = 0, quant_elems = 0;
  for (const MatmulJob& job : jobs) {
    if (job.n_tokens == 0 || job.w->rows() == 0) continue;
    JobPlan pl{};
    pl.job = &job;
    kernels::wformat_of(job.w->type, &pl.format);
    pl.rows = job.w->rows();
    pl.cols = job.w->cols();
    pl.ldy = job.ldy ? job.ldy : pl.rows;
    const int64_t ldx = job.ldx ? job.ldx : pl.cols;
    if (kernels::uses_quantized_acts(pl.format)) {
      // Jobs reading the same activations (gate and up of one expert) share one quantized
      // copy.
      const JobPlan* same = nullptr;
      for (const JobPlan& q : plans) {
        if (q.owns_act && q.job->x == job.x && q.cols == pl.cols &&
            q.job->n_tokens == job.n_tokens && (q.job->ldx ? q.job->ldx : q.cols) == ldx) {
          same = &q;
          break;
        }
      }
      pl.x_stride = kernels::act_row_layout(pl.cols).bytes;
      pl.owns_act = same == nullptr;
      if (same) {
        pl.act_offset = same->act_offset;
      } else {
        pl.act_offset = act_bytes;
        act_bytes += pl.x_stride * static_cast<size_t>(job.n_tokens);
        quant_elems += pl.cols * job.n_tokens;
      }
    } else {
      pl.x = job.x;
      pl.x_stride = static_cast<size_t>(ldx) * sizeof(float);
      pl.blas = !kernels::batch_invariant() &&
                job.n_tokens >= ks.blas_min_tokens[static_cast<int>(pl.format)];
    }
    pl.row_cost = plan_cost(job.w->row_stride(), pl.cols, job.n_tokens);
    pl.cost_begin = total_cost;
    total_cost += pl.rows * pl.row_cost;
    pl.cost_end = total_cost;
    plans.push_back(pl);
  }
  if (plans.empty()) return;

  // Quantize each distinct activation matrix once.
  uint8_t* scratch = act_bytes ? act_scratch(act_bytes) : nullptr;
  for (JobPlan& pl : plans) {
    if (!kernels::uses_quantized_acts(pl.format)) continue;
    pl.x = scratch + pl.act_offset;
    if (!pl.owns_act) continue;
    QuantizeTask task{.ks = &ks,
                      .x = pl.job->x,
                      .ldx = pl.job->ldx ? pl.job->ldx : pl.cols,
                      .cols = pl.cols,
                      .dst = scratch + pl.act_offset,
                      .stride = pl.x_stride};
    if (quant_elems >= kMinParallelQuantElems && pl.job->n_tokens > 1) {
      const QuantizeTask* tp = &task;
      pool.parallel_for(pl.job->n_tokens, 1, [tp](int64_t t0, int64_t t1) { tp->run(t0, t1); });
    } else {
      task.run(0, pl.job->n_tokens);
    }
  }

  // One parallel region for all jobs: thread i takes cost range [C·i/n, C·(i+1)/n).
  // The closure captures one pointer so std::function stores it without allocating.
  std::atomic<int64_t> next_chunk{0};
  const int n_threads = total_cost < kMinParallelCost ? 1 : pool.size();
  const RowTask task{.ks = &ks,
                     .plans = &plans,
                     .total_cost = total_cost,
                     .n_threads = n_threads,
                     .n_chunks = n_threads == 1 ? 1 : int64_t{n_threads} * kChunksPerThread,
                     .next_chunk = &next_chunk};
  if (task.n_threads == 1) {
    task.run(0);
  } else {
    const RowTask* tp = &task;
    pool.run([tp](int thread) { tp->run(thread); });
  }
}

}  // namespace mcmoe::ops

#pragma once
// Continuous batching: up to n_parallel generations decode together, one forward pass per
// step over every active sequence's next token (Session::eval_batch), so an expert picked by
// several sequences is read once per step. New requests wait in a bounded queue and join
// between steps; a prompt is prefilled in chunks of `prefill_chunk` tokens, and a step takes
// at most prefill_chunk prompt tokens in all (several short prompts' chunks fit together)
// beside the decode rows, so a running stream waits at most one forward pass of
// prefill_chunk + n_parallel - 1 tokens between two of its tokens.
//
// Same text as alone: every per-row op is batch invariant (kernels/tile_walk.h) and a
// prompt's chunks are the same as `mcmoe run --batch-size prefill_chunk` makes them, so a
// sequence gets the logits, bit for bit, that it gets alone (tests/model/
// batched_session_test.cpp); greedy text cannot flip on a near tie. (With offloading and a
// low-bit fallback, which expert copy a step uses depends on the cache, so there it can.)
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/generate.h"
#include "api/text_stream.h"
#include "model/session.h"

namespace mcmoe::api {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when the model wants one
  int max_tokens = 256;         // generation also ends at the context's end
  SamplerParams sampling;
  std::vector<std::string> stop;  // stop strings
  bool ignore_eos = false;        // end-of-generation tokens are never sampled (benchmarks)
  bool keep_tool_markers = false;  // tool-call markers stored as control tokens keep their text
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);  // OpenAI's spelling: "stop", "length", ...

// One generation: the batcher produces, a front end consumes (from another thread).
class Job {
 public:
  using Clock = std::chrono::steady_clock;
  struct Update {
    std::string text;  // new final text since the last update
    bool done = false;
    FinishReason finish = FinishReason::kNone;
  };
  Job(GenerationRequest request) : request_(std::move(request)), text_(request_.stop) {}
  // Waits up to `timeout` for new text or the end.
  Update wait(std::chrono::milliseconds timeout);
  // Asks the batcher to stop it (the client went away); its slot is freed at the next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  const GenerationRequest& request() const { return request_; }
  int64_t prompt_tokens() const { return static_cast<int64_t>(request_.prompt.size()); }
  int64_t completion_tokens() const { return completion_tokens_; }
  // Seconds from submission to the first generated token; < 0 before it.
  double time_to_first_token() const { return ttft_; }
  std::string error() const;

 private:
  friend class Batcher;
  // Batcher side.
  void push_token(const std::string& piece, bool* stop_hit);
  void finish(FinishReason r, const std::string& error = {});

  GenerationRequest request_;
  Clock::time_point submitted_ = Clock::now();
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  TextStream text_;
  std::string pending_;  // released by text_, not yet taken by wait()
  bool done_ = false;
  FinishReason finish_ = FinishReason::kNone;
  std::string error_;
  std::atomic<int64_t> completion_tokens_{0};
  double ttft_ = -1;
};

struct BatcherOptions {
  int n_parallel = 4;       // slots: sequences decoded together
  int queue_size = 16;      // requests waiting for a slot; beyond: refused
  int prefill_chunk = 512;  // prompt tokens per step
  // The most rows a step holds, the session's n_batch at least: a prefill chunk and a decode
  // row for every other slot.
  int step_rows() const { return prefill_chunk + n_parallel - 1; }
};

// Counters for /metrics (read while the batcher runs).
struct BatcherMetrics {
  std::atomic<int64_t> requests{0}, requests_refused{0}, requests_cancelled{0};
  std::atomic<int64_t> prompt_tokens{0}, generated_tokens{0}, steps{0};
  std::atomic<int64_t> busy_microseconds{0};  // inside forward passes
  std::atomic<int> queue_depth{0}, slots_in_use{0};
};

class Batcher {
 public:
  // The session must have n_seq >= n_parallel and n_batch >= prefill_chunk + n_parallel - 1
  // (a chunk and the other slots' decode rows); it is used only by the batcher's thread from
  // here on.
  Batcher(model::Session& session, std::vector<int32_t> end_ids, const BatcherOptions& o);
  ~Batcher();  // stops the thread; unfinished jobs end as cancelled
  // Queues a generation; null when every slot and the queue are full. Fails (Error) on a
  // request the model cannot take (empty prompt, prompt filling the context).
  std::shared_ptr<Job> submit(GenerationRequest r);
  void stop();
  const BatcherMetrics& metrics() const { return metrics_; }
  const BatcherOptions& options() const { return o_; }
  int n_ctx() const { return session_.n_ctx(); }

 private:
  struct Slot {
    std::shared_ptr<Job> job;
    size_t prompt_fed = 0;
    int32_t next = -1;
    int generated = 0;
    std::unique_ptr<Sampler> sampler;
    uint64_t admitted = 0;  // admission order: the oldest prefill goes first
  };
  void loop();
  bool admit_locked();  // moves queued jobs into free slots; false when nothing is active
  void release(Slot& s, FinishReason r, const std::string& error = {});

  model::Session& session_;
  std::vector<int32_t> end_ids_;
  BatcherOptions o_;
  BatcherMetrics metrics_;
  std::vector<Slot> slots_;
  std::vector<float> masked_;  // a logits row with end-of-generation tokens masked
  std::deque<std::shared_ptr<Job>> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t admissions_ = 0;
  std::thread thread_;
};

}  // namespace mcmoe::api

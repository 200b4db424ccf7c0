#include "api/batcher.h"

#include <algorithm>
#include <limits>

#include "api/tool_calls.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace mcmoe::api {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
    case FinishReason::kNone:
      break;
  }
  return "";
}

Job::Update Job::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return done_ || !pending_.empty(); });
  Update u;
  u.text.swap(pending_);
  u.done = done_;
  u.finish = finish_;
  return u;
}

std::string Job::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

void Job::push_token(const std::string& piece, bool* stop_hit) {
  std::lock_guard lock(mu_);
  if (ttft_ < 0) ttft_ = std::chrono::duration<double>(Clock::now() - submitted_).count();
  ++completion_tokens_;
  *stop_hit = text_.append(piece);
  pending_ += text_.take();
  cv_.notify_all();
}

void Job::finish(FinishReason r, const std::string& error) {
  std::lock_guard lock(mu_);
  if (done_) return;
  pending_ += text_.take(true);
  done_ = true;
  finish_ = r;
  error_ = error;
  cv_.notify_all();
}

Batcher::Batcher(model::Session& session, std::vector<int32_t> end_ids, const BatcherOptions& o)
    : session_(session), end_ids_(std::move(end_ids)), o_(o) {
  if (o_.n_parallel < 1 || o_.n_parallel > session.n_seq()) {
    fail("batcher: {} parallel sequences; the session holds {}", o_.n_parallel, session.n_seq());
  }
  if (o_.prefill_chunk < 1 || o_.step_rows() > session.n_batch()) {
    fail("batcher: prefill chunks of {} tokens + {} decode rows exceed the session's batch of {}",
         o_.prefill_chunk, o_.n_parallel - 1, session.n_batch());
  }
  slots_.resize(static_cast<size_t>(o_.n_parallel));
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() {
  stop();
}

void Batcher::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& j : queue_) j->finish(FinishReason::kCancelled);
  queue_.clear();
  metrics_.queue_depth = 0;
}

std::shared_ptr<Job> Batcher::submit(GenerationRequest r) {
  if (r.prompt.empty()) fail("the prompt is empty");
  if (static_cast<int64_t>(r.prompt.size()) >= session_.n_ctx()) {
    fail(
        "the prompt has {} tokens; this server's context holds {} per sequence (prompt and reply "
        "together)",
        r.prompt.size(), session_.n_ctx());
  }
  auto job = std::make_shared<Job>(std::move(r));
  std::lock_guard lock(mu_);
  if (stopping_) return nullptr;
  const int busy = metrics_.slots_in_use.load();
  if (busy + static_cast<int>(queue_.size()) >= o_.n_parallel + o_.queue_size) {
    ++metrics_.requests_refused;
    return nullptr;
  }
  queue_.push_back(job);
  metrics_.queue_depth = static_cast<int>(queue_.size());
  ++metrics_.requests;
  cv_.notify_all();
  return job;
}

void Batcher::release(Slot& s, FinishReason r, const std::string& error) {
  // Counters first: a client that sees its reply end may read /metrics at once.
  if (r == FinishReason::kCancelled) ++metrics_.requests_cancelled;
  --metrics_.slots_in_use;
  s.job->finish(r, error);
  s.job.reset();
  s.sampler.reset();
}

bool Batcher::admit_locked() {
  bool active = false;
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    Slot& s = slots_[i];
    if (s.job && s.job->cancelled()) release(s, FinishReason::kCancelled);
    while (!s.job && !queue_.empty()) {
      std::shared_ptr<Job> j = std::move(queue_.front());
      queue_.pop_front();
      if (j->cancelled()) {
        ++metrics_.requests_cancelled;
        j->finish(FinishReason::kCancelled);
        continue;
      }
      s = Slot{.job = std::move(j), .sampler = nullptr, .admitted = admissions_++};
      s.sampler = std::make_unique<Sampler>(s.job->request().sampling);
      session_.reset(i);
      ++metrics_.slots_in_use;
    }
    active = active || s.job != nullptr;
  }
  metrics_.queue_depth = static_cast<int>(queue_.size());
  return active;
}

void Batcher::loop() {
  const tokenizer::Tokenizer& tok = session_.model().tokenizer();
  std::vector<model::SeqTokens> batch;
  std::vector<int> who, prefilling;
  std::vector<std::pair<int, size_t>> chunks;  // (slot, prompt tokens) prefilled this step
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || admit_locked(); });
      if (stopping_) break;
    }
    // Every decoding slot's next token, then prefill chunks, oldest admitted prompt first, up
    // to prefill_chunk prompt tokens in all. A prompt's chunks are always [k·C, (k+1)·C) of it
    // (C = prefill_chunk), as `run --batch-size C` makes them, so a chunk that does not fit
    // what is left of the step waits for the next one instead of being split.
    batch.clear();
    who.clear();
    prefilling.clear();
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
      Slot& s = slots_[i];
      if (!s.job) continue;
      if (s.prompt_fed == s.job->request().prompt.size()) {
        batch.push_back({.seq = i, .tokens = std::span<const int32_t>(&s.next, 1)});
        who.push_back(i);
      } else {
        prefilling.push_back(i);
      }
    }
    std::sort(prefilling.begin(), prefilling.end(),
              [&](int x, int y) { return slots_[x].admitted < slots_[y].admitted; });
    chunks.clear();
    size_t budget = static_cast<size_t>(o_.prefill_chunk);
    for (int i : prefilling) {
      Slot& s = slots_[i];
      const std::vector<int32_t>& p = s.job->request().prompt;
      const size_t chunk = std::min(p.size() - s.prompt_fed, static_cast<size_t>(o_.prefill_chunk));
      if (chunk > budget) break;
      budget -= chunk;
      batch.push_back(
          {.seq = i, .tokens = std::span<const int32_t>(p).subspan(s.prompt_fed, chunk)});
      who.push_back(i);
      chunks.emplace_back(i, chunk);
    }
    std::span<const float> logits;
    const auto t0 = Job::Clock::now();
    try {
      logits = session_.eval_batch(batch);
    } catch (const std::exception& e) {
      std::lock_guard lock(mu_);
      for (int i : who) release(slots_[i], FinishReason::kError, e.what());
      continue;
    }
    metrics_.busy_microseconds +=
        std::chrono::duration_cast<std::chrono::microseconds>(Job::Clock::now() - t0).count();
    ++metrics_.steps;
    for (const auto& [i, chunk] : chunks) {
      slots_[i].prompt_fed += chunk;
      metrics_.prompt_tokens += static_cast<int64_t>(chunk);
    }
    const int32_t V = session_.model().config().n_vocab;
    std::lock_guard lock(mu_);
    for (size_t j = 0; j < who.size(); ++j) {
      Slot& s = slots_[who[j]];
      if (s.prompt_fed < s.job->request().prompt.size()) continue;  // more prompt to come
      std::span<const float> row =
          logits.subspan(j * static_cast<size_t>(V), static_cast<size_t>(V));
      if (s.job->request().ignore_eos) {
        masked_.assign(row.begin(), row.end());
        for (int32_t e : end_ids_) masked_[e] = -std::numeric_limits<float>::infinity();
        row = masked_;
      }
      const int32_t t = s.sampler->sample(row);
      ++metrics_.generated_tokens;
      ++s.generated;
      const bool end = std::find(end_ids_.begin(), end_ids_.end(), t) != end_ids_.end();
      bool stop_hit = false;
      // End-of-generation and other control tokens are structure, not text.
      const bool hidden =
          tok.token_type(t) == tokenizer::TokenType::Control &&
          !(s.job->request().keep_tool_markers && is_tool_call_marker(tok.token_text(t)));
      s.job->push_token(end || hidden ? std::string() : tok.token_to_piece(t), &stop_hit);
      if (end || stop_hit) {
        release(s, FinishReason::kStop);
      } else if (s.generated >= s.job->request().max_tokens ||
                 session_.n_past(who[j]) >= session_.n_ctx()) {
        release(s, FinishReason::kLength);
      } else {
        s.next = t;
      }
    }
  }
  std::lock_guard lock(mu_);
  for (Slot& s : slots_) {
    if (s.job) release(s, FinishReason::kCancelled);
  }
}

}  // namespace mcmoe::api

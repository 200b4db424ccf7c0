#include "offload/offload_provider.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "core/clock.h"
#include "core/error.h"
#include "format/gguf.h"
#include "model/inventory.h"

namespace mcmoe::offload {

namespace {

constexpr size_t kRecallWindow = 64;

}  // namespace

uint64_t resident_weight_bytes(const model::Model& m) {
  const model::ModelConfig& c = m.config();
  // The walk load_resident_weights makes, without copying: a tied head shares the embeddings.
  model::LayerExperts no_routed_experts(c.n_layer);
  uint64_t bytes = 0;
  model::for_each_tensor(c, m.weights(), no_routed_experts, [&](const model::TensorSlot& s) {
    if (s.role != model::TensorRole::RoutedExpert && s.view->valid()) bytes += s.view->nbytes;
  });
  return bytes;
}

OffloadingProvider::OffloadingProvider(model::Model& m, const OffloadOptions& o)
    : model_(m), o_(o), predictor_(m) {
  const model::ModelConfig& c = m.config();
  if (!m.is_gguf()) fail("{}: offloading reads experts from a GGUF file; convert the model first (mcmoe convert)", m.path());
  if (c.n_expert <= 1) fail("{}: offloading needs an MoE model; this one has {} expert(s)", m.path(), c.n_expert);
  n_layer_ = c.n_layer;
  n_expert_ = expert_stride(m);  // id stride; a reduced model's layers may store fewer, a dense layer none
  if (n_expert_ == 0) fail("{}: offloading caches routed experts; all {} layers of this model are dense", m.path(), c.n_layer);
  reader_ = std::make_unique<FileReader>(m.path(), o.direct_io);
  const int n_ids = n_layer_ * n_expert_;
  stored_.resize(n_ids);
  layout_.resize(n_ids);
  std::vector<uint64_t> sizes(n_ids);
  for (int l = 0; l < n_layer_; ++l) {
    for (int e = 0; e < static_cast<int>(m.stored_experts()[l].size()); ++e) {
      const int i = id(l, e);
      stored_[i] = m.stored_experts()[l][e];
      layout_[i] = layout_expert(m, stored_[i], l, e);
      sizes[i] = layout_[i].buffer_bytes;
      stats_.expert_bytes_total += sizes[i];
    }
  }
  cache_ = std::make_unique<ResidentSet>(ResidentSet::make(sizes, n_expert_, o.budget, o.per_layer));
  for (int i = 0; i < n_ids; ++i) {
    if (sizes[i] > cache_->pool_budget(i)) {
      fail("expert cache of {:.1f} MiB{} cannot hold one expert of layer {} ({:.1f} MiB); raise --expert-cache",
           o.budget / 1048576.0, o.per_layer ? " (split per layer)" : "", i / n_expert_, sizes[i] / 1048576.0);
    }
  }
  policy_ = make_policy(o.policy, n_layer_, n_expert_, o.lfu_seed);
  entries_.resize(n_ids);
  use_fallback_.assign(n_ids, 0);
  if (o.fallback) {
    const model::ModelConfig& fc = o.fallback->config();
    bool same = fc.n_layer == c.n_layer && fc.n_embd == c.n_embd && fc.n_ff == c.n_ff;
    for (int l = 0; same && l < c.n_layer; ++l) same = o.fallback->stored_experts()[l].size() == m.stored_experts()[l].size();
    if (!same) {
      fail("fallback model {} has {} layers x {} experts (d {}, ff {}); {} has {} x {} (d {}, ff {})", o.fallback->path(),
           fc.n_layer, fc.n_expert, fc.n_embd, fc.n_ff, m.path(), c.n_layer, c.n_expert, c.n_embd, c.n_ff);
    }
    for (const auto& layer : o.fallback->stored_experts()) {
      for (const auto& e : layer) stats_.fallback_bytes += e.nbytes();
    }
  }
  if (o.prefetch_depth < 0 || o.prefetch_m < 1 || o.prefetch_m > n_expert_) {
    fail("prefetch depth {} must be >= 0 and top-m {} in [1, {}]", o.prefetch_depth, o.prefetch_m, n_expert_);
  }
  if (o_.prefetch_max_bytes == 0) o_.prefetch_max_bytes = o.budget / 4;
  predicted_.assign(std::max(1, o.prefetch_depth), std::vector<std::vector<int>>(n_layer_));
  clear_counters();
  stats_.budget = o.budget;
  stats_.direct_io = reader_->direct();
  // A policy that takes hints gets the predictor's top-k for the layers it asks about, with
  // or without prefetch.
  hint_depth_ = policy_->hint_depth();
  guess_m_ = std::max(o.prefetch_m, hint_depth_ > 0 ? std::min(c.n_expert_used, n_expert_) : 0);
  guess_.resize(guess_m_);
  guess_prob_.resize(guess_m_);
  load_resident_weights(m);
  // After the copy: the fit's prior is read from the resident router.
  if (o.prefetch_fit > 0) predictor_.enable_fit(o.prefetch_fit, o.prefetch_fit_input);
  for (int t = 0; t < std::max(1, o.io_threads); ++t) workers_.emplace_back([this] { io_worker(); });
}

OffloadingProvider::~OffloadingProvider() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void OffloadingProvider::load_resident_weights(model::Model& m) {
  const format::GgufFile& f = *m.gguf();
  const uint8_t* base = f.base();
  const uint64_t file_size = f.file_size();
  const model::ModelConfig& c = m.config();
  model::ModelWeights& w = m.mutable_weights();
  // Every tensor of the inventory but the routed experts, which are the cache's: embeddings,
  // output head, attention (MLA's projections, biases, sinks), norms, routers with their
  // biases, dense layers' MLPs and shared experts. Walked with no routed experts at all, and
  // filtered by role besides, so nothing the cache reads is copied here.
  struct Resident {
    TensorView* view;
    std::string name;
  };
  std::vector<Resident> resident;
  model::LayerExperts no_routed_experts(c.n_layer);
  model::for_each_tensor(c, w, no_routed_experts, [&](const model::TensorSlot& s) {
    if (s.role != model::TensorRole::RoutedExpert) resident.push_back({s.view, s.name});
  });
  // The one view the forward pass reads that the inventory does not list: a tied output head
  // is the embeddings again (one copy serves both).
  if (c.tie_embeddings) resident.push_back({&w.output, "output (tied to the token embeddings)"});
  // Only views into the mapped file need a copy: vectors (norms, biases, sinks) are f32 copies
  // the model owns already, and so are tensors derived at load (MLA's wk_b from attn_kv_b).
  auto file_offset = [&](const TensorView& v) -> std::optional<uint64_t> {
    const auto* p = static_cast<const uint8_t*>(v.data);
    if (!v.valid() || p < base || p + v.nbytes > base + file_size) return std::nullopt;
    return static_cast<uint64_t>(p - base);
  };
  // The file ranges to copy, a tensor named twice (or inside another) copied once.
  struct Range {
    uint64_t start, end, buffer_offset;
    std::string name;  // of the first tensor in it, for a read error
  };
  std::vector<Range> ranges;
  for (const Resident& r : resident) {
    if (const auto off = file_offset(*r.view)) ranges.push_back({*off, *off + r.view->nbytes, 0, r.name});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  std::vector<Range> merged;
  for (Range& r : ranges) {
    if (!merged.empty() && r.start < merged.back().end) {
      merged.back().end = std::max(merged.back().end, r.end);
    } else {
      merged.push_back(std::move(r));
    }
  }
  // One buffer for all of them, each range 64-byte aligned in it.
  uint64_t total = 0;
  for (Range& r : merged) {
    r.buffer_offset = total;
    total += (r.end - r.start + 63) / 64 * 64;
    stats_.resident_bytes += r.end - r.start;
  }
  auto buffer = std::make_shared<PageBuffer>(total);
  for (const Range& r : merged) {
    reader_->read_buffered(r.start, r.end - r.start, buffer->data + r.buffer_offset, fmt::format("resident tensor {}", r.name));
  }
  for (const Resident& r : resident) {
    const auto off = file_offset(*r.view);
    if (!off) continue;
    // The range holding it: the last one starting at or before it.
    const auto it = std::upper_bound(merged.begin(), merged.end(), *off, [](uint64_t x, const Range& g) { return x < g.start; }) - 1;
    r.view->data = buffer->data + it->buffer_offset + (*off - it->start);
  }
  m.keep_alive(buffer);
}

bool OffloadingProvider::start_read(std::unique_lock<std::mutex>&, int i, bool demand) {
  const int64_t step = step_;
  std::vector<int> evicted;
  auto evictable = [&](int r, bool honour_protection) {
    const Entry& e = entries_[r];
    return e.state == State::kReady && e.pins == 0 && !(honour_protection && e.protect_step >= step);
  };
  bool ok = cache_->make_room(i, *policy_, clock_, [&](int r) { return evictable(r, true); }, evicted);
  if (!ok && demand) ok = cache_->make_room(i, *policy_, clock_, [&](int r) { return evictable(r, false); }, evicted);
  // An evicted expert's buffer is reused by the expert that replaces it when the sizes
  // match (they do unless experts differ in precision): no munmap, no fresh mapping whose
  // pages the kernel must fault in and zero before the read (~2 ms of CPU per 14 MB
  // expert, on a machine whose cores are busy computing). Unused ones are freed at once,
  // so the bytes held never exceed the budget.
  PageBuffer reuse;
  for (int v : evicted) {
    if (!reuse.data && entries_[v].buffer.size == layout_[i].buffer_bytes) {
      reuse = std::move(entries_[v].buffer);
    } else {
      entries_[v].buffer = PageBuffer();
    }
    entries_[v].state = State::kAbsent;
    entries_[v].prefetched = false;
    entries_[v].protect_step = -1;
  }
  if (!ok) return false;
  cache_->insert(i);
  Entry& e = entries_[i];
  e.buffer = reuse.data ? std::move(reuse) : PageBuffer(layout_[i].buffer_bytes);
  e.state = State::kLoading;
  e.error.clear();
  if (demand) {
    queue_.push_front(i);
  } else {
    queue_.push_back(i);
  }
  ++stats_.reads;
  stats_.bytes_read += layout_[i].buffer_bytes;
  stats_.peak_cache_bytes = std::max(stats_.peak_cache_bytes, cache_->used());
  cv_work_.notify_one();
  return true;
}

void OffloadingProvider::io_worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const int i = queue_.front();
    queue_.pop_front();
    uint8_t* dst = entries_[i].buffer.data;
    // The scales are checked on an expert's first read only, as the resident provider checks
    // each expert once: a later read brings the same bytes of the same file, and the pass
    // costs a trip through memory over every block (11% of the CPU time of an 8 GiB decode of
    // the Qwen3-30B-A3B-shaped model, where each expert is read again and again).
    const bool check = !entries_[i].scales_checked;
    lock.unlock();
    std::string error;
    try {
      for (const ReadRange& r : layout_[i].ranges) {
        reader_->read(r.file_offset, r.read_bytes, dst + r.buffer_offset, r.needed,
                      fmt::format("expert {} of layer {}", i % n_expert_, i / n_expert_));
      }
      // The scales of what was read: a corrupted block is refused before it is multiplied.
      if (check) {
        moe::check_expert_scales(weights_in(i, dst),
                                 fmt::format("{}: expert {} of layer {}", reader_->path(),
                                             i % n_expert_, i / n_expert_));
      }
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    lock.lock();
    Entry& e = entries_[i];
    e.state = error.empty() ? State::kReady : State::kFailed;
    if (check && error.empty()) {
      e.scales_checked = true;
      ++stats_.scale_checks;
    }
    e.error = std::move(error);
    if (e.prefetch_read) inflight_prefetch_bytes_ -= layout_[i].buffer_bytes;
    e.prefetch_read = false;
    cv_ready_.notify_all();
  }
}

size_t OffloadingProvider::begin_layer(int layer, std::span<const int> experts, std::span<const float> max_weight) {
  std::unique_lock<std::mutex> lock(mu_);
  // A layer that ended in an exception (a failed read) never reached end_layer: release its pins.
  for (int i : pinned_now_) --entries_[i].pins;
  pinned_now_.clear();
  ++clock_;
  step_ = static_cast<int64_t>(clock_);
  ++stats_.steps;
  // How well the earlier layers guessed this one.
  for (int a = 1; a <= o_.prefetch_depth; ++a) {
    std::vector<int>& guess = predicted_[a - 1][layer];
    if (guess.empty()) continue;
    int right = 0;
    int64_t guessed = 0;
    for (int g : guess) {
      if (g < 0) continue;
      ++guessed;
      right += std::find(experts.begin(), experts.end(), g) != experts.end();
    }
    stats_.pred_used[a - 1] += static_cast<int64_t>(experts.size());
    stats_.pred_guessed[a - 1] += guessed;
    stats_.pred_right[a - 1] += right;
    if (a == 1) {
      recall_window_hits_.push_back(right);
      recall_window_used_.push_back(static_cast<int>(experts.size()));
      window_right_ += right;
      window_used_ += static_cast<int64_t>(experts.size());
      if (recall_window_hits_.size() > kRecallWindow) {
        window_right_ -= recall_window_hits_.front();
        window_used_ -= recall_window_used_.front();
        recall_window_hits_.pop_front();
        recall_window_used_.pop_front();
      }
      if (recall_window_hits_.size() >= kRecallWindow / 2 && window_used_ > 0) {
        prefetch_active_ = static_cast<double>(window_right_) / window_used_ >= o_.prefetch_min_recall;
      }
    }
    guess.clear();
  }
  // The rest of a layer the cache could not take at once (moe_block calls again with the
  // experts not yet run) is the same step for the policy.
  if (partial_layer_ != layer) {
    step_ids_.clear();
    for (int e : experts) step_ids_.push_back(id(layer, e));
    policy_->begin_step(layer, step_ids_, clock_);
  }
  partial_layer_ = -1;
  size_t count = 0;
  for (size_t j = 0; j < experts.size(); ++j) {
    const int i = id(layer, experts[j]);
    Entry& e = entries_[i];
    ++stats_.accesses;
    ++stats_.layer_accesses[layer];
    if (e.state == State::kFailed) forget_failed(i);  // throws the read's error
    // HOBBIT: an unimportant expert that is not ready (absent, or still being read by a
    // prefetch) runs from the low-bit copy rather than making the layer wait; a read in
    // flight carries on, so the cache has it next time.
    const bool unimportant = o_.fallback && max_weight[j] < o_.fallback_threshold;
    if (unimportant && e.state != State::kReady) {
      use_fallback_[i] = 1;
      ++stats_.fallbacks;
      ++count;
      continue;
    }
    if (e.state == State::kReady || e.state == State::kLoading) {
      ++stats_.hits;
      ++stats_.layer_hits[layer];
      if (e.state == State::kLoading) ++stats_.inflight_hits;
      if (e.prefetched) ++stats_.prefetches_used;
    } else {
      bool started = start_read(lock, i, true);
      while (!started) {
        // Everything evictable is pinned by this layer or still being read: run what we have
        // first, or wait for in-flight reads to land and become evictable.
        if (count > 0) {
          --stats_.accesses;
          --stats_.layer_accesses[layer];
          partial_layer_ = layer;
          return count;
        }
        const bool any_loading = std::any_of(entries_.begin(), entries_.end(), [](const Entry& x) { return x.state == State::kLoading; });
        if (!any_loading) fail("expert cache of {} bytes cannot make room for expert {} of layer {}", o_.budget, experts[j], layer);
        cv_ready_.wait(lock);
        started = start_read(lock, i, true);
      }
    }
    e.prefetched = false;
    e.protect_step = -1;
    ++e.pins;
    pinned_now_.push_back(i);
    policy_->on_use(i, clock_);
    ++count;
  }
  return count;
}

void OffloadingProvider::cached_mask(int layer, std::span<uint8_t> out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t e = 0; e < out.size(); ++e) {
    const State s = entries_[id(layer, static_cast<int>(e))].state;
    out[e] = s == State::kReady || s == State::kLoading;
  }
}

bool OffloadingProvider::ready(int layer, int expert) const {
  const int i = id(layer, expert);
  std::lock_guard<std::mutex> lock(mu_);
  return use_fallback_[i] || entries_[i].state != State::kLoading;
}

moe::ExpertWeights OffloadingProvider::get(int layer, int expert) {
  const int i = id(layer, expert);
  if (use_fallback_[i]) return o_.fallback->stored_experts()[layer][expert];
  std::unique_lock<std::mutex> lock(mu_);
  Entry& e = entries_[i];
  if (e.state == State::kLoading) {
    const auto t0 = std::chrono::steady_clock::now();
    cv_ready_.wait(lock, [&] { return e.state != State::kLoading; });
    stats_.stall_s += seconds_since(t0);
  }
  if (e.state == State::kFailed) forget_failed(i);
  if (e.state != State::kReady) fail("expert {} of layer {} was fetched without begin_layer", expert, layer);
  return weights_in(i, e.buffer.data);
}

moe::ExpertWeights OffloadingProvider::weights_in(int i, uint8_t* buffer) const {
  moe::ExpertWeights w = stored_[i];
  const auto views = w.views();
  for (size_t j = 0; j < views.size(); ++j) {
    const uint64_t offset = layout_[i].view_offset[j];
    if (offset != ExpertLayout::kInPlace) views[j]->data = buffer + offset;
  }
  return w;
}

void OffloadingProvider::forget_failed(int i) {
  // The entry leaves the cache (its bytes are free again) so a later step may retry the
  // read; the error goes to the caller, naming the file and the expert.
  Entry& e = entries_[i];
  const std::string error = e.error.empty() ? fmt::format("reading expert {} of layer {} failed", i % n_expert_, i / n_expert_) : e.error;
  cache_->erase(i);
  e.buffer = PageBuffer();
  e.state = State::kAbsent;
  e.error.clear();
  e.prefetched = false;
  e.protect_step = -1;
  fail("{}", error);
}

void OffloadingProvider::end_layer(int layer) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i : pinned_now_) --entries_[i].pins;
  pinned_now_.clear();
  std::fill_n(use_fallback_.begin() + id(layer, 0), n_expert_, uint8_t{0});
}

void OffloadingProvider::after_layer(int layer, const float* x, int64_t n) {
  if (n != 1) return;  // prefill runs nearly every expert anyway; guessing pays off in decode
  if (layer == n_layer_ - 1) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.decode_tokens;
    if (!prefetch_active_ && o_.prefetch_depth > 0) ++stats_.prefetch_paused_tokens;
  }
  std::vector<int>& guess = guess_;
  std::vector<float>& prob = guess_prob_;
  const int k = model_.config().n_expert_used;
  for (int a = 1; a <= std::max(o_.prefetch_depth, hint_depth_); ++a) {
    // No guess past the last layer, nor for a dense layer (no router, no routed experts);
    // the layers beyond a dense one still get theirs.
    if (!predictor_.predict(layer, a, x, guess_m_, guess.data(), prob.data())) continue;
    std::unique_lock<std::mutex> lock(mu_);
    if (a <= hint_depth_) {
      hint_ids_.clear();
      for (int j = 0; j < std::min(k, guess_m_) && guess[j] >= 0; ++j)
        hint_ids_.push_back(id(layer + a, guess[j]));
      policy_->hint(layer + a, a, hint_ids_);
    }
    if (a > o_.prefetch_depth) continue;  // a hint only
    predicted_[a - 1][layer + a].assign(guess.begin(), guess.begin() + o_.prefetch_m);
    if (!prefetch_active_) continue;
    // Protected until layer + a has run: that is the step number begin_layer will use then.
    const int64_t protect = static_cast<int64_t>(clock_) + a;
    for (int j = 0; j < o_.prefetch_m; ++j) {
      if (guess[j] < 0) break;  // the layer has no more experts its router could pick
      // Guesses come in the router's order of choice, which a selection bias or expert groups
      // make differ from the order of probability: each guess is judged on its own.
      if (prob[j] < o_.prefetch_min_prob) continue;
      const int i = id(layer + a, guess[j]);
      Entry& e = entries_[i];
      if (e.state == State::kReady || e.state == State::kLoading) {
        e.protect_step = std::max(e.protect_step, protect);
        continue;
      }
      if (inflight_prefetch_bytes_ + layout_[i].buffer_bytes > o_.prefetch_max_bytes) break;
      e.prefetched = true;
      if (!start_read(lock, i, false)) {
        e.prefetched = false;
        break;
      }
      e.protect_step = protect;
      e.prefetch_read = true;
      inflight_prefetch_bytes_ += layout_[i].buffer_bytes;
      policy_->on_prefetch(i, clock_);
      ++stats_.prefetches;
    }
  }
}

void OffloadingProvider::reset_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  clear_counters();
  stats_.peak_cache_bytes = cache_->used();
}

void OffloadingProvider::clear_counters() {
  OffloadStats fresh;
  fresh.layer_accesses.assign(n_layer_, 0);
  fresh.layer_hits.assign(n_layer_, 0);
  fresh.pred_used.assign(o_.prefetch_depth, 0);
  fresh.pred_guessed.assign(o_.prefetch_depth, 0);
  fresh.pred_right.assign(o_.prefetch_depth, 0);
  // What describes the cache rather than counts its traffic stays.
  fresh.budget = stats_.budget;
  fresh.expert_bytes_total = stats_.expert_bytes_total;
  fresh.fallback_bytes = stats_.fallback_bytes;
  fresh.resident_bytes = stats_.resident_bytes;
  fresh.direct_io = stats_.direct_io;
  stats_ = std::move(fresh);
}

OffloadStats OffloadingProvider::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

uint64_t OffloadingProvider::cache_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_->used();
}

std::vector<std::pair<int, int>> OffloadingProvider::cached_experts() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int> ids = cache_->residents();
  std::sort(ids.begin(), ids.end());
  std::vector<std::pair<int, int>> out;
  for (int i : ids) out.emplace_back(i / n_expert_, i % n_expert_);
  return out;
}

}  // namespace mcmoe::offload

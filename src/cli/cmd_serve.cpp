#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "api/batcher.h"
#include "api/generate.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/offload_flags.h"
#include "core/error.h"
#include "model/chat_template.h"
#include "server/http_server.h"

namespace mcmoe::cli {

namespace {

// Set by SIGINT / SIGTERM; a watcher thread stops the server. (A handler, not sigwait:
// OpenBLAS starts its threads before main, so a blocked mask cannot cover every thread.)
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
}

// Prometheus lines of the offloading cache.
std::string offload_metrics(const offload::OffloadingProvider& p) {
  const offload::OffloadStats s = p.stats();
  std::string out;
  const auto metric = [&](const char* name, const char* type, const char* help, double value) {
    server::prometheus_metric(out, name, type, help, value);
  };
  metric("expert_cache_accesses_total", "counter", "Expert lookups.",
         static_cast<double>(s.accesses));
  metric("expert_cache_hits_total", "counter", "Expert lookups found in the cache.",
         static_cast<double>(s.hits));
  metric("expert_cache_hit_rate", "gauge", "Hits per lookup since start.",
         s.accesses ? static_cast<double>(s.hits) / static_cast<double>(s.accesses) : 0.0);
  metric("expert_bytes_read_total", "counter", "Bytes of experts read from the file.",
         static_cast<double>(s.bytes_read));
  metric("expert_cache_bytes", "gauge", "Bytes the expert cache holds now.",
         static_cast<double>(p.cache_bytes()));
  metric("expert_cache_budget_bytes", "gauge", "The expert cache's budget.",
         static_cast<double>(s.budget));
  metric("expert_read_stall_seconds_total", "counter", "Time spent waiting for expert reads.",
         s.stall_s);
  return out;
}

}  // namespace

// An OpenAI-compatible HTTP server (server/http_server.h) over continuous batching
// (api/batcher.h).
int cmd_serve(const Argv& argv) {
  static const CommandSpec spec{
      "serve", "OpenAI-compatible HTTP server with continuous batching",
      with_groups(
          {kModelFlag,
           {"--host", "ADDR", "127.0.0.1", "address to listen on"},
           {"--port", "N", "8080", "port (0: any free one)"},
           {"--parallel", "N", "4", "slots: sequences decoded together"},
           {"--ctx-size", "T", "parallel x min(trained, 4096)",
            "total context, split evenly over the slots"},
           {"--queue", "N", "4 x parallel", "requests waiting for a slot; more get 503"},
           {"--api-key", "KEY", "", "require Authorization: Bearer KEY"},
           {"--alias", "NAME", "the file name", "the model id /v1/models reports"},
           {"--max-body", "SIZE", "4MiB", "largest request body (413 beyond)"},
           {"--http-threads", "N", "1024", "connections served at once"}},
          {session_flag_table(), load_flag_table(), offload_flag_table(), odp_flag_table()})};
  const Args a(argv, spec);
  const std::string path = a.required("-m", "model path");
  server::ServerOptions so;
  so.host = a.str("--host", "127.0.0.1");
  so.port = static_cast<int>(a.integer("--port", 8080, 0, 65535));
  so.api_key = a.str("--api-key", "");
  so.max_body_bytes = parse_bytes(a.str("--max-body", "4MiB"), "--max-body");
  so.http_threads = static_cast<int>(a.integer("--http-threads", 1024, 1, 1 << 16));
  api::BatcherOptions bo;
  bo.n_parallel = static_cast<int>(a.integer("--parallel", 4, 1, 256));
  bo.queue_size = static_cast<int>(a.integer("--queue", 4 * bo.n_parallel, 0, 1 << 16));
  bo.prefill_chunk = static_cast<int>(a.integer("--batch-size", 512, 1, 1 << 20));

  // --ctx-size is the total over all slots, as llama-server's -c: each slot gets an equal
  // share (default: the model's default context per slot).
  const int64_t total_ctx = a.integer("--ctx-size", 0, 0, 1 << 26);
  const int slot_ctx = static_cast<int>(total_ctx / bo.n_parallel);
  if (total_ctx > 0 && slot_ctx < 16) {
    fail(
        "--ctx-size {} over --parallel {} slots leaves {} tokens per slot; give at least 16 per "
        "slot",
        total_ctx, bo.n_parallel, slot_ctx);
  }
  api::OpenOptions oo = open_options(a, path, slot_ctx);
  oo.session.n_seq = bo.n_parallel;
  oo.session.n_batch = bo.step_rows();  // the session clamps it to n_seq x its context
  api::OpenModel om = api::open_model(oo);
  model::Model* m = om.model.get();
  model::Session& session = *om.session;
  // A slot's context may be shorter than --batch-size; the batch above still holds a whole
  // slot's prompt plus the other slots' decode rows.
  bo.prefill_chunk = std::min(bo.prefill_chunk, session.n_ctx());

  server::ModelContext ctx{
      .model = m,
      .chat_template = model::chat_template_of(*m),
      .n_ctx = session.n_ctx(),
      .name = a.str("--alias", std::filesystem::path(path).filename().string())};
  std::fprintf(stderr, "chat template: %s\n", ctx.chat_template.origin.c_str());
  api::Batcher batcher(session, api::end_of_generation_ids(m->tokenizer()), bo);
  std::function<std::string()> extra;
  if (om.provider) extra = [p = om.provider] { return offload_metrics(*p); };
  server::Server srv(ctx, batcher, so, extra);

  const int port = srv.bind();
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::atomic<bool> served{false};
  std::thread watcher([&] {
    while (!served && g_stop_signal == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop_signal != 0) {
      std::fprintf(stderr, "serve: signal %d, stopping\n", g_stop_signal.load());
      // In-flight streams end with an error event and [DONE] (well-formed), then the HTTP
      // side stops accepting and waits for its connections.
      batcher.stop();
      srv.stop();
    }
  });
  std::fprintf(
      stderr,
      "serving %s on http://%s:%d (%d slots of %d tokens = context %d, queue %d, prefill chunks of "
      "%d)%s\n",
      ctx.name.c_str(), so.host.c_str(), port, bo.n_parallel, session.n_ctx(),
      bo.n_parallel * session.n_ctx(), bo.queue_size, bo.prefill_chunk,
      so.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  srv.run();
  served = true;
  watcher.join();
  batcher.stop();
  const api::BatcherMetrics& bm = batcher.metrics();
  std::fprintf(
      stderr, "serve: stopped after %lld requests, %lld prompt and %lld generated tokens\n",
      static_cast<long long>(bm.requests.load()), static_cast<long long>(bm.prompt_tokens.load()),
      static_cast<long long>(bm.generated_tokens.load()));
  return 0;
}

}  // namespace mcmoe::cli

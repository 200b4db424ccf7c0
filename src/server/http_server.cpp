#include "server/http_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <condition_variable>
#include <csignal>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

#include "api/generate.h"
#include "core/error.h"

namespace mcmoe::server {

using json = nlohmann::json;

namespace {

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& code = {}) {
  send_json(res, status, error_json(status, message, param, code));
}

// Why a generation ended without a reply (an error, or the server stopping); "" when it did
// not fail.
std::string failure(const api::Job& job, api::FinishReason finish) {
  if (finish == api::FinishReason::kError) return "generation failed: " + job.error();
  if (finish == api::FinishReason::kCancelled) return "generation failed: the server is stopping";
  return {};
}

int64_t unix_now() {
  return static_cast<int64_t>(std::time(nullptr));
}

std::string sse(const json& j) {
  return "data: " + dump(j) + "\n\n";
}

// One thread per connection, up to `cap` at once; more wait for a free thread. httplib's
// fixed pool lets a flood of silent connections hold every worker until its read timeout,
// so one real request waited (connections / workers) × timeout; here each connection gets
// its own thread at once and a silent one only holds itself.
class ConnectionThreads : public httplib::TaskQueue {
 public:
  explicit ConnectionThreads(int cap) : cap_(cap) {}
  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mu_);
    if (active_ >= cap_) {
      waiting_.push_back(std::move(fn));
      return;
    }
    start_locked(std::move(fn));
  }
  void shutdown() override {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return active_ == 0 && waiting_.empty(); });
  }

 private:
  void start_locked(std::function<void()> fn) {
    ++active_;
    std::thread([this, fn = std::move(fn)]() mutable {
      for (;;) {
        fn();
        std::lock_guard lock(mu_);
        if (waiting_.empty()) {
          --active_;
          idle_.notify_all();
          return;
        }
        fn = std::move(waiting_.front());
        waiting_.pop_front();
      }
    }).detach();
  }
  const int cap_;
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
  std::deque<std::function<void()>> waiting_;
};

}  // namespace

Server::Server(ModelContext ctx, api::Batcher& batcher, ServerOptions o,
               std::function<std::string()> extra_metrics)
    : ctx_(std::move(ctx)),
      batcher_(batcher),
      o_(std::move(o)),
      extra_metrics_(std::move(extra_metrics)),
      http_(std::make_unique<httplib::Server>()) {
  std::signal(SIGPIPE, SIG_IGN);  // a client that went away must not end the server
  const int threads = std::max(1, o_.http_threads);
  http_->new_task_queue = [threads] { return new ConnectionThreads(threads); };
  http_->set_payload_max_length(o_.max_body_bytes);
  http_->set_read_timeout(o_.read_timeout_seconds, 0);
  http_->set_write_timeout(o_.read_timeout_seconds, 0);
  http_->set_keep_alive_timeout(5);
  routes();
}

Server::~Server() {
  stop();
}

int Server::bind() {
  // httplib listens with a backlog of 5: under a burst of connections the kernel then drops
  // handshakes, and clients wait seconds for SYN retries. Capture the listening socket and
  // listen again with a deep backlog (Linux updates it in place).
  int listen_fd = -1;
  http_->set_socket_options([&listen_fd](socket_t fd) {
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = fd;
  });
  int port = o_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(o_.host);
  } else if (!http_->bind_to_port(o_.host, port)) {
    port = -1;
  }
  if (port <= 0)
    fail("serve: cannot listen on {}:{} (in use, or not an address of this machine)", o_.host,
         o_.port);
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  return port;
}

void Server::run() {
  http_->listen_after_bind();
}

void Server::stop() {
  if (http_) http_->stop();
}

std::string Server::metrics_text() const {
  const api::BatcherMetrics& m = batcher_.metrics();
  const double busy = static_cast<double>(m.busy_microseconds.load()) * 1e-6;
  std::string out;
  const auto metric = [&](const char* name, const char* type, const char* help, double value) {
    prometheus_metric(out, name, type, help, value);
  };
  metric("requests_total", "counter", "Generation requests accepted.",
         static_cast<double>(m.requests.load()));
  metric("requests_refused_total", "counter",
         "Requests refused with 503: every slot and the queue full.",
         static_cast<double>(m.requests_refused.load()));
  metric("requests_cancelled_total", "counter", "Generations stopped because the client went away.",
         static_cast<double>(m.requests_cancelled.load()));
  metric("prompt_tokens_total", "counter", "Prompt tokens prefilled.",
         static_cast<double>(m.prompt_tokens.load()));
  metric("generated_tokens_total", "counter", "Tokens generated.",
         static_cast<double>(m.generated_tokens.load()));
  metric("forward_steps_total", "counter", "Batched forward passes.",
         static_cast<double>(m.steps.load()));
  metric("busy_seconds_total", "counter", "Seconds spent in forward passes.", busy);
  metric("tokens_per_second", "gauge", "Prompt and generated tokens per busy second since start.",
         busy > 0 ? static_cast<double>(m.prompt_tokens.load() + m.generated_tokens.load()) / busy
                  : 0.0);
  metric("generated_tokens_per_second", "gauge", "Generated tokens per busy second since start.",
         busy > 0 ? static_cast<double>(m.generated_tokens.load()) / busy : 0.0);
  metric("queue_depth", "gauge", "Requests waiting for a slot.", m.queue_depth.load());
  metric("slots_in_use", "gauge", "Slots generating.", m.slots_in_use.load());
  metric("slots_total", "gauge", "Slots (--parallel).", batcher_.options().n_parallel);
  if (extra_metrics_) out += extra_metrics_();
  return out;
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (o_.api_key.empty() || req.path == "/" || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") != "Bearer " + o_.api_key) {
      send_error(res, 401,
                 req.has_header("Authorization")
                     ? "the API key is wrong"
                     : "an API key is required (Authorization: Bearer KEY)",
                 {}, "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error object
    if (res.status == 404) {
      send_error(res, 404, fmt::format("no route {} {}", req.method, req.path));
    } else if (res.status == 413) {
      send_error(
          res, 413,
          fmt::format("the body is larger than this server takes ({} bytes)", o_.max_body_bytes));
    } else {
      send_error(res, res.status, fmt::format("HTTP {}", res.status));
    }
  });
  h.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, 500, what);
      });

  h.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  const auto models = [this](const httplib::Request&, httplib::Response& res) {
    send_json(
        res, 200,
        {{"object", "list"},
         {"data",
          json::array(
              {{{"id", ctx_.name},
                {"object", "model"},
                {"created", std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()},
                {"owned_by", "mcmoe"},
                {"meta", {{"n_ctx", ctx_.n_ctx}, {"n_vocab", ctx_.model->config().n_vocab}}}}})}});
  };
  h.Get("/v1/models", models);
  h.Get("/models", models);
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  h.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  h.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(web_page(), "text/html; charset=utf-8");
  });

  h.Post("/apply-template", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      send_json(res, 200, {{"prompt", apply_template_request(req.body, ctx_)}});
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.param, e.code);
    }
  });
  h.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      const json j = parse_body(req.body);
      if (!j.contains("content") || !j["content"].is_string())
        throw ApiError(400, "'content' must be a string", "content");
      const bool add_special = j.value("add_special", false),
                 with_pieces = j.value("with_pieces", false);
      const tokenizer::Tokenizer& tok = ctx_.model->tokenizer();
      const std::string text = j["content"].get<std::string>();
      const std::vector<int32_t> ids =
          add_special ? api::prompt_tokens(tok, text, true) : tok.encode_with_special(text);
      json tokens = json::array();
      for (int32_t id : ids) {
        if (with_pieces) {
          tokens.push_back({{"id", id}, {"piece", tok.token_to_piece(id)}});
        } else {
          tokens.push_back(id);
        }
      }
      send_json(res, 200, {{"tokens", tokens}});
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.param, e.code);
    } catch (const json::exception& e) {
      send_error(res, 400, e.what());
    }
  });

  const auto completion = [this](const httplib::Request& req, httplib::Response& res, bool chat) {
    CompletionRequest cr;
    try {
      cr = chat ? parse_chat_request(req.body, ctx_) : parse_completion_request(req.body, ctx_);
    } catch (const ApiError& e) {
      send_error(res, e.status, e.what(), e.param, e.code);
      return;
    }
    const int64_t prompt_tokens = static_cast<int64_t>(cr.gen.prompt.size());
    std::shared_ptr<api::Job> job;
    try {
      job = batcher_.submit(std::move(cr.gen));
    } catch (const Error& e) {
      send_error(res, 400, e.what());
      return;
    }
    if (!job) {
      res.set_header("Retry-After", "1");
      const api::BatcherOptions& b = batcher_.options();
      send_error(res, 503,
                 fmt::format("all {} slots and the queue of {} are busy; retry later", b.n_parallel,
                             b.queue_size));
      return;
    }
    const ResponseMeta meta{.id = new_id(chat ? "chatcmpl" : "cmpl"),
                            .model = ctx_.name,
                            .created = unix_now(),
                            .chat = chat};
    if (!cr.stream) {
      std::string text;
      api::Job::Update u;
      do {
        u = job->wait(std::chrono::milliseconds(200));
        text += u.text;
      } while (!u.done);
      if (const std::string failed = failure(*job, u.finish); !failed.empty()) {
        send_error(res, 500, failed);
        return;
      }
      std::string content;
      const std::vector<api::ToolCall> calls = tool_calls_of(cr.tool_names, text, &content);
      json j = completion_json(meta, content,
                               calls.empty() ? api::finish_reason_name(u.finish) : "tool_calls",
                               prompt_tokens, job->completion_tokens());
      if (!calls.empty()) {
        json& message = j["choices"][0]["message"];
        message["tool_calls"] = tool_calls_json(calls);
        if (content.empty()) message["content"] = nullptr;
      }
      send_json(res, 200, j);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto first = std::make_shared<bool>(true);
    const bool include_usage = cr.include_usage;
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, meta, first, include_usage, prompt_tokens, tool_names = cr.tool_names,
         held = std::make_shared<std::string>()](size_t, httplib::DataSink& sink) {
          const api::Job::Update u = job->wait(std::chrono::milliseconds(100));
          std::string out;
          // With tools the reply may be a call: it is held back and sent whole at the end,
          // as content or as tool_calls.
          std::string text = u.text;
          if (!tool_names.empty()) {
            *held += text;
            text.clear();
          }
          if (*first || !text.empty()) out += sse(chunk_json(meta, text, nullptr, *first));
          *first = false;
          if (u.done) {
            if (const std::string failed = failure(*job, u.finish); !failed.empty()) {
              out += sse(error_json(500, failed));
            } else {
              std::string content;
              const std::vector<api::ToolCall> calls = tool_calls_of(tool_names, *held, &content);
              if (!content.empty()) out += sse(chunk_json(meta, content, nullptr, false));
              if (!calls.empty()) {
                json chunk = chunk_json(meta, "", nullptr, false);
                chunk["choices"][0]["delta"]["tool_calls"] = tool_calls_json(calls);
                out += sse(chunk);
              }
              out += sse(chunk_json(
                  meta, "", calls.empty() ? api::finish_reason_name(u.finish) : "tool_calls",
                  false));
              if (include_usage)
                out += sse(usage_chunk_json(meta, prompt_tokens, job->completion_tokens()));
            }
            out += "data: [DONE]\n\n";
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            job->cancel();  // the client went away: free its slot
            return false;
          }
          if (u.done) sink.done();
          return true;
        },
        [job](bool) { job->cancel(); });  // no-op when finished; frees the slot otherwise
  };
  for (const char* p : {"/v1/chat/completions", "/chat/completions"}) {
    h.Post(p, [completion](const httplib::Request& req, httplib::Response& res) {
      completion(req, res, true);
    });
  }
  for (const char* p : {"/v1/completions", "/completions"}) {
    h.Post(p, [completion](const httplib::Request& req, httplib::Response& res) {
      completion(req, res, false);
    });
  }
}

}  // namespace mcmoe::server

#pragma once
// mcmoe's HTTP front end: OpenAI's /v1/chat/completions, /v1/completions and /v1/models,
// llama-server's /health, /apply-template and /tokenize, Prometheus /metrics, and a chat
// page at /. HTTP/1.1 through cpp-httplib (Debian's libcpp-httplib-dev); generation goes
// through api::Batcher, so requests on different connections decode together.
#include <functional>
#include <memory>
#include <string>

#include "api/batcher.h"
#include "server/openai.h"

namespace httplib {
class Server;
}

namespace mcmoe::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;      // 0: any free port (bind() says which)
  std::string api_key;  // non-empty: /v1/*, /apply-template, /tokenize and /metrics need it
  size_t max_body_bytes = size_t{4} << 20;  // larger bodies: 413
  int http_threads = 1024;                  // connections served at once (a thread each); more wait
  int read_timeout_seconds = 10;            // a connection silent this long is closed
};

class Server {
 public:
  // extra_metrics: more Prometheus lines (the offloading cache's counters), or empty.
  Server(ModelContext ctx, api::Batcher& batcher, ServerOptions o,
         std::function<std::string()> extra_metrics = {});
  ~Server();
  // Binds the listening socket; returns the port. Fails naming host and port.
  int bind();
  // Serves until stop() (from another thread or a signal handler's helper thread).
  void run();
  void stop();

 private:
  void routes();
  std::string metrics_text() const;

  ModelContext ctx_;
  api::Batcher& batcher_;
  ServerOptions o_;
  std::function<std::string()> extra_metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// The chat page served at / (server/web_page.cpp).
const std::string& web_page();

}  // namespace mcmoe::server

#pragma once
// An in-process mcmoe server for the tests: the repository's tiny model behind api::Batcher
// and server::Server on a free loopback port, served from a thread and stopped on
// destruction; plus raw-socket and SSE helpers.
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/batcher.h"
#include "model/model.h"
#include "model/session.h"
#include "server/http_server.h"

namespace mcmoe::test {

std::string tiny_model_path();  // models/mixtral-tiny-q4_0.gguf

struct TestServerOptions {
  int parallel = 4;
  int queue = 8;
  int n_ctx = 512;
  std::string api_key = {};
  size_t max_body = size_t{1} << 20;
};

class TestServer {
 public:
  explicit TestServer(const TestServerOptions& o = {});
  ~TestServer();
  int port() const { return port_; }
  httplib::Client client(int timeout_seconds = 60) const;
  model::Model& model() { return *model_; }
  const api::BatcherMetrics& metrics() const { return batcher_->metrics(); }
  // What serve does on SIGTERM: end the generations, then stop the HTTP side.
  void shutdown();

 private:
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<model::Session> session_;
  std::unique_ptr<api::Batcher> batcher_;
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool stopped_ = false;
};

// A connected TCP socket to 127.0.0.1:port (-1 on failure).
int connect_loopback(int port);
bool send_all(int fd, const std::string& data);

// The events of an SSE body: the text after "data: " of each event.
std::vector<std::string> sse_events(const std::string& body);

struct StreamResult {
  std::string text;           // concatenated deltas
  std::string finish_reason;  // of the last choice chunk
  bool done = false;          // ended with [DONE]
  bool well_formed = true;    // every event parsed, one id, finish_reason once
  nlohmann::json usage;       // null unless sent
  std::string problem;
};
// Parses a chat (delta.content) or completion (text) stream.
StreamResult parse_stream(const std::string& body, bool chat);

}  // namespace mcmoe::test

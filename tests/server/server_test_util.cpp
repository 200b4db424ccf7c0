#include "server/server_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "api/generate.h"
#include "model/chat_template.h"

namespace mcmoe::test {

std::string tiny_model_path() {
  return (std::filesystem::path(MCMOE_SOURCE_DIR) / "models/mixtral-tiny-q4_0.gguf").string();
}

TestServer::TestServer(const TestServerOptions& o) {
  model_ = model::Model::load(tiny_model_path());
  api::BatcherOptions bo{.n_parallel = o.parallel, .queue_size = o.queue, .prefill_chunk = 512};
  bo.prefill_chunk = std::min(bo.prefill_chunk, o.n_ctx);
  session_ =
      std::make_unique<model::Session>(*model_, model::SessionOptions{.n_ctx = o.n_ctx,
                                                                      .n_threads = 2,
                                                                      .n_batch = bo.step_rows(),
                                                                      .cache_type = DType::F16,
                                                                      .n_seq = o.parallel});
  batcher_ = std::make_unique<api::Batcher>(*session_,
                                            api::end_of_generation_ids(model_->tokenizer()), bo);
  server::ModelContext ctx{.model = model_.get(),
                           .chat_template = model::chat_template_of(*model_),
                           .n_ctx = o.n_ctx,
                           .name = "mixtral-tiny"};
  server_ = std::make_unique<server::Server>(ctx, *batcher_,
                                             server::ServerOptions{.host = "127.0.0.1",
                                                                   .port = 0,
                                                                   .api_key = o.api_key,
                                                                   .max_body_bytes = o.max_body,
                                                                   .read_timeout_seconds = 3});
  port_ = server_->bind();
  thread_ = std::thread([this] { server_->run(); });
}

void TestServer::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  batcher_->stop();  // ends the generations that in-flight handlers wait on
  server_->stop();
  thread_.join();
}

TestServer::~TestServer() {
  shutdown();
}

httplib::Client TestServer::client(int timeout_seconds) const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(timeout_seconds, 0);
  c.set_write_timeout(timeout_seconds, 0);
  c.set_connection_timeout(timeout_seconds, 0);
  return c;
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    const std::string event =
        body.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (event.rfind("data: ", 0) == 0)
      out.push_back(event.substr(6));
    else if (!event.empty())
      out.push_back("<not an SSE data line: " + event + ">");
    if (end == std::string::npos) break;
    pos = end + 2;
  }
  return out;
}

StreamResult parse_stream(const std::string& body, bool chat) {
  StreamResult r;
  std::string id;
  int finishes = 0;
  const std::vector<std::string> events = sse_events(body);
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i] == "[DONE]") {
      r.done = i + 1 == events.size();
      if (!r.done) r.problem = "[DONE] is not the last event";
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(events[i]);
    } catch (const std::exception&) {
      r.well_formed = false;
      r.problem = "event is not JSON: " + events[i];
      continue;
    }
    if (j.contains("error")) {
      r.well_formed = false;
      r.problem = "error event: " + events[i];
      continue;
    }
    if (id.empty()) id = j.value("id", "");
    if (j.value("id", "") != id) {
      r.well_formed = false;
      r.problem = "ids differ";
    }
    if (j.contains("usage") && !j["usage"].is_null()) r.usage = j["usage"];
    for (const auto& c : j["choices"]) {
      if (chat) {
        if (c["delta"].contains("content") && c["delta"]["content"].is_string())
          r.text += c["delta"]["content"].get<std::string>();
      } else {
        r.text += c.value("text", "");
      }
      if (!c["finish_reason"].is_null()) {
        ++finishes;
        r.finish_reason = c["finish_reason"].get<std::string>();
      }
    }
  }
  if (finishes != 1) {
    r.well_formed = false;
    r.problem = "finish_reason sent " + std::to_string(finishes) + " times";
  }
  return r;
}

}  // namespace mcmoe::test

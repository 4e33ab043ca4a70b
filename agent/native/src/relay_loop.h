// The native relay's thread: one epoll loop for every session handed to it,
// commands from JavaScript (add, drain, end, stop) through a queue and an
// eventfd, and records back to JavaScript in batches through a N-API
// thread-safe function. Batching is what keeps JavaScript off the per-
// transaction path: it sees each session's frames at most a millisecond late.
#pragma once

#include <node_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "relay_session.h"

namespace warden {

class RelayLoop {
 public:
  explicit RelayLoop(napi_threadsafe_function deliver);
  ~RelayLoop();

  // Takes over duplicates of both sockets; returns the session id (0 if the descriptors could not be duplicated).
  uint32_t add(int client_fd, int upstream_fd, std::vector<uint8_t> client_pending,
               std::vector<uint8_t> upstream_pending, SessionOptions options);
  void drain(uint32_t id);
  // Delivers everything logged so far at once, followed by a Mark record carrying `token`.
  void flush(uint32_t token);
  void end(uint32_t id, EndReason reason, std::vector<uint8_t> fatal);
  // JavaScript has processed a batch of `bytes`: the relay may read again if it had stopped for it.
  void ack(uint32_t bytes);
  void set_recordable(bool recordable) { recordable_.store(recordable, std::memory_order_relaxed); }
  // Ends every session and joins the thread.
  void stop();

 private:
  enum class Op { kAdd, kDrain, kEnd, kFlush, kStop };
  struct Command {
    explicit Command(Op o) : op(o) {}
    Op op;
    uint32_t id = 0;
    int client_fd = -1;
    int upstream_fd = -1;
    std::vector<uint8_t> client_pending;
    std::vector<uint8_t> upstream_pending;
    SessionOptions options;
    EndReason reason = kAgentShutdown;
    std::vector<uint8_t> fatal;
  };

  void post(Command command);
  void wake();
  void run();
  bool process_commands();
  void flush_log(bool force);
  void reap();

  napi_threadsafe_function deliver_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> recordable_{true};
  std::atomic<size_t> in_flight_{0};
  std::atomic<uint32_t> next_id_{1};
  std::mutex commands_mutex_;
  std::vector<Command> commands_;
  bool stopped_ = false;
  std::thread thread_;
  // Loop thread only.
  EventLog log_;
  bool urgent_ = false;
  double log_started_at_ = 0;
  std::unordered_map<uint32_t, std::unique_ptr<Session>> sessions_;
};

}  // namespace warden

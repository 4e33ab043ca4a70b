// See relay_loop.h.
#include "relay_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace warden {

namespace {
// Records wait at most this long for the batch they travel in (the JSONL recorder itself batches
// 20 ms). Measured under pgbench -S: 1 ms batches cost JavaScript ~10-13 µs a transaction, 10 ms
// batches ~8 (warmer caches, fewer wake-ups); a session's end is delivered at once either way.
constexpr double kBatchMs = 10.0;
constexpr size_t kBatchBytes = 256 * 1024;
// Past this many bytes handed to JavaScript and not yet processed, the relay stops reading: a
// recorder that falls behind slows the sessions down instead of growing memory.
constexpr size_t kMaxInFlight = 16 * 1024 * 1024;
constexpr uint64_t kWakeTag = ~uint64_t(0);
}  // namespace

RelayLoop::RelayLoop(napi_threadsafe_function deliver) : deliver_(deliver) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  log_.bytes.reserve(kBatchBytes);
  thread_ = std::thread([this] { run(); });
}

RelayLoop::~RelayLoop() {
  stop();
  close(epoll_fd_);
  close(wake_fd_);
}

void RelayLoop::wake() {
  uint64_t one = 1;
  ssize_t w = write(wake_fd_, &one, sizeof one);
  (void)w;
}

void RelayLoop::post(Command command) {
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    commands_.push_back(std::move(command));
  }
  wake();
}

uint32_t RelayLoop::add(int client_fd, int upstream_fd, std::vector<uint8_t> client_pending,
                        std::vector<uint8_t> upstream_pending, SessionOptions options) {
  // Duplicates: the relay closes its own when the session ends; Node's sockets close theirs.
  int c = fcntl(client_fd, F_DUPFD_CLOEXEC, 0);
  int u = c >= 0 ? fcntl(upstream_fd, F_DUPFD_CLOEXEC, 0) : -1;
  if (c < 0 || u < 0) {
    if (c >= 0) close(c);
    return 0;
  }
  fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
  fcntl(u, F_SETFL, fcntl(u, F_GETFL) | O_NONBLOCK);
  Command command(Op::kAdd);
  command.id = next_id_.fetch_add(1);
  command.client_fd = c;
  command.upstream_fd = u;
  command.client_pending = std::move(client_pending);
  command.upstream_pending = std::move(upstream_pending);
  command.options = options;
  uint32_t id = command.id;
  post(std::move(command));
  return id;
}

void RelayLoop::drain(uint32_t id) {
  Command command(Op::kDrain);
  command.id = id;
  post(std::move(command));
}

void RelayLoop::flush(uint32_t token) {
  Command command(Op::kFlush);
  command.id = token;
  post(std::move(command));
}

void RelayLoop::end(uint32_t id, EndReason reason, std::vector<uint8_t> fatal) {
  Command command(Op::kEnd);
  command.id = id;
  command.reason = reason;
  command.fatal = std::move(fatal);
  post(std::move(command));
}

void RelayLoop::ack(uint32_t bytes) {
  size_t before = in_flight_.fetch_sub(bytes);
  if (before > kMaxInFlight && before - bytes <= kMaxInFlight) wake();
}

void RelayLoop::stop() {
  if (stopped_) return;
  stopped_ = true;
  post(Command(Op::kStop));
  if (thread_.joinable()) thread_.join();
}

// Returns false once asked to stop.
bool RelayLoop::process_commands() {
  std::vector<Command> batch;
  {
    std::lock_guard<std::mutex> lock(commands_mutex_);
    batch.swap(commands_);
  }
  bool running = true;
  for (Command& command : batch) {
    switch (command.op) {
      case Op::kAdd: {
        LoopServices services{&log_, &recordable_, epoll_fd_, &urgent_};
        auto session = std::make_unique<Session>(services, command.id, command.client_fd, command.upstream_fd,
                                                 command.options);
        Session* s = session.get();
        sessions_.emplace(command.id, std::move(session));
        if (!command.upstream_pending.empty()) s->feed_upstream(command.upstream_pending.data(), command.upstream_pending.size());
        if (!command.client_pending.empty() && !s->ended()) s->feed_client(command.client_pending.data(), command.client_pending.size());
        break;
      }
      case Op::kDrain: {
        auto it = sessions_.find(command.id);
        if (it != sessions_.end()) it->second->drain();
        break;
      }
      case Op::kEnd: {
        auto it = sessions_.find(command.id);
        if (it != sessions_.end()) it->second->finish(command.reason, "", command.fatal.empty() ? nullptr : &command.fatal);
        break;
      }
      case Op::kFlush:
        log_.append_u32(0, kMark, monotonic_ms(), command.id);
        urgent_ = true;
        break;
      case Op::kStop:
        running = false;
        break;
    }
  }
  reap();
  return running;
}

void RelayLoop::reap() {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->ended()) it = sessions_.erase(it);
    else ++it;
  }
}

void RelayLoop::flush_log(bool force) {
  if (log_.bytes.empty()) return;
  double now = monotonic_ms();
  if (!force && !urgent_ && now - log_started_at_ < kBatchMs && log_.bytes.size() < kBatchBytes) return;
  auto* batch = new std::vector<uint8_t>(std::move(log_.bytes));
  log_.bytes = std::vector<uint8_t>();
  log_.bytes.reserve(kBatchBytes);
  urgent_ = false;
  in_flight_.fetch_add(batch->size());
  if (napi_call_threadsafe_function(deliver_, batch, napi_tsfn_blocking) != napi_ok) {
    in_flight_.fetch_sub(batch->size());
    delete batch;
  }
}

void RelayLoop::run() {
  epoll_event events[128];
  bool running = true;
  while (running) {
    // A recorder that is behind: wait for its acknowledgement (or a command) before reading more.
    while (running && in_flight_.load() > kMaxInFlight) {
      pollfd p{wake_fd_, POLLIN, 0};
      poll(&p, 1, 100);
      uint64_t n;
      while (read(wake_fd_, &n, sizeof n) > 0) {
      }
      running = process_commands();
    }
    if (!running) break;
    bool had_log = !log_.bytes.empty();
    int timeout = -1;
    if (had_log) {
      double left = log_started_at_ + kBatchMs - monotonic_ms();
      timeout = left <= 0 ? 0 : int(left) + 1;
    }
    int n = epoll_wait(epoll_fd_, events, 128, timeout);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t count;
        while (read(wake_fd_, &count, sizeof count) > 0) {
        }
        running = process_commands() && running;
        continue;
      }
      auto it = sessions_.find(uint32_t(tag >> 1));
      if (it == sessions_.end()) continue;
      Session* s = it->second.get();
      // Ended earlier in this batch (its other socket's event): reaped below.
      if (s->ended()) continue;
      bool client = (tag & 1) == 0;
      uint32_t ev = events[i].events;
      if (ev & EPOLLOUT) client ? s->client_writable() : s->upstream_writable();
      if (!s->ended() && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) client ? s->client_readable() : s->upstream_readable();
    }
    reap();
    if (!had_log && !log_.bytes.empty()) log_started_at_ = monotonic_ms();
    flush_log(false);
  }
  for (auto& entry : sessions_) entry.second->finish(kAgentShutdown, "");
  sessions_.clear();
  flush_log(true);
}

}  // namespace warden

// The socket half of a native session (accept and authenticate happened in
// JavaScript): reads, writes with backpressure, draining and the end. The
// framing half, what is forwarded and logged, is relay_frames.cc.
#include "relay_session.h"

#include "relay_json.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace warden {

namespace {

// Past this much queued for a congested socket, the other side is not read (backpressure).
constexpr size_t kHighWater = 256 * 1024;
// One read buffer serves every session of the loop's thread.
thread_local uint8_t read_buffer[64 * 1024];

std::unique_ptr<JsonSession> json_session(const SessionOptions& options) {
  if (!options.json) return nullptr;
  auto json = std::make_unique<JsonSession>();
  json->session_id = json_quoted(options.session_id);
  if (options.has_bundle_version) json->bundle_version = json_quoted(options.bundle_version);
  return json;
}

}  // namespace

Session::Session(LoopServices services, uint32_t id, int client_fd, int upstream_fd, SessionOptions options)
    : id(id),
      loop_(services),
      client_fd_(client_fd),
      upstream_fd_(upstream_fd),
      options_(options),
      book_(services.log, id, options.sample_rows, options.hash, json_session(options)) {
  int one = 1;
  setsockopt(client_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(upstream_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = (uint64_t(id) << 1) | 0;
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_ADD, client_fd_, &ev);
  ev.data.u64 = (uint64_t(id) << 1) | 1;
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_ADD, upstream_fd_, &ev);
  client_events_ = upstream_events_ = EPOLLIN;
}

Session::~Session() {
  if (client_fd_ >= 0) close(client_fd_);
  if (upstream_fd_ >= 0) close(upstream_fd_);
}

void Session::update_interest() {
  if (ended_) return;
  const uint32_t in = EPOLLIN, out = EPOLLOUT, none = 0;
  uint32_t want_client = ((!draining_ && to_upstream_.size() < kHighWater) ? in : none) | (to_client_.size() > 0 ? out : none);
  uint32_t want_upstream = (to_client_.size() < kHighWater ? in : none) | (to_upstream_.size() > 0 ? out : none);
  epoll_event ev{};
  if (want_client != client_events_) {
    ev.events = want_client;
    ev.data.u64 = (uint64_t(id) << 1) | 0;
    epoll_ctl(loop_.epoll_fd, EPOLL_CTL_MOD, client_fd_, &ev);
    client_events_ = want_client;
  }
  if (want_upstream != upstream_events_) {
    ev.events = want_upstream;
    ev.data.u64 = (uint64_t(id) << 1) | 1;
    epoll_ctl(loop_.epoll_fd, EPOLL_CTL_MOD, upstream_fd_, &ev);
    upstream_events_ = want_upstream;
  }
}

// Writes what it can now; the rest waits in the queue (in order behind anything already queued).
void Session::send(int fd, OutQueue& q, const iovec* parts, size_t count) {
  size_t total = 0;
  for (size_t i = 0; i < count; i++) total += parts[i].iov_len;
  if (total == 0) return;
  size_t written = 0;
  if (q.size() == 0) {
    ssize_t w = count == 1 ? write(fd, parts[0].iov_base, parts[0].iov_len) : writev(fd, parts, int(count));
    if (w > 0) written = size_t(w);
    // A failed write shows again as an error or hang-up on the next read; keep the bytes meanwhile.
  }
  if (written == total) return;
  if (q.off > 0 && q.off == q.buf.size()) {
    q.buf.clear();
    q.off = 0;
  }
  size_t skip = written;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* base = static_cast<const uint8_t*>(parts[i].iov_base);
    size_t len = parts[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    q.buf.insert(q.buf.end(), base + skip, base + len);
    skip = 0;
  }
}

bool Session::flush(int fd, OutQueue& q) {
  while (q.size() > 0) {
    ssize_t w = write(fd, q.buf.data() + q.off, q.size());
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    q.off += size_t(w);
  }
  q.buf.clear();
  q.off = 0;
  return true;
}

void Session::client_writable() {
  if (!flush(client_fd_, to_client_)) return finish(kClientDisconnect, std::strerror(errno));
  update_interest();
}

void Session::upstream_writable() {
  if (!flush(upstream_fd_, to_upstream_)) return finish(kUpstreamError, std::strerror(errno));
  update_interest();
}

void Session::read_error(bool client, ssize_t r, int err) {
  if (r < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)) return;
  std::string detail = r < 0 ? std::strerror(err) : "";
  if (client) finish(terminating_ ? kClientTerminate : kClientDisconnect, detail);
  else if (terminating_) finish(kClientTerminate, detail);
  else finish(r < 0 ? kUpstreamError : kUpstreamClosed, detail);
}

void Session::client_readable() {
  ssize_t r = read(client_fd_, read_buffer, sizeof read_buffer);
  if (r <= 0) return read_error(true, r, errno);
  feed_client(read_buffer, size_t(r));
}

void Session::upstream_readable() {
  ssize_t r = read(upstream_fd_, read_buffer, sizeof read_buffer);
  if (r <= 0) return read_error(false, r, errno);
  feed_upstream(read_buffer, size_t(r));
}

void Session::check_idle() {
  if (draining_ && !idle_sent_ && !busy()) {
    idle_sent_ = true;
    loop_.log->append(id, kIdle, monotonic_ms(), nullptr, 0);
    *loop_.urgent = true;
  }
}

void Session::drain() {
  draining_ = true;
  check_idle();
  update_interest();
}

void Session::protocol_error(const std::string& message) {
  // The same messages as relay.ts's, so a client cannot tell which relay carried it.
  std::vector<uint8_t> fatal = error_response("FATAL", "08P01", "invalid frontend message: " + message);
  finish(kProtocolError, message, &fatal);
}

void Session::finish(EndReason reason, const std::string& detail, const std::vector<uint8_t>* fatal) {
  if (ended_) return;
  std::vector<uint8_t> lost;
  if (!fatal && (reason == kUpstreamClosed || reason == kUpstreamError)) {
    lost = error_response("FATAL", "08006", "the connection to the upstream database was lost");
    fatal = &lost;
  }
  // Our own message only between frames, and behind what the client is still owed.
  if (fatal && from_upstream_.at_boundary()) {
    flush(client_fd_, to_client_);
    if (to_client_.size() == 0) {
      ssize_t w = write(client_fd_, fatal->data(), fatal->size());
      (void)w;
    }
  } else {
    flush(client_fd_, to_client_);
  }
  flush(upstream_fd_, to_upstream_);
  ended_ = true;
  std::vector<uint8_t> payload;
  payload.push_back(reason);
  payload.push_back(busy() && reason != kUpstreamClosed && reason != kUpstreamError ? 1 : 0);
  payload.insert(payload.end(), detail.begin(), detail.end());
  loop_.log->append(id, kEnd, monotonic_ms(), payload.data(), payload.size());
  *loop_.urgent = true;
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_DEL, client_fd_, nullptr);
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_DEL, upstream_fd_, nullptr);
  close(client_fd_);
  close(upstream_fd_);
  client_fd_ = upstream_fd_ = -1;
}

}  // namespace warden

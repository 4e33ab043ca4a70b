// accept → authenticate happened in JavaScript; this is forward (both
// directions) and the observation that recording needs. See relay_session.h.
#include "relay_session.h"

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
// Server frames are trusted for size, but the ones copied whole are small.
constexpr uint32_t kMaxBackendCopied = 64u * 1024 * 1024;
// One read buffer serves every session of the loop's thread.
thread_local uint8_t read_buffer[64 * 1024];

// The relay's refusal when a statement cannot be recorded: the server itself raises the error in
// the right place of the stream (and fails an open transaction), so nothing runs unrecorded.
const char* kUnrecordedSql =
    "DO $warden$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'statement refused: the session cannot be "
    "recorded right now, and nothing runs unrecorded'; END$warden$";

struct TypeTable {
  bool valid[256] = {};
  bool whole[256] = {};
  TypeTable(const char* valid_types, const char* whole_types) {
    for (const char* c = valid_types; *c; c++) valid[uint8_t(*c)] = true;
    for (const char* c = whole_types; *c; c++) whole[uint8_t(*c)] = true;
  }
};
// Protocol v3 frontend types after login; all but COPY data and Flush are forwarded whole.
const TypeTable kFrontend("BCdcfDEHFPQSX", "BCDEFPQSX");
// Backend frames the bookkeeping attributes to requests (relay.ts BACKEND_INSPECT).
const TypeTable kBackend("", "CIsEZT123tn");

// Fetched once: OpenSSL 3 looks the algorithm up in its provider tables on every EVP_sha256() init.
const EVP_MD* sha256() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

bool ends_result(uint8_t type) { return type == 'C' || type == 'I' || type == 's' || type == 'E' || type == 'Z'; }

}  // namespace

bool ScanState::fill_header(const uint8_t* p, size_t n, size_t& pos, bool& whole_here) {
  size_t take = std::min<size_t>(5 - header_fill, n - pos);
  std::memcpy(header + header_fill, p + pos, take);
  header_fill += uint32_t(take);
  pos += take;
  if (header_fill < 5) return false;
  whole_here = take == 5;
  header_fill = 0;
  return true;
}

Session::Session(LoopServices services, uint32_t id, int client_fd, int upstream_fd, SessionOptions options)
    : id(id), loop_(services), client_fd_(client_fd), upstream_fd_(upstream_fd), options_(options) {
  int one = 1;
  setsockopt(client_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(upstream_fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (options_.hash) hash_ = EVP_MD_CTX_new();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = (uint64_t(id) << 1) | 0;
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_ADD, client_fd_, &ev);
  ev.data.u64 = (uint64_t(id) << 1) | 1;
  epoll_ctl(loop_.epoll_fd, EPOLL_CTL_ADD, upstream_fd_, &ev);
  client_events_ = upstream_events_ = EPOLLIN;
}

Session::~Session() {
  if (hash_) EVP_MD_CTX_free(hash_);
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

void Session::feed_client(const uint8_t* p, size_t n) {
  now_ = monotonic_ms();
  std::vector<iovec> out;
  std::vector<std::vector<uint8_t>> owned;
  ScanState& s = from_client_;
  size_t pos = 0;
  while (pos < n && !ended_) {
    if (!s.in_frame) {
      bool header_here = false;
      if (!s.fill_header(p, n, pos, header_here)) break;
      uint8_t type = s.header[0];
      int32_t length = int32_t(read_u32_be(s.header + 1));
      char message[96];
      if (!kFrontend.valid[type]) {
        std::snprintf(message, sizeof message, "unknown frontend message type 0x%02x", type);
        return protocol_error(message);
      }
      if (length < 4) {
        std::snprintf(message, sizeof message, "invalid message length %d for message type 0x%x", length, type);
        return protocol_error(message);
      }
      if (uint32_t(length) + 1 > options_.max_message_bytes) {
        std::snprintf(message, sizeof message, "message of %d bytes exceeds the %u-byte limit", length,
                      options_.max_message_bytes);
        return protocol_error(message);
      }
      s.type = type;
      s.remaining = uint32_t(length) - 4;
      s.in_frame = true;
      s.collect = kFrontend.whole[type];
      if (s.collect && header_here && s.remaining <= n - pos) {
        // The whole frame is in this chunk (the usual case): no copy.
        frontend_frame(p + pos - 5, 5 + s.remaining, out, owned);
        pos += s.remaining;
        s.in_frame = false;
        continue;
      }
      if (s.collect) s.frame.assign(s.header, s.header + 5);
      else {
        owned.emplace_back(s.header, s.header + 5);
        out.push_back({owned.back().data(), 5});
      }
    }
    size_t take = std::min<size_t>(s.remaining, n - pos);
    if (s.collect) s.frame.insert(s.frame.end(), p + pos, p + pos + take);
    else if (take > 0) out.push_back({const_cast<uint8_t*>(p + pos), take});
    pos += take;
    s.remaining -= uint32_t(take);
    if (s.remaining == 0) {
      s.in_frame = false;
      if (s.collect) {
        owned.push_back(std::move(s.frame));
        s.frame.clear();
        frontend_frame(owned.back().data(), owned.back().size(), out, owned);
      }
    }
  }
  // `owned` may have grown after a pointer into it was taken: vectors moved into it keep their heap
  // storage, so iovecs into their data stay valid.
  if (!ended_ && out.size() == 1) send(upstream_fd_, to_upstream_, out.data(), 1);
  else if (!ended_ && !out.empty()) {
    // Several frames (Bind, Execute, Sync...): one contiguous write costs the kernel less than writev.
    thread_local std::vector<uint8_t> joined;
    joined.clear();
    for (const iovec& part : out) {
      const uint8_t* base = static_cast<const uint8_t*>(part.iov_base);
      joined.insert(joined.end(), base, base + part.iov_len);
    }
    iovec one{joined.data(), joined.size()};
    send(upstream_fd_, to_upstream_, &one, 1);
  }
  update_interest();
}

void Session::frontend_frame(const uint8_t* frame, size_t n, std::vector<iovec>& out,
                             std::vector<std::vector<uint8_t>>& owned) {
  uint8_t type = frame[0];
  double at = now_;
  switch (type) {
    case 'Q': case 'F': outstanding_++; break;
    case 'S': outstanding_++; extended_open_ = false; break;
    case 'X': terminating_ = true; break;
    default: extended_open_ = true; break;
  }
  if (type != 'X') {
    flush_rows();
    loop_.log->append(id, kFront, at, frame, n);
  }
  if ((type == 'Q' || type == 'P') && !loop_.recordable->load(std::memory_order_relaxed)) {
    if (type == 'Q') owned.push_back(query_frame(kUnrecordedSql));
    else owned.push_back(parse_frame(reinterpret_cast<const char*>(frame + 5), kUnrecordedSql));
    out.push_back({owned.back().data(), owned.back().size()});
    return;
  }
  out.push_back({const_cast<uint8_t*>(frame), n});
}

void Session::feed_upstream(const uint8_t* p, size_t n) {
  now_ = monotonic_ms();
  ScanState& s = from_upstream_;
  size_t pos = 0;
  while (pos < n && !ended_) {
    size_t frame_start = pos;
    bool header_here = false;
    if (!s.in_frame) {
      if (!s.fill_header(p, n, pos, header_here)) break;
      int32_t length = int32_t(read_u32_be(s.header + 1));
      if (length < 4) {
        finish(kUpstreamError, "invalid data from upstream: invalid message length");
        return;
      }
      s.type = s.header[0];
      s.remaining = uint32_t(length) - 4;
      s.in_frame = true;
      backend_frame_start();
      if (s.collect && s.remaining + 5 > kMaxBackendCopied) {
        finish(kUpstreamError, "invalid data from upstream: message exceeds the 64 MiB limit");
        return;
      }
      if (s.collect && !(header_here && s.remaining <= n - pos)) s.frame.assign(s.header, s.header + 5);
    }
    size_t take = std::min<size_t>(s.remaining, n - pos);
    if (s.type == 'D' && hash_) EVP_DigestUpdate(hash_, p + pos, take);
    bool whole_here = header_here && take == s.remaining;
    if (s.collect && !whole_here) s.frame.insert(s.frame.end(), p + pos, p + pos + take);
    pos += take;
    s.remaining -= uint32_t(take);
    if (s.remaining == 0) {
      s.in_frame = false;
      if (whole_here) backend_frame_done(p + frame_start, pos - frame_start);
      else backend_frame_done(s.frame.data(), s.frame.size());
      s.frame.clear();
    }
  }
  // The client gets exactly what the server sent: the chunk as read.
  iovec all{const_cast<uint8_t*>(p), n};
  if (!ended_) send(client_fd_, to_client_, &all, 1);
  update_interest();
}

void Session::backend_frame_start() {
  ScanState& s = from_upstream_;
  if (s.type == 'D') {
    if (!result_open_) {
      result_open_ = true;
      if (hash_) EVP_DigestInit_ex2(hash_, sha256(), nullptr);
    }
    if (hash_) EVP_DigestUpdate(hash_, s.header, 5);
    s.collect = sampled_ < options_.sample_rows;
    if (s.collect) sampled_++;
    else uncopied_rows_++;
    return;
  }
  if (ends_result(s.type)) end_result();
  s.collect = kBackend.whole[s.type];
}

void Session::backend_frame_done(const uint8_t* p, size_t n) {
  ScanState& s = from_upstream_;
  if (!s.collect) return;
  flush_rows();
  loop_.log->append(id, kBack, now_, p, n);
  if (s.type == 'Z') {
    if (outstanding_ > 0) outstanding_--;
    check_idle();
  }
}

void Session::flush_rows() {
  if (uncopied_rows_ == 0) return;
  loop_.log->append_u32(id, kRows, now_, uncopied_rows_);
  uncopied_rows_ = 0;
}

void Session::end_result() {
  flush_rows();
  if (result_open_ && hash_) {
    uint8_t digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(hash_, digest, &len);
    loop_.log->append(id, kDigest, now_, digest, len);
  }
  result_open_ = false;
  sampled_ = 0;
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
  now_ = monotonic_ms();
  flush_rows();
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

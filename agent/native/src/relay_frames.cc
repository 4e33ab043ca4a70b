// The framing half of a native session: how each direction's bytes are cut
// into frames, which frames the statement book reads (relay_statements.cc),
// and what is forwarded. The socket half (reads, writes, backpressure, the
// end) is relay_session.cc.
#include <cstdio>
#include <cstring>

#include "relay_session.h"

namespace warden {

namespace {

// Server frames are trusted for size, but the ones copied whole are small.
constexpr uint32_t kMaxBackendCopied = 64u * 1024 * 1024;

// The relay's refusal of a Query (or FunctionCall) when the session cannot be recorded: the server
// itself raises the error in the right place of the stream (and fails an open transaction).
const char* kUnrecordedSql =
    "DO $warden$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'statement refused: the session cannot be "
    "recorded right now, and nothing runs unrecorded'; END$warden$";
// Parse and Execute are swapped for a Parse the server rejects at once (42P01, naming the reason
// in the relation it cannot find); it then skips to Sync, so nothing of the batch runs.
const char* kUnrecordedParseSql = "SELECT FROM \"warden: recording unavailable, not run\"";

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
  std::string problem;
  // A statement frame the book cannot read is not forwarded (relay.ts: the frame handler failed).
  if (!book_.frontend(frame, n, at, problem)) return protocol_error("frame handler failed: " + problem);
  bool runs = type == 'Q' || type == 'P' || type == 'E' || type == 'F';
  if (runs && !loop_.recordable->load(std::memory_order_relaxed)) {
    // A FunctionCall is answered like a Query (an error, then ReadyForQuery).
    if (type == 'Q' || type == 'F') owned.push_back(query_frame(kUnrecordedSql));
    else if (type == 'E') owned.push_back(parse_frame("", kUnrecordedParseSql));
    else {
      // The statement name, bounded by the frame: a malformed Parse without its NUL is not read past.
      const char* name = reinterpret_cast<const char*>(frame + 5);
      owned.push_back(parse_frame(std::string(name, strnlen(name, n - 5)), kUnrecordedParseSql));
    }
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
    if (s.type == 'D') book_.row_bytes(p + pos, take);
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
  s.collect = s.type == 'D' ? book_.row_start(s.header) : kBackend.whole[s.type];
}

void Session::backend_frame_done(const uint8_t* p, size_t n) {
  ScanState& s = from_upstream_;
  if (!s.collect) return;
  if (s.type == 'D') return book_.row_sampled(p, n);
  book_.backend(p, n, now_);
  if (s.type == 'Z') {
    if (outstanding_ > 0) outstanding_--;
    check_idle();
  }
}

}  // namespace warden

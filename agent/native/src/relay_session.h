// One client session relayed natively: both sockets, the framing of each
// direction, and what the bookkeeping in JavaScript needs to see.
//
// Client → upstream: frames are checked (type, length, and the statement
// frames' fields) before a byte moves, and statement frames are forwarded
// whole. Upstream → client: every chunk is written as read; the scanner only
// observes it, handing the statement book (relay_statements.h) the frames
// that answer requests, every DataRow's bytes for the hash, and the first
// rows of each result for the sample.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "relay_common.h"
#include "relay_statements.h"

namespace warden {

struct SessionOptions {
  uint32_t max_message_bytes = 1 << 20;
  uint32_t sample_rows = 0;
  bool hash = false;
  // Statements are logged as the JSON lines the recorder writes (relay_record.h), with these session fields.
  bool json = false;
  std::string session_id;
  bool has_bundle_version = false;
  std::string bundle_version;
};

// What a session uses of its loop.
struct LoopServices {
  EventLog* log;
  const std::atomic<bool>* recordable;
  int epoll_fd;
  // Set when a record should reach JavaScript without waiting for the batch (end, idle).
  bool* urgent;
};

// Bytes waiting for a congested socket.
struct OutQueue {
  std::vector<uint8_t> buf;
  size_t off = 0;
  size_t size() const { return buf.size() - off; }
};

// Where one direction's scanner is inside the stream.
struct ScanState {
  uint8_t header[5];
  uint32_t header_fill = 0;
  bool in_frame = false;
  uint8_t type = 0;
  uint32_t remaining = 0;   // body bytes of the current frame still to come
  bool collect = false;     // the current frame is gathered whole into `frame`
  std::vector<uint8_t> frame;
  bool at_boundary() const { return header_fill == 0 && !in_frame; }
  // Takes header bytes from p[pos, n); true once the 5-byte header is complete (header_fill is then reset).
  bool fill_header(const uint8_t* p, size_t n, size_t& pos, bool& whole_here);
};

class Session {
 public:
  Session(LoopServices services, uint32_t id, int client_fd, int upstream_fd, SessionOptions options);
  ~Session();

  const uint32_t id;
  bool ended() const { return ended_; }

  void client_readable();
  void upstream_readable();
  void client_writable();
  void upstream_writable();
  // Bytes that arrived before the native relay took over (pipelined after the login).
  void feed_client(const uint8_t* p, size_t n);
  void feed_upstream(const uint8_t* p, size_t n);
  // Shutdown: read nothing more from the client; an Idle record follows once nothing is in flight.
  void drain();
  // Ends the session; `fatal` goes to the client first when it can be placed between frames.
  void finish(EndReason reason, const std::string& detail, const std::vector<uint8_t>* fatal = nullptr);

 private:
  void frontend_frame(const uint8_t* frame, size_t n, std::vector<iovec>& out, std::vector<std::vector<uint8_t>>& owned);
  void backend_frame_start();
  void backend_frame_done(const uint8_t* p, size_t n);
  void protocol_error(const std::string& message);
  void send(int fd, OutQueue& q, const iovec* parts, size_t count);
  bool flush(int fd, OutQueue& q);
  void update_interest();
  bool busy() const { return outstanding_ > 0 || extended_open_; }
  void check_idle();
  void read_error(bool client, ssize_t r, int err);

  LoopServices loop_;
  int client_fd_;
  int upstream_fd_;
  SessionOptions options_;
  ScanState from_client_;
  ScanState from_upstream_;
  OutQueue to_client_;
  OutQueue to_upstream_;
  // When the chunk being scanned was read: the time of every record it produces.
  double now_ = 0;
  uint32_t client_events_ = 0;
  uint32_t upstream_events_ = 0;
  bool ended_ = false;
  bool draining_ = false;
  bool idle_sent_ = false;
  bool terminating_ = false;
  // Requests that end with ReadyForQuery (Query, Sync, FunctionCall) not answered yet.
  int outstanding_ = 0;
  // Extended-protocol messages sent since the last Sync.
  bool extended_open_ = false;
  StatementBook book_;
};

}  // namespace warden

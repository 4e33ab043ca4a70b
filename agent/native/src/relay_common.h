// Shared pieces of the native relay: the record format the relay thread hands
// to JavaScript, end reasons, and PostgreSQL frame helpers.
//
// Records (little-endian), appended to one log per loop and handed over in
// batches: u32 session id, u8 kind, f64 time (ms, CLOCK_MONOTONIC), u32
// payload length, payload. native-relay.ts reads them in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace warden {

enum RecordKind : uint8_t {
  kStmt = 1,  // a finished statement, compact (relay_record.h has the payload)
  kIdle = 2,  // a draining session has nothing in flight
  kEnd = 3,   // u8 reason, u8 busy, detail (UTF-8)
  kMark = 4,  // session 0, u32 token: every record logged before a flush request has been delivered
  kStmtJson = 5,  // a finished statement as its JSON line (relay_record.h)
};

// Same order as SessionEndReason's members used here (native-relay.ts maps them back).
enum EndReason : uint8_t {
  kClientTerminate = 0,
  kClientDisconnect = 1,
  kUpstreamClosed = 2,
  kUpstreamError = 3,
  kProtocolError = 4,
  kAgentShutdown = 5,
};

constexpr size_t kRecordHeaderBytes = 17;

double monotonic_ms();

inline uint32_t read_u32_be(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// The loop's log: records of every session, in the order they happened.
class EventLog {
 public:
  std::vector<uint8_t> bytes;

  // Appends a record whose payload is `n` bytes at `p`.
  void append(uint32_t session, RecordKind kind, double at, const uint8_t* p, size_t n);
  void append_u32(uint32_t session, RecordKind kind, double at, uint32_t value);
};

// Appends `v` little-endian (the records' byte order).
inline void append_u32_le(std::vector<uint8_t>& out, uint32_t v) {
  uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  out.insert(out.end(), b, b + 4);
}

// Empties `v`, and gives its memory back when it grew past 1 MiB (a buffer reused per statement).
inline void release_if_large(std::vector<uint8_t>& v) {
  v.clear();
  if (v.capacity() > (1u << 20)) v.shrink_to_fit();
}

// An ErrorResponse frame (severity, SQLSTATE, message), as PostgreSQL sends it.
std::vector<uint8_t> error_response(const char* severity, const char* code, const std::string& message);

// A Query frame / a Parse frame (no parameter types) with the given text.
std::vector<uint8_t> query_frame(const std::string& sql);
std::vector<uint8_t> parse_frame(const std::string& name, const std::string& sql);

}  // namespace warden

// The record log and frame builders shared by the relay's sessions.
#include <cstring>
#include <ctime>

#include "relay_common.h"

namespace warden {

double monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

static void put_u32_le(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v >> 16);
  p[3] = uint8_t(v >> 24);
}

void EventLog::append(uint32_t session, RecordKind kind, double at, const uint8_t* p, size_t n) {
  size_t start = bytes.size();
  bytes.resize(start + kRecordHeaderBytes + n);
  uint8_t* h = bytes.data() + start;
  put_u32_le(h, session);
  h[4] = kind;
  std::memcpy(h + 5, &at, 8);  // x86-64 and arm64 are little-endian, as the reader expects
  put_u32_le(h + 13, uint32_t(n));
  if (n > 0) std::memcpy(h + kRecordHeaderBytes, p, n);
}

void EventLog::append_u32(uint32_t session, RecordKind kind, double at, uint32_t value) {
  uint8_t v[4];
  put_u32_le(v, value);
  append(session, kind, at, v, 4);
}

static void put_u32_be(std::vector<uint8_t>& out, size_t at, uint32_t v) {
  out[at] = uint8_t(v >> 24);
  out[at + 1] = uint8_t(v >> 16);
  out[at + 2] = uint8_t(v >> 8);
  out[at + 3] = uint8_t(v);
}

static void put_cstring(std::vector<uint8_t>& out, const std::string& s) {
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
}

static void finish_length(std::vector<uint8_t>& out) { put_u32_be(out, 1, uint32_t(out.size() - 1)); }

std::vector<uint8_t> error_response(const char* severity, const char* code, const std::string& message) {
  std::vector<uint8_t> out = {'E', 0, 0, 0, 0};
  out.push_back('S');
  put_cstring(out, severity);
  out.push_back('V');
  put_cstring(out, severity);
  out.push_back('C');
  put_cstring(out, code);
  out.push_back('M');
  put_cstring(out, message);
  out.push_back(0);
  finish_length(out);
  return out;
}

std::vector<uint8_t> query_frame(const std::string& sql) {
  std::vector<uint8_t> out = {'Q', 0, 0, 0, 0};
  put_cstring(out, sql);
  finish_length(out);
  return out;
}

std::vector<uint8_t> parse_frame(const std::string& name, const std::string& sql) {
  std::vector<uint8_t> out = {'P', 0, 0, 0, 0};
  put_cstring(out, name);
  put_cstring(out, sql);
  out.push_back(0);  // no parameter types
  out.push_back(0);
  finish_length(out);
  return out;
}

}  // namespace warden

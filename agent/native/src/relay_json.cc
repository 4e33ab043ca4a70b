// JSON the way JavaScript writes it: see relay_json.h.
#include "relay_json.h"

#include <cstring>
#include <ctime>

namespace warden {

namespace {

const char kHex[] = "0123456789abcdef";

// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), or 0. Node decodes anything else with replacement characters, which this does not mimic.
size_t utf8_sequence(const uint8_t* p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || !cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

void JsonWriter::raw(const char* s) { out_.insert(out_.end(), s, s + std::strlen(s)); }

bool JsonWriter::string(const uint8_t* p, size_t n) {
  size_t start = out_.size();
  out_.push_back('"');
  size_t i = 0;
  while (i < n) {
    // Runs of bytes that need nothing go in one insert.
    size_t run = i;
    while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
    out_.insert(out_.end(), p + i, p + run);
    i = run;
    if (i >= n) break;
    uint8_t c = p[i];
    if (c >= 0x80) {
      size_t len = utf8_sequence(p + i, n - i);
      if (len == 0) {
        out_.resize(start);
        return false;
      }
      out_.insert(out_.end(), p + i, p + i + len);
      i += len;
      continue;
    }
    out_.push_back('\\');
    switch (c) {
      case '"': out_.push_back('"'); break;
      case '\\': out_.push_back('\\'); break;
      case '\b': out_.push_back('b'); break;
      case '\f': out_.push_back('f'); break;
      case '\n': out_.push_back('n'); break;
      case '\r': out_.push_back('r'); break;
      case '\t': out_.push_back('t'); break;
      default: {
        const uint8_t u[5] = {'u', '0', '0', uint8_t(kHex[c >> 4]), uint8_t(kHex[c & 15])};
        out_.insert(out_.end(), u, u + 5);
      }
    }
    i++;
  }
  out_.push_back('"');
  return true;
}

void JsonWriter::integer(uint64_t v) {
  // By hand: snprintf's format parsing costs more than the rest of a line's numbers.
  char buf[20];
  int i = sizeof buf;
  do {
    buf[--i] = char('0' + v % 10);
    v /= 10;
  } while (v > 0);
  out_.insert(out_.end(), buf + i, buf + sizeof buf);
}

void JsonWriter::millis(uint64_t us) {
  integer(us / 1000);
  uint64_t frac = us % 1000;
  if (frac == 0) return;
  // JavaScript prints the shortest decimal: trailing zeros of the fraction go.
  char digits[4] = {char('0' + frac / 100), char('0' + frac / 10 % 10), char('0' + frac % 10), 0};
  int len = digits[2] != '0' ? 3 : digits[1] != '0' ? 2 : 1;
  out_.push_back('.');
  out_.insert(out_.end(), digits, digits + len);
}

void JsonWriter::hex(const uint8_t* p, size_t n) {
  out_.push_back('"');
  for (size_t i = 0; i < n; i++) {
    out_.push_back(uint8_t(kHex[p[i] >> 4]));
    out_.push_back(uint8_t(kHex[p[i] & 15]));
  }
  out_.push_back('"');
}

void JsonWriter::iso_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  // The "YYYY-MM-DDTHH:MM:SS." prefix is formatted once a second (this thread's cache).
  thread_local time_t cached_second = -1;
  thread_local char prefix[32];
  if (ts.tv_sec != cached_second) {
    tm parts;
    gmtime_r(&ts.tv_sec, &parts);
    std::strftime(prefix, sizeof prefix, "%Y-%m-%dT%H:%M:%S.", &parts);
    cached_second = ts.tv_sec;
  }
  long ms = ts.tv_nsec / 1000000;
  out_.push_back('"');
  out_.insert(out_.end(), prefix, prefix + std::strlen(prefix));
  const char tail[5] = {char('0' + ms / 100), char('0' + ms / 10 % 10), char('0' + ms % 10), 'Z', '"'};
  out_.insert(out_.end(), tail, tail + 5);
}

std::string json_quoted(const std::string& s) {
  std::vector<uint8_t> out;
  JsonWriter w(out);
  if (!w.string(s)) return "\"\"";
  return std::string(out.begin(), out.end());
}

}  // namespace warden

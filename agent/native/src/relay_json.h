// JSON as the agent's JSONL recorder writes it (audit/statement-json.ts):
// strings escaped exactly as JSON.stringify escapes them, durations printed
// as JavaScript prints a number of whole microseconds, times as
// Date#toISOString. A writer refuses (returns false) whatever it cannot
// write exactly as JavaScript would, such as bytes that are not UTF-8; the
// caller then hands the statement to JavaScript instead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace warden {

class JsonWriter {
 public:
  explicit JsonWriter(std::vector<uint8_t>& out) : out_(out) {}

  void raw(const char* s);
  void raw(const std::string& s) { out_.insert(out_.end(), s.begin(), s.end()); }
  // A JSON string of UTF-8 bytes; false when they are not well-formed UTF-8.
  bool string(const uint8_t* p, size_t n);
  bool string(const std::string& s) { return string(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }
  void integer(uint64_t v);
  // Milliseconds given as whole microseconds, as `${us / 1000}` prints in JavaScript.
  void millis(uint64_t us);
  // Lowercase hex of `n` bytes, quoted.
  void hex(const uint8_t* p, size_t n);
  // Now, as new Date().toISOString() (millisecond precision, UTC), quoted.
  void iso_now();

 private:
  std::vector<uint8_t>& out_;
};

// A JSON string of `s` (which the caller knows to be well-formed UTF-8), for strings written on every line.
std::string json_quoted(const std::string& s);

}  // namespace warden

// The two encodings of a statement's record: see relay_record.h.
#include "relay_record.h"

#include <cmath>
#include <cstring>

#include "relay_json.h"

namespace warden {

namespace {

void put_f64(std::vector<uint8_t>& out, double v) {
  uint8_t b[8];
  std::memcpy(b, &v, 8);  // little-endian hosts, as native-records.ts reads it
  out.insert(out.end(), b, b + 8);
}
void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  append_u32_le(out, uint32_t(n));
  const uint8_t* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
uint32_t get_u32_le(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
int32_t get_i16_be(const uint8_t* p) { return int16_t(uint16_t(p[0] << 8 | p[1])); }

const char* const kProtocols[] = {"simple", "extended", "function-call"};

// Column i's format as Bind's result formats give it (frontend-messages.ts formatOf).
int32_t format_of(const std::vector<int16_t>& formats, int32_t i) {
  if (formats.empty()) return 0;
  if (formats.size() == 1) return formats[0];
  return size_t(i) < formats.size() ? formats[size_t(i)] : 0;
}

// A RowDescription's column names as a JSON array; false when a column is sent in binary format
// (its sample values would need JavaScript's type decoders) or the frame cannot be read. `formats`,
// when given, are the formats the client asked for, which a statement's Describe does not know.
bool column_names(JsonWriter& w, std::vector<uint8_t>& out, const std::vector<uint8_t>& frame,
                  const std::vector<int16_t>* formats) {
  const uint8_t* p = frame.data();
  size_t n = frame.size();
  if (n < 7) return false;
  int32_t count = get_i16_be(p + 5);
  size_t pos = 7;
  out.push_back('[');
  for (int32_t i = 0; i < count; i++) {
    const void* nul = pos < n ? std::memchr(p + pos, 0, n - pos) : nullptr;
    if (!nul) return false;
    size_t end = size_t(static_cast<const uint8_t*>(nul) - p);
    if (end + 19 > n) return false;
    if ((formats ? format_of(*formats, i) : get_i16_be(p + end + 17)) != 0) return false;
    if (i > 0) out.push_back(',');
    if (!w.string(p + pos, end - pos)) return false;
    pos = end + 19;
  }
  out.push_back(']');
  return true;
}

// A sampled DataRow as a JSON array of text values (null for SQL NULL).
bool row_values(JsonWriter& w, std::vector<uint8_t>& out, const uint8_t* p, size_t n) {
  if (n < 7) return false;
  int32_t count = get_i16_be(p + 5);
  size_t pos = 7;
  out.push_back('[');
  for (int32_t i = 0; i < count; i++) {
    if (pos + 4 > n) return false;
    int32_t len = int32_t(read_u32_be(p + pos));
    pos += 4;
    if (i > 0) out.push_back(',');
    if (len < 0) {
      w.raw("null");
      continue;
    }
    if (size_t(len) > n - pos || !w.string(p + pos, size_t(len))) return false;
    pos += size_t(len);
  }
  out.push_back(']');
  return true;
}

}  // namespace

void RecordWriter::write(const FinishedStatement& s) {
  seq_++;
  thread_local std::vector<uint8_t> out;
  out.clear();
  if (json_ && write_json(s, out)) {
    log_->append(session_, kStmtJson, s.ended_at, out.data(), out.size());
  } else {
    out.clear();
    write_compact(s, out);
    log_->append(session_, kStmt, s.ended_at, out.data(), out.size());
  }
  release_if_large(out);
}

// The line audit/statement-json.ts writes for the event native-records.ts would make (same fields,
// same order, same escaping); native-relay.test.ts compares the two relays' lines field by field.
bool RecordWriter::write_json(const FinishedStatement& s, std::vector<uint8_t>& out) {
  JsonWriter w(out);
  // JavaScript rounds the duration to the microsecond, then prints it.
  double us = std::round((s.ended_at - s.started_at) * 1000);
  if (!(us >= 0 && us < 2147483647.0)) return false;
  w.raw("{\"type\":\"statement\",\"sessionId\":");
  w.raw(json_->session_id);
  w.raw(",\"seq\":");
  w.integer(seq_);
  w.raw(",\"at\":");
  w.iso_now();
  w.raw(",\"protocol\":\"");
  w.raw(kProtocols[s.protocol]);
  w.raw("\",\"text\":");
  if (!w.string(*s.text)) return false;
  w.raw(",\"rows\":");
  w.integer(uint64_t(s.rows));
  w.raw(",\"durationMs\":");
  w.millis(uint64_t(us));
  w.raw(",\"decision\":\"unchecked\"");
  if (s.tag) {
    w.raw(",\"tag\":");
    if (!w.string(*s.tag)) return false;
  }
  if (s.code) {
    w.raw(",\"error\":{\"code\":");
    if (!w.string(*s.code)) return false;
    w.raw(",\"message\":");
    if (!w.string(*s.message)) return false;
    out.push_back('}');
  }
  if (s.params) {
    const uint8_t* p = s.params->data();
    uint32_t count = uint32_t(p[0]) | uint32_t(p[1]) << 8;
    size_t pos = 2;
    w.raw(",\"parameters\":[");
    for (uint32_t i = 0; i < count; i++) {
      int32_t len = int32_t(get_u32_le(p + pos));
      uint8_t format = p[pos + 4];
      pos += 9;
      w.raw(i == 0 ? "{\"value\":" : ",{\"value\":");
      if (len < 0) w.raw("null");
      // A binary value is rendered by JavaScript's type decoders (bind-params.ts).
      else if (format != 0 || !w.string(p + pos, size_t(len))) return false;
      if (len > 0) pos += size_t(len);
      out.push_back('}');
    }
    out.push_back(']');
  }
  if (s.digest) {
    w.raw(",\"resultSha256\":");
    w.hex(s.digest, 32);
  }
  if (s.sample) {
    w.raw(",\"sample\":{\"columns\":");
    if (s.description) {
      if (!column_names(w, out, *s.description, s.formats)) return false;
    } else {
      w.raw("[]");
    }
    w.raw(",\"maskedColumns\":[],\"rows\":[");
    const uint8_t* p = s.sample_rows->data();
    size_t pos = 0;
    for (uint32_t i = 0; i < s.sampled; i++) {
      uint32_t len = get_u32_le(p + pos);
      if (i > 0) out.push_back(',');
      if (!row_values(w, out, p + pos + 4, len)) return false;
      pos += 4 + len;
    }
    w.raw(s.truncated ? "],\"truncated\":true}" : "],\"truncated\":false}");
  }
  if (!json_->bundle_version.empty()) {
    w.raw(",\"bundleVersion\":");
    w.raw(json_->bundle_version);
  }
  out.push_back('}');
  return true;
}

void RecordWriter::write_compact(const FinishedStatement& s, std::vector<uint8_t>& out) {
  out.push_back(s.protocol);
  out.push_back(0);
  out.push_back(0);
  uint16_t flags = 0;
  put_f64(out, s.started_at);
  put_f64(out, s.rows);
  put_bytes(out, s.text->data(), s.text->size());
  if (s.tag) {
    flags |= kStmtTag;
    put_bytes(out, s.tag->data(), s.tag->size());
  }
  if (s.code) {
    flags |= kStmtError;
    put_bytes(out, s.code->data(), s.code->size());
    put_bytes(out, s.message->data(), s.message->size());
  }
  if (s.params) {
    flags |= kStmtParams;
    out.insert(out.end(), s.params->begin(), s.params->end());
  }
  if (s.digest) {
    flags |= kStmtDigest;
    out.insert(out.end(), s.digest, s.digest + 32);
  }
  if (s.sample) {
    flags |= kStmtSample;
    if (s.truncated) flags |= kStmtSampleTruncated;
    if (s.description && *s.description == sent_description_) flags |= kStmtDescriptionRepeat;
    else if (s.description) {
      flags |= kStmtDescription;
      put_bytes(out, s.description->data(), s.description->size());
      sent_description_ = *s.description;
    }
    if (s.description && s.formats) {
      flags |= kStmtFormats;
      out.push_back(uint8_t(s.formats->size()));
      out.push_back(uint8_t(s.formats->size() >> 8));
      for (int16_t f : *s.formats) {
        out.push_back(uint8_t(uint16_t(f)));
        out.push_back(uint8_t(uint16_t(f) >> 8));
      }
    }
    append_u32_le(out, s.sampled);
    out.insert(out.end(), s.sample_rows->begin(), s.sample_rows->end());
  }
  out[1] = uint8_t(flags);
  out[2] = uint8_t(flags >> 8);
}

}  // namespace warden

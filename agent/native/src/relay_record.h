// How a finished statement is handed to JavaScript: as the JSON line the
// agent's JSONL recorder would write for it (when the session's recorder
// keeps JSON lines), or as the compact record native-records.ts decodes.
// A statement the JSON writer cannot write exactly as JavaScript would
// (text that is not UTF-8, a value only JavaScript's decoders can render)
// goes compact, so every record reads the same whichever way it came.
//
// Compact record payload (kStmt, little-endian):
//   u8 protocol (0 simple, 1 extended, 2 function call), u16 flags (kStmt*),
//   f64 started (ms, the clock of the record header, which is the end),
//   f64 rows, u32 + text, [u32 + tag], [u32 + SQLSTATE, u32 + message],
//   [u16 count, per parameter: i32 length (-1 = NULL), u8 format, u32 type OID, bytes],
//   [32 bytes SHA-256 of the result's DataRows], [u32 + RowDescription frame],
//   [u16 count, i16 per format: an Execute's result formats, as its Bind gave them],
//   [u32 count, per sampled row: u32 + DataRow frame]
// JSON record payload (kStmtJson): the line (no newline).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "relay_common.h"

namespace warden {

enum StatementFlags : uint16_t {
  kStmtTag = 1,
  kStmtError = 2,
  kStmtParams = 4,
  kStmtDigest = 8,
  kStmtSample = 16,
  kStmtSampleTruncated = 32,
  kStmtDescription = 64,        // the result's RowDescription follows
  kStmtDescriptionRepeat = 128,  // the result's RowDescription is the one this session sent last
  kStmtFormats = 256             // the columns' formats follow (else each field's own format applies)
};

// What the record of one statement holds; pointers are null where the statement has none.
struct FinishedStatement {
  uint8_t protocol = 0;
  double started_at = 0;
  double ended_at = 0;
  double rows = 0;
  const std::string* text = nullptr;
  const std::string* tag = nullptr;
  const std::string* code = nullptr;
  const std::string* message = nullptr;
  // Count (u16) then per parameter: i32 length, u8 format, u32 type OID, bytes.
  const std::vector<uint8_t>* params = nullptr;
  const uint8_t* digest = nullptr;  // 32 bytes
  bool sample = false;
  bool truncated = false;
  const std::vector<uint8_t>* description = nullptr;
  // An Execute's result formats (Bind's: none = all text, one = all columns, else one per column).
  const std::vector<int16_t>* formats = nullptr;
  uint32_t sampled = 0;
  const std::vector<uint8_t>* sample_rows = nullptr;  // per row: u32 length + DataRow frame
};

// The session fields of its JSON lines, already quoted.
struct JsonSession {
  std::string session_id;
  std::string bundle_version;  // empty: the session has none
};

class RecordWriter {
 public:
  RecordWriter(EventLog* log, uint32_t session, std::unique_ptr<JsonSession> json)
      : log_(log), session_(session), json_(std::move(json)) {}
  void write(const FinishedStatement& s);

 private:
  bool write_json(const FinishedStatement& s, std::vector<uint8_t>& out);
  void write_compact(const FinishedStatement& s, std::vector<uint8_t>& out);

  EventLog* log_;
  uint32_t session_;
  std::unique_ptr<JsonSession> json_;
  // Statements of the session so far (the JSON line's seq; JavaScript counts the compact ones alike).
  uint64_t seq_ = 0;
  // The RowDescription last sent in a compact record (JavaScript keeps its parsed columns).
  std::vector<uint8_t> sent_description_;
};

}  // namespace warden

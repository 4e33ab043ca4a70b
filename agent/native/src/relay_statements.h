// The record half of a native session: which statement each answer of the
// server belongs to, and what the audit record keeps of it. It follows the
// JavaScript relay's bookkeeping for sessions without a policy (inspect.ts,
// pending.ts, mask.ts, result-capture.ts) rule for rule, so a statement is
// recorded the same whichever relay carried it (native-relay.test.ts holds
// the two to the same records). Each finished statement goes to a
// RecordWriter (relay_record.h), which logs it for JavaScript.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "relay_common.h"
#include "relay_record.h"

namespace warden {

class StatementBook {
 public:
  StatementBook(EventLog* log, uint32_t session, uint32_t sample_rows, bool hash, std::unique_ptr<JsonSession> json);
  ~StatementBook();
  StatementBook(const StatementBook&) = delete;
  StatementBook& operator=(const StatementBook&) = delete;

  // A whole frontend frame the relay is about to forward; false (and why) when it cannot be read,
  // which the relay treats as the JavaScript relay treats a failing frame handler.
  bool frontend(const uint8_t* frame, size_t n, double at, std::string& problem);
  // A DataRow begins (its 5-byte header); true when the whole row is wanted for the sample.
  bool row_start(const uint8_t* header);
  // Body bytes of the current DataRow, as they pass.
  void row_bytes(const uint8_t* p, size_t n);
  // A DataRow row_start asked for, whole.
  void row_sampled(const uint8_t* frame, size_t n);
  // A whole backend frame the bookkeeping reads (relay_frames.cc kBackend): C I s E Z T 1 2 3 t n.
  void backend(const uint8_t* frame, size_t n, double at);

 private:
  enum class Kind : uint8_t { kSimple, kParse, kBind, kDescribe, kExecute, kClose, kSync, kFunctionCall };
  using Text = std::shared_ptr<const std::string>;
  using Params = std::shared_ptr<const std::vector<uint8_t>>;
  using Frame = std::shared_ptr<const std::vector<uint8_t>>;
  using Formats = std::shared_ptr<const std::vector<int16_t>>;
  struct Pending {
    Kind kind = Kind::kSync;
    double started_at = 0;
    Text text;
    Params params;
    bool failed = false;
    // Describe and Execute: the prepared statement they concern (when known), and an Execute's result formats.
    bool has_statement = false;
    std::string statement;
    Formats formats;
  };
  struct Prepared {
    Text text;
    std::vector<uint32_t> param_types;
    // The RowDescription a Describe returned for it: an Execute's sample names its columns by it.
    Frame description;
  };
  struct Portal {
    std::string statement;
    Params params;
    Formats formats;
  };

  bool bind(const uint8_t* frame, size_t n, double at, std::string& problem);
  void push(Kind kind, double at, Text text = nullptr, Params params = nullptr);
  void shift();
  void complete(const std::string* tag, double at);
  void begin_execute_result();
  void error(const uint8_t* frame, size_t n, double at);
  void record(const Pending& p, const std::string* tag, const std::string* code, const std::string* message, double at);
  void end_result();

  RecordWriter writer_;
  uint32_t sample_rows_;
  bool capture_;
  std::unordered_map<std::string, Prepared> prepared_;
  std::unordered_map<std::string, Portal> portals_;
  std::deque<Pending> queue_;
  // The result streaming now: whether there is one, its rows, hash, description and sample.
  bool open_ = false;
  double rows_ = 0;
  EVP_MD_CTX* hash_ = nullptr;
  bool hashing_ = false;
  std::vector<uint8_t> description_;
  bool described_ = false;
  // An Execute's result: its statement's RowDescription and the portal's result formats.
  Frame execute_description_;
  Formats execute_formats_;
  std::vector<uint8_t> sample_;
  uint32_t sampled_ = 0;
};

}  // namespace warden

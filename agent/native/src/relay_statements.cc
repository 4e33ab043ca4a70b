// Statements of a native session, from the frames that pass: see relay_statements.h.
#include "relay_statements.h"

#include <cstring>

namespace warden {

namespace {

// Bounds-checked reads of one frame. A frame the relay cannot read is not forwarded.
struct Reader {
  const uint8_t* p;
  size_t n;
  size_t pos;
  const char* problem = nullptr;

  bool fail(const char* why) {
    if (!problem) problem = why;
    return false;
  }
  bool cstring(std::string* out) {
    const void* nul = pos < n ? std::memchr(p + pos, 0, n - pos) : nullptr;
    if (!nul) return fail("unterminated string in message");
    size_t end = size_t(static_cast<const uint8_t*>(nul) - p);
    if (out) out->assign(reinterpret_cast<const char*>(p + pos), end - pos);
    pos = end + 1;
    return true;
  }
  bool i16(int32_t& v) {
    if (pos + 2 > n) return fail("message is shorter than its fields");
    v = int16_t(uint16_t(p[pos] << 8 | p[pos + 1]));
    pos += 2;
    return true;
  }
  bool i32(int32_t& v) {
    if (pos + 4 > n) return fail("message is shorter than its fields");
    v = int32_t(read_u32_be(p + pos));
    pos += 4;
    return true;
  }
  bool count(int32_t& v) {
    if (!i16(v)) return false;
    return v >= 0 || fail("negative count in message");
  }
};

const EVP_MD* sha256() {
  // Fetched once: OpenSSL 3 looks the algorithm up in its provider tables on every EVP_sha256() init.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

const char* kFunctionCallText = "<function call>";

}  // namespace

StatementBook::StatementBook(EventLog* log, uint32_t session, uint32_t sample_rows, bool hash,
                             std::unique_ptr<JsonSession> json)
    : writer_(log, session, std::move(json)), sample_rows_(sample_rows), capture_(sample_rows > 0 || hash) {
  if (hash) hash_ = EVP_MD_CTX_new();
}

StatementBook::~StatementBook() {
  if (hash_) EVP_MD_CTX_free(hash_);
}

void StatementBook::push(Kind kind, double at, Text text, Params params) {
  Pending p;
  p.kind = kind;
  p.started_at = at;
  p.text = std::move(text);
  p.params = std::move(params);
  queue_.push_back(std::move(p));
}

void StatementBook::shift() {
  if (!queue_.empty()) queue_.pop_front();
}

bool StatementBook::frontend(const uint8_t* frame, size_t n, double at, std::string& problem) {
  Reader r{frame, n, 5};
  std::string name;
  switch (frame[0]) {
    case 'Q': {
      auto text = std::make_shared<std::string>();
      if (!r.cstring(text.get())) break;
      push(Kind::kSimple, at, std::move(text));
      return true;
    }
    case 'P': {
      auto text = std::make_shared<std::string>();
      if (!r.cstring(&name) || !r.cstring(text.get())) break;
      Prepared stmt;
      stmt.text = text;
      int32_t types = 0;
      if (r.pos + 2 <= n && !r.count(types)) break;
      for (int32_t i = 0; i < types; i++) {
        int32_t oid = 0;
        if (!r.i32(oid)) break;
        stmt.param_types.push_back(uint32_t(oid));
      }
      if (r.problem) break;
      prepared_[name] = std::move(stmt);
      push(Kind::kParse, at, std::move(text));
      return true;
    }
    case 'B':
      if (bind(frame, n, at, problem)) return true;
      return false;
    case 'D': {
      if (n < 6) return (problem = "message is shorter than its fields"), false;
      r.pos = 6;
      if (!r.cstring(&name)) break;
      push(Kind::kDescribe, at);
      Pending& describe = queue_.back();
      if (frame[5] != 'P') {
        describe.has_statement = true;
        describe.statement = std::move(name);
      } else if (auto portal = portals_.find(name); portal != portals_.end()) {
        describe.has_statement = true;
        describe.statement = portal->second.statement;
      }
      return true;
    }
    case 'E': {
      int32_t max_rows = 0;
      if (!r.cstring(&name) || !r.i32(max_rows)) break;
      Text text;
      Params params;
      auto portal = portals_.find(name);
      if (portal != portals_.end()) {
        params = portal->second.params;
        auto stmt = prepared_.find(portal->second.statement);
        if (stmt != prepared_.end()) text = stmt->second.text;
      }
      push(Kind::kExecute, at, std::move(text), std::move(params));
      if (portal != portals_.end()) {
        Pending& execute = queue_.back();
        execute.has_statement = true;
        execute.statement = portal->second.statement;
        execute.formats = portal->second.formats;
      }
      return true;
    }
    case 'C': {
      if (n < 6) return (problem = "message is shorter than its fields"), false;
      r.pos = 6;
      if (!r.cstring(&name)) break;
      if (frame[5] == 'S') prepared_.erase(name);
      else portals_.erase(name);
      push(Kind::kClose, at);
      return true;
    }
    case 'F':
      push(Kind::kFunctionCall, at);
      return true;
    case 'S':
      push(Kind::kSync, at);
      return true;
    default:
      return true;
  }
  problem = r.problem ? r.problem : "message cannot be read";
  return false;
}

// Bind: the portal, and its parameters as the record keeps them (decoded to text in JavaScript).
bool StatementBook::bind(const uint8_t* frame, size_t n, double at, std::string& problem) {
  Reader r{frame, n, 5};
  std::string portal_name, statement;
  int32_t formats = 0, count = 0, results = 0;
  std::vector<int32_t> format_codes;
  // Allocated only for a Bind with parameters: a Bind per transaction is the common case.
  std::shared_ptr<std::vector<uint8_t>> params;
  if (!r.cstring(&portal_name) || !r.cstring(&statement) || !r.count(formats)) goto bad;
  for (int32_t i = 0; i < formats; i++) {
    int32_t f = 0;
    if (!r.i16(f)) goto bad;
    format_codes.push_back(f);
  }
  if (!r.count(count)) goto bad;
  {
    auto stmt = prepared_.find(statement);
    const std::vector<uint32_t>* types = stmt != prepared_.end() ? &stmt->second.param_types : nullptr;
    if (count > 0) params = std::make_shared<std::vector<uint8_t>>(std::initializer_list<uint8_t>{uint8_t(count), uint8_t(count >> 8)});
    for (int32_t i = 0; i < count; i++) {
      int32_t len = 0;
      if (!r.i32(len)) goto bad;
      if (len > 0 && size_t(len) > n - r.pos) {
        r.fail("parameter is longer than its message");
        goto bad;
      }
      int32_t format = formats == 0 ? 0 : formats == 1 ? format_codes[0] : (i < formats ? format_codes[size_t(i)] : 0);
      uint32_t type = types && size_t(i) < types->size() ? (*types)[size_t(i)] : 0;
      append_u32_le(*params, uint32_t(len < 0 ? -1 : len));
      params->push_back(uint8_t(format == 1 ? 1 : 0));
      append_u32_le(*params, type);
      if (len > 0) {
        params->insert(params->end(), frame + r.pos, frame + r.pos + len);
        r.pos += size_t(len);
      }
    }
    if (!r.count(results)) goto bad;
    static const Formats kAllText = std::make_shared<const std::vector<int16_t>>();
    Formats result_formats = kAllText;
    if (results > 0) {
      auto codes = std::make_shared<std::vector<int16_t>>();
      for (int32_t i = 0; i < results; i++) {
        int32_t f = 0;
        if (!r.i16(f)) goto bad;
        codes->push_back(int16_t(f));
      }
      result_formats = std::move(codes);
    }
    Text text = stmt != prepared_.end() ? stmt->second.text : nullptr;
    Params kept = std::move(params);
    portals_[portal_name] = Portal{statement, kept, std::move(result_formats)};
    push(Kind::kBind, at, std::move(text), std::move(kept));
    return true;
  }
bad:
  problem = r.problem ? r.problem : "message cannot be read";
  return false;
}

// An Execute's result has no RowDescription in the stream: its statement's Describe (if any) and the
// portal's formats say what the client gets (mask.ts beginExecuteCapture).
void StatementBook::begin_execute_result() {
  const Pending& head = queue_.front();
  auto stmt = head.has_statement ? prepared_.find(head.statement) : prepared_.end();
  execute_description_ = stmt != prepared_.end() ? stmt->second.description : nullptr;
  execute_formats_ = head.formats;
}

bool StatementBook::row_start(const uint8_t* header) {
  if (rows_ == 0 && !queue_.empty() && queue_.front().kind == Kind::kExecute) begin_execute_result();
  open_ = true;
  rows_++;
  if (hash_) {
    if (!hashing_) {
      EVP_DigestInit_ex2(hash_, sha256(), nullptr);
      hashing_ = true;
    }
    EVP_DigestUpdate(hash_, header, 5);
  }
  if (sampled_ >= sample_rows_) return false;
  sampled_++;
  return true;
}

void StatementBook::row_bytes(const uint8_t* p, size_t n) {
  if (hash_ && n > 0) EVP_DigestUpdate(hash_, p, n);
}

void StatementBook::row_sampled(const uint8_t* frame, size_t n) {
  append_u32_le(sample_, uint32_t(n));
  sample_.insert(sample_.end(), frame, frame + n);
}

void StatementBook::backend(const uint8_t* frame, size_t n, double at) {
  switch (frame[0]) {
    case 'T':
      if (queue_.empty()) return;
      if (queue_.front().kind == Kind::kDescribe) {
        // Kept for the record: an Execute's sample then has the statement's column names and types.
        const Pending& describe = queue_.front();
        auto stmt = capture_ && describe.has_statement ? prepared_.find(describe.statement) : prepared_.end();
        if (stmt != prepared_.end()) {
          // A statement described again and again (a driver's Describe per Execute) keeps one copy.
          Frame& kept = stmt->second.description;
          if (!kept || kept->size() != n || std::memcmp(kept->data(), frame, n) != 0)
            kept = std::make_shared<const std::vector<uint8_t>>(frame, frame + n);
        }
        return shift();
      }
      if (capture_) {
        open_ = true;
        described_ = true;
        description_.assign(frame, frame + n);
      }
      return;
    case '1': case '2': case '3': case 'n':
      return shift();
    case 'C': {
      // The tag, bounded by the frame.
      const char* tag = reinterpret_cast<const char*>(frame + 5);
      std::string text(tag, strnlen(tag, n - 5));
      return complete(&text, at);
    }
    case 'I':
      return complete(nullptr, at);
    case 's': {
      static const std::string suspended = "SUSPENDED";
      if (queue_.empty()) return;
      record(queue_.front(), &suspended, nullptr, nullptr, at);
      end_result();
      return shift();
    }
    case 'E':
      return error(frame, n, at);
    case 'Z':
      end_result();
      return shift();
    default:
      return;
  }
}

void StatementBook::complete(const std::string* tag, double at) {
  if (queue_.empty()) return;
  if (queue_.front().kind == Kind::kExecute && rows_ == 0) {
    // An empty result is still a result when the statement was described as returning rows.
    begin_execute_result();
    if (execute_description_ && capture_) open_ = true;
  }
  record(queue_.front(), tag, nullptr, nullptr, at);
  end_result();
  // A simple query's next statement answers to the same Query; an Execute is done.
  if (queue_.front().kind == Kind::kExecute) shift();
}

void StatementBook::error(const uint8_t* frame, size_t n, double at) {
  std::string code = "XX000", message;
  size_t pos = 5;
  while (pos < n && frame[pos] != 0) {
    uint8_t field = frame[pos];
    const void* nul = std::memchr(frame + pos + 1, 0, n - pos - 1);
    if (!nul) break;
    size_t end = size_t(static_cast<const uint8_t*>(nul) - frame);
    if (field == 'C') code.assign(reinterpret_cast<const char*>(frame + pos + 1), end - pos - 1);
    else if (field == 'M') message.assign(reinterpret_cast<const char*>(frame + pos + 1), end - pos - 1);
    pos = end + 1;
  }
  if (!queue_.empty()) {
    Pending& head = queue_.front();
    if (head.kind == Kind::kSimple || head.kind == Kind::kFunctionCall) {
      if (!head.failed) record(head, nullptr, &code, &message, at);
      head.failed = true;
    } else {
      // The server skips to Sync. A statement it rejected at Parse, Bind or Execute is recorded with its
      // error (for a Parse, with the parameters of the Bind that followed it).
      size_t skipped = 0;
      while (skipped < queue_.size() && queue_[skipped].kind != Kind::kSync && queue_[skipped].kind != Kind::kSimple &&
             queue_[skipped].kind != Kind::kFunctionCall)
        skipped++;
      if (head.kind == Kind::kParse) {
        Pending parse = head;
        for (size_t i = 1; i < skipped && queue_[i].kind != Kind::kParse; i++) {
          if (queue_[i].kind == Kind::kBind) {
            parse.params = queue_[i].params;
            break;
          }
        }
        record(parse, nullptr, &code, &message, at);
      } else if (head.kind == Kind::kBind || head.kind == Kind::kExecute) {
        record(head, nullptr, &code, &message, at);
      }
      queue_.erase(queue_.begin(), queue_.begin() + long(skipped));
    }
  }
  end_result();
}

void StatementBook::end_result() {
  open_ = false;
  rows_ = 0;
  hashing_ = false;
  described_ = false;
  execute_description_ = nullptr;
  execute_formats_ = nullptr;
  sampled_ = 0;
  // A sample of a few large rows does not stay allocated for the rest of the session.
  release_if_large(sample_);
  release_if_large(description_);
}

void StatementBook::record(const Pending& p, const std::string* tag, const std::string* code, const std::string* message,
                           double at) {
  static const std::string empty, function_call = kFunctionCallText;
  FinishedStatement s;
  s.text = p.kind == Kind::kFunctionCall ? &function_call : p.text ? p.text.get() : &empty;
  s.protocol = p.kind == Kind::kFunctionCall || (p.kind == Kind::kSimple && *s.text == kFunctionCallText) ? 2
               : p.kind == Kind::kSimple                                                               ? 0
                                                                                                       : 1;
  s.started_at = p.started_at;
  s.ended_at = at;
  s.rows = rows_;
  s.tag = tag;
  s.code = code;
  s.message = message;
  s.params = p.params.get();
  uint8_t digest[EVP_MAX_MD_SIZE];
  if (open_ && hash_) {
    unsigned int len = 0;
    if (!hashing_) EVP_DigestInit_ex2(hash_, sha256(), nullptr);  // a result without rows: the hash of nothing
    EVP_DigestFinal_ex(hash_, digest, &len);
    hashing_ = false;
    s.digest = digest;
  }
  if (open_ && sample_rows_ > 0) {
    s.sample = true;
    s.truncated = rows_ > sampled_;
    s.description = described_ ? &description_ : execute_description_.get();
    s.formats = described_ ? nullptr : execute_formats_.get();
    s.sampled = sampled_;
    s.sample_rows = &sample_;
  }
  writer_.write(s);
}

}  // namespace warden

// N-API surface of the native relay (native-relay.ts is its only caller):
//   create(onBatch) → loop; add(loop, clientFd, upstreamFd, clientPending, upstreamPending,
//   maxMessageBytes, sampleRows, hash, jsonSessionId, jsonBundleVersion) → id (statements as JSON
//   lines when jsonSessionId is a string; jsonBundleVersion null when the session has none); drain(loop, id); end(loop, id, reason, fatal);
//   flush(loop, token); ack(loop, bytes); setRecordable(loop, bool); stop(loop).
#include <node_api.h>

#include <cstring>
#include <string>
#include <vector>

#include "relay_loop.h"

namespace warden {
namespace {

struct LoopHandle {
  RelayLoop* loop = nullptr;
  napi_threadsafe_function deliver = nullptr;
};

#define CHECK(call)                                     \
  do {                                                  \
    if ((call) != napi_ok) {                            \
      napi_throw_error(env, nullptr, "native relay: " #call); \
      return nullptr;                                   \
    }                                                   \
  } while (0)

void deliver_batch(napi_env env, napi_value callback, void*, void* data) {
  auto* batch = static_cast<std::vector<uint8_t>*>(data);
  if (env != nullptr && callback != nullptr) {
    napi_value buffer;
    void* copy;
    if (napi_create_buffer_copy(env, batch->size(), batch->data(), &copy, &buffer) == napi_ok) {
      napi_value undefined;
      napi_get_undefined(env, &undefined);
      napi_call_function(env, undefined, callback, 1, &buffer, nullptr);
    }
  }
  delete batch;
}

void stop_handle(LoopHandle* handle) {
  if (handle->loop == nullptr) return;
  handle->loop->stop();
  delete handle->loop;
  handle->loop = nullptr;
  napi_release_threadsafe_function(handle->deliver, napi_tsfn_release);
}

void finalize_handle(napi_env, void* data, void*) {
  auto* handle = static_cast<LoopHandle*>(data);
  stop_handle(handle);
  delete handle;
}

LoopHandle* handle_of(napi_env env, napi_value value) {
  void* data = nullptr;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) return nullptr;
  auto* handle = static_cast<LoopHandle*>(data);
  return handle->loop ? handle : nullptr;
}

std::vector<uint8_t> bytes_of(napi_env env, napi_value value) {
  bool is_buffer = false;
  napi_is_buffer(env, value, &is_buffer);
  if (!is_buffer) return {};
  void* data;
  size_t length;
  napi_get_buffer_info(env, value, &data, &length);
  auto* p = static_cast<uint8_t*>(data);
  return std::vector<uint8_t>(p, p + length);
}

// A JavaScript string as UTF-8; false for anything else (null).
bool string_of(napi_env env, napi_value value, std::string& out) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, nullptr, 0, &length) != napi_ok) return false;
  out.resize(length + 1);
  napi_get_value_string_utf8(env, value, out.data(), out.size(), &length);
  out.resize(length);
  return true;
}

uint32_t u32_of(napi_env env, napi_value value) {
  uint32_t out = 0;
  napi_get_value_uint32(env, value, &out);
  return out;
}

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "warden-native-relay", NAPI_AUTO_LENGTH, &name));
  auto* handle = new LoopHandle();
  CHECK(napi_create_threadsafe_function(env, argv[0], nullptr, name, 0, 1, nullptr, nullptr, nullptr, deliver_batch,
                                        &handle->deliver));
  // The loop alone does not keep the process alive: the sessions' own sockets do.
  CHECK(napi_unref_threadsafe_function(env, handle->deliver));
  handle->loop = new RelayLoop(handle->deliver);
  napi_value external;
  CHECK(napi_create_external(env, handle, finalize_handle, nullptr, &external));
  return external;
}

napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  LoopHandle* handle = argc == 10 ? handle_of(env, argv[0]) : nullptr;
  if (!handle) {
    napi_throw_type_error(env, nullptr, "native relay: add(loop, clientFd, upstreamFd, clientPending, upstreamPending, maxMessageBytes, sampleRows, hash, jsonSessionId, jsonBundleVersion)");
    return nullptr;
  }
  int32_t client_fd = -1, upstream_fd = -1;
  napi_get_value_int32(env, argv[1], &client_fd);
  napi_get_value_int32(env, argv[2], &upstream_fd);
  SessionOptions options;
  options.max_message_bytes = u32_of(env, argv[5]);
  options.sample_rows = u32_of(env, argv[6]);
  napi_get_value_bool(env, argv[7], &options.hash);
  options.json = string_of(env, argv[8], options.session_id);
  options.has_bundle_version = string_of(env, argv[9], options.bundle_version);
  uint32_t id = handle->loop->add(client_fd, upstream_fd, bytes_of(env, argv[3]), bytes_of(env, argv[4]), options);
  napi_value out;
  CHECK(napi_create_uint32(env, id, &out));
  return out;
}


// (loop, n) → void: the commands that take one number.
template <void (RelayLoop::*Method)(uint32_t)>
napi_value WithNumber(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (LoopHandle* handle = handle_of(env, argv[0])) (handle->loop->*Method)(u32_of(env, argv[1]));
  return nullptr;
}

napi_value End(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (LoopHandle* handle = handle_of(env, argv[0])) {
    handle->loop->end(u32_of(env, argv[1]), EndReason(u32_of(env, argv[2])), bytes_of(env, argv[3]));
  }
  return nullptr;
}



napi_value SetRecordable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  bool recordable = false;
  napi_get_value_bool(env, argv[1], &recordable);
  if (LoopHandle* handle = handle_of(env, argv[0])) handle->loop->set_recordable(recordable);
  return nullptr;
}

napi_value Stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  void* data = nullptr;
  if (napi_get_value_external(env, argv[0], &data) == napi_ok && data) stop_handle(static_cast<LoopHandle*>(data));
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"add", nullptr, Add, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"drain", nullptr, WithNumber<&RelayLoop::drain>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"end", nullptr, End, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"flush", nullptr, WithNumber<&RelayLoop::flush>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"ack", nullptr, WithNumber<&RelayLoop::ack>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setRecordable", nullptr, SetRecordable, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace
}  // namespace warden

NAPI_MODULE(NODE_GYP_MODULE_NAME, warden::Init)

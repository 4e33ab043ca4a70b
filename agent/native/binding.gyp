{
  "targets": [
    {
      "target_name": "warden_relay",
      "sources": ["src/relay_common.cc", "src/relay_session.cc", "src/relay_frames.cc", "src/relay_statements.cc", "src/relay_record.cc", "src/relay_json.cc", "src/relay_loop.cc", "src/addon.cc"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

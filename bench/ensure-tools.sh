#!/usr/bin/env bash
# Benchmarks compare against pgbouncer, the reference PostgreSQL proxy; install it if missing.
set -euo pipefail
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "installing pgbouncer (Debian package) for the reference measurement"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
command -v pgbench >/dev/null || { echo "pgbench is missing: install postgresql-contrib or postgresql-client" >&2; exit 1; }

#!/bin/sh
# First start of the compose PostgreSQL: the control plane's database, and the clinical
# database with the agent's own login (the agent never uses the clients' credentials).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" -v pw="$WARDEN_CLINICAL_PASSWORD" <<'SQL'
CREATE DATABASE warden;
CREATE DATABASE clinical;
CREATE ROLE warden_agent LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE clinical TO warden_agent;
SQL

#!/bin/sh
# A local git config repository for the compose control plane (default ./config-repo, or the
# folder given as the argument), from policy-examples/hipaa,
# with the clinical target pointed at the compose PostgreSQL and the development listener
# kept off the compose agent. Edit, commit, and the control plane picks the commit up
# within pollIntervalMs.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="${1:-$here/config-repo}"
[ -d "$repo/.git" ] && { echo "config-repo exists"; exit 0; }
cp -R "$here/../../policy-examples/hipaa" "$repo"
cat > "$repo/targets.yaml" <<'YAML'
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical
  description: Clinical database (compose PostgreSQL; plain TCP on the private compose network)
  postgres:
    host: postgres
    port: 5432
    database: clinical
    user: warden_agent
    passwordRef: env:WARDEN_CLINICAL_PASSWORD
    tls: { mode: disable }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical-dev
  postgres: { host: 127.0.0.1, port: 5433, database: clinical_dev, user: postgres }
YAML
cat > "$repo/listeners.yaml" <<'YAML'
apiVersion: warden.dev/v1
kind: Listener
spec:
  name: clinical-pg
  target: clinical
  address: 0.0.0.0
  port: 6432
  agentSelector: { site: east }
  postgres:
    tls: { certFile: /etc/warden/tls.crt, keyFile: /etc/warden/tls.key }
---
apiVersion: warden.dev/v1
kind: Listener
spec:
  name: dev-pg
  target: clinical-dev
  address: 127.0.0.1
  port: 6433
  agentSelector: { env: dev }
  postgres: { allowPlaintext: true, maxMessageBytes: 1048576 }
YAML
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=warden -c user.email=warden@localhost commit -q -m "initial policy from policy-examples/hipaa"
echo "created $repo"

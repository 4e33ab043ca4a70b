# syntax=docker/dockerfile:1.7
# The Warden agent: the PostgreSQL proxy that sits beside a database.
# Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t ghcr.io/warden-dev/warden-agent:0.1.0 .
# Run (managed mode, dialing out to the control plane; see deploy/kubernetes/agent):
#   docker run ghcr.io/warden-dev/warden-agent:0.1.0 --control-plane cp:7443 --ca-file /etc/warden/ca/ca.crt \
#     --state-dir /var/lib/warden --enroll-token env:WARDEN_ENROLL_TOKEN --name db-east-1 --ops 0.0.0.0:9090
ARG NODE_IMAGE=node:20-slim

# 1. Compile TypeScript and the native relay (agent/native, C++ against Node's own headers);
#    install scripts off: the one the project has (the native build) runs explicitly below.
FROM ${NODE_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
COPY proto/package.json proto/package.json
COPY agent/package.json agent/package.json
COPY control-plane/package.json control-plane/package.json
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && npm_config_nodedir=/usr/local npm run build:native

# 2. Production dependencies only, exactly as locked (the agent compiles policies with the
#    control plane's compiler, so both workspaces' runtime dependencies are installed).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY proto/package.json proto/package.json
COPY agent/package.json agent/package.json
COPY control-plane/package.json control-plane/package.json
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# 3. The runtime: node, the compiled code, production node_modules; a dedicated unprivileged user.
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="warden-agent" \
      org.opencontainers.image.description="Warden agent: OIDC-authenticated, policy-enforcing PostgreSQL proxy for AI agents touching PHI" \
      org.opencontainers.image.source="https://github.com/warden-dev/warden"
ENV NODE_ENV=production
RUN groupadd --system --gid 10001 warden \
 && useradd --system --uid 10001 --gid warden --home-dir /var/lib/warden --shell /usr/sbin/nologin warden \
 && mkdir -p /var/lib/warden /etc/warden \
 && chown warden:warden /var/lib/warden && chmod 0700 /var/lib/warden
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/package.json ./package.json
COPY --from=deps /app/proto/package.json ./proto/package.json
COPY --from=deps /app/agent/package.json ./agent/package.json
COPY --from=deps /app/control-plane/package.json ./control-plane/package.json
COPY --from=build /src/dist ./dist
COPY --from=build /src/agent/native/build/Release/warden_relay.node ./agent/native/build/Release/warden_relay.node
USER 10001:10001
# 6432: PostgreSQL clients (TLS); 9090: /healthz, /readyz, /metrics (--ops 0.0.0.0:9090)
EXPOSE 6432 9090
VOLUME ["/var/lib/warden"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM: no new sessions, statements in flight finish (--shutdown-grace), the rest end with 57P01.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--single-threaded", "dist/agent/src/main.js"]
CMD ["--config", "/etc/warden/agent.yaml", "--ops", "0.0.0.0:9090"]

# syntax=docker/dockerfile:1.7
# The Warden control plane: config repository watcher, API, gRPC AgentService, audit log.
# The image also carries the `warden` CLI (warden audit verify, warden token, ...).
# Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t ghcr.io/warden-dev/warden-control-plane:0.1.0 .
# Run:
#   docker run -v ./control-plane.yaml:/etc/warden/control-plane.yaml:ro ghcr.io/warden-dev/warden-control-plane:0.1.0
ARG NODE_IMAGE=node:20-slim

# 1. Compile TypeScript (all dev dependencies, install scripts off: none is needed to compile).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY proto/package.json proto/package.json
COPY agent/package.json agent/package.json
COPY control-plane/package.json control-plane/package.json
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && chmod 0755 dist/control-plane/src/cli/warden.js

# 2. Production dependencies only, exactly as locked (the control plane verifies tokens and
#    resolves secrets with the agent's modules, so both workspaces' runtime dependencies are installed).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY proto/package.json proto/package.json
COPY agent/package.json agent/package.json
COPY control-plane/package.json control-plane/package.json
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# 3. The runtime: node, the compiled code, production node_modules; a dedicated unprivileged user.
FROM ${NODE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="warden-control-plane" \
      org.opencontainers.image.description="Warden control plane: GitOps policy bundles, agent distribution, audit hash chain" \
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
RUN ln -s /app/dist/control-plane/src/cli/warden.js /usr/local/bin/warden
USER 10001:10001
# 8080: API, /healthz, /readyz, /metrics; 7443: gRPC for agents
EXPOSE 8080 7443
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/control-plane/src/main.js"]
CMD ["--config", "/etc/warden/control-plane.yaml"]

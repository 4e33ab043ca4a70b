# Warden — every task a person or CI runs, in one place.
SHELL := /bin/bash
NPM ?= npm

.PHONY: install build test lint demo bench bench-audit bench-fleet bench-approvals bench-http-ssh proto images clean

install:            ## install dependencies exactly as locked
	$(NPM) ci

node_modules: package-lock.json
	$(NPM) ci
	@touch node_modules

build: node_modules agent/native/build/Release/warden_relay.node ## compile TypeScript to dist/ and the native relay (agent/native)
	$(NPM) run build

# The native relay (C++, N-API): npm ci builds it too (postinstall); this rebuilds it when its sources change.
agent/native/build/Release/warden_relay.node: agent/native/binding.gyp $(wildcard agent/native/src/*)
	$(NPM) run build:native

lint: node_modules  ## type-check everything in strict mode
	$(NPM) run lint

test: node_modules agent/native/build/Release/warden_relay.node ## the whole suite against the real PostgreSQL and Redis (see README for env vars)
	$(NPM) test

bench-approvals: build ## approval decision → first row at the held client; writes bench/out/approvals.{txt,html,json}
	node dist/bench/approvals.js

bench-fleet: build   ## git commit + signed webhook → 50 agents on the new version; writes bench/out/fleet.{txt,html,json}
	node dist/bench/fleet.js

bench-http-ssh: build ## HTTP and SSH engines vs direct (real upstream, real sshd); writes bench/out/http-ssh.json
	node dist/bench/http-ssh.js

proto: node_modules ## regenerate proto/gen from proto/warden/v1/*.proto
	$(NPM) run -w proto generate

demo: build         ## run an agent on embedded defaults with a local issuer and a scripted session
	node dist/deploy/demo/run.js

bench: build        ## pgbench direct vs agent vs pgbouncer vs bare Node pipe (interleaved rounds); writes bench/out/report.{txt,html}
	bash bench/ensure-tools.sh
	node dist/bench/run.js

IMAGE_PREFIX ?= ghcr.io/warden-dev
IMAGE_TAG ?= 0.1.0
images:             ## build the agent and control-plane images (needs a Docker engine; see deploy/)
	docker build -f deploy/docker/agent.Dockerfile -t $(IMAGE_PREFIX)/warden-agent:$(IMAGE_TAG) .
	docker build -f deploy/docker/control-plane.Dockerfile -t $(IMAGE_PREFIX)/warden-control-plane:$(IMAGE_TAG) .

bench-audit: build  ## the audit path alone: durable events/s agent → control plane, recording's added latency
	node dist/bench/audit.js

clean:
	rm -rf dist bench/out

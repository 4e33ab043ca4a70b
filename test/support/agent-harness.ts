/**
 * Starts a real agent in-process for tests, pointed at the real PostgreSQL
 * (or any target a test gives), with a real in-process OIDC issuer.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino, type Logger } from 'pino';
import type { AgentMetrics } from '../../agent/src/ops/metrics.js';
import { startAgent, type RunningAgent } from '../../agent/src/agent.js';
import { parseAgentConfig } from '../../agent/src/config/load.js';
import type { AgentConfig, PostgresListenerConfig, PostgresTargetConfig, RoleConfig, GroupMapping } from '../../agent/src/config/types.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';
import type { SessionEvent, SessionRecorder } from '../../agent/src/audit/events.js';
import { services } from './services.js';

export interface TestAgent {
  agent: RunningAgent;
  port: number;
  dir: string;
  config: AgentConfig;
  recordingFile: string;
  events(): Promise<SessionEvent[]>;
  stop(): Promise<void>;
}

export interface TestAgentOptions {
  issuer: string;
  audience?: string;
  target?: Partial<PostgresTargetConfig>;
  listener?: Partial<PostgresListenerConfig>;
  roles?: RoleConfig[];
  groupMappings?: GroupMapping[];
  classification?: unknown[];
  masking?: unknown[];
  /** A recorder of the test's choosing (e.g. one that writes to /dev/full). */
  recorder?: SessionRecorder;
  /** More targets beside the default one (for roles bound elsewhere). */
  extraTargets?: PostgresTargetConfig[];
  enforcement?: 'policy' | 'relay-only';
  /** Metrics the agent counts into (ops tests scrape them). */
  metrics?: AgentMetrics;
  /** A logger of the test's choosing (e.g. one whose output the test reads); default silent. */
  logger?: Logger;
  /** recording.sampleRows (result rows kept per statement); the agent's default when absent. */
  sampleRows?: number;
  /** Relay-only sessions through the native relay (the default) or the JavaScript one. */
  nativeRelay?: boolean;
}

/** Every statement kind: the default test role may do anything, but every statement is still parsed and decided. */
export const ALL_KINDS = ['select', 'insert', 'update', 'delete', 'merge', 'ddl', 'truncate', 'copy-out', 'copy-in', 'dcl', 'transaction', 'session', 'explain', 'call', 'maintenance', 'other'];

export const TARGET_NAME = 'clinical';
export const TEST_GROUP = 'warden-testers';

/**
 * WARDEN_TEST_ENFORCEMENT=relay-only runs a suite's agents without policy, so that its sessions go
 * through the native relay (the `native-relay` project in vitest.config.ts).
 */
function defaultEnforcement(): 'policy' | 'relay-only' | undefined {
  const e = process.env.WARDEN_TEST_ENFORCEMENT;
  if (e === undefined || e === '') return undefined;
  if (e !== 'policy' && e !== 'relay-only') throw new Error(`WARDEN_TEST_ENFORCEMENT must be policy or relay-only, not ${e}`);
  return e;
}

/** The single-file config a test agent runs with (also written to disk for agent child processes). */
export function testAgentConfig(opts: TestAgentOptions, recordingPath: string): AgentConfig {
  return {
    agent: { id: 'agent-test' },
    listeners: [
      { name: 'pg', protocol: 'postgres', address: '127.0.0.1', port: 0, target: TARGET_NAME, allowPlaintext: true, ...opts.listener },
    ],
    targets: [
      {
        name: TARGET_NAME,
        kind: 'postgres',
        host: services.postgres.host,
        port: services.postgres.port,
        database: services.postgres.database,
        user: services.postgres.user,
        ...opts.target,
      },
      ...(opts.extraTargets ?? []),
    ],
    identity: {
      issuers: [{ issuer: opts.issuer, audience: opts.audience ?? 'warden' }],
      groupMappings: opts.groupMappings ?? [{ group: TEST_GROUP, role: 'tester' }],
    },
    roles: opts.roles ?? [{ name: 'tester', targets: [TARGET_NAME], statementKinds: ALL_KINDS, defaultAction: 'allow', tables: [] }],
    ...(opts.classification ? { classification: opts.classification } : {}),
    ...(opts.masking ? { masking: opts.masking } : {}),
    ...((opts.enforcement ?? defaultEnforcement()) ? { enforcement: opts.enforcement ?? defaultEnforcement()! } : {}),
    recording: { kind: 'jsonl', path: recordingPath, ...(opts.sampleRows !== undefined ? { sampleRows: opts.sampleRows } : {}) },
  };
}

export async function startTestAgent(opts: TestAgentOptions): Promise<TestAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-agent-'));
  const config = testAgentConfig(opts, path.join(dir, 'sessions.jsonl'));
  // Round-trip through the real validator so tests exercise the same checks as the CLI.
  const checked = parseAgentConfig(JSON.stringify(config), 'test-config');
  const agent = await startAgent(checked, {
    baseDir: dir,
    logger: opts.logger ?? pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' }),
    ...(opts.recorder ? { recorder: opts.recorder } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.nativeRelay !== undefined ? { nativeRelay: opts.nativeRelay } : {}),
  });
  const recordingFile = path.join(dir, 'sessions.jsonl');
  return {
    agent,
    port: agent.addresses.get('pg')!.port,
    dir,
    config: checked,
    recordingFile,
    async events() {
      await agent.recorder.flush();
      return readJsonl(recordingFile);
    },
    async stop() {
      const relayOnly = checked.enforcement === 'relay-only' && opts.nativeRelay !== false && !opts.recorder;
      await agent.stop();
      // A suite run for the native relay must really have gone through it.
      if (relayOnly && agent.nativeSessions === 0 && fs.existsSync(recordingFile) && fs.readFileSync(recordingFile, 'utf8').includes('"session.start"')) {
        throw new Error('relay-only sessions were not carried by the native relay (is agent/native built? `make build`)');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A node-postgres client through the agent, the token as its password. */
export async function connectThroughAgent(port: number, token: string, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'ai-agent',
    database: TARGET_NAME,
    password: token,
    ...extra,
  });
  await client.connect();
  return client;
}

/** A direct client to the real PostgreSQL, for setup and for checking what the upstream saw. */
export async function directClient(): Promise<pg.Client> {
  const client = new pg.Client({ ...services.postgres });
  await client.connect();
  return client;
}

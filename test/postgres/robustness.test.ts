/**
 * Bad input and bad luck end one session cleanly and never the agent:
 * malformed startup and protocol frames, a client that leaves mid-query,
 * an upstream that dies, and a slow reader of a huge result (memory stays
 * flat because results stream with backpressure).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { waitForPort } from '../support/processes.js';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, directClient, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { RawPg, serialize } from '../support/raw-pg.js';

let issuer: TestIssuer;
let agent: TestAgent;
let token: string;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  agent = await startTestAgent({ issuer: issuer.issuer });
  token = await issuer.sign({ groups: [TEST_GROUP] });
});

afterAll(async () => {
  await agent?.stop();
  await issuer?.close();
});

function rawSend(port: number, bytes: Buffer, endAfter = false): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port }, () => (endAfter ? s.end(bytes) : s.write(bytes)));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('error', () => undefined);
    setTimeout(() => s.destroy(), 3000);
  });
}

async function stillServes(): Promise<void> {
  const c = await connectThroughAgent(agent.port, token);
  expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
  await c.end();
}

function startupWith(length: number, code: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(length, 0);
  b.writeInt32BE(code, 4);
  return b;
}

describe('malformed startup packets', () => {
  const cases: Array<[string, Buffer, boolean]> = [
    ['absurd length', startupWith(0x7fffffff, 196608), false],
    ['negative length', startupWith(-5, 196608), false],
    ['too short', startupWith(4, 196608), false],
    ['protocol 2.0', Buffer.concat([startupWith(9, 0x00020000), Buffer.from([0])]), false],
    ['unterminated parameters', Buffer.concat([startupWith(13, 196608), Buffer.from('user\0')]), false],
    ['truncated then closed', startupWith(100, 196608), true],
    ['random bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), false],
  ];
  for (const [name, bytes, endAfter] of cases) {
    it(`survives ${name}`, async () => {
      const reply = await rawSend(agent.port, bytes, endAfter);
      if (reply.length > 0) expect(String.fromCharCode(reply[0]!)).toBe('E');
      await stillServes();
    });
  }
});

describe('malformed frames after login', () => {
  it('refuses an unknown message type with 08P01 and ends only that session', async () => {
    const raw = await RawPg.login(agent.port, token);
    raw.send(Buffer.from([0x7a, 0, 0, 0, 4])); // 'z'
    const err = await raw.waitFor((m) => m.name === 'error');
    expect(err.code).toBe('08P01');
    expect(await raw.closedWithin(3000)).toBe(true);
    await stillServes();
  });

  it('refuses an absurd frame length', async () => {
    const raw = await RawPg.login(agent.port, token);
    const q = Buffer.alloc(5);
    q[0] = 0x51;
    q.writeInt32BE(0x7ffffff0, 1);
    raw.send(q);
    const err = await raw.waitFor((m) => m.name === 'error');
    expect(err.code).toBe('08P01');
    expect(String(err.message)).toMatch(/exceeds/);
    await stillServes();
  });

  it('refuses a frame length below the header size', async () => {
    const raw = await RawPg.login(agent.port, token);
    raw.send(Buffer.from([0x51, 0, 0, 0, 2]));
    expect((await raw.waitFor((m) => m.name === 'error')).code).toBe('08P01');
    await stillServes();
  });

  it('refuses a password message of the wrong type during login', async () => {
    const raw = await RawPg.connect(agent.port);
    raw.send(serialize.startup({ user: 'x', database: 'clinical' }));
    await raw.waitFor((m) => m.name === 'authenticationCleartextPassword');
    raw.send(serialize.query('SELECT 1'));
    expect((await raw.waitFor((m) => m.name === 'error')).code).toBe('08P01');
    await stillServes();
  });
});

describe('sessions that end badly', () => {
  it('a client leaving mid-query has its upstream query cancelled and the session recorded', async () => {
    const c = await connectThroughAgent(agent.port, token, { application_name: 'leaver' });
    c.on('error', () => undefined); // the test kills this client's socket on purpose
    void c.query('SELECT pg_sleep(60) /* leaver */').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    const d = await directClient();
    let running = 1;
    for (let i = 0; i < 50 && running > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      running = (await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* leaver */%' AND state = 'active' AND pid <> pg_backend_pid()")).rows[0].n;
    }
    await d.end();
    expect(running).toBe(0);
    const events = await agent.events();
    const start = events.find((e) => e.type === 'session.start' && e.applicationName === 'leaver')!;
    expect(events.find((e) => e.type === 'session.end' && e.sessionId === start.sessionId)).toMatchObject({ reason: 'client_disconnect' });
    await stillServes();
  });

  it('an upstream that dies ends the session with a clear error and is recorded', async () => {
    const c = await connectThroughAgent(agent.port, token, { application_name: 'victim' });
    const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const errored = new Promise<{ code?: string }>((resolve) => c.on('error', (e) => resolve(e as { code?: string })));
    const d = await directClient();
    await d.query('SELECT pg_terminate_backend($1)', [pid]);
    await d.end();
    const err = await errored;
    expect(['57P01', '08006']).toContain(err.code);
    await new Promise((r) => setTimeout(r, 200));
    const events = await agent.events();
    const start = events.find((e) => e.type === 'session.start' && e.applicationName === 'victim')!;
    expect(events.find((e) => e.type === 'session.end' && e.sessionId === start.sessionId)).toMatchObject({ reason: 'upstream_closed' });
    await stillServes();
  });
});

describe('streaming and backpressure', () => {
  let child: ChildProcess;
  let port = 0;

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(agent.dir, 'child-'));
    const config = { ...agent.config, listeners: [{ ...agent.config.listeners[0]!, port: 0 }], recording: { kind: 'jsonl', path: path.join(dir, 's.jsonl') } };
    // A fixed free port for the child: bind 0, read it, release it.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    config.listeners[0]!.port = port;
    fs.writeFileSync(path.join(dir, 'agent.yaml'), stringify(config));
    child = spawn(process.execPath, ['--import', 'tsx', 'agent/src/main.ts', '--config', path.join(dir, 'agent.yaml')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, WARDEN_LOG_LEVEL: 'warn' },
    });
    await waitForPort(port, child, 'agent child', 10_000);
  }, 30_000);

  afterAll(() => {
    child?.kill('SIGTERM');
  });

  function rssKb(): number {
    const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
  }

  it('streams a 400 MB result to a slow reader without growing the agent', async () => {
    const raw = await RawPg.login(port, token);
    const baseline = rssKb();
    // 400,000 rows of 1 KB; the client stops reading for a while mid-stream.
    raw.send(serialize.query("SELECT g, repeat('x', 1000) FROM generate_series(1, 400000) g"));
    let peak = baseline;
    // From here on the test reads raw bytes itself and only looks for the closing tag.
    raw.socket.removeAllListeners('data');
    raw.socket.pause();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rssKb());
    }
    raw.socket.resume();
    const done = new Promise<string>((resolve) => {
      let tail = Buffer.alloc(0);
      raw.socket.on('data', (chunk: Buffer) => {
        tail = Buffer.concat([tail.subarray(-64), chunk]).subarray(-128);
        const s = tail.toString('latin1');
        const m = /SELECT (\d+)\0/.exec(s);
        if (m && s.endsWith('Z\0\0\0\x05I')) resolve(m[1]!);
      });
    });
    const timer = setInterval(() => (peak = Math.max(peak, rssKb())), 50);
    const tag = await done;
    clearInterval(timer);
    expect(tag).toBe('400000');
    // Flat memory: the agent holds socket buffers, not the result. This process also hosts the
    // client, whose 400 MB of read chunks are freed on V8's schedule (seen up to ~68 MiB of
    // transient growth when the suite runs in parallel); an agent that buffered would add 400 MB.
    expect(peak - baseline).toBeLessThan(96 * 1024);
    raw.end();
  }, 120_000);
});

describe('a recorder that cannot write (disk full)', () => {
  it('refuses statements, then new sessions: nothing runs unrecorded', async () => {
    const { JsonlRecorder } = await import('../../agent/src/audit/jsonl-recorder.js');
    const full = await startTestAgent({ issuer: issuer.issuer, recorder: new JsonlRecorder('/dev/full') });
    try {
      const c = await connectThroughAgent(full.port, token);
      c.on('error', () => undefined);
      // The session start is written within a few milliseconds and fails with ENOSPC.
      await new Promise((r) => setTimeout(r, 150));
      await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/cannot be recorded/) });
      await c.end().catch(() => undefined);
      await expect(connectThroughAgent(full.port, token)).rejects.toMatchObject({ code: '57P03' });
    } finally {
      await full.agent.stop().catch(() => undefined);
    }
  });
});

describe('a recorder that stops working mid-session', () => {
  it('refuses even a statement prepared while it worked: nothing runs unrecorded', async () => {
    const { JsonlRecorder } = await import('../../agent/src/audit/jsonl-recorder.js');
    const table = `unrecorded_${process.pid}`;
    const d = await directClient();
    await d.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int)`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-unrecorded-'));
    const inner = new JsonlRecorder(path.join(dir, 'sessions.jsonl'));
    // A recorder whose health the test switches off, as a full disk would.
    let up = true;
    const recorder = {
      record: (e: Parameters<typeof inner.record>[0]) => (up ? inner.record(e) : undefined),
      flush: () => inner.flush(),
      close: () => inner.close(),
      get healthy() {
        return up;
      },
    };
    const a = await startTestAgent({ issuer: issuer.issuer, recorder });
    try {
      const c = await connectThroughAgent(a.port, token);
      c.on('error', () => undefined);
      const insert = { name: 'insert_one', text: `INSERT INTO ${table} VALUES ($1)` };
      await c.query({ ...insert, values: [1] });
      up = false;
      // The native relay reads the recorder's health every 20 ms.
      await new Promise((r) => setTimeout(r, 100));
      const refused = { message: expect.stringMatching(/cannot be recorded|recording unavailable/) };
      await expect(c.query({ ...insert, values: [2] })).rejects.toMatchObject(refused);
      await expect(c.query(`INSERT INTO ${table} VALUES (3)`)).rejects.toMatchObject(refused);
      expect((await d.query(`SELECT id FROM ${table} ORDER BY id`)).rows).toEqual([{ id: 1 }]);
      await c.end().catch(() => undefined);
    } finally {
      await a.agent.stop();
      await inner.close();
      await d.query(`DROP TABLE IF EXISTS ${table}`);
      await d.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

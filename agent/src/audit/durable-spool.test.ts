import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../../../proto/src/index.js';
import { DurableSpool } from './durable-spool.js';
import type { SessionEvent } from './events.js';

const stmt = (sessionId: string, i: number): SessionEvent => ({
  type: 'statement', sessionId, seq: i, at: new Date(0).toISOString(), protocol: 'simple', text: `SELECT ${i}`, rows: 1, durationMs: 0.1, decision: 'allow',
});

const dir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'warden-spool-'));

describe('durable audit spool', () => {
  it('keeps every unacknowledged event across a restart, in order, and forgets acknowledged ones', async () => {
    const d = dir();
    const a = new DurableSpool({ dir: d });
    for (let i = 1; i <= 5; i++) a.record(stmt('s1', i));
    for (let i = 1; i <= 3; i++) a.record(stmt('s2', i));
    await a.flush();
    a.ack('s1', 2);
    await a.close();

    const b = new DurableSpool({ dir: d });
    expect(b.pending().map((e) => `${e.sessionId}:${e.seq}`)).toEqual(['s1:3', 's1:4', 's1:5', 's2:1', 's2:2', 's2:3']);
    b.ack('s1', 5);
    b.ack('s2', 3);
    expect(b.pending()).toEqual([]);
    // Fully acknowledged: the files start afresh.
    expect(fs.statSync(path.join(d, 'spool.bin')).size).toBe(0);
    await b.close();
  });

  it('survives a torn last frame from a crash mid-write, and appends after it cleanly', async () => {
    const d = dir();
    const a = new DurableSpool({ dir: d });
    a.record(stmt('s1', 1));
    a.record(stmt('s1', 2));
    await a.close();
    const file = path.join(d, 'spool.bin');
    fs.truncateSync(file, fs.statSync(file).size - 5); // the second frame lost its last bytes
    const b = new DurableSpool({ dir: d });
    expect(b.pending().map((e) => e.seq)).toEqual([1]);
    b.record(stmt('s1', 2));
    await b.close();
    const c = new DurableSpool({ dir: d });
    expect(c.pending().map((e) => e.seq)).toEqual([1, 2]);
    await c.close();
  });

  it('refuses to start on a frame damaged before the end, rather than forget what follows it', async () => {
    const d = dir();
    const a = new DurableSpool({ dir: d });
    for (let i = 1; i <= 3; i++) a.record(stmt('s1', i));
    await a.close();
    const file = path.join(d, 'spool.bin');
    const bytes = fs.readFileSync(file);
    bytes[30] = bytes[30]! ^ 0xff; // inside the first event
    fs.writeFileSync(file, bytes);
    expect(() => new DurableSpool({ dir: d })).toThrow(/damaged at byte 0/);
  });

  it('spools each event encoded as the AuditEvent the control plane receives, stamped with the bundle version', async () => {
    const d = dir();
    const s = new DurableSpool({ dir: d, bundleVersion: () => 'bundle-7' });
    s.record({ type: 'session.start', sessionId: 's9', at: new Date(0).toISOString(), agentId: 'a', listener: 'pg', target: 'db', clientAddress: '127.0.0.1:5', identity: { subject: 'u', issuer: 'i', groups: [] }, role: 'r', tls: false });
    s.record(stmt('s9', 2));
    await s.flush();
    const [start, statement] = s.pending().map((e) => fromBinary(AuditEventSchema, e.bytes));
    expect(start).toMatchObject({ sessionId: 's9', sequence: 1n, kind: { case: 'sessionStart', value: { bundleVersion: 'bundle-7', role: 'r' } } });
    expect(statement).toMatchObject({ sessionId: 's9', sequence: 2n, kind: { case: 'statement', value: { text: 'SELECT 2' } } });
    await s.close();
  });

  it('takes over the unacknowledged events of an older agent\'s JSON-lines spool, once', async () => {
    const d = dir();
    const line = (seq: number): string => JSON.stringify({ sessionId: 's1', seq, event: stmt('s1', seq) }) + '\n';
    fs.writeFileSync(path.join(d, 'spool.jsonl'), line(1) + line(2) + line(3));
    fs.writeFileSync(path.join(d, 'acks.jsonl'), JSON.stringify({ sid: 's1', upTo: 1 }) + '\n');
    const a = new DurableSpool({ dir: d });
    expect(a.pending().map((e) => e.seq)).toEqual([2, 3]);
    expect(fs.existsSync(path.join(d, 'spool.jsonl'))).toBe(false);
    a.record(stmt('s1', 4));
    await a.close();
    const b = new DurableSpool({ dir: d });
    expect(b.pending().map((e) => fromBinary(AuditEventSchema, e.bytes).kind.value)).toMatchObject([{ text: 'SELECT 2' }, { text: 'SELECT 3' }, { text: 'SELECT 4' }]);
    await b.close();
  });

  it('reports events as durable only after they are written and fsync\'d', async () => {
    const d = dir();
    const seen: number[] = [];
    const s = new DurableSpool({ dir: d, onDurable: (evs) => seen.push(...evs.map((e) => e.seq)) });
    s.record(stmt('s1', 1));
    s.record(stmt('s1', 2));
    expect(seen).toEqual([]);
    await s.flush();
    expect(seen).toEqual([1, 2]);
    expect(new DurableSpool({ dir: d }).pending().map((e) => e.seq)).toEqual([1, 2]);
    await s.close();
  });

  it('turns unhealthy past its limit (control plane away too long) and on a disk that is full', async () => {
    const s = new DurableSpool({ dir: dir(), limitBytes: 1_000 });
    expect(s.healthy).toBe(true);
    for (let i = 1; i <= 40; i++) s.record(stmt('s1', i));
    await s.flush();
    expect(s.healthy).toBe(false);
    s.ack('s1', 40);
    expect(s.healthy).toBe(true);
    await s.close();

    const d = dir();
    fs.symlinkSync('/dev/full', path.join(d, 'spool.bin'));
    const full = new DurableSpool({ dir: d });
    full.record(stmt('s1', 1));
    await expect(full.flush()).rejects.toThrow(/ENOSPC/);
    expect(full.healthy).toBe(false);
  });
});

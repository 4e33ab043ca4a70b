import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
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
    expect(fs.statSync(path.join(d, 'spool.jsonl')).size).toBe(0);
    await b.close();
  });

  it('survives a torn last line from a crash mid-write', async () => {
    const d = dir();
    const a = new DurableSpool({ dir: d });
    a.record(stmt('s1', 1));
    await a.close();
    fs.appendFileSync(path.join(d, 'spool.jsonl'), '{"sessionId":"s1","seq":2,"ev');
    const b = new DurableSpool({ dir: d });
    expect(b.pending().map((e) => e.seq)).toEqual([1]);
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
    expect(fs.readFileSync(path.join(d, 'spool.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    await s.close();
  });

  it('turns unhealthy past its limit (control plane away too long) and on a disk that is full', async () => {
    const s = new DurableSpool({ dir: dir(), limitBytes: 2_000 });
    expect(s.healthy).toBe(true);
    for (let i = 1; i <= 40; i++) s.record(stmt('s1', i));
    await s.flush();
    expect(s.healthy).toBe(false);
    s.ack('s1', 40);
    expect(s.healthy).toBe(true);
    await s.close();

    const d = dir();
    fs.symlinkSync('/dev/full', path.join(d, 'spool.jsonl'));
    const full = new DurableSpool({ dir: d });
    full.record(stmt('s1', 1));
    await expect(full.flush()).rejects.toThrow(/ENOSPC/);
    expect(full.healthy).toBe(false);
  });
});

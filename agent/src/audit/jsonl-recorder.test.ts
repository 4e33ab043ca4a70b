import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JsonlRecorder, readJsonl } from './jsonl-recorder.js';
import type { SessionEvent } from './events.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-jsonl-'));
  dirs.push(dir);
  return path.join(dir, 'sessions.jsonl');
}

function statement(seq: number, text: string): SessionEvent {
  return { type: 'statement', sessionId: 's1', seq, at: '2026-12-04T10:00:00.000Z', protocol: 'simple', text, rows: 1, durationMs: 0.1, decision: 'allow' } as SessionEvent;
}

describe('JsonlRecorder', () => {
  it('keeps every event, in order, across batch buffers, multi-byte text and a line larger than a batch', async () => {
    const file = tempFile();
    const rec = new JsonlRecorder(file);
    const events: SessionEvent[] = [];
    for (let i = 1; i <= 3000; i++) {
      // ~1 KiB lines: several batches fill within one turn, so a buffer still being written would be overwritten.
      const text = i === 1500 ? `SELECT '${'ü'.repeat(200_000)}'` : `SELECT * FROM patients WHERE note = 'Zoë №${i} — 患者 ${'x'.repeat(1000)}'`;
      const e = statement(i, text);
      events.push(e);
      rec.record(e);
      // Let some batches reach the disk while others fill, so buffers are reused.
      if (i % 700 === 0) await new Promise((r) => setTimeout(r, 30));
    }
    await rec.flush();
    expect(readJsonl(file)).toEqual(events);
    await rec.close();
    const bytes = fs.readFileSync(file);
    expect(bytes[bytes.length - 1]).toBe(0x0a);
  });

  it('appends statement lines written elsewhere (the native relay) in order with the events it encodes, a line larger than a batch included', async () => {
    const file = tempFile();
    const rec = new JsonlRecorder(file);
    const events: SessionEvent[] = [];
    for (let i = 1; i <= 2000; i++) {
      const e = statement(i, i === 1000 ? `SELECT '${'é'.repeat(300_000)}'` : `SELECT ${i}, '${'y'.repeat(500)}'`);
      events.push(e);
      // Every other event arrives as its line, as the relay would hand it over.
      if (i % 2 === 0) rec.recordStatementLine(Buffer.from(JSON.stringify(e)));
      else rec.record(e);
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 30));
    }
    await rec.flush();
    expect(readJsonl(file)).toEqual(events);
    await rec.close();
  });

  it('reports a write failure and records nothing after it', async () => {
    const rec = new JsonlRecorder('/dev/full');
    rec.record(statement(1, 'SELECT 1'));
    await expect(rec.flush()).rejects.toThrow(/ENOSPC|no space/i);
    expect(rec.healthy).toBe(false);
  });
});

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FrameScanner, type FrameVerdict } from './frame-scanner.js';

function frame(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

function inspectTable(types: string): Uint8Array {
  const t = new Uint8Array(256);
  for (const c of types) t[c.charCodeAt(0)] = 1;
  return t;
}

/** Feeds `input` split at random points; returns output bytes and the frames seen. */
function run(
  input: Buffer,
  opts: { inspect?: string; verdict?: (type: number, f: Buffer) => FrameVerdict; maxFrame?: number; seed?: number } = {},
) {
  const out: Buffer[] = [];
  const seen: string[] = [];
  const streamed: number[] = [];
  let error: string | null = null;
  const scanner = new FrameScanner({
    inspect: inspectTable(opts.inspect ?? 'CZ'),
    maxFrameBytes: opts.maxFrame ?? 1 << 20,
    onFrame: (type, f) => {
      seen.push(String.fromCharCode(type) + f.subarray(5).toString());
      return opts.verdict?.(type, f);
    },
    onStreamed: (type) => streamed.push(type),
    emit: (b) => out.push(Buffer.from(b)),
    onProtocolError: (m) => (error = m),
  });
  let pos = 0;
  while (pos < input.length) {
    const n = 1 + Math.floor(Math.random() * 23);
    scanner.push(input.subarray(pos, pos + n));
    pos += n;
  }
  return { out: Buffer.concat(out), seen, streamed, error, scanner };
}

describe('FrameScanner', () => {
  const stream = Buffer.concat([
    frame('T', 'rowdesc'),
    frame('D', randomBytes(3000)),
    frame('D', ''),
    frame('C', 'SELECT 2\0'),
    frame('Z', 'I'),
  ]);

  it('passes bytes through unchanged however the input is split', () => {
    for (let i = 0; i < 200; i++) {
      const r = run(stream);
      expect(r.out.equals(stream)).toBe(true);
      expect(r.seen).toEqual(['CSELECT 2\0', 'ZI']);
      expect(r.streamed).toEqual([0x54, 0x44, 0x44]);
      expect(r.error).toBeNull();
      expect(r.scanner.atBoundary).toBe(true);
    }
  });

  it('replaces and drops inspected frames in place', () => {
    const r = run(stream, {
      verdict: (type) => (type === 0x43 ? frame('C', 'SELECT 0\0') : type === 0x5a ? null : undefined),
    });
    const expected = Buffer.concat([stream.subarray(0, stream.length - 6 - 14), frame('C', 'SELECT 0\0')]);
    expect(r.out.equals(expected)).toBe(true);
  });

  it('stalls on an asynchronous verdict and resumes in order', async () => {
    const out: Buffer[] = [];
    let release!: () => void;
    const scanner = new FrameScanner({
      inspect: inspectTable('Q'),
      maxFrameBytes: 1024,
      onFrame: (_t, f) => (f.subarray(5).toString() === 'hold\0' ? new Promise<FrameVerdict>((r) => (release = () => r(undefined))) : undefined),
      emit: (b) => out.push(Buffer.from(b)),
      onProtocolError: () => undefined,
    });
    const a = frame('Q', 'first\0');
    const b = frame('Q', 'hold\0');
    const c = frame('Q', 'after\0');
    scanner.push(Buffer.concat([a, b]));
    scanner.push(c);
    expect(scanner.isStalled).toBe(true);
    expect(Buffer.concat(out).equals(a)).toBe(true);
    release();
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).equals(Buffer.concat([a, b, c]))).toBe(true);
    expect(scanner.isStalled).toBe(false);
  });

  it('rejects lengths below four and above the limit', () => {
    expect(run(Buffer.from([0x43, 0, 0, 0, 3])).error).toMatch(/invalid message length/);
    expect(run(frame('C', Buffer.alloc(2000)), { maxFrame: 1000 }).error).toMatch(/exceeds/);
  });

  it('streams large uninspected frames without holding them', () => {
    const big = frame('D', randomBytes(5 << 20));
    const r = run(Buffer.concat([big, frame('Z', 'I')]), { maxFrame: 1024 });
    expect(r.error).toBeNull();
    expect(r.out.length).toBe(big.length + 6);
  });
});

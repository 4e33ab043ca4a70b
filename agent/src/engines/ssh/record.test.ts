import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '../../audit/events.js';
import { castOf, replayCast, TerminalRecorder } from './record.js';

describe('asciicast v2 terminal recording', () => {
  it('keeps characters split across packets whole, orders events, and replays to the same bytes', () => {
    const events: SessionEvent[] = [];
    const rec = new TerminalRecorder('s1', 2, { width: 100, height: 30, term: 'xterm', command: 'cat' }, (e) => events.push(e), true);
    const text = 'naïve café — 患者 ✓\r\n';
    const bytes = Buffer.from(text);
    // Every byte its own packet: multi-byte characters arrive in pieces.
    for (let i = 0; i < bytes.length; i++) rec.output(bytes.subarray(i, i + 1));
    rec.input(Buffer.from('q'));
    rec.resize(120, 40);
    rec.close();
    expect(events.every((e) => e.type === 'terminal' && e.channel === 2)).toBe(true);
    const cast = castOf(events, 's1', 2);
    const replay = replayCast(cast);
    expect(replay.header).toMatchObject({ version: 2, width: 100, height: 30, command: 'cat', env: { TERM: 'xterm' } });
    expect(replay.output).toBe(text);
    expect(replay.input).toBe('q');
    expect(replay.resizes).toEqual(['120x40']);
    for (const line of cast.trimEnd().split('\n').slice(1)) {
      const [t, kind, data] = JSON.parse(line) as [number, string, string];
      expect(typeof t).toBe('number');
      expect(['o', 'i', 'r']).toContain(kind);
      expect(data).not.toContain('\uFFFD');
    }
    expect(castOf(events, 's1', 1)).toBe('');
  });

  it('keeps no keystrokes unless asked to (a password typed with echo off is a secret)', () => {
    const events: SessionEvent[] = [];
    const rec = new TerminalRecorder('s3', 0, { width: 80, height: 24 }, (e) => events.push(e));
    rec.output(Buffer.from('[sudo] password: '));
    rec.input(Buffer.from('hunter2\r'));
    rec.close();
    const replay = replayCast(castOf(events, 's3', 0));
    expect(replay.output).toBe('[sudo] password: ');
    expect(replay.input).toBe('');
    expect(JSON.stringify(events)).not.toContain('hunter2');
  });

  it('writes chunks while the session runs, not only at its end', () => {
    const events: SessionEvent[] = [];
    const rec = new TerminalRecorder('s2', 1, { width: 80, height: 24 }, (e) => events.push(e));
    const block = Buffer.alloc(8 * 1024, 'x');
    for (let i = 0; i < 5; i++) rec.output(block);
    expect(events.length).toBeGreaterThanOrEqual(1); // 40 KiB passed the 32 KiB threshold before close
    rec.close();
    expect(replayCast(castOf(events, 's2', 1)).output).toBe('x'.repeat(40 * 1024));
  });
});

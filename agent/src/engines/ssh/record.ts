/**
 * Record for SSH: each channel's terminal stream as asciicast v2 — a header
 * line, then one `[seconds, "o" | "i" | "r", data]` line per event — cut
 * into `terminal` session events (at most every FLUSH_MS or FLUSH_BYTES), so
 * the stream reaches the audit trail while the session runs, not only at
 * its end. Concatenating a channel's chunks in sequence order gives a .cast
 * file any asciinema player replays (castOf below does exactly that).
 *
 * Input ("i") is not recorded by default: what a person types with echo off
 * is a password (sudo, a database prompt), and Warden never keeps secrets.
 * What was typed with echo on is in the output anyway. `recordInput` turns
 * keystroke capture on for deployments that need it.
 */
import type { SessionEvent } from '../../audit/events.js';
import { isoNow } from '../../audit/iso-time.js';

const FLUSH_MS = 200;
const FLUSH_BYTES = 32 * 1024;

export interface CastHeader {
  width: number;
  height: number;
  term?: string;
  command?: string;
}

export class TerminalRecorder {
  private readonly started = performance.now();
  private lines: string[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly decoders = { o: new TextDecoder('utf-8'), i: new TextDecoder('utf-8') };

  constructor(
    private readonly sessionId: string,
    private readonly channel: number,
    header: CastHeader,
    private readonly emit: (event: SessionEvent) => void,
    private readonly recordInput = false,
  ) {
    this.push(
      JSON.stringify({
        version: 2,
        width: header.width,
        height: header.height,
        timestamp: Math.floor(Date.now() / 1000),
        ...(header.command ? { command: header.command } : {}),
        ...(header.term ? { env: { TERM: header.term } } : {}),
      }),
    );
  }

  output(data: Buffer): void {
    this.event('o', data);
  }

  input(data: Buffer): void {
    if (this.recordInput) this.event('i', data);
  }

  resize(cols: number, rows: number): void {
    this.push(JSON.stringify([this.seconds(), 'r', `${cols}x${rows}`]));
  }

  /** Writes out whatever is pending (the channel closed). */
  close(): void {
    for (const kind of ['o', 'i'] as const) {
      const rest = this.decoders[kind].decode();
      if (rest) this.push(JSON.stringify([this.seconds(), kind, rest]));
    }
    this.flush();
  }

  private event(kind: 'o' | 'i', data: Buffer): void {
    // Streaming decode: a UTF-8 character split across two packets stays whole.
    const text = this.decoders[kind].decode(data, { stream: true });
    if (text) this.push(JSON.stringify([this.seconds(), kind, text]));
  }

  private seconds(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  private push(line: string): void {
    this.lines.push(line);
    this.bytes += line.length;
    if (this.bytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return;
    const asciicast = this.lines.join('\n') + '\n';
    this.lines = [];
    this.bytes = 0;
    this.emit({ type: 'terminal', sessionId: this.sessionId, at: isoNow(), channel: this.channel, asciicast });
  }
}

/** The .cast file of one channel of a session, from its recorded events (in recorded order). */
export function castOf(events: readonly SessionEvent[], sessionId: string, channel: number): string {
  return events
    .filter((e): e is Extract<SessionEvent, { type: 'terminal' }> => e.type === 'terminal' && e.sessionId === sessionId && e.channel === channel)
    .map((e) => e.asciicast)
    .join('');
}

/** Replays a .cast: the header and the concatenated data of each event kind. */
export function replayCast(cast: string): { header: Record<string, unknown>; output: string; input: string; resizes: string[] } {
  const [first, ...rest] = cast.split('\n').filter((l) => l.length > 0);
  const header = JSON.parse(first ?? '{}') as Record<string, unknown>;
  let output = '';
  let input = '';
  const resizes: string[] = [];
  for (const line of rest) {
    const [, kind, data] = JSON.parse(line) as [number, string, string];
    if (kind === 'o') output += data;
    else if (kind === 'i') input += data;
    else if (kind === 'r') resizes.push(data);
  }
  return { header, output, input, resizes };
}

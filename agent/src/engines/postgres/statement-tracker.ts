/**
 * Pairs what the client asked (Query, Parse/Bind/Execute, FunctionCall)
 * with what the server answered (CommandComplete, EmptyQueryResponse,
 * PortalSuspended, ErrorResponse, ReadyForQuery), so each statement is
 * recorded with its text, rows, tag and error even when the client
 * pipelines many of them.
 *
 * Ordering rules this relies on (PostgreSQL protocol v3):
 * - a Query gets zero or more completions/errors, then ReadyForQuery;
 * - each Execute gets exactly one completion, suspension or error; after an
 *   error the server discards messages up to the next Sync;
 * - each Sync gets exactly one ReadyForQuery.
 */
import { parseErrorFields } from './wire/backend-messages.js';

export interface StatementRecord {
  protocol: 'simple' | 'extended' | 'function-call';
  text: string;
  tag?: string;
  rows: number;
  error?: { code: string; message: string };
  durationMs: number;
}

interface Pending {
  kind: 'simple' | 'execute' | 'sync' | 'fcall';
  text: string;
  startedAt: number;
  /** A simple query whose error was already reported (later statements in it were skipped). */
  failed?: boolean;
}

function cstring(buf: Buffer, start: number): [string, number] {
  const end = buf.indexOf(0, start);
  if (end < 0) throw new Error('unterminated string in message');
  return [buf.toString('utf8', start, end), end + 1];
}

export class StatementTracker {
  private readonly preparedText = new Map<string, string>();
  private readonly portalText = new Map<string, string>();
  private readonly queue: Pending[] = [];
  private rows = 0;

  constructor(private readonly onStatement: (record: StatementRecord) => void) {}

  /** True while the server still owes answers: a client that leaves now leaves work running. */
  get busy(): boolean {
    return this.queue.length > 0;
  }

  /** Frontend frame (type byte included). Throws on a malformed body. */
  frontend(type: number, frame: Buffer): void {
    const now = performance.now();
    switch (type) {
      case 0x51: // Q
        this.queue.push({ kind: 'simple', text: cstring(frame, 5)[0], startedAt: now });
        return;
      case 0x50: { // P
        const [name, next] = cstring(frame, 5);
        this.preparedText.set(name, cstring(frame, next)[0]);
        return;
      }
      case 0x42: { // B
        const [portal, next] = cstring(frame, 5);
        const [statement] = cstring(frame, next);
        this.portalText.set(portal, this.preparedText.get(statement) ?? '');
        return;
      }
      case 0x45: { // E
        const [portal] = cstring(frame, 5);
        this.queue.push({ kind: 'execute', text: this.portalText.get(portal) ?? '', startedAt: now });
        return;
      }
      case 0x43: { // C (Close)
        const [name] = cstring(frame, 6);
        if (frame[5] === 0x53) this.preparedText.delete(name);
        else this.portalText.delete(name);
        return;
      }
      case 0x46: // F
        this.queue.push({ kind: 'fcall', text: '<function call>', startedAt: now });
        return;
      case 0x53: // S
        this.queue.push({ kind: 'sync', text: '', startedAt: now });
        return;
      default:
    }
  }

  dataRow(): void {
    this.rows++;
  }

  /** Backend frame among C, I, s, E, Z. */
  backend(type: number, frame: Buffer): void {
    switch (type) {
      case 0x43: // CommandComplete
        this.complete(cstring(frame, 5)[0]);
        return;
      case 0x49: // EmptyQueryResponse
        this.complete(undefined);
        return;
      case 0x73: // PortalSuspended: the Execute is answered; the portal lives on
        this.complete('SUSPENDED');
        return;
      case 0x45:
        this.error(frame);
        return;
      case 0x5a:
        this.ready();
        return;
      default:
    }
  }

  private head(): Pending | undefined {
    return this.queue[0];
  }

  private emit(p: Pending, tag: string | undefined, error?: StatementRecord['error']): void {
    const record: StatementRecord = {
      protocol: p.kind === 'simple' ? 'simple' : p.kind === 'fcall' ? 'function-call' : 'extended',
      text: p.text,
      rows: this.rows,
      durationMs: Math.round((performance.now() - p.startedAt) * 1000) / 1000,
    };
    if (tag !== undefined) record.tag = tag;
    if (error) record.error = error;
    this.rows = 0;
    this.onStatement(record);
  }

  private complete(tag: string | undefined): void {
    const p = this.head();
    if (!p || p.kind === 'sync') return;
    this.emit(p, tag);
    // A simple query may hold several statements; it ends at ReadyForQuery.
    if (p.kind === 'execute') this.queue.shift();
  }

  private error(frame: Buffer): void {
    const p = this.head();
    if (!p) return; // e.g. an error outside any statement: nothing to attribute
    const fields = parseErrorFields(frame.subarray(5));
    const error = { code: fields.C ?? 'XX000', message: fields.M ?? '' };
    if (p.kind === 'simple' || p.kind === 'fcall') {
      if (!p.failed) this.emit(p, undefined, error);
      p.failed = true;
      return;
    }
    if (p.kind === 'execute') this.emit(p, undefined, error);
    // The server skips everything up to the next Sync: those Executes will never be answered.
    while (this.queue.length > 0 && this.head()!.kind === 'execute') this.queue.shift();
  }

  private ready(): void {
    const p = this.queue.shift();
    if (p?.kind === 'execute') {
      // Should not happen; keep the queue aligned with the server's view anyway.
      while (this.queue.length > 0 && this.head()!.kind !== 'sync') this.queue.shift();
      this.queue.shift();
    }
  }
}

/**
 * The native relay's statement records as statement events. The relay
 * thread attributes every answer to its statement itself
 * (agent/native/src/relay_statements.cc, following inspect.ts, mask.ts and
 * result-capture.ts for sessions without a policy) and logs one record per
 * finished statement; what is left here is turning bytes into text, with
 * the same decoders the JavaScript relay uses (sample rows, bind parameters
 * in binary format), and the event's session fields.
 */
import type { RecordedSample, RecordedValue, StatementEvent } from '../../audit/events.js';
import { isoNow } from '../../audit/iso-time.js';
import { paramText } from './bind-params.js';
import type { StatementSession } from './mask.js';
import { decodeSampleRow, type SentColumn } from './result-capture.js';
import { parseRowDescription } from './result-masker.js';
import { formatOf } from './wire/frontend-messages.js';

/** relay_statements.h's protocol numbers and StatementFlags. */
const PROTOCOLS = ['simple', 'extended', 'function-call'] as const;
const TAG = 1, ERROR = 2, PARAMS = 4, DIGEST = 8, SAMPLE = 16, SAMPLE_TRUNCATED = 32, DESCRIPTION = 64, DESCRIPTION_REPEAT = 128, FORMATS = 256;

/** One session's statement records, in order. */
export class NativeStatementReader {
  private seq = 0;
  /** The RowDescription the relay last sent for this session, parsed (later records may refer to it). */
  private columns: SentColumn[] | undefined;
  private names: string[] = [];

  constructor(private readonly session: StatementSession) {}

  /** How many statements this session has recorded. */
  get statements(): number {
    return this.seq;
  }

  /** A statement the relay wrote as its JSON line itself: counted, so the next record's seq follows it. */
  wrote(): void {
    this.seq++;
  }

  /** A statement record (`at`: when its last answer passed, on the relay's clock) → its event. */
  read(at: number, p: Buffer): StatementEvent {
    const flags = p.readUInt16LE(1);
    const startedAt = p.readDoubleLE(3);
    let pos = 19;
    const text = (): string => {
      const length = p.readUInt32LE(pos);
      pos += 4 + length;
      return length === 0 ? '' : p.toString('utf8', pos - length, pos);
    };
    // The event whole, in the log's field order (as mask.ts makes it).
    const rec: StatementEvent = {
      type: 'statement',
      sessionId: this.session.id,
      seq: ++this.seq,
      at: isoNow(),
      protocol: PROTOCOLS[p[0]!] ?? 'extended',
      text: text(),
      rows: p.readDoubleLE(11),
      durationMs: Math.round((at - startedAt) * 1000) / 1000,
      decision: 'unchecked',
    };
    if (flags & TAG) rec.tag = text();
    if (flags & ERROR) rec.error = { code: text(), message: text() };
    if (flags & PARAMS) {
      const count = p.readUInt16LE(pos);
      pos += 2;
      const params: RecordedValue[] = [];
      for (let i = 0; i < count; i++) {
        const length = p.readInt32LE(pos);
        const format = p[pos + 4]!;
        const typeOid = p.readUInt32LE(pos + 5);
        pos += 9;
        if (length < 0) {
          params.push({ value: null });
          continue;
        }
        const end = pos + length;
        params.push({ value: format === 0 ? p.toString('utf8', pos, end) : paramText(p.subarray(pos, end), format, typeOid).toString('utf8') });
        pos = end;
      }
      rec.parameters = params;
    }
    if (flags & DIGEST) {
      rec.resultSha256 = p.toString('hex', pos, pos + 32);
      pos += 32;
    }
    if (flags & SAMPLE) rec.sample = this.sample(p, pos, flags);
    if (this.session.bundleVersion !== undefined) rec.bundleVersion = this.session.bundleVersion;
    return rec;
  }

  private sample(p: Buffer, start: number, flags: number): RecordedSample {
    let pos = start;
    if (flags & DESCRIPTION) {
      const length = p.readUInt32LE(pos);
      // Relay-only: nothing is masked, so the client sees each column as described.
      this.columns = parseRowDescription(p.subarray(pos + 4, pos + 4 + length)).map((f) => ({ name: f.name, typeOid: f.typeOid, format: f.format }));
      this.names = this.columns.map((c) => c.name);
      pos += 4 + length;
    }
    let columns = flags & (DESCRIPTION | DESCRIPTION_REPEAT) ? this.columns : undefined;
    if (flags & FORMATS) {
      // An Execute's result: the client asked for these formats (its statement's Describe did not know them).
      const formats: number[] = [];
      const n = p.readUInt16LE(pos);
      for (let i = 0; i < n; i++) formats.push(p.readInt16LE(pos + 2 + 2 * i));
      pos += 2 + 2 * n;
      columns = columns?.map((c, i) => ({ ...c, format: formatOf(formats, i) }));
    }
    const count = p.readUInt32LE(pos);
    pos += 4;
    const rows: Array<Array<string | null>> = [];
    for (let i = 0; i < count; i++) {
      const length = p.readUInt32LE(pos);
      rows.push(decodeSampleRow(p.subarray(pos + 4, pos + 4 + length), columns, []));
      pos += 4 + length;
    }
    return { columns: columns ? this.names : [], maskedColumns: [], rows, truncated: (flags & SAMPLE_TRUNCATED) !== 0 };
  }
}

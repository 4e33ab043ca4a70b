/**
 * Mask and record: the backend side of the inspection. Each answer from the
 * server is attributed to the pending request it answers (pending.ts):
 * RowDescriptions of masked results are re-described, DataRows masked and
 * capped at the role's row limit, the error for a refused statement is
 * replaced by the policy's message, and every finished statement is handed
 * to the recorder with its decision.
 */
import type { FrameVerdict } from './wire/frame-scanner.js';
import { backend } from './wire/backend-messages.js';
import { cstring, cstringFrame, formatOf } from './wire/frontend-messages.js';
import { parseErrorFields } from './wire/backend-messages.js';
import { parseRowDescription, rewriteRowDescription, RowMasker, type ColumnMask, type RowField } from './result-masker.js';
import type { Pending, PendingQueue } from './pending.js';
import type { StatementPlan } from '../../policy/decide.js';
import type { PreparedStatement } from './inspect.js';
import type { Masker } from '../../masking/index.js';
import { compileMasker } from '../../masking/index.js';
import type { StatementEvent } from '../../audit/events.js';
import { isoNow } from '../../audit/iso-time.js';
import { normalizeSql } from '../../sql/index.js';
import { rowLimitRule } from '../../policy/approval-rules.js';
import type { StatementHolds } from './hold.js';
import { ResultCapture, type SentColumn } from './result-capture.js';

/** What every statement event of a session carries besides the statement itself. */
export interface StatementSession {
  id: string;
  /** Policy bundle version (commit) in force for the session; absent when relaying without one. */
  bundleVersion: string | undefined;
}

/** Result-field facts the catalog knows (defence in depth beyond the statement analysis). */
export interface FieldPolicy {
  /** Masker for a column named by table OID + attribute number; 'deny' when the role may not see it. */
  field(tableOid: number, attnum: number): Masker | 'deny' | undefined;
  readonly maxRows: number;
  readonly truncate: boolean;
  /** When set, a result column whose masking cannot be decided is redacted, never passed through. */
  readonly restrictsPhi: boolean;
}

const D = 0x44;

/**
 * What the audit record keeps of a statement under a role with PHI
 * restrictions: its shape with every literal replaced by `?`. A client may
 * type PHI into a literal (WHERE ssn = '...'); the record must not keep it.
 */
function recordedText(text: string): string {
  try {
    return normalizeSql(text).key;
  } catch {
    return '<statement not recorded: it could not be read>';
  }
}
const REDACT = compileMasker({ kind: 'redact' });

/** The parameters of the Bind that follows a rejected Parse (`skipped[0]`), among the requests the server skipped with it. */
function bindAfter(skipped: Pending[]): Pending['params'] {
  for (let i = 1; i < skipped.length; i++) {
    const p = skipped[i]!;
    if (p.kind === 'parse') return undefined;
    if (p.kind === 'bind') return p.params;
  }
  return undefined;
}
/**
 * Whatever a data exception's message quotes, first quote to last (the server does not escape quotes
 * inside the value), and the bytes an encoding error lists.
 */
const QUOTED = /"[\s\S]*"/;
const LISTED_BYTES = /: 0x[0-9a-f]{2}( 0x[0-9a-f]{2})*$/;
const NO_MASKS: ReadonlyMap<number, ColumnMask> = new Map();

export class BackendMasker {
  private rows = 0;
  private rowMasker: RowMasker | null = null;
  private truncated = false;
  /** This result was let past the row limit by an approval. */
  private uncapped = false;
  private limitAsked = false;
  /** An approval to exceed the row limit was refused: the statement fails with this. */
  private limitRefusal: { message: string; code: string; ruleId: string } | undefined;
  /** The streamed frame now passing is a DataRow (its bytes go into the result hash). */
  private streamingRow = false;
  /** Statements recorded so far: the next one's sequence number, less one. */
  private seq = 0;
  /** The session's last RowDescription, its fields, and (made on first need) its columns unmasked. */
  private lastDescription: Buffer | null = null;
  private lastFields: RowField[] = [];
  private lastColumns: SentColumn[] | undefined;

  constructor(
    private readonly queue: PendingQueue,
    /** The backend scanner's inspect table: DataRows are inspected only while something must be done to them. */
    private readonly inspect: Uint8Array,
    private readonly policy: FieldPolicy | null,
    private readonly prepared: Map<string, PreparedStatement>,
    /** The session's fields, written into each statement event as it is made (no copy per statement). */
    private readonly session: StatementSession,
    private readonly onStatement: (e: StatementEvent) => void,
    /** Result hash and sample for the record; null when results are not recorded. */
    private readonly capture: ResultCapture | null = null,
    /** Asks for approval when a result reaches the row limit and a row-limit rule applies. */
    private readonly holds: StatementHolds | null = null,
  ) {}

  /** How many statements this session has recorded. */
  get statements(): number {
    return this.seq;
  }

  get busy(): boolean {
    return this.queue.size > 0;
  }

  /** A DataRow streamed through uninspected: count it, and start inspecting at the cap. */
  streamed(type: number): void {
    this.streamingRow = type === D;
    if (type !== D) return;
    this.rows++;
    this.capture?.streamedRow();
    const cap = this.policy?.maxRows ?? 0;
    if (cap > 0 && this.rows >= cap && !this.uncapped) this.inspect[D] = 1;
  }

  /** Bytes of a streamed frame on their way to the client: DataRows count towards the result hash. */
  streamedBytes(buf: Buffer, start: number, end: number): void {
    if (this.streamingRow) this.capture?.bytes(buf, start, end);
  }

  frame(type: number, frame: Buffer): FrameVerdict | Promise<FrameVerdict> {
    const head = this.queue.head;
    switch (type) {
      case D:
        return this.dataRow(frame);
      case 0x54: // RowDescription
        return this.rowDescription(head, frame);
      case 0x31: // ParseComplete
      case 0x32: // BindComplete
      case 0x33: // CloseComplete
      case 0x6e: // NoData
        this.advance();
        return undefined;
      case 0x74: // ParameterDescription: the RowDescription or NoData still follows
        return undefined;
      case 0x43: // CommandComplete
        return this.complete(head, cstring(frame, 5)[0], frame);
      case 0x49: // EmptyQueryResponse
        return this.complete(head, undefined, frame);
      case 0x73: // PortalSuspended
        return this.suspended(head, frame);
      case 0x45:
        return this.error(head, frame);
      case 0x5a:
        this.endResult();
        this.advance();
        return undefined;
      default:
        return undefined;
    }
  }

  private rowDescription(head: Pending | undefined, frame: Buffer): FrameVerdict {
    if (!head) return undefined;
    const fields = this.describe(frame);
    if (head.kind === 'describe') {
      this.advance();
      // An Execute's result has no RowDescription of its own: its statement's fields say how to mask
      // it and how the record names and reads its columns.
      const stmt = head.statementName !== undefined ? this.prepared.get(head.statementName) : undefined;
      if (stmt) stmt.fields = fields;
    }
    if (!this.policy) {
      // Relay-only: nothing to mask, only the bookkeeping of which request this answers.
      if (head.kind !== 'describe' && this.capture) this.startResult(NO_MASKS, fields);
      return undefined;
    }
    const plan = head.decision?.statements[head.kind === 'simple' ? head.stmtIndex : 0];
    const masks = this.buildMasks(head, plan, fields);
    if (head.kind === 'simple') this.startResult(masks, fields, plan?.sampleRedact);
    if (masks.size === 0) return undefined;
    return rewriteRowDescription(frame, new Set(masks.keys()));
  }

  /** Moves to the next pending request and prepares for its rows. */
  private advance(): void {
    this.queue.shift();
    this.arm();
  }

  /** An Execute whose rows need masking gets its DataRows inspected; nothing else pays for it. */
  private arm(): void {
    const head = this.queue.head;
    const needs = head?.kind === 'execute' && ((head.decision?.statements[0]?.masks.length ?? 0) > 0 || (this.policy?.restrictsPhi ?? false) || (this.capture?.wantsRows ?? false));
    this.inspect[D] = needs ? 1 : 0;
  }

  /**
   * The fields of a RowDescription. A session's statements mostly repeat one description, so it is
   * parsed once while the bytes are the same (fields are never modified, so sharing them is safe).
   */
  private describe(frame: Buffer): RowField[] {
    if (this.lastDescription === null || !frame.equals(this.lastDescription)) {
      // A copy: the frame may be a view of a chunk that is not ours to keep.
      this.lastDescription = Buffer.from(frame);
      this.lastFields = parseRowDescription(frame);
      this.lastColumns = undefined;
    }
    return this.lastFields;
  }

  private startResult(masks: ReadonlyMap<number, ColumnMask>, fields: RowField[], sampleRedact?: number[]): void {
    this.rowMasker = masks.size > 0 ? new RowMasker(masks) : null;
    this.inspect[D] = this.rowMasker || this.capture?.wantsRows ? 1 : 0;
    const capture = this.capture;
    if (!capture) return;
    // Masked columns reach the client as text (see rewriteRowDescription). Unmasked, the columns of
    // the cached description are made once.
    const sent = (): SentColumn[] => fields.map((f, i) => ({ name: f.name, typeOid: masks.has(i) ? 25 : f.typeOid, format: f.format }));
    const columns = masks.size === 0 && fields === this.lastFields ? (this.lastColumns ??= sent()) : sent();
    capture.begin(columns, masks.keys(), sampleRedact);
  }

  /** An Execute's result has no RowDescription in the stream: the Describe's fields and the portal's formats say what the client gets. */
  private beginExecuteCapture(head: Pending): void {
    if (!this.capture) return;
    const stmt = head.statementName !== undefined ? this.prepared.get(head.statementName) : undefined;
    const masked = this.rowMasker?.columns ?? [];
    const columns: SentColumn[] | undefined = stmt?.fields?.map((f, i) => ({ name: f.name, typeOid: masked.includes(i) ? 25 : f.typeOid, format: formatOf(head.formats ?? [], i) }));
    this.capture.begin(columns, masked, head.decision?.statements[0]?.sampleRedact);
  }

  /**
   * Which columns of a result to mask: the statement's plan, then the
   * catalog's view of every field that names its table (so a column the
   * analysis missed is still caught), redacting whatever cannot be decided.
   */
  private buildMasks(head: Pending, plan: StatementPlan | undefined, fields: RowField[] | undefined): Map<number, ColumnMask> {
    const masks = new Map<number, ColumnMask>();
    const formats = head.formats ?? [];
    const formatAt = (i: number): number => (head.kind === 'simple' ? 0 : formatOf(formats, i));
    const add = (i: number, masker: Masker): void => {
      const typeOid = fields?.[i]?.typeOid;
      const format = formatAt(i);
      // A binary value of unknown type cannot be read, so it is redacted rather than guessed at.
      masks.set(i, typeOid === undefined && format === 1 ? { masker: REDACT, typeOid: 25, format: 0 } : { masker, typeOid: typeOid ?? 25, format });
    };
    // Columns an approval released ("unmask with approval") stay as the server sent them.
    const released = head.unmask?.[head.kind === 'simple' ? head.stmtIndex : 0];
    for (const m of plan?.masks ?? []) if ((!fields || m.index < fields.length) && !released?.has(m.index)) add(m.index, m.masker);
    if (this.policy && fields) {
      const shapeMismatch = plan?.outputs !== undefined && plan.outputs !== fields.length;
      fields.forEach((f, i) => {
        const byCatalog = f.tableOid !== 0 ? this.policy!.field(f.tableOid, f.attnum) : undefined;
        if (byCatalog === 'deny' || ((shapeMismatch || !plan) && this.policy!.restrictsPhi && byCatalog === undefined)) add(i, REDACT);
        else if (byCatalog && !masks.has(i) && (shapeMismatch || !released?.has(i))) add(i, byCatalog);
      });
    }
    return masks;
  }

  /** For Execute there is no RowDescription in the stream: the plan and the statement's known row types decide. */
  private ensureExecuteMasker(head: Pending): void {
    if (this.rowMasker || head.kind !== 'execute' || !head.decision) return;
    const stmt = head.statementName !== undefined ? this.prepared.get(head.statementName) : undefined;
    const masks = this.buildMasks(head, head.decision.statements[0], stmt?.fields);
    if (masks.size > 0) this.rowMasker = new RowMasker(masks);
  }

  private dataRow(frame: Buffer): FrameVerdict | Promise<FrameVerdict> {
    const head = this.queue.head;
    if (head?.kind === 'execute' && this.rows === 0) {
      this.ensureExecuteMasker(head);
      this.beginExecuteCapture(head);
    }
    const cap = this.policy?.maxRows ?? 0;
    if (cap > 0 && this.rows >= cap && !this.uncapped) {
      const held = this.truncated ? undefined : this.askPastLimit(head, frame);
      if (held) return held;
      // Only reached for the row past the cap when counting happens here.
      this.truncated = true;
      return null;
    }
    return this.passRow(frame);
  }

  /** A row the client gets: masked, hashed and sampled as sent. */
  private passRow(frame: Buffer): FrameVerdict {
    this.rows++;
    const masker = this.rowMasker;
    const out = masker ? masker.rewrite(frame) : undefined;
    const capture = this.capture;
    if (capture) {
      if (out) capture.row(out, masker!.memory);
      else capture.row(frame);
      // Past the sample, rows with nothing to mask stream through again (their bytes still hashed).
      const cap = this.policy?.maxRows ?? 0;
      if (!this.rowMasker && !capture.wantsRows && !(cap > 0 && this.rows >= cap && !this.uncapped)) this.inspect[D] = 0;
    }
    return out;
  }

  /**
   * The result just reached the role's row limit: if a row-limit approval rule applies, the rest of
   * the result waits (the upstream is paused) until approvers decide.
   */
  private askPastLimit(head: Pending | undefined, frame: Buffer): Promise<FrameVerdict> | undefined {
    if (this.limitAsked || !head?.decision || !this.holds) return undefined;
    const rule = rowLimitRule(head.decision.approvals, new Date());
    if (!rule) return undefined;
    this.limitAsked = true;
    return this.holds.hold(rule, head.text, [], [], head.decision).then((v) => {
      head.approvalRequestId = v.approvalRequestId;
      if (v.refusal) {
        this.truncated = true;
        this.limitRefusal = v.refusal;
        return null;
      }
      this.uncapped = true;
      return this.passRow(frame);
    });
  }

  private endResult(): void {
    this.uncapped = false;
    this.limitAsked = false;
    this.limitRefusal = undefined;
    this.capture?.finish();
    this.rows = 0;
    this.rowMasker = null;
    this.truncated = false;
    this.inspect[D] = 0;
  }

  private record(p: Pending, tag: string | undefined, error?: { code: string; message: string }, params = p.params): void {
    const d = p.decision;
    // The event whole, in the log's field order: the session's fields first, then the statement's.
    const rec: StatementEvent = {
      type: 'statement',
      sessionId: this.session.id,
      seq: ++this.seq,
      at: isoNow(),
      protocol: p.kind === 'simple' ? (p.text === '<function call>' ? 'function-call' : 'simple') : p.kind === 'fcall' ? 'function-call' : 'extended',
      text: this.policy?.restrictsPhi ? recordedText(p.text) : p.text,
      rows: this.rows,
      durationMs: Math.round((performance.now() - p.startedAt) * 1000) / 1000,
      decision: p.refusal ? 'deny' : p.approvalRequestId ? 'approved' : d ? d.action : 'unchecked',
    };
    if (p.approvalRequestId) rec.approvalRequestId = p.approvalRequestId;
    if (tag !== undefined) rec.tag = tag;
    if (error) rec.error = error;
    if (p.refusal) rec.ruleIds = [p.refusal.ruleId];
    else if (d) rec.ruleIds = d.ruleIds;
    if (d && d.maskedColumns.length > 0) rec.maskedColumns = d.maskedColumns;
    if (d && d.tables.length > 0) rec.tables = d.tables;
    if (this.rowMasker) rec.maskedValues = this.rowMasker.maskedValues;
    const outputs = d?.statements[p.kind === 'simple' ? p.stmtIndex : 0]?.outputs;
    if (outputs !== undefined && this.rows > 0) rec.returnedValues = this.rows * outputs;
    if (d?.touched) rec.touchedColumns = d.touched;
    if (this.truncated) rec.truncated = true;
    if (params) rec.parameters = params;
    if (this.capture) {
      const { resultSha256, sample } = this.capture.finish();
      if (resultSha256 !== undefined) rec.resultSha256 = resultSha256;
      if (sample) rec.sample = sample;
    }
    if (this.session.bundleVersion !== undefined) rec.bundleVersion = this.session.bundleVersion;
    this.onStatement(rec);
  }

  /** Row cap reached: tell the client, and report the rows it actually got. */
  private cappedCompletion(tag: string | undefined): Buffer[] {
    const cap = this.policy!.maxRows;
    const refused = this.limitRefusal;
    if (refused) {
      return [backend.errorResponse({ severity: 'ERROR', code: refused.code, message: `result exceeds the ${cap}-row limit of this role: ${refused.message}`, hint: `Warden policy rule ${refused.ruleId}` })];
    }
    if (!this.policy!.truncate) {
      return [backend.errorResponse({ severity: 'ERROR', code: '54000', message: `result exceeds the ${cap}-row limit of this role; add a LIMIT or narrow the query` })];
    }
    const verb = tag?.split(' ')[0] ?? 'SELECT';
    return [
      backend.noticeResponse({ severity: 'WARNING', code: '01000', message: `result truncated to ${cap} rows by Warden: this role may read at most ${cap} rows per statement` }),
      cstringFrame(0x43, `${verb === 'FETCH' || verb === 'COPY' ? verb : 'SELECT'} ${cap}`),
    ];
  }

  private complete(head: Pending | undefined, tag: string | undefined, frame: Buffer): FrameVerdict {
    if (!head) return undefined;
    if (head.kind === 'execute' && this.rows === 0) {
      this.ensureExecuteMasker(head);
      // An empty result is still a result: record its (empty) sample and hash when the statement returns rows.
      const stmt = head.statementName !== undefined ? this.prepared.get(head.statementName) : undefined;
      if (stmt?.fields || head.decision?.statements[0]?.outputs !== undefined) this.beginExecuteCapture(head);
    }
    const out = this.truncated ? Buffer.concat(this.cappedCompletion(tag)) : undefined;
    const refused = this.limitRefusal;
    this.record(head, this.truncated && !refused ? `SELECT ${this.policy!.maxRows}` : refused ? undefined : tag, refused ? { code: refused.code, message: refused.message } : undefined);
    this.endResult();
    if (head.kind === 'execute') this.advance();
    else head.stmtIndex++;
    void frame;
    return out;
  }

  private suspended(head: Pending | undefined, frame: Buffer): FrameVerdict {
    if (!head) return undefined;
    // The agent asked for cap+1 rows: a suspension it caused is, for the client, the end of the result.
    const capped = this.truncated && head.clientMaxRows !== undefined && (head.clientMaxRows === 0 || head.clientMaxRows > this.policy!.maxRows);
    this.record(head, capped ? `SELECT ${this.policy!.maxRows}` : 'SUSPENDED');
    const out = capped ? Buffer.concat(this.cappedCompletion(undefined)) : undefined;
    this.endResult();
    this.advance();
    void frame;
    return out;
  }

  private error(head: Pending | undefined, frame: Buffer): FrameVerdict {
    const fields = parseErrorFields(frame.subarray(5));
    let replaced: Buffer | undefined;
    let error = { code: fields.C ?? 'XX000', message: fields.M ?? '' };
    if (head?.refusal) {
      const code = head.refusal.code ?? '42501';
      error = { code, message: head.refusal.message };
      replaced = backend.errorResponse({ severity: 'ERROR', code, message: head.refusal.message, hint: `Warden policy rule ${head.refusal.ruleId}` });
    } else if (this.policy?.restrictsPhi && fields.D !== undefined) {
      // DETAIL lines quote row values (e.g. "Key (ssn)=(...) already exists"): drop them for restricted roles.
      replaced = backend.errorResponse({ severity: (fields.V ?? fields.S ?? 'ERROR') as 'ERROR', code: error.code, message: error.message, ...(fields.H ? { hint: fields.H } : {}) });
    }
    // Data exceptions quote the value they could not take (invalid input syntax for type integer: "..."): the
    // client sees it, but for roles with PHI restrictions the record keeps the message without it, as it keeps
    // no literals of the statement's text.
    if (!head?.refusal && this.policy?.restrictsPhi && error.code.startsWith('22')) error = { code: error.code, message: error.message.replace(QUOTED, '"?"').replace(LISTED_BYTES, ': ?') };
    if (head) {
      if (head.kind === 'simple' || head.kind === 'fcall') {
        if (!head.failed) this.record(head, undefined, error);
        head.failed = true;
      } else {
        // The server skips to Sync. A statement it rejected at Parse, Bind or Execute is recorded with
        // its error (for a Parse, with the parameters of the Bind that followed it).
        const skipped = this.queue.skipToSync();
        if (head.kind === 'execute' || head.kind === 'bind' || head.kind === 'parse' || head.refusal) {
          this.record(head, undefined, error, head.kind === 'parse' ? bindAfter(skipped) : head.params);
        }
      }
    }
    this.endResult();
    this.arm();
    return replaced;
  }
}

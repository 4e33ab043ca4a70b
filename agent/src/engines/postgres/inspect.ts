/**
 * Inspect: every statement a client sends is decided before it is
 * forwarded. Simple queries are decided at Query, extended ones at Parse
 * (the decision travels with the prepared statement to Bind/Execute). A
 * refused statement is not forwarded: it is replaced by a text the server
 * rejects at parse time, so the server itself produces the error in the
 * right place of the stream and puts an open transaction into the failed
 * state, exactly as a real error would; the error is then rewritten into
 * the policy's message (see mask.ts). Nothing that cannot be parsed or
 * decided ever reaches the database.
 */
import type { FrameVerdict } from './wire/frame-scanner.js';
import { buildExecute, buildParse, buildQuery, cstring, readBind, readBindValues, readExecute, readParse } from './wire/frontend-messages.js';
import type { StatementHolds, HoldVerdict } from './hold.js';
import { holdingRule } from '../../policy/approval-rules.js';
import type { PendingQueue, Pending } from './pending.js';
import type { Decision } from '../../policy/decide.js';
import type { RowField } from './result-masker.js';
import type { RecordedValue } from '../../audit/events.js';
import { fallbackParamMasker, recordBindParams } from './bind-params.js';

/** Parses as a syntax error in every PostgreSQL version; never executes anything. */
export const REFUSAL_SQL = 'WARDEN REFUSED THIS STATEMENT';

/** The refusal of anything that would run while the session cannot be recorded. */
const UNRECORDED = { message: 'statement refused: the session cannot be recorded right now, and nothing runs unrecorded', ruleId: 'builtin/recording-unavailable' };

/** What the inspector needs from the policy layer for one session. */
export interface StatementPolicy {
  /** Decision for a statement string. Throwing refuses it (fail closed). */
  decide(text: string): Decision;
  readonly maxRows: number;
  /** Parameters of undecided statements are then recorded redacted. */
  readonly restrictsPhi?: boolean;
}

export interface PreparedStatement {
  text: string;
  decision?: Decision;
  refusal?: Pending['refusal'];
  fields?: RowField[];
  paramTypes?: number[];
}

interface Portal {
  statement: string;
  formats: number[];
  /** Bound values as sent, kept only when the statement may be held (the approval covers them). */
  bound?: { values: Array<Buffer | null>; formats: number[] };
  /** The bound values as the record keeps them (masked by the plan). */
  params?: RecordedValue[];
}

export class FrontendInspector {
  readonly prepared = new Map<string, PreparedStatement>();
  private readonly portals = new Map<string, Portal>();

  constructor(
    private readonly queue: PendingQueue,
    private readonly policy: StatementPolicy | null,
    /** False when the session can no longer be recorded: then nothing runs. */
    private readonly canRecord: () => boolean = () => true,
    /** Where statements an approval rule matches wait; null when the session has no policy. */
    private readonly holds: StatementHolds | null = null,
  ) {}

  /**
   * Holds the statement if an approval rule matches it now: the frame is then answered later, by
   * a promise (the scanner stalls the client's stream meanwhile). `refused` replaces the frame
   * when the request is not approved.
   */
  private maybeHold(entry: Pending, params: Portal['bound'], refused: () => Buffer, shown?: Portal['params']): Promise<FrameVerdict> | undefined {
    const holds = this.holds;
    const rule = entry.decision?.approvals && !entry.refusal ? holdingRule(entry.decision.approvals, new Date()) : undefined;
    if (!rule || !entry.decision) return undefined;
    if (!holds) {
      // Nobody can approve it here: it does not run.
      entry.refusal = { message: `statement refused: it needs approval (rule ${rule.rule.id}) and this session cannot ask for one`, ruleId: rule.rule.id };
      return Promise.resolve(refused());
    }
    return holds.hold(rule, entry.text, params?.values ?? [], params?.formats ?? [], entry.decision, shown).then((v: HoldVerdict) => {
      entry.approvalRequestId = v.approvalRequestId;
      if (v.refusal) {
        entry.refusal = v.refusal;
        return refused();
      }
      if (v.unmask) entry.unmask = v.unmask;
      return undefined;
    });
  }

  private judge(text: string): { decision?: Decision; refusal?: Pending['refusal'] } {
    if (!this.canRecord()) return { refusal: UNRECORDED };
    if (!this.policy) return {};
    let decision: Decision;
    try {
      decision = this.policy.decide(text);
    } catch (err) {
      return { refusal: { message: `statement refused: ${(err as Error).message}`, ruleId: 'builtin/unparseable' } };
    }
    if (decision.action === 'deny') {
      return { decision, refusal: { message: decision.reason ?? 'statement refused by policy', ruleId: decision.ruleIds[0] ?? 'policy' } };
    }
    return { decision };
  }

  /** Frontend frame (type byte included) → verdict for the scanner (a promise while the statement is held). */
  frame(type: number, frame: Buffer): FrameVerdict | Promise<FrameVerdict> {
    const startedAt = performance.now();
    switch (type) {
      case 0x51: { // Query
        const text = cstring(frame, 5)[0];
        const entry: Pending = { kind: 'simple', text, startedAt, stmtIndex: 0 };
        const { decision, refusal } = this.judge(text);
        if (decision) entry.decision = decision;
        if (refusal) entry.refusal = refusal;
        this.queue.push(entry);
        if (entry.refusal) return buildQuery(REFUSAL_SQL);
        return this.maybeHold(entry, undefined, () => buildQuery(REFUSAL_SQL));
      }
      case 0x50: { // Parse
        const { name, text, paramTypes } = readParse(frame);
        const { decision, refusal } = this.judge(text);
        // Optional keys are set only when present (no spread of temporary objects: this runs per statement).
        const stmt: PreparedStatement = { text, paramTypes };
        if (decision) stmt.decision = decision;
        if (refusal) stmt.refusal = refusal;
        this.prepared.set(name, stmt);
        const entry: Pending = { kind: 'parse', text, startedAt, stmtIndex: 0 };
        // Kept for the record of a Parse the server rejects (mask.ts error).
        if (decision) entry.decision = decision;
        if (refusal) entry.refusal = refusal;
        this.queue.push(entry);
        return refusal ? buildParse(name, REFUSAL_SQL) : undefined;
      }
      case 0x42: { // Bind
        const bind = readBind(frame);
        const stmt = this.prepared.get(bind.statement);
        const refusal = stmt?.refusal;
        const params = recordBindParams(frame, stmt?.paramTypes ?? [], stmt?.decision?.statements[0], fallbackParamMasker(this.policy?.restrictsPhi ?? false));
        const portal: Portal = { statement: bind.statement, formats: bind.resultFormats };
        if (params.length > 0) portal.params = params;
        if (stmt?.decision?.approvals) {
          const { values, formats } = readBindValues(frame);
          portal.bound = { values: values.map((v) => (v ? Buffer.from(v) : null)), formats };
        }
        this.portals.set(bind.portal, portal);
        const entry: Pending = { kind: 'bind', text: stmt?.text ?? '', startedAt, stmtIndex: 0 };
        // Kept for the record of a Bind the server rejects, or of the refused or rejected Parse before it.
        if (stmt?.decision) entry.decision = stmt.decision;
        if (params.length > 0) entry.params = params;
        if (refusal) entry.refusal = refusal;
        this.queue.push(entry);
        // A refused statement was never prepared upstream; make the Bind fail in place with the policy's reason.
        return refusal ? buildParse('', REFUSAL_SQL) : undefined;
      }
      case 0x44: { // Describe
        const what = frame[5];
        const name = cstring(frame, 6)[0];
        const portal = what === 0x50 ? this.portals.get(name) : undefined;
        const statementName = what === 0x50 ? portal?.statement : name;
        const stmt = statementName !== undefined ? this.prepared.get(statementName) : undefined;
        const entry: Pending = { kind: 'describe', text: stmt?.text ?? '', startedAt, stmtIndex: 0, formats: portal?.formats ?? [] };
        if (stmt?.decision) entry.decision = stmt.decision;
        if (statementName !== undefined) entry.statementName = statementName;
        this.queue.push(entry);
        return undefined;
      }
      case 0x45: { // Execute
        const { portal: portalName, maxRows } = readExecute(frame);
        const portal = this.portals.get(portalName);
        const stmt = portal ? this.prepared.get(portal.statement) : undefined;
        const entry: Pending = { kind: 'execute', text: stmt?.text ?? '', startedAt, stmtIndex: 0, formats: portal?.formats ?? [], clientMaxRows: maxRows };
        if (portal?.params) entry.params = portal.params;
        if (portal) entry.statementName = portal.statement;
        if (stmt?.decision) entry.decision = stmt.decision;
        if (stmt?.fields) entry.fields = stmt.fields;
        // A statement prepared while recording worked does not run once it stops.
        if (!this.canRecord()) entry.refusal = UNRECORDED;
        this.queue.push(entry);
        if (entry.refusal) return buildParse('', REFUSAL_SQL);
        // Ask the server for one row past the cap so it stops early and we can tell the result was cut.
        const cap = this.policy?.maxRows ?? 0;
        // Unless a row-limit approval rule may let the result past the cap: then all rows come, and the cap is applied (or lifted) as they do.
        const mayExceed = entry.decision?.approvals?.some((c) => c.rowLimit) ?? false;
        const execute = cap > 0 && !mayExceed && (maxRows === 0 || maxRows > cap) ? buildExecute(portalName, cap + 1) : undefined;
        // A refused Execute fails in place: the server rejects the substitute, then skips to Sync.
        const held = this.maybeHold(entry, portal?.bound, () => buildParse('', REFUSAL_SQL), portal?.params);
        return held ? held.then((v) => v ?? execute) : execute;
      }
      case 0x43: { // Close
        const name = cstring(frame, 6)[0];
        if (frame[5] === 0x53) this.prepared.delete(name);
        else this.portals.delete(name);
        this.queue.push({ kind: 'close', text: '', startedAt, stmtIndex: 0 });
        return undefined;
      }
      case 0x46: { // FunctionCall: calls a function by OID, which no policy can vet
        if (this.policy || !this.canRecord()) {
          const refusal = this.policy ? { message: 'the function-call protocol is not permitted through Warden', ruleId: 'builtin/function-call' } : UNRECORDED;
          this.queue.push({ kind: 'simple', text: '<function call>', startedAt, stmtIndex: 0, refusal });
          return buildQuery(REFUSAL_SQL);
        }
        this.queue.push({ kind: 'fcall', text: '<function call>', startedAt, stmtIndex: 0 });
        return undefined;
      }
      case 0x53: // Sync
        this.queue.push({ kind: 'sync', text: '', startedAt, stmtIndex: 0 });
        return undefined;
      default:
        return undefined;
    }
  }
}

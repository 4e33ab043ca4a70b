/**
 * Sessions as the audit log tells them: search (who, when, which table,
 * which decision) and the full record of one session for replay, read from
 * the JSON payloads the hash chain stores (AuditEvent in proto JSON form,
 * plus the agent id). One module for the CLI and the API, so both answer
 * the same question the same way.
 */
import { SchemaTables } from '../db/schema-tables.js';

export const DECISIONS = ['allow', 'mask', 'deny', 'held', 'approved'] as const;
export type DecisionName = (typeof DECISIONS)[number];

export interface SessionFilter {
  /** Token subject (exact). */
  subject?: string;
  /** Sessions that started at or after / before these instants. */
  from?: Date;
  to?: Date;
  /** A table one of its statements read or wrote, "schema.table". */
  table?: string;
  /** A decision one of its statements got. */
  decision?: DecisionName;
  /** Most recent first; default 100, at most 1000. */
  limit?: number;
}

export interface SessionSummary {
  sessionId: string;
  agentId: string;
  subject: string;
  issuer?: string;
  groups: string[];
  role?: string;
  target?: string;
  clientAddress?: string;
  startedAt: string;
  endedAt?: string;
  endReason?: string;
  statements: number;
  /** Statements per decision. */
  decisions: Record<string, number>;
  tables: string[];
  /** Set when the connection was refused at login (the session never started). */
  refused?: { sqlstate: string; reason: string };
}

export interface ReplayValue {
  value: string | null;
  masked: boolean;
}

export interface ReplayStatement {
  sequence: number;
  /** When the statement arrived, and its offset from the session start. */
  startedAt: string;
  offsetMs: number;
  durationMs: number;
  protocol: string;
  text: string;
  parameters: ReplayValue[];
  decision: string;
  ruleIds: string[];
  maskedColumns: string[];
  tables: string[];
  rowCount: number;
  commandTag?: string;
  truncated: boolean;
  resultSha256?: string;
  sample?: { columns: string[]; rows: ReplayValue[][]; truncated: boolean };
  error?: { sqlstate: string; message: string };
}

export interface SessionReplay {
  session: SessionSummary;
  statements: ReplayStatement[];
  /** SSH sessions: each channel's terminal stream as an asciicast v2 file (header line, then events). */
  terminals: Array<{ channel: number; cast: string }>;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- proto JSON payloads */
type Json = any;

const DECISION_JSON = (d: string): string => `STATEMENT_DECISION_${d.toUpperCase()}`;
const short = (enumName: string | undefined, prefix: string, fallback: string): string => (enumName ? enumName.slice(prefix.length).toLowerCase() : fallback);
const datum = (d: Json): ReplayValue => ({ value: d?.isNull ? null : (d?.text ?? ''), masked: Boolean(d?.masked) });

export class SessionQuery extends SchemaTables {
  /** Sessions matching every given filter, most recent first. */
  async list(filter: SessionFilter = {}): Promise<SessionSummary[]> {
    const where: string[] = [`(p ? 'sessionStart' OR p ? 'authRefused')`];
    const args: unknown[] = [];
    const arg = (v: unknown): string => {
      args.push(v);
      return `$${args.length}`;
    };
    if (filter.subject !== undefined) where.push(`coalesce(p #>> '{sessionStart,identity,subject}', p #>> '{authRefused,subject}') = ${arg(filter.subject)}`);
    if (filter.from) where.push(`started >= ${arg(filter.from)}`);
    if (filter.to) where.push(`started < ${arg(filter.to)}`);
    const statementConditions: string[] = [];
    if (filter.table !== undefined) statementConditions.push(`s.payload::jsonb -> 'statement' -> 'tables' ? ${arg(filter.table)}`);
    if (filter.decision !== undefined) statementConditions.push(`s.payload::jsonb #>> '{statement,decision}' = ${arg(DECISION_JSON(filter.decision))}`);
    if (statementConditions.length > 0) {
      where.push(`EXISTS (SELECT 1 FROM ${this.t('audit_log')} s WHERE s.session_id = f.session_id AND s.session_seq > 1 AND ${statementConditions.join(' AND ')})`);
    }
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const { rows: starts } = await this.pool.query(
      `SELECT session_id, p, started FROM (
         SELECT session_id, payload::jsonb AS p,
                coalesce((payload::jsonb #>> '{sessionStart,startedAt}')::timestamptz, recorded_at) AS started
         FROM ${this.t('audit_log')} WHERE session_seq = 1) f
       WHERE ${where.join(' AND ')} ORDER BY started DESC, session_id LIMIT ${limit}`,
      args,
    );
    if (starts.length === 0) return [];
    const ids = starts.map((r: { session_id: string }) => r.session_id);
    // Only the small fields of the rest of each session: samples and texts stay in the database.
    const { rows: rest } = await this.pool.query(
      `SELECT session_id, payload::jsonb #>> '{statement,decision}' AS decision, payload::jsonb -> 'statement' -> 'tables' AS tables,
              payload::jsonb ? 'statement' AS is_statement, payload::jsonb -> 'sessionEnd' AS ended
       FROM ${this.t('audit_log')} WHERE session_id = ANY($1) AND session_seq > 1`,
      [ids],
    );
    const bySession = new Map<string, SessionSummary>(starts.map((r: { session_id: string; p: Json; started: Date }) => [r.session_id, summaryOf(r.session_id, r.p, r.started)]));
    for (const r of rest as Array<{ session_id: string; decision: string | null; tables: string[] | null; is_statement: boolean; ended: Json }>) {
      const s = bySession.get(r.session_id)!;
      if (r.is_statement) addStatement(s, r.decision ?? undefined, r.tables ?? []);
      if (r.ended) endSession(s, r.ended);
    }
    return [...bySession.values()];
  }

  /** Everything recorded of one session, in order; undefined when the log has no such session. */
  async get(sessionId: string): Promise<SessionReplay | undefined> {
    const { rows } = await this.pool.query(`SELECT session_seq, recorded_at, payload FROM ${this.t('audit_log')} WHERE session_id = $1 ORDER BY session_seq`, [sessionId]);
    if (rows.length === 0) return undefined;
    const first = JSON.parse(rows[0].payload as string) as Json;
    const session = summaryOf(sessionId, first, rows[0].recorded_at as Date);
    const start = Date.parse(session.startedAt);
    const statements: ReplayStatement[] = [];
    const terminals = new Map<number, string>();
    for (const r of rows.slice(1) as Array<{ session_seq: string; payload: string }>) {
      const p = JSON.parse(r.payload) as Json;
      if (p.sessionEnd) endSession(session, p.sessionEnd);
      // Terminal chunks concatenate, in sequence order, into the channel's .cast file.
      if (p.terminal) terminals.set(Number(p.terminal.channel ?? 0), (terminals.get(Number(p.terminal.channel ?? 0)) ?? '') + (p.terminal.asciicast ?? ''));
      if (!p.statement) continue;
      const st = p.statement;
      addStatement(session, st.decision, st.tables ?? []);
      const durationMs = Number(st.durationUs ?? 0) / 1000;
      // Agents stamp a statement when it finishes; it began its duration earlier.
      const began = Date.parse(st.startedAt ?? session.startedAt) - durationMs;
      statements.push({
        sequence: Number(r.session_seq),
        startedAt: new Date(began).toISOString(),
        offsetMs: Math.max(0, Math.round((began - start) * 1000) / 1000),
        durationMs,
        protocol: short(st.protocol, 'STATEMENT_PROTOCOL_', 'unknown'),
        text: st.text ?? '',
        parameters: (st.parameters ?? []).map(datum),
        decision: short(st.decision, 'STATEMENT_DECISION_', 'unchecked'),
        ruleIds: st.ruleIds ?? [],
        maskedColumns: st.maskedColumns ?? [],
        tables: st.tables ?? [],
        rowCount: Number(st.rowCount ?? 0),
        truncated: Boolean(st.truncated),
        ...(st.commandTag ? { commandTag: st.commandTag } : {}),
        ...(st.resultSha256 ? { resultSha256: Buffer.from(st.resultSha256, 'base64').toString('hex') } : {}),
        ...(st.sample
          ? { sample: { columns: st.sample.columns ?? [], rows: (st.sample.rows ?? []).map((row: Json) => (row.cells ?? []).map(datum)), truncated: Boolean(st.sample.truncated) } }
          : {}),
        ...(st.error ? { error: { sqlstate: st.error.sqlstate ?? '', message: st.error.message ?? '' } } : {}),
      });
    }
    return { session, statements, terminals: [...terminals].map(([channel, cast]) => ({ channel, cast })) };
  }
}

function summaryOf(sessionId: string, p: Json, recordedAt: Date): SessionSummary {
  const s = p.sessionStart;
  const refused = p.authRefused;
  return {
    sessionId,
    agentId: p.agentId ?? s?.agentId ?? refused?.agentId ?? '',
    subject: s?.identity?.subject ?? refused?.subject ?? '',
    groups: s?.identity?.groups ?? [],
    startedAt: new Date(s?.startedAt ?? refused?.refusedAt ?? recordedAt).toISOString(),
    statements: 0,
    decisions: {},
    tables: [],
    ...(s?.identity?.issuer ? { issuer: s.identity.issuer } : {}),
    ...(s?.role ? { role: s.role } : {}),
    ...(s?.target ? { target: s.target } : {}),
    ...((s ?? refused)?.clientAddress ? { clientAddress: (s ?? refused).clientAddress } : {}),
    ...(refused ? { refused: { sqlstate: refused.sqlstate ?? '', reason: refused.reason ?? '' } } : {}),
  };
}

function addStatement(s: SessionSummary, decision: string | undefined, tables: string[]): void {
  s.statements++;
  const d = short(decision, 'STATEMENT_DECISION_', 'unchecked');
  s.decisions[d] = (s.decisions[d] ?? 0) + 1;
  for (const t of tables) if (!s.tables.includes(t)) s.tables.push(t);
}

function endSession(s: SessionSummary, end: Json): void {
  if (end.endedAt) s.endedAt = new Date(end.endedAt).toISOString();
  s.endReason = short(end.reason, 'SESSION_END_REASON_', 'unspecified');
}

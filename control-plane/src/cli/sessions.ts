/**
 * `warden sessions list` and `warden sessions replay <id>`: the audit log's
 * sessions, searched and shown as the client saw them (session-query.ts
 * answers; session-render.ts shows).
 */
import type { Writable } from 'node:stream';
import { DECISIONS, SessionQuery, type DecisionName, type SessionFilter } from '../audit/session-query.js';
import { renderReplayHtml, renderSessionList, replaySession } from '../audit/session-render.js';
import { UsageError, withDatabase } from './database.js';

export const sessionsOptions = {
  identity: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  table: { type: 'string' },
  decision: { type: 'string' },
  limit: { type: 'string' },
  speed: { type: 'string' },
  instant: { type: 'boolean' },
  cast: { type: 'string' },
} as const;

export const SESSIONS_HELP = `  sessions list        sessions in the audit log, most recent first
      --identity SUB      token subject
      --from T --to T     start time range (ISO 8601, e.g. 2026-11-01 or 2026-11-01T08:00:00Z)
      --table S.T         a statement read or wrote this table
      --decision D        a statement got this decision (${DECISIONS.join(', ')})
      --limit N           at most N sessions (default 100)
  sessions replay ID   a session as the client saw it: statements, masked sample rows, errors
      --speed N           N times the original pace (default 1)
      --instant           no waiting between statements
      --cast N            SSH: write channel N's terminal recording as an asciicast v2 file
      --format text|json|html`;

type Values = { [K in keyof typeof sessionsOptions]?: (typeof sessionsOptions)[K]['type'] extends 'boolean' ? boolean : string } & { 'database-url'?: string; schema?: string };

function time(flag: string, v: string | undefined): Date | undefined {
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new UsageError(`warden sessions: --${flag} "${v}" is not a date or time (ISO 8601)`);
  return d;
}

export function sessionFilter(v: Values): SessionFilter {
  if (v.decision !== undefined && !DECISIONS.includes(v.decision as DecisionName)) {
    throw new UsageError(`warden sessions: --decision must be one of ${DECISIONS.join(', ')}`);
  }
  const limit = v.limit !== undefined ? Number(v.limit) : undefined;
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 1000)) throw new UsageError('warden sessions: --limit must be an integer from 1 to 1000');
  const from = time('from', v.from);
  const to = time('to', v.to);
  return {
    ...(v.identity !== undefined ? { subject: v.identity } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
    ...(v.table !== undefined ? { table: v.table } : {}),
    ...(v.decision !== undefined ? { decision: v.decision as DecisionName } : {}),
    ...(limit !== undefined ? { limit } : {}),
  };
}

/** Exit codes: 0 shown, 1 no such session / nothing matched, 2 usage. */
export async function sessionsCommand(sub: string | undefined, args: string[], v: Values, format: string, out: Writable): Promise<number> {
  if (sub === 'list') {
    const filter = sessionFilter(v);
    const sessions = await withDatabase(v, 'warden sessions list', (pool, schema) => new SessionQuery(pool, schema).list(filter));
    out.write(format === 'json' ? JSON.stringify({ sessions }, null, 2) + '\n' : renderSessionList(sessions));
    return sessions.length > 0 ? 0 : 1;
  }
  if (sub === 'replay') {
    const id = args[0];
    if (!id) throw new UsageError('warden sessions replay: give a session id (see warden sessions list)');
    const speed = v.instant ? Infinity : v.speed !== undefined ? Number(v.speed) : 1;
    if (!(speed > 0)) throw new UsageError('warden sessions replay: --speed must be a positive number');
    const replay = await withDatabase(v, 'warden sessions replay', (pool, schema) => new SessionQuery(pool, schema).get(id));
    if (!replay) {
      process.stderr.write(`warden sessions replay: no session ${id} in the audit log\n`);
      return 1;
    }
    if (v.cast !== undefined) {
      const channel = Number(v.cast);
      if (!Number.isInteger(channel) || channel < 1) throw new UsageError('warden sessions replay: --cast must be a channel number (1, 2, ...)');
      const t = replay.terminals.find((x) => x.channel === channel);
      if (!t) {
        process.stderr.write(`warden sessions replay: session ${id} has no terminal recording on channel ${channel}${replay.terminals.length ? ` (channels: ${replay.terminals.map((x) => x.channel).join(', ')})` : ''}\n`);
        return 1;
      }
      out.write(t.cast);
      return 0;
    }
    if (format === 'json') out.write(JSON.stringify(replay, null, 2) + '\n');
    else if (format === 'html') out.write(renderReplayHtml(replay));
    else await replaySession(replay, speed, (s) => out.write(s));
    return 0;
  }
  throw new UsageError(`warden sessions: unknown subcommand "${sub ?? ''}" (list, replay)`);
}

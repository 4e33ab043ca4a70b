/**
 * What the server still owes the client, in order. Every frontend message
 * that gets an answer is queued here when it is forwarded; each backend
 * answer is attributed to the head. That is what lets the agent apply the
 * right policy plan to a RowDescription or DataRow, rewrite the error of a
 * refused statement, and record each statement, even when the client
 * pipelines many of them. PostgreSQL protocol v3 guarantees the order:
 * - Parse → ParseComplete, Bind → BindComplete, Close → CloseComplete;
 * - Describe → [ParameterDescription] RowDescription | NoData;
 * - Execute → DataRow* then CommandComplete | EmptyQuery | PortalSuspended;
 * - after an ErrorResponse the server skips everything up to Sync;
 * - Sync, Query and FunctionCall each end with ReadyForQuery.
 */
import type { Decision } from '../../policy/decide.js';
import type { RowField } from './result-masker.js';
import type { RecordedValue } from '../../audit/events.js';

export type PendingKind = 'simple' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync' | 'fcall';

export interface Pending {
  kind: PendingKind;
  text: string;
  startedAt: number;
  decision?: Decision;
  /** Set when the agent refused the statement: the server's error for the substitute is replaced by this. */
  refusal?: { message: string; ruleId: string; code?: string };
  /** The approval request that held this statement; set once it was decided. */
  approvalRequestId?: string;
  /** Output positions per statement an approval released unmasked. */
  unmask?: Array<Set<number>>;
  /** Result format codes of the portal (execute, describe P). */
  formats?: number[];
  /** Row types of the prepared statement, when a Describe showed them (binary-format masking). */
  fields?: RowField[];
  /** Statement being executed or described. */
  statementName?: string;
  /** Simple query: index of the statement whose results are flowing. */
  stmtIndex: number;
  /** The client's own row limit for an Execute (0 = all), before the agent capped it. */
  clientMaxRows?: number;
  /** Bind parameters as the record keeps them (execute, and a refused bind). */
  params?: RecordedValue[];
  failed?: boolean;
}

export class PendingQueue {
  private items: Pending[] = [];
  private headIndex = 0;

  push(p: Pending): void {
    this.items.push(p);
  }

  get head(): Pending | undefined {
    return this.items[this.headIndex];
  }

  get size(): number {
    return this.items.length - this.headIndex;
  }

  shift(): Pending | undefined {
    const p = this.items[this.headIndex];
    if (p === undefined) return undefined;
    this.headIndex++;
    // Compact now and then instead of Array.shift on every answer.
    if (this.headIndex > 64 && this.headIndex * 2 > this.items.length) {
      this.items = this.items.slice(this.headIndex);
      this.headIndex = 0;
    }
    return p;
  }

  /** After an error in the extended protocol: drop what the server will skip, up to (not including) the Sync. */
  skipToSync(): Pending[] {
    const skipped: Pending[] = [];
    while (this.head && this.head.kind !== 'sync' && this.head.kind !== 'simple' && this.head.kind !== 'fcall') skipped.push(this.shift()!);
    return skipped;
  }
}

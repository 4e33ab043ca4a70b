/**
 * What the agent records about a session. The recorder interface is the seam
 * where a later stage streams to the control plane instead of a local file.
 */

export interface RecordedIdentity {
  subject: string;
  issuer: string;
  groups: string[];
  tokenId?: string;
}

export type SessionEndReason =
  | 'client_terminate'
  | 'client_disconnect'
  | 'upstream_closed'
  | 'upstream_error'
  | 'protocol_error'
  | 'auth_failed'
  | 'agent_shutdown';

/** A recorded value (bind parameter): its text form, or null for SQL NULL; `masked` when the text is a masked rendering. */
export interface RecordedValue {
  value: string | null;
  masked?: true;
}

/** The first rows of a result exactly as the client received them (masked values included), in text form. */
export interface RecordedSample {
  /** Output column names as described to the client (empty when the client never asked for a description). */
  columns: string[];
  /** Indexes of columns whose values were masked on the wire. */
  maskedColumns: number[];
  rows: Array<Array<string | null>>;
  /** More rows were sent than are sampled here. */
  truncated: boolean;
}

/** One finished statement as the data path saw it. */
export interface StatementRecord {
  protocol: 'simple' | 'extended' | 'function-call' | 'http' | 'ssh';
  text: string;
  /** CommandComplete tag, e.g. "SELECT 10". */
  tag?: string;
  rows: number;
  error?: { code: string; message: string };
  durationMs: number;
  /** allow / mask / deny by policy; unchecked when no policy is configured. */
  decision: 'allow' | 'mask' | 'deny' | 'approved' | 'unchecked';
  /** The approval request that held this statement (approved, or denied/expired/withdrawn). */
  approvalRequestId?: string;
  ruleIds?: string[];
  maskedColumns?: Array<{ column: string; strategy: string }>;
  /** Values replaced on the wire in this statement's result. */
  maskedValues?: number;
  /** Values the client received (rows x result columns). */
  returnedValues?: number;
  /** Base columns the statement reads or writes. */
  touchedColumns?: string[];
  /** The result was cut at the role's row limit. */
  truncated?: boolean;
  /** Tables read or written ("schema.table"), as the analysis resolved them. */
  tables?: string[];
  /** Bind parameters (extended protocol), masked by the classification of the columns they meet. */
  parameters?: RecordedValue[];
  /** SHA-256 (hex) over every DataRow exactly as sent to the client, in order. */
  resultSha256?: string;
  /** The first rows sent, up to the configured cap. */
  sample?: RecordedSample;
  /** HTTP targets: the exchange as the client saw it (response after masking). */
  http?: HttpExchangeRecord;
}

export interface HttpExchangeRecord {
  method: string;
  path: string;
  status: number;
  responseContentType: string;
  /** SHA-256 (hex) of the whole response body sent to the client. */
  responseSha256: string;
  /** First bytes of the response as sent (masked), capped. */
  responseBody: string;
  responseTruncated: boolean;
  responseBytes: number;
  /** "$.patients[*].ssn:redact" for each mask rule that replaced something. */
  maskedFields: string[];
  requestBody: string;
  requestBytes: number;
}

/** What the agent keeps of results: a sample of the first rows (0 = none) and a hash of the whole stream. */
export interface ResultRecording {
  sampleRows: number;
  hash: boolean;
}

/** Twenty rows show an auditor what was seen without turning the audit log into a copy of the database. */
export const DEFAULT_RESULT_RECORDING: ResultRecording = { sampleRows: 20, hash: true };

export type SessionEvent =
  | {
      type: 'session.start';
      sessionId: string;
      at: string;
      agentId: string;
      listener: string;
      target: string;
      clientAddress: string;
      identity: RecordedIdentity;
      role: string;
      tls: boolean;
      applicationName?: string;
    }
  | {
      type: 'auth.refused';
      sessionId: string;
      at: string;
      agentId: string;
      listener: string;
      clientAddress: string;
      sqlState: string;
      reason: string;
      subject?: string;
    }
  | ({
      type: 'statement';
      sessionId: string;
      seq: number;
      at: string;
      /** Policy bundle version (commit) that decided. */
      bundleVersion?: string;
    } & StatementRecord)
  | {
      /** A signed approval decision about one of this session's statements, kept as evidence. */
      type: 'approval';
      sessionId: string;
      at: string;
      requestId: string;
      ruleId: string;
      outcome: 'approve' | 'deny' | 'expired' | 'withdrawn';
      /** Serialized warden.v1.ApprovalRecord, base64. */
      signedRecord: string;
      /** Ed25519 over approvalSignedBytes(signedRecord), base64. */
      signature: string;
      keyId: string;
    }
  | {
      /** SSH: a piece of one channel's terminal stream as asciicast v2 lines (header first). */
      type: 'terminal';
      sessionId: string;
      at: string;
      channel: number;
      asciicast: string;
    }
  | {
      type: 'session.end';
      sessionId: string;
      at: string;
      reason: SessionEndReason;
      detail?: string;
      statements: number;
    };

export interface SessionRecorder {
  /** Appends one event; events of a session keep their order. Never throws on the data path. */
  record(event: SessionEvent): void;
  /**
   * Present on recorders that keep JSON lines: appends a statement event the native relay wrote
   * as its line already (UTF-8, no newline), byte for byte what `record` would write for it
   * (agent/native/src/relay_record.cc). `decision` is the event's.
   */
  recordStatementLine?(line: Buffer, decision: StatementRecord['decision']): void;
  /** Resolves once everything recorded so far is written. */
  flush(): Promise<void>;
  /** False once the recorder cannot write: the data path then refuses work rather than run it unrecorded. */
  readonly healthy: boolean;
  close(): Promise<void>;
}

/** A statement as the session log keeps it: the record with the session's fields in front. */
export type StatementEvent = Extract<SessionEvent, { type: 'statement' }>;

/**
 * Statement events that exercise every field, shared by the tests of the
 * two direct encoders (protobuf: encode-statement.ts, JSON: statement-json.ts).
 */
import type { StatementEvent as Statement } from '../../agent/src/audit/events.js';

export const minimal: Statement = { type: 'statement', sessionId: 's1', seq: 1, at: '1970-01-01T00:00:00.000Z', protocol: 'simple', text: '', rows: 0, durationMs: 0, decision: 'unchecked' };

/** Every field of a statement event set, with values that exercise escaping, NULLs and large numbers. */
export const full: Required<Statement> = {
  type: 'statement', sessionId: '01956a1e-7c00-7000-8000-000000000001', seq: 7, at: '2026-11-25T11:22:02.932Z', protocol: 'extended',
  text: "SELECT name, ssn FROM patients WHERE id = $1 AND note = 'é😀'", tag: 'SELECT 2', rows: 2, durationMs: 1.2345,
  error: { code: '57014', message: 'canceling statement due to user request' }, decision: 'approved', approvalRequestId: 'req-1',
  ruleIds: ['r/1', 'r/2'], maskedColumns: [{ column: 'public.patients.ssn', strategy: 'partial' }], maskedValues: 2, returnedValues: 4,
  touchedColumns: ['public.patients.name', 'public.patients.ssn'], truncated: true, tables: ['public.patients'],
  parameters: [{ value: '42' }, { value: null }, { value: '***', masked: true }], resultSha256: 'ab'.repeat(32),
  sample: { columns: ['name', 'ssn'], maskedColumns: [1], rows: [['Jane', '***-**-6789'], [null, null]], truncated: true },
  http: {
    method: 'GET', path: '/patients?id=1', status: 200, responseContentType: 'application/json', responseSha256: 'cd'.repeat(32), responseBody: '{"ssn":"***"}',
    responseTruncated: false, responseBytes: 13, maskedFields: ['$.ssn:redact'], requestBody: '', requestBytes: 0,
  },
  bundleVersion: 'ee633fb4ded4cef12dc9f9504c4f112f2fab551a',
};

export const http: Statement = {
  ...minimal, protocol: 'http', text: 'GET /patients?id=?', decision: 'mask', at: '1969-12-31T23:59:59.500Z',
  http: full.http,
};

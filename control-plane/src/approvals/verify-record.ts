/**
 * Checks a signed approval record: the Ed25519 signature over
 * approvalSignedBytes(record) with the control plane's public key, and that
 * the record is the one for this request. Used offline (`warden approvals
 * verify`) and by evidence reports.
 */
import { verify, type KeyObject } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { ApprovalRecordSchema, approvalSignedBytes, type ApprovalRecord } from '../../../proto/src/index.js';

export type RecordCheck = { ok: true; record: ApprovalRecord } | { ok: false; problem: string };

export function verifyApprovalRecord(requestId: string, signed: { record: Uint8Array; signature: Uint8Array }, publicKey: KeyObject): RecordCheck {
  if (!verify(null, approvalSignedBytes(signed.record), publicKey, signed.signature)) {
    return { ok: false, problem: 'the signature does not verify with this public key: the record was altered or signed by another key' };
  }
  let record: ApprovalRecord;
  try {
    record = fromBinary(ApprovalRecordSchema, signed.record);
  } catch {
    return { ok: false, problem: 'the signed bytes are not an approval record' };
  }
  if (record.requestId !== requestId) return { ok: false, problem: `the signed record is for request ${record.requestId}` };
  return { ok: true, record };
}

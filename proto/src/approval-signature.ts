/**
 * What an approval signature covers: a domain prefix and the serialized
 * ApprovalRecord. The prefix keeps a signature over a record from ever
 * verifying as a signature over anything else the same key signs (bundles).
 */
const DOMAIN = new TextEncoder().encode('warden.v1.ApprovalRecord\0');

export function approvalSignedBytes(record: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN.length + record.length);
  out.set(DOMAIN, 0);
  out.set(record, DOMAIN.length);
  return out;
}

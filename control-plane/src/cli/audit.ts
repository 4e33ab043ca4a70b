/** `warden audit verify`: the chain and its signed checkpoints, from the start or a checkpoint. */
import { createPublicKey } from 'node:crypto';
import pg from 'pg';
import { AuditChain, type VerifyResult } from '../audit/hash-chain.js';

export async function auditVerify(opts: { url: string; schema: string; publicKeyPem: string; fromCheckpoint?: number }): Promise<VerifyResult> {
  const pool = new pg.Pool({ connectionString: opts.url, max: 1 });
  try {
    return await new AuditChain(pool, opts.schema).verify(createPublicKey(opts.publicKeyPem), opts.fromCheckpoint !== undefined ? { fromCheckpoint: opts.fromCheckpoint } : {});
  } finally {
    await pool.end();
  }
}

/**
 * An audit batch holding bytes that are no AuditEvent is refused as a whole
 * (INVALID_ARGUMENT), nothing of it is stored or acknowledged — so the agent
 * keeps it spooled — and the control plane goes on storing the same agent's
 * good batches on its next stream. Real gRPC, a real enrolled Ed25519
 * identity, the real hash chain in PostgreSQL.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AgentService, AuditEventSchema, createGrpcClient, helloSignedBytes, type ControlMessage } from '../../proto/src/index.js';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { Distribution, startDistributionServer } from '../../control-plane/src/distribution/agent-service.js';
import { SigningKey } from '../../control-plane/src/distribution/signing-key.js';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { services } from '../support/services.js';

const pool = new pg.Pool({ ...services.postgres, max: 4 });
const schema = `bad_batch_${process.pid}`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bad-batch-'));
const chain = new AuditChain(pool, schema);
let server: { port: number; close(): Promise<void> };
let client: ReturnType<typeof createGrpcClient<typeof AgentService>>;
let agentId: string;
let key: KeyObject;

beforeAll(async () => {
  const registry = new AgentRegistry(pool, schema);
  await registry.migrate();
  await chain.migrate();
  const distribution = new Distribution(registry, SigningKey.loadOrCreate(path.join(dir, 'cp.key')), pino({ level: 'silent' }), 10, chain);
  server = await startDistributionServer({ address: '127.0.0.1', port: 0, distribution });
  client = createGrpcClient(AgentService, `127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const pair = generateKeyPairSync('ed25519');
  key = pair.privateKey;
  const token = await registry.createToken({ ttlMs: 60_000 });
  agentId = await new Promise<string>((resolve, reject) =>
    client.enroll({ enrollmentToken: token, agentName: 'bad-batch', publicKey: pair.publicKey.export({ type: 'spki', format: 'der' }) }, (err, res) => (err ? reject(err) : resolve(res!.agentId))),
  );
});

afterAll(async () => {
  client?.close();
  await server?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens Connect as the enrolled agent, sends one audit batch after Welcome; resolves with the acks and how the stream ended. */
function sendBatch(events: Uint8Array[]): Promise<{ acks: Array<[string, bigint]>; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const acks: Array<[string, bigint]> = [];
    const stream = client.connect();
    const finish = (error?: grpc.ServiceError): void => resolve({ acks, ...(error ? { error } : {}) });
    stream.on('data', (m: ControlMessage) => {
      const k = m.kind;
      if (k.case === 'challenge') stream.write({ kind: { case: 'hello', value: { agentId, signature: sign(null, helloSignedBytes(agentId, k.value.nonce), key) } } });
      else if (k.case === 'welcome') stream.write({ kind: { case: 'auditBatch', value: { events } } });
      else if (k.case === 'auditAck') {
        acks.push([k.value.sessionId, k.value.upToSequence]);
        stream.end();
      }
    });
    stream.on('error', (e: grpc.ServiceError) => finish(e));
    stream.on('end', () => finish());
  });
}

const event = (sequence: bigint): Uint8Array =>
  toBinary(AuditEventSchema, create(AuditEventSchema, { sessionId: 'sess-1', sequence, kind: { case: 'statement', value: { text: `SELECT ${sequence}` } } }));

it('refuses a batch with an event that is not an AuditEvent, stores and acknowledges none of it, and stores the next good batch', async () => {
  const garbage = Uint8Array.from([0x0a, 0x7f, 0x01]); // session_id claims 127 bytes, has one
  const refused = await sendBatch([event(1n), garbage]);
  expect(refused.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  expect(refused.error?.details).toMatch(/not a valid warden\.v1\.AuditEvent/);
  expect(refused.acks).toEqual([]);
  expect(await chain.size()).toBe(0);

  const noIdentity = await sendBatch([toBinary(AuditEventSchema, create(AuditEventSchema, { kind: { case: 'statement', value: { text: 'SELECT 1' } } }))]);
  expect(noIdentity.error?.details).toMatch(/no session id or sequence/);
  expect(await chain.size()).toBe(0);

  const good = await sendBatch([event(1n), event(2n)]);
  expect(good.acks).toEqual([['sess-1', 2n]]);
  expect(await chain.size()).toBe(2);
  const stored: string[] = [];
  for await (const rows of chain.scan()) stored.push(...rows.map((r) => r.payload));
  expect(stored.map((p) => JSON.parse(p) as unknown)).toEqual([
    { agentId, sessionId: 'sess-1', sequence: '1', statement: { text: 'SELECT 1' } },
    { agentId, sessionId: 'sess-1', sequence: '2', statement: { text: 'SELECT 2' } },
  ]);
});

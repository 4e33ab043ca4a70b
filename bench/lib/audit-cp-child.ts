/**
 * The control plane's audit side as its own process, for the audit stream
 * benchmark: the real AgentService (gRPC) appending to the real hash chain.
 * Prints one JSON line {port, token} once it listens; exits on SIGTERM.
 * Usage: node audit-cp-child.js <schema> <keyFile>
 */
import pg from 'pg';
import { pino } from 'pino';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { Distribution, startDistributionServer } from '../../control-plane/src/distribution/agent-service.js';
import { SigningKey } from '../../control-plane/src/distribution/signing-key.js';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { fromBinary } from '@bufbuild/protobuf';
import { PolicyBundleSchema } from '../../proto/src/index.js';
import { services } from '../../test/support/services.js';

const [schema, keyFile, bundleB64] = process.argv.slice(2) as [string, string, string];
const pool = new pg.Pool({ ...services.postgres, max: 4 });
const registry = new AgentRegistry(pool, schema);
const chain = new AuditChain(pool, schema);
await registry.migrate();
await chain.migrate();
const distribution = new Distribution(registry, SigningKey.loadOrCreate(keyFile), pino({ level: 'silent' }), 10, chain);
distribution.publish(fromBinary(PolicyBundleSchema, Buffer.from(bundleB64, 'base64')));
const server = await startDistributionServer({ address: '127.0.0.1', port: 0, distribution });
process.stdout.write(JSON.stringify({ port: server.port, token: await registry.createToken({ ttlMs: 60_000 }) }) + '\n');
process.on('SIGTERM', () => {
  void server.close().then(() => pool.end()).then(() => process.exit(0));
});

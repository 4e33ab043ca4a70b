/**
 * The last bundle the control plane signed, kept on disk with its
 * signature. After a restart with the control plane unreachable the agent
 * enforces it — but only after checking the signature again, so a file
 * edited on the host is never enforced. No valid cached bundle: the agent
 * refuses clients until the control plane sends one.
 */
import { createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { PolicyBundleSchema, type PolicyBundle } from '../../../proto/src/index.js';
import { writeFileAtomic } from './agent-identity.js';

export interface SignedBundle {
  version: string;
  bytes: Uint8Array;
  signature: Uint8Array;
  keyId: string;
}

export class BundleSignatureError extends Error {}

/** Checks the signature with the named key and decodes the bundle; the version must match. */
export function verifyBundle(signed: SignedBundle, keys: Record<string, string>): PolicyBundle {
  const spki = keys[signed.keyId];
  if (!spki) throw new BundleSignatureError(`bundle ${signed.version} is signed by unknown key ${signed.keyId}`);
  const key = createPublicKey({ key: Buffer.from(spki, 'base64'), format: 'der', type: 'spki' });
  if (!verify(null, signed.bytes, key, signed.signature)) {
    throw new BundleSignatureError(`bundle ${signed.version}: signature does not verify`);
  }
  const bundle = fromBinary(PolicyBundleSchema, signed.bytes);
  if (bundle.version !== signed.version) throw new BundleSignatureError(`bundle claims version ${bundle.version}, update said ${signed.version}`);
  return bundle;
}

export function saveBundle(dir: string, signed: SignedBundle): void {
  writeFileAtomic(
    path.join(dir, 'bundle.json'),
    JSON.stringify({
      version: signed.version,
      keyId: signed.keyId,
      bytes: Buffer.from(signed.bytes).toString('base64'),
      signature: Buffer.from(signed.signature).toString('base64'),
    }),
  );
}

export function loadBundle(dir: string): SignedBundle | undefined {
  const file = path.join(dir, 'bundle.json');
  if (!fs.existsSync(file)) return undefined;
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string; keyId: string; bytes: string; signature: string };
  return { version: j.version, keyId: j.keyId, bytes: Buffer.from(j.bytes, 'base64'), signature: Buffer.from(j.signature, 'base64') };
}

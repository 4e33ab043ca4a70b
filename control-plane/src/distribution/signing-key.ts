/**
 * The control plane's Ed25519 signing key for bundles (and audit
 * checkpoints): loaded from a PEM file, or generated once and saved 0600.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export class SigningKey {
  readonly publicKey: KeyObject;
  /** First 16 hex of SHA-256 over the SPKI: names the key in signed messages. */
  readonly keyId: string;

  constructor(readonly privateKey: KeyObject) {
    this.publicKey = createPublicKey(privateKey);
    this.keyId = createHash('sha256').update(this.spki).digest('hex').slice(0, 16);
  }

  static loadOrCreate(file: string): SigningKey {
    if (fs.existsSync(file)) return new SigningKey(createPrivateKey(fs.readFileSync(file)));
    const { privateKey } = generateKeyPairSync('ed25519');
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    return new SigningKey(privateKey);
  }

  get spki(): Buffer {
    return this.publicKey.export({ type: 'spki', format: 'der' });
  }

  sign(data: Uint8Array): Buffer {
    return sign(null, data, this.privateKey);
  }
}

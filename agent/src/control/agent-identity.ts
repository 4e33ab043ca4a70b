/**
 * The agent's enrolled identity, kept in its state directory: an Ed25519
 * key pair (created at enrollment, private key never leaves the host), the
 * agent id the control plane assigned, and the control plane's bundle
 * signing keys. Files are written 0600 and replaced atomically.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface StoredIdentity {
  agentId: string;
  name: string;
  labels: Record<string, string>;
  controlPlaneId: string;
  /** key id → SPKI DER (base64) of the keys that sign bundles. */
  bundleKeys: Record<string, string>;
}

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export class AgentIdentity {
  private constructor(
    readonly dir: string,
    readonly privateKey: KeyObject,
    readonly info: StoredIdentity | undefined,
  ) {}

  /** Loads the state directory, creating a key pair if there is none yet. */
  static open(dir: string): AgentIdentity {
    const keyFile = path.join(dir, 'agent.key');
    let key: KeyObject;
    if (fs.existsSync(keyFile)) key = createPrivateKey(fs.readFileSync(keyFile));
    else {
      key = generateKeyPairSync('ed25519').privateKey;
      writeFileAtomic(keyFile, key.export({ type: 'pkcs8', format: 'pem' }) as string);
    }
    const infoFile = path.join(dir, 'identity.json');
    const info = fs.existsSync(infoFile) ? (JSON.parse(fs.readFileSync(infoFile, 'utf8')) as StoredIdentity) : undefined;
    return new AgentIdentity(dir, key, info);
  }

  /** SPKI DER of the public key, as sent at enrollment. */
  get publicKey(): Uint8Array {
    return createPublicKey(this.privateKey).export({ type: 'spki', format: 'der' });
  }

  sign(data: Uint8Array): Uint8Array {
    return sign(null, data, this.privateKey);
  }

  save(info: StoredIdentity): AgentIdentity {
    writeFileAtomic(path.join(this.dir, 'identity.json'), JSON.stringify(info, null, 2));
    return new AgentIdentity(this.dir, this.privateKey, info);
  }
}

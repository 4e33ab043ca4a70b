/**
 * SCRAM-SHA-256 client (RFC 5802 / RFC 7677) for the agent's own upstream
 * login. The salted password is cached per (password, salt, iterations)
 * because PBKDF2 is deliberately slow and the agent reconnects often.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

const saltedCache = new Map<string, Buffer>();

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

export class ScramClient {
  private readonly clientNonce = randomBytes(18).toString('base64');
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | null = null;

  constructor(private readonly password: string) {}

  /** client-first-message; PostgreSQL takes the user from the startup packet, so n= is empty. */
  clientFirst(): string {
    this.clientFirstBare = `n=,r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  /** Consumes server-first-message, returns client-final-message. */
  clientFinal(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) {
      throw new Error('malformed SCRAM server-first-message');
    }
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new Error('SCRAM server nonce does not extend the client nonce');
    }
    const cacheKey = createHash('sha256').update(`${this.password}\0${salt}\0${iterations}`).digest('base64');
    let salted = saltedCache.get(cacheKey);
    if (!salted) {
      salted = pbkdf2Sync(this.password.normalize('NFKC'), Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
      saltedCache.set(cacheKey, salted);
    }
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks server-final-message: a server that cannot prove it knows the key is an impostor. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    const error = attrs.get('e');
    if (error) throw new Error(`SCRAM authentication failed: ${error}`);
    const v = attrs.get('v');
    if (!v || !this.expectedServerSignature) throw new Error('malformed SCRAM server-final-message');
    const got = Buffer.from(v, 'base64');
    if (got.length !== this.expectedServerSignature.length || !timingSafeEqual(got, this.expectedServerSignature)) {
      throw new Error('SCRAM server signature mismatch');
    }
  }
}

/** The md5 method: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
}

/**
 * A real OpenID Connect issuer for tests, in-process on 127.0.0.1: discovery,
 * a JWKS with one RS256, one ES256 and one EdDSA key, and a client_credentials
 * token endpoint. Tokens are signed with real keys so the verifier under test
 * does real cryptography; the hostile helpers build the forgeries an attacker
 * would try.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { JwtAlgorithm } from '../../agent/src/config/types.js';

export interface TestClient {
  clientId: string;
  clientSecret: string;
  groups: string[];
  audience: string | string[];
}

export interface StartIssuerOptions {
  /** Keys to generate and advertise; default RS256, ES256 and EdDSA. The first is the default signing algorithm. */
  algorithms?: JwtAlgorithm[];
  /** Clients the token endpoint accepts. */
  clients?: TestClient[];
  /** Lifetime of tokens from the token endpoint, seconds. Default 300. */
  tokenLifetimeSeconds?: number;
}

export interface SignOptions {
  /** Default: the issuer's first algorithm. Any JWS name is accepted so tests can sign with a foreign `key`. */
  alg?: string;
  /** Default: the current kid of the issuer's key for `alg`. */
  kid?: string;
  /** Seconds from now until `exp` (negative for an expired token). Default 300. */
  expiresIn?: number;
  /** Seconds from now until `nbf`; unset means no `nbf` claim. */
  notBefore?: number;
  /** `iss` to put in the token; default this issuer's URL. */
  issuer?: string;
  /** `aud` to put in the token; default 'warden'. */
  audience?: string | string[];
  /** Sign with this private key instead of the issuer's own (a key the JWKS does not publish). */
  key?: CryptoKey;
}

/** How the HTTP side behaves, so tests can take the IdP away without closing it. */
export type IssuerAvailability = 'up' | 'error' | 'hang';

export interface TestIssuer {
  /** Issuer URL, exactly as it appears in `iss`. */
  readonly issuer: string;
  readonly tokenEndpoint: string;
  /** Number of JWKS documents served so far. */
  readonly jwksRequests: number;
  /** Number of discovery documents served so far. */
  readonly discoveryRequests: number;
  /** Current kid per algorithm. */
  kids(): Partial<Record<JwtAlgorithm, string>>;
  /** Mints a token. Claims given here win over the defaults and over `opts`. */
  sign(claims?: Record<string, unknown>, opts?: SignOptions): Promise<string>;
  /** Replaces every key with a fresh one under a new kid; the old keys leave the JWKS. */
  rotateKeys(): Promise<void>;
  /** `alg: none`, no signature. */
  unsignedToken(claims?: Record<string, unknown>): string;
  /** Key confusion: HS256 keyed with the RSA public key's PEM, kid of the RSA key. */
  hs256WithPublicKey(claims?: Record<string, unknown>): Promise<string>;
  /** Rewrites the payload (default: `sub` becomes 'admin') and keeps the original header and signature. */
  tamper(token: string, patch?: Record<string, unknown>): string;
  setAvailability(mode: IssuerAvailability): void;
  close(): Promise<void>;
}

const DEFAULT_ALGORITHMS: JwtAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];
const DEFAULT_LIFETIME = 300;
const MAX_FORM_BYTES = 64 * 1024;

interface SigningKey {
  alg: JwtAlgorithm;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function makeKey(alg: JwtAlgorithm, generation: number): Promise<SigningKey> {
  const { privateKey, publicKey } = alg === 'EdDSA' ? await generateKeyPair('EdDSA', { crv: 'Ed25519' }) : await generateKeyPair(alg);
  // Unique per start and per rotation, so a kid never silently refers to two different keys.
  const kid = `${alg.toLowerCase()}-${generation}-${crypto.randomBytes(4).toString('hex')}`;
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, publicJwk };
}

class InProcessIssuer implements TestIssuer {
  issuer = '';
  tokenEndpoint = '';
  jwksRequests = 0;
  discoveryRequests = 0;
  private keys = new Map<JwtAlgorithm, SigningKey>();
  private generation = 0;
  private availability: IssuerAvailability = 'up';
  private readonly sockets = new Set<net.Socket>();
  private readonly server: http.Server;
  private readonly algorithms: JwtAlgorithm[];
  private readonly clients: Map<string, TestClient>;
  private readonly tokenLifetime: number;

  constructor(opts: StartIssuerOptions) {
    this.algorithms = opts.algorithms?.length ? [...opts.algorithms] : [...DEFAULT_ALGORITHMS];
    this.clients = new Map((opts.clients ?? []).map((c) => [c.clientId, c]));
    this.tokenLifetime = opts.tokenLifetimeSeconds ?? DEFAULT_LIFETIME;
    this.server = http.createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: String(err) });
        else res.destroy();
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<void> {
    await this.rotateKeys();
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.server.address() as net.AddressInfo;
    this.issuer = `http://127.0.0.1:${port}`;
    this.tokenEndpoint = `${this.issuer}/token`;
  }

  kids(): Partial<Record<JwtAlgorithm, string>> {
    return Object.fromEntries([...this.keys].map(([alg, k]) => [alg, k.kid]));
  }

  async rotateKeys(): Promise<void> {
    this.generation++;
    const fresh = await Promise.all(this.algorithms.map((alg) => makeKey(alg, this.generation)));
    this.keys = new Map(fresh.map((k) => [k.alg, k]));
  }

  async sign(claims: Record<string, unknown> = {}, opts: SignOptions = {}): Promise<string> {
    const alg = opts.alg ?? this.algorithms[0]!;
    const own = this.keys.get(alg as JwtAlgorithm);
    const key = opts.key ?? own?.privateKey;
    if (!key) throw new Error(`test issuer has no ${alg} key; pass opts.key or start it with that algorithm`);
    const iat = nowSeconds();
    const payload: Record<string, unknown> = {
      iss: opts.issuer ?? this.issuer,
      sub: 'agent-1',
      aud: opts.audience ?? 'warden',
      groups: [],
      jti: crypto.randomUUID(),
      iat,
      exp: iat + (opts.expiresIn ?? DEFAULT_LIFETIME),
      ...(opts.notBefore !== undefined ? { nbf: iat + opts.notBefore } : {}),
      ...claims,
    };
    // Explicit `undefined` in claims means "leave this claim out", e.g. { sub: undefined }.
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    const kid = opts.kid ?? own?.kid;
    return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }).sign(key);
  }

  unsignedToken(claims: Record<string, unknown> = {}): string {
    const iat = nowSeconds();
    const payload = { iss: this.issuer, sub: 'agent-1', aud: 'warden', groups: [], iat, exp: iat + DEFAULT_LIFETIME, ...claims };
    return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`;
  }

  async hs256WithPublicKey(claims: Record<string, unknown> = {}): Promise<string> {
    const rsa = this.keys.get('RS256');
    if (!rsa) throw new Error('test issuer has no RS256 key to confuse');
    // The PEM an attacker downloads from the JWKS, used as an HMAC secret: a verifier
    // that lets the token pick the algorithm would accept this.
    const secret = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
    const iat = nowSeconds();
    const payload = { iss: this.issuer, sub: 'agent-1', aud: 'warden', groups: [], iat, exp: iat + DEFAULT_LIFETIME, ...claims };
    return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: rsa.kid }).sign(secret);
  }

  tamper(token: string, patch: Record<string, unknown> = { sub: 'admin' }): string {
    const [header, payload, signature] = token.split('.');
    if (header === undefined || payload === undefined || signature === undefined) throw new Error('not a compact JWT');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    return `${header}.${b64url({ ...claims, ...patch })}.${signature}`;
  }

  setAvailability(mode: IssuerAvailability): void {
    this.availability = mode;
  }

  async close(): Promise<void> {
    // Hung requests would keep close() waiting forever.
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (this.availability === 'hang') return;
    if (this.availability === 'error') return json(res, 503, { error: 'temporarily_unavailable' });
    const path = new URL(req.url ?? '/', this.issuer).pathname;
    if (req.method === 'GET' && path === '/.well-known/openid-configuration') {
      this.discoveryRequests++;
      return json(res, 200, this.discoveryDocument());
    }
    if (req.method === 'GET' && path === '/jwks') {
      this.jwksRequests++;
      return json(res, 200, { keys: [...this.keys.values()].map((k) => k.publicJwk) });
    }
    if (path === '/token') {
      if (req.method !== 'POST') return json(res, 405, { error: 'invalid_request', error_description: 'use POST' });
      return this.token(req, res);
    }
    json(res, 404, { error: 'not_found' });
  }

  private discoveryDocument() {
    return {
      issuer: this.issuer,
      jwks_uri: `${this.issuer}/jwks`,
      token_endpoint: this.tokenEndpoint,
      id_token_signing_alg_values_supported: this.algorithms,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      grant_types_supported: ['client_credentials'],
      response_types_supported: ['token'],
      subject_types_supported: ['public'],
    };
  }

  /** RFC 6749 §4.4 client credentials grant, client authentication per §2.3.1. */
  private async token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (contentType !== 'application/x-www-form-urlencoded') {
      return json(res, 400, { error: 'invalid_request', error_description: 'body must be application/x-www-form-urlencoded' });
    }
    const body = await readBody(req);
    if (body === undefined) return json(res, 413, { error: 'invalid_request', error_description: 'body too large' });
    const form = new URLSearchParams(body);

    const basic = parseBasic(req.headers.authorization);
    const posted = form.has('client_secret');
    if (basic && posted) {
      return json(res, 400, { error: 'invalid_request', error_description: 'use one client authentication method, not two' });
    }
    const clientId = basic?.id ?? form.get('client_id') ?? '';
    const secret = basic?.secret ?? form.get('client_secret') ?? '';
    const client = this.clients.get(clientId);
    if (!client || !sameSecret(secret, client.clientSecret)) {
      // §5.2: a 401 for invalid_client, with a challenge when the client tried Basic.
      const headers: Record<string, string> = basic ? { 'www-authenticate': 'Basic realm="test-issuer"' } : {};
      return json(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' }, headers);
    }
    if (form.get('grant_type') !== 'client_credentials') {
      return json(res, 400, { error: 'unsupported_grant_type', error_description: 'only client_credentials is supported' });
    }
    // A requested scope is granted as asked (RFC 6749 §3.3) and echoed in the token and the response.
    const scope = form.get('scope') ?? undefined;
    const accessToken = await this.sign(
      { sub: client.clientId, client_id: client.clientId, groups: [...client.groups], ...(scope ? { scope } : {}) },
      { audience: client.audience, expiresIn: this.tokenLifetime },
    );
    json(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: this.tokenLifetime, ...(scope ? { scope } : {}) });
  }
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  // Token responses must not be cached (RFC 6749 §5.1); harmless on the rest.
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1), so decode both halves. */
function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
}

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/** Starts an issuer on 127.0.0.1 with an ephemeral port. */
export async function startOidcIssuer(opts: StartIssuerOptions = {}): Promise<TestIssuer> {
  const issuer = new InProcessIssuer(opts);
  await issuer.start();
  return issuer;
}

/** Encodes client credentials for the Authorization header the way RFC 6749 §2.3.1 asks. */
export function basicAuthHeader(clientId: string, clientSecret: string): string {
  const form = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${form(clientId)}:${form(clientSecret)}`).toString('base64')}`;
}

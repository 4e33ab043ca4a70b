/**
 * A throwaway PKI for TLS tests, made with the `openssl` CLI: a CA, a server
 * certificate it signs for localhost/127.0.0.1, and a second, unrelated CA
 * that must never verify that server certificate.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestPkiPaths {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  otherCaCert: string;
  otherCaKey: string;
}

export interface TestPki {
  /** Directory holding every file below. */
  dir: string;
  /** File paths, for servers that take files (postgresql.conf's ssl_* settings). */
  paths: TestPkiPaths;
  /** PEM text, for clients that take contents (`ssl: { ca: pki.caCert }`). */
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  otherCaCert: string;
  otherCaKey: string;
  /** Deletes `dir` if makeTestPki created it; a directory the caller passed in is left alone. */
  remove(): Promise<void>;
}

export interface MakeTestPkiOptions {
  /**
   * Hand the directory and files to the `postgres` OS user. PostgreSQL refuses a
   * key it cannot read or one that group/others can read when it owns it, so the
   * keys end up postgres-owned 0600. Needs root.
   */
  ownerPostgres?: boolean;
}

/** Both CAs share this subject so a verifier that matches issuers by name alone still fails the wrong-CA case. */
const CA_SUBJECT = '/O=Warden Tests/CN=Warden Test CA';

// Our own config, so the result does not depend on the distribution's openssl.cnf defaults.
const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0] ?? ''} failed: ${e.stderr?.trim() || e.message}`);
  }
}

// P-256 rather than RSA: key generation is instant, which keeps per-suite PKIs cheap.
function genKey(file: string): Promise<void> {
  return openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

async function makeCa(keyFile: string, certFile: string, cnf: string): Promise<void> {
  await genKey(keyFile);
  await openssl([
    'req', '-x509', '-new', '-key', keyFile, '-config', cnf, '-extensions', 'v3_ca',
    '-subj', CA_SUBJECT, '-days', '7', '-sha256', '-out', certFile,
  ]);
}

export async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    run('id', ['-u', 'postgres']),
    run('id', ['-g', 'postgres']),
  ]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

export async function makeTestPki(dir?: string, opts: MakeTestPkiOptions = {}): Promise<TestPki> {
  const created = dir === undefined;
  const root = dir ?? (await mkdtemp(path.join(os.tmpdir(), 'warden-pki-')));
  if (!created) await mkdir(root, { recursive: true });
  const f = (name: string) => path.join(root, name);
  const paths: TestPkiPaths = {
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    otherCaCert: f('other-ca.crt'),
    otherCaKey: f('other-ca.key'),
  };
  const cnf = f('openssl.cnf');
  const csr = f('server.csr');

  try {
    await writeFile(cnf, OPENSSL_CNF);
    await Promise.all([
      makeCa(paths.caKey, paths.caCert, cnf),
      makeCa(paths.otherCaKey, paths.otherCaCert, cnf),
      genKey(paths.serverKey),
    ]);
    await openssl(['req', '-new', '-key', paths.serverKey, '-config', cnf, '-subj', '/CN=localhost', '-out', csr]);
    await openssl([
      'x509', '-req', '-in', csr, '-CA', paths.caCert, '-CAkey', paths.caKey,
      // Random serials: two PKIs from the same run must not collide in a client's session cache.
      '-set_serial', `0x${crypto.randomBytes(8).toString('hex')}`,
      '-days', '7', '-sha256', '-extfile', cnf, '-extensions', 'v3_server', '-out', paths.serverCert,
    ]);
    await Promise.all([rm(csr, { force: true }), rm(cnf, { force: true })]);

    for (const key of [paths.caKey, paths.serverKey, paths.otherCaKey]) await chmod(key, 0o600);
    for (const cert of [paths.caCert, paths.serverCert, paths.otherCaCert]) await chmod(cert, 0o644);
    if (opts.ownerPostgres) {
      const { uid, gid } = await postgresIds();
      // mkdtemp makes the directory 0700 for root; postgres has to be able to enter it.
      await chmod(root, 0o755);
      await chown(root, uid, gid);
      for (const file of Object.values(paths)) await chown(file, uid, gid);
    }

    const read = (p: string) => readFile(p, 'utf8');
    const [caCert, caKey, serverCert, serverKey, otherCaCert, otherCaKey] = await Promise.all([
      read(paths.caCert),
      read(paths.caKey),
      read(paths.serverCert),
      read(paths.serverKey),
      read(paths.otherCaCert),
      read(paths.otherCaKey),
    ]);
    return {
      dir: root,
      paths,
      caCert,
      caKey,
      serverCert,
      serverKey,
      otherCaCert,
      otherCaKey,
      remove: async () => {
        if (created) await rm(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (created) await rm(root, { recursive: true, force: true });
    throw err;
  }
}
